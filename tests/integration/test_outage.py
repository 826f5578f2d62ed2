"""A Unizo outage in phases: down, then 500s, then a 429 storm with Retry-After, then answers
slower than the timeout. Nothing is lost, rules that do not call Unizo keep flowing, every call
of an event carries one Idempotency-Key, and what went dead is replayed to completion.

Each phase lasts SY_OUTAGE_PHASE_S seconds (2 in the suite; scripts/outage runs 60), with a
burst of 5 events every few seconds throughout it."""
import collections
import os
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
unizo = {{ base_url = "{mock.url}", api_key = env("SY_UNIZO_KEY"), timeout = "1s", connect_timeout = "500ms",
          retry = {{ attempts = 2, base = "100ms", cap = "500ms" }},
          integrations = {{ jira = {{ organization = "o", collection = "C" }} }} }}
retry = {{ schedule = {{ "1s", "1s", "1s" }}, jitter = 0 }}
workers = 4
"""
        srv = Server(rules={"r.lua": RULES}, config_extra=extra, env={"SY_UNIZO_KEY": "outage-key"}).start()
        ids = []
        phase_s = float(os.environ.get("SY_OUTAGE_PHASE_S", "2"))

        def phase(tag):
            """Bursts of 5 events for the whole phase; the local rule must keep up with each."""
            start, k = time.time(), 0
            while True:
                for i in range(5):
                    eid = "evt_%s_%d_%d" % (tag, k, i)
                    status, data, _ = srv.post(event(eid))
                    self.assertEqual(status, 200)
                    ids.append(eid)
                srv.wait_for(lambda: srv.count("LOCAL %s\n" % eid) + srv.count("LOCAL %s " % eid) == 1,
                             what="local rules flow during the %s phase" % tag)
                k += 1
                if time.time() - start >= phase_s:
                    return
                time.sleep(min(10.0, phase_s / 3))

        mock.stop()                                   # phase 1: down
        phase("down")
        mock = Mock(port)                              # phase 2: 500s
        mock.script([{"method": "POST", "path": "/tickets$", "status": 500, "times": 0}])
        phase("e500")
        mock.script([{"method": "POST", "path": "/tickets$", "status": 429, "times": 0,
                      "headers": {"Retry-After": "1"}}])   # phase 3: 429 storm
        phase("e429")
        mock.script([{"method": "POST", "path": "/tickets$", "delay": 2, "times": 0}])  # phase 4: slow
        phase("slow")
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
        print("\noutage (%gs phases): %d events, %d jobs went dead and were replayed, %d ticket requests in all"
              % (phase_s, len(ids), dead, len(mock.requests("/tickets"))))
        self.assertEqual(srv.stop(), 0)
        mock.stop()
        self.assertNotIn("outage-key", srv.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
