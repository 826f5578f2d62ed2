"""Pause and resume a rule: its jobs wait (pending, no attempt used) while its events keep
arriving; the pause survives a restart and, on Redis, holds for every instance."""
import json
import time
import unittest

from harness import Server, event
from test_redis import Redis

RULES = """
rule { name = "pr", on = "scm.pull_request.created", run = function(ev) log.info("RAN pr " .. ev.id) end }
rule { name = "audit", on = "scm.pull_request.created", run = function(ev) log.info("RAN audit " .. ev.id) end }
"""
SNEAKY = """
rule {
  name = "sneaky",
  on = "scm.branch.created",
  run = function(ev) kv.set("switchyard:paused:audit", { paused_at = 1 }) end,
}
"""


def paused_metric(srv, rule):
    return srv.metric("switchyard_rule_paused", '{rule="%s"}' % rule)


class Base(unittest.TestCase):
    def post(self, srv, ids):
        for eid in ids:
            status, data, _ = srv.post(event(eid))
            self.assertEqual(status, 200, data)

    def states(self, srv, ids, rule):
        return [srv.job_states(e).get(rule) for e in ids]


class OnSQLite(Base):
    def setUp(self):
        self.srv = Server(rules={"r.lua": RULES, "s.lua": SNEAKY},
                          config_extra='retry = { schedule = { "1s" }, jitter = 0 }').start()

    def tearDown(self):
        if self.srv.proc is not None:
            self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])

    def test_pause_restart_resume(self):
        srv = self.srv
        # through the running server's admin listener: it holds at once
        rc, out, err = srv.cli("rules", "--admin", "127.0.0.1:%d" % srv.admin_port, "pause", "pr")
        self.assertEqual(rc, 0, err)
        self.assertIn("rule 'pr' paused", out)
        self.assertEqual(paused_metric(srv, "pr"), 1)
        ids = ["evt_p%d" % i for i in range(3)]
        self.post(srv, ids)
        # the other rule on the same events runs: the events are stored and routed
        srv.wait_for(lambda: srv.count("RAN audit evt_p") == 3, what="audit ran")
        time.sleep(2.5)  # past a deferral's recheck
        self.assertEqual(srv.count("RAN pr "), 0)
        self.assertEqual(self.states(srv, ids, "pr"), [("pending", 0)] * 3)
        status, body, _ = srv.admin("/admin/rules")
        self.assertEqual(status, 200)
        rules = {r["name"]: r for r in json.loads(body)["rules"]}
        self.assertTrue(rules["pr"]["paused"])
        self.assertFalse(rules["audit"]["paused"])
        self.assertEqual(rules["pr"]["file"], "rules/r.lua")
        rc, out, err = srv.cli("rules")
        self.assertEqual(rc, 0, err)
        line = [l for l in out.splitlines() if l.startswith("pr ")][0].split()
        self.assertEqual(line[1:4], ["paused", "3", "0"])  # state, pending, retrying

        # a restart keeps it paused
        self.assertEqual(srv.stop(), 0)
        srv.start()
        srv.wait_for(lambda: paused_metric(srv, "pr") == 1, what="still paused after the restart")
        time.sleep(1.5)
        self.assertEqual(srv.count("RAN pr "), 0)
        self.assertEqual(self.states(srv, ids, "pr"), [("pending", 0)] * 3)

        status, body, _ = srv.admin("/admin/rules/pr/resume", method="POST", body=b"")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"rule": "pr", "paused": False})
        srv.wait_for(lambda: srv.count("RAN pr evt_p") == 3, timeout=10, what="pr ran after resume")
        # each ran once, in one attempt: waiting used none
        srv.wait_for(lambda: self.states(srv, ids, "pr") == [("done", 1)] * 3, what="done")
        self.assertIsNone(paused_metric(srv, "pr"))

    def test_cli_pause_without_a_reachable_server_is_written_to_the_store(self):
        srv = self.srv
        # the config's admin.listen has port 0: no server can be reached, so the store is written
        rc, out, err = srv.cli("rules", "pause", "audit")
        self.assertEqual(rc, 0, err)
        self.assertIn("written to the store", out)
        srv.wait_for(lambda: paused_metric(srv, "audit") == 1, what="the server read it")
        self.post(srv, ["evt_q1"])
        srv.wait_for(lambda: srv.count("RAN pr evt_q1") == 1, what="pr ran")
        self.assertEqual(srv.job_states("evt_q1")["audit"], ("pending", 0))
        rc, out, err = srv.cli("rules", "resume", "audit")
        self.assertEqual(rc, 0, err)
        srv.wait_for(lambda: srv.count("RAN audit evt_q1") == 1, timeout=10, what="audit ran")

    def test_unknown_names_and_wrong_methods_are_refused(self):
        srv = self.srv
        status, body, _ = srv.admin("/admin/rules/nope/pause", method="POST", body=b"")
        self.assertEqual(status, 404, body)
        self.assertIn("no rule or plugin named 'nope'", body)
        status, _, _ = srv.admin("/admin/rules/pr/pause")
        self.assertEqual(status, 405)
        status, _, _ = srv.admin("/admin/rules/pr/stop", method="POST", body=b"")
        self.assertEqual(status, 404)
        self.assertIsNone(paused_metric(srv, "pr"))
        rc, _, err = srv.cli("rules", "--admin", "127.0.0.1:%d" % srv.admin_port, "pause", "nope")
        self.assertEqual(rc, 2)
        self.assertIn("no rule or plugin named 'nope'", err)
        rc, _, err = srv.cli("rules", "pause", "nope")
        self.assertEqual(rc, 2)
        self.assertIn("has no rule or plugin named 'nope'", err)

    def test_a_rule_cannot_pause_another_through_kv(self):
        srv = self.srv
        status, data, _ = srv.post(event("evt_sneak", etype="scm.branch.created"))
        self.assertEqual(status, 200, data)
        srv.wait_for(lambda: srv.count("are the server's own") >= 1, what="the refusal")
        self.assertEqual(srv.rows("SELECT key FROM kv WHERE key LIKE 'switchyard:%'"), [])
        time.sleep(1.2)
        self.assertIsNone(paused_metric(srv, "audit"))


class OnRedis(Base):
    def setUp(self):
        self.redis = Redis()
        extra = f"""
store = {{ url = "redis://127.0.0.1:{self.redis.port}/0", instance = "%s" }}
retry = {{ schedule = {{ "1s" }}, jitter = 0 }}
"""
        self.a = Server(rules={"r.lua": RULES}, config_extra=extra % "a").start()
        self.b = Server(rules={"r.lua": RULES}, config_extra=extra % "b").start()

    def tearDown(self):
        for s in (self.a, self.b):
            if s.proc is not None:
                self.assertEqual(s.stop(), 0, s.log()[-3000:])
        self.redis.close()

    def ran(self, rule, prefix):
        return self.a.count("RAN %s %s" % (rule, prefix)) + self.b.count("RAN %s %s" % (rule, prefix))

    def test_a_pause_on_one_instance_holds_on_all_and_survives_their_restart(self):
        a, b = self.a, self.b
        status, body, _ = a.admin("/admin/rules/pr/pause", method="POST", body=b"")
        self.assertEqual(status, 200, body)
        b.wait_for(lambda: paused_metric(b, "pr") == 1, what="b sees the pause")
        ids = ["evt_r%d" % i for i in range(6)]
        self.post(b, ids[:3])
        self.post(a, ids[3:])
        a.wait_for(lambda: self.ran("audit", "evt_r") == 6, what="audit ran on the instances")
        time.sleep(2.5)
        self.assertEqual(self.ran("pr", ""), 0)
        for s in (a, b):
            self.assertEqual(s.stop(), 0)
        a.start()
        b.start()
        b.wait_for(lambda: paused_metric(b, "pr") == 1, what="still paused after both restarted")
        time.sleep(1.5)
        self.assertEqual(self.ran("pr", ""), 0)
        pending = [self.redis.cmd("HGET", "switchyard:job:%s\npr" % e, "state") for e in ids]
        self.assertEqual(pending, ["pending"] * 6)
        # resumed from the command line, straight into Redis: both instances pick it up
        rc, out, err = b.cli("rules", "resume", "pr")
        self.assertEqual(rc, 0, err)
        a.wait_for(lambda: self.ran("pr", "evt_r") == 6, timeout=15, what="pr ran after resume")
        time.sleep(1)
        self.assertEqual(self.ran("pr", "evt_r"), 6)  # each once
        attempts = [self.redis.cmd("HGET", "switchyard:job:%s\npr" % e, "attempts") for e in ids]
        self.assertEqual(attempts, ["1"] * 6)


if __name__ == "__main__":
    unittest.main()
