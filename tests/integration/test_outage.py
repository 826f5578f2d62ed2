"""A Unizo outage in phases: down, then 500s, then a 429 storm with Retry-After, then answers
slower than the timeout. Nothing is lost, rules that do not call Unizo keep flowing, every call
of an event carries one Idempotency-Key, and what went dead is replayed to completion."""
import collections
import time
import unittest

from harness import Mock, Server, event

RULES = """
rule {
  name = "ticket",
  on = "scm.*",
  run = function(ev)
    unizo.ticketing.create_ticket { integration = "jira", title = "t " .. ev.id }
    log.info("TICKET " .. ev.id)
  end,
}
rule {
  name = "local",
  on = "scm.*",
  run = function(ev) log.info("LOCAL " .. ev.id) end,
}
"""


class Outage(unittest.TestCase):
    def test_phases_of_an_outage(self):
        mock = Mock()
        port = mock.port
        extra = f"""
unizo = {{ base_url = "{mock.url}", api_key = env("SY_K"), timeout = "1s", connect_timeout = "500ms",
          retry = {{ attempts = 2, base = "100ms", cap = "500ms" }},
          integrations = {{ jira = {{ organization = "o", collection = "C" }} }} }}
retry = {{ schedule = {{ "1s", "1s", "1s" }}, jitter = 0 }}
workers = 4
"""
        srv = Server(rules={"r.lua": RULES}, config_extra=extra, env={"SY_K": "outage-key"}).start()
        ids = []

        def burst(tag, n=5):
            for i in range(n):
                eid = "evt_%s_%d" % (tag, i)
                status, data, _ = srv.post(event(eid))
                self.assertEqual(status, 200)
                ids.append(eid)

        mock.stop()                                   # phase 1: down
        burst("down")
        srv.wait_for(lambda: srv.count("LOCAL evt_down_4") == 1, what="local rules flow while down")
        mock = Mock(port)                              # phase 2: 500s
        mock.script([{"method": "POST", "path": "/tickets$", "status": 500, "times": 0}])
        burst("e500")
        time.sleep(2)
        mock.script([{"method": "POST", "path": "/tickets$", "status": 429, "times": 0,
                      "headers": {"Retry-After": "1"}}])   # phase 3: 429 storm
        burst("e429")
        time.sleep(2)
        mock.script([{"method": "POST", "path": "/tickets$", "delay": 2, "times": 0}])  # phase 4: slow
        burst("slow")
        time.sleep(2)
        mock.script([])                               # recovered
        srv.wait_for(lambda: srv.rows("SELECT count(*) FROM jobs WHERE state IN ('pending','retrying')")[0][0] == 0,
                     timeout=60, what="every job done or dead")
        dead = srv.rows("SELECT count(*) FROM jobs WHERE state = 'dead'")[0][0]
        srv.cli("replay", "--dead")
        srv.wait_for(lambda: srv.rows("SELECT count(*) FROM jobs WHERE state != 'done'")[0][0] == 0,
                     timeout=60, what="everything done after the replay")
        # nothing lost: every event stored, both of its jobs done; the local rule ran once per event
        self.assertEqual({r[0] for r in srv.rows("SELECT id FROM events")}, set(ids))
        for eid in ids:
            self.assertEqual(srv.count("LOCAL %s\n" % eid) + srv.count("LOCAL %s " % eid), 1, eid)
        # one Idempotency-Key per event's call, however many attempts it took
        keys = collections.defaultdict(set)
        for r in mock.requests("/tickets"):
            body_id = r["body"]["name"].split(" ", 1)[1]
            keys[body_id].add(r["headers"]["idempotency-key"])
        for eid in ids:
            self.assertEqual(keys[eid], {"%s/ticket/1" % eid}, eid)
        print("\noutage: %d events, %d jobs went dead and were replayed, %d ticket requests in all"
              % (len(ids), dead, len(mock.requests("/tickets"))))
        self.assertEqual(srv.stop(), 0)
        mock.stop()
        self.assertNotIn("outage-key", srv.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
