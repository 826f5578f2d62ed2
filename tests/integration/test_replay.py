"""Replays of anything: by time, type, rule and job state, dry or not, through the rules the
server runs now, on SQLite and on Redis."""
import json
import time
import unittest

from harness import Server, event
from test_redis import Redis

RULES = {
    "a.lua": 'rule { name = "a", on = "scm.*", run = function(ev) log.info("RAN a " .. ev.id) end }\n',
    "b.lua": 'rule { name = "b", on = "ticketing.*", run = function(ev)\n'
             '  log.info("RAN b " .. ev.id)\n'
             '  if ev.data.fail then error("boom") end\n'
             'end }\n',
}
NEW_RULE = 'rule { name = "c", on = "scm.*", run = function(ev) log.info("RAN c " .. ev.id) end }\n'
CONFIG = 'retry = { schedule = {}, jitter = 0 }\n'


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class ReplayCases:
    """The same story on either backend; 'states' reads a job's state from that backend."""

    def story(self, srv, states):
        def ran(rule, eid):
            return srv.count("RAN %s %s" % (rule, eid))

        def replay(*args):
            rc, out, err = srv.cli("replay", "--admin", "127.0.0.1:%d" % srv.admin_port, *args)
            self.assertEqual(rc, 0, out + err)
            return out

        srv.post(event("evt_r1", etype="scm.push"))
        srv.post(event("evt_r2", etype="ticketing.ticket.created", fail=True))
        srv.wait_for(lambda: ran("a", "evt_r1") == 1 and states("evt_r2").get("b") == "dead")
        time.sleep(1.1)
        mid = time.time()
        srv.post(event("evt_r3", etype="scm.push"))
        srv.post(event("evt_r4", etype="ticketing.ticket.created", fail=True))
        srv.wait_for(lambda: states("evt_r3").get("a") == "done" and states("evt_r4").get("b") == "dead")

        # dry run: lists what would run, changes nothing
        out = replay("--since", iso(mid), "--state", "finished", "--dry-run")
        self.assertIn("evt_r3", out)
        self.assertIn("evt_r4", out)
        self.assertNotIn("evt_r1", out)
        self.assertIn("dry run, nothing changed: 2 events read: 2 jobs would run again, 0 new", out)
        time.sleep(0.5)
        self.assertEqual((ran("a", "evt_r3"), ran("b", "evt_r4")), (1, 1))

        # by time and rule, done jobs: only evt_r3's rule a runs again
        out = replay("--since", iso(mid), "--rule", "a", "--state", "done")
        self.assertIn("replayed: 2 events read: 1 job run again, 0 new", out)
        srv.wait_for(lambda: ran("a", "evt_r3") == 2, what="a again on evt_r3")
        self.assertEqual(ran("a", "evt_r1"), 1)

        # by type, dead jobs by default: both failing tickets, nothing of scm
        out = replay("--since", "1h", "--type", "ticketing.*")
        self.assertIn("2 jobs run again", out)
        srv.wait_for(lambda: ran("b", "evt_r2") == 2 and ran("b", "evt_r4") == 2, what="b again")
        self.assertEqual((ran("a", "evt_r1"), ran("a", "evt_r3")), (1, 2))

        # a rule added since: its jobs are created for the events it takes now
        srv.write_rules({"c.lua": NEW_RULE})
        status, _, _ = srv.admin("/admin/reload", method="POST")
        self.assertEqual(status, 200)
        out = replay("--since", "1h", "--rule", "c")
        self.assertIn("0 jobs run again, 2 new", out)
        srv.wait_for(lambda: ran("c", "evt_r1") == 1 and ran("c", "evt_r3") == 1, what="the new rule")
        out = replay("--since", "1h", "--rule", "c")
        self.assertIn("0 jobs run again, 0 new", out)  # done now; done jobs only with --state

        # by id
        out = replay("evt_r1", "--rule", "a", "--state", "done")
        self.assertIn("1 event read: 1 job run again", out)
        srv.wait_for(lambda: ran("a", "evt_r1") == 2, what="by id")
        time.sleep(0.3)
        self.assertEqual(ran("c", "evt_r1"), 1)

        # the admin API says what is wrong with a request
        status, body, _ = srv.admin("/admin/replay", method="POST", body=b'{"since": "2h", "state": "gone"}')
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_request"))
        self.assertIn("'state' must be", json.loads(body)["detail"])
        status, body, _ = srv.admin("/admin/replay", method="POST", body=b'{"rule": "a"}')
        self.assertEqual(status, 400)
        self.assertIn("say which events", json.loads(body)["detail"])
        rc, _, err = srv.cli("replay", "--rule", "a")
        self.assertEqual(rc, 2)


class ReplaySqlite(ReplayCases, unittest.TestCase):
    def test_replay_by_time_type_rule_state_and_id(self):
        srv = Server(rules=RULES, config_extra=CONFIG).start()
        self.story(srv, lambda eid: {h: st for h, (st, _) in srv.job_states(eid).items()})
        self.assertEqual(srv.stop(), 0)


class ReplayRedis(ReplayCases, unittest.TestCase):
    def test_replay_by_time_type_rule_state_and_id(self):
        redis = Redis()
        srv = Server(rules=RULES, config_extra=CONFIG + 'store = { url = "redis://127.0.0.1:%d/0", instance = "r" }\n'
                     % redis.port).start()

        def states(eid):
            status, body, _ = srv.admin("/admin/events/%s" % eid)
            return {j["handler"]: j["state"] for j in json.loads(body).get("jobs", [])} if status == 200 else {}
        self.story(srv, states)
        self.assertEqual(srv.stop(), 0)
        redis.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
