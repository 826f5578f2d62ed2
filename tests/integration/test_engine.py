"""Rules on the real binary: exactly once, retries, dead letters, replay, crashes, reloads."""
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import unittest

from harness import BIN, Server, ServerTest, event

FAST_RETRY = 'retry = { schedule = { "1s", "1s" }, jitter = 0 }\nworkers = 2\n'

LOGGER = """
rule {
  name = "logger",
  on = "scm.*",
  run = function(ev) log.info("RAN logger " .. ev.id) end,
}
"""


class ExactlyOnce(ServerTest):
    server_args = {"rules": {"a.lua": LOGGER}, "config_extra": FAST_RETRY}

    def test_each_event_runs_its_rule_once_and_duplicates_do_not(self):
        ids = ["evt_once_%d" % i for i in range(20)]
        for i in ids:
            self.assertEqual(self.srv.post(event(i))[1]["status"], "accepted")
            self.assertEqual(self.srv.post(event(i))[1]["status"], "duplicate")
        self.srv.post(event("evt_other", etype="ticketing.ticket.created"))
        self.srv.wait_for(lambda: self.srv.count("job done") >= 20, what="20 jobs")
        time.sleep(0.5)
        for i in ids:
            self.assertEqual(self.srv.count("RAN logger %s " % i) + self.srv.count("RAN logger %s\n" % i), 1, i)
            self.assertEqual(self.srv.job_states(i), {"logger": ("done", 1)})
        self.assertEqual(self.srv.count("job done"), 20)
        # an event no rule takes is marked, with no job
        self.assertEqual(self.srv.rows("SELECT state FROM events WHERE id = 'evt_other'"), [("unrouted",)])
        self.assertEqual(self.srv.job_states("evt_other"), {})
        self.assertEqual(self.srv.metric("switchyard_jobs_total", '{rule="logger",outcome="done"}'), 20)
        self.assertEqual(self.srv.metric("switchyard_jobs_queued"), 0)


FLAKY = """
rule {
  name = "needs-fix",
  on = "scm.pull_request.created",
  run = function(ev)
    if not kv.get("fixed") then error("not fixed yet for " .. ev.id) end
    log.info("RAN needs-fix " .. ev.id)
  end,
}
rule {
  name = "fixer",
  on = "ticketing.ticket.created",
  run = function(ev) kv.set("fixed", true) end,
}
rule {
  name = "sibling",
  on = "scm.pull_request.created",
  run = function(ev) log.info("RAN sibling " .. ev.id) end,
}
"""


class RetriesDeadReplay(ServerTest):
    server_args = {"rules": {"flaky.lua": FLAKY}, "config_extra": FAST_RETRY}

    def test_retry_dead_show_and_replay(self):
        self.srv.post(event("evt_flaky_1"))
        self.srv.post(event("evt_flaky_2"))
        for eid in ("evt_flaky_1", "evt_flaky_2"):
            self.srv.wait_for(lambda: self.srv.job_states(eid).get("needs-fix", ("",))[0] == "dead",
                              what="dead job")
            # three attempts: the first and two retries of the schedule
            self.assertEqual(self.srv.job_states(eid)["needs-fix"], ("dead", 3))
            # the sibling ran exactly once, untouched by the failures
            self.assertEqual(self.srv.job_states(eid)["sibling"], ("done", 1))
            self.assertEqual(self.srv.count("RAN sibling " + eid), 1)
        rc, out, _ = self.srv.cli("events", "--status", "dead")
        self.assertEqual(rc, 0)
        self.assertIn("evt_flaky_1", out)
        rc, out, _ = self.srv.cli("events", "show", "evt_flaky_1")
        shown = json.loads(out)
        job = [j for j in shown["jobs"] if j["handler"] == "needs-fix"][0]
        self.assertEqual(job["state"], "dead")
        self.assertIn("rules/flaky.lua:6: not fixed yet for evt_flaky_1", job["last_error"])
        self.assertEqual(shown["headers"]["x-unizo-signature"], "(redacted)")

        self.srv.post(event("evt_fix", etype="ticketing.ticket.created"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_fix").get("fixer", ("",))[0] == "done")
        # the command line asks a running server to replay
        rc, out, _ = self.srv.cli("replay", "evt_flaky_1")
        self.assertEqual(rc, 0)
        self.assertIn("1 dead job queued for replay", out)
        self.srv.wait_for(lambda: self.srv.job_states("evt_flaky_1")["needs-fix"][0] == "done", what="replay")
        self.assertEqual(self.srv.count("RAN needs-fix evt_flaky_1"), 1)
        # and so does the admin API
        status, body, _ = self.srv.admin("/admin/events/evt_flaky_2/replay", method="POST")
        self.assertEqual((status, json.loads(body)["replayed"]), (200, 1))
        self.srv.wait_for(lambda: self.srv.job_states("evt_flaky_2")["needs-fix"][0] == "done", what="replay")
        # the sibling was never run again
        self.assertEqual(self.srv.count("RAN sibling evt_flaky_1"), 1)
        self.assertEqual(self.srv.count("RAN sibling evt_flaky_2"), 1)
        # admin inspection
        status, body, _ = self.srv.admin("/admin/events?status=done&limit=10")
        self.assertIn("evt_flaky_1", [e["id"] for e in json.loads(body)["events"]])
        status, body, _ = self.srv.admin("/admin/events/evt_flaky_1")
        self.assertEqual(json.loads(body)["id"], "evt_flaky_1")
        self.assertEqual(self.srv.admin("/admin/events/nope")[0], 404)
        self.assertEqual(self.srv.admin("/admin/events/nope/replay", method="POST")[0], 404)
        self.assertEqual(self.srv.admin("/admin/events?status=bogus")[0], 400)
        rc, out, err = self.srv.cli("replay", "nope")
        self.assertEqual(rc, 1)
        self.assertIn("no event with id 'nope'", err)


SLOW = """
rule {
  name = "slow",
  on = "scm.*",
  run = function(ev)
    log.info("STARTED slow " .. ev.id)
    local t = os.clock()
    while os.clock() - t < 2.5 do end
    log.info("FINISHED slow " .. ev.id)
  end,
}
"""


class Crash(unittest.TestCase):
    def test_sigkill_during_a_slow_rule_runs_it_again_after_restart(self):
        srv = Server(rules={"slow.lua": SLOW},
                     config_extra='lua = { instruction_limit = 100000000000 }\n' + FAST_RETRY).start()
        srv.post(event("evt_slow"))
        srv.wait_for(lambda: srv.count("STARTED slow evt_slow") == 1, what="start")
        self.assertEqual(srv.kill(), -signal.SIGKILL)  # it was still running
        self.assertEqual(srv.job_states("evt_slow"), {"slow": ("pending", 0)})
        srv.start()
        srv.wait_for(lambda: srv.job_states("evt_slow")["slow"][0] == "done", what="done after restart")
        self.assertEqual(srv.count("FINISHED slow evt_slow"), 1)
        self.assertEqual(srv.stop(), 0, srv.log()[-3000:])

    def test_sigterm_waits_for_a_running_job_up_to_shutdown_grace(self):
        spin = SLOW.replace("2.5", "30")
        srv = Server(rules={"slow.lua": spin},
                     config_extra='lua = { instruction_limit = 100000000000 }\nshutdown_grace = "1s"\n').start()
        srv.post(event("evt_grace"))
        srv.wait_for(lambda: srv.count("STARTED slow evt_grace") == 1, what="start")
        t0 = time.time()
        self.assertEqual(srv.stop(), 0)
        self.assertLess(time.time() - t0, 10)
        self.assertIn("shutdown_grace is over", srv.log())
        self.assertEqual(srv.job_states("evt_grace"), {"slow": ("pending", 0)})
        # a job that finishes within the grace is waited for
        srv2 = Server(rules={"slow.lua": SLOW},
                      config_extra='lua = { instruction_limit = 100000000000 }\nshutdown_grace = "20s"\n').start()
        srv2.post(event("evt_grace2"))
        srv2.wait_for(lambda: srv2.count("STARTED slow evt_grace2") == 1, what="start")
        self.assertEqual(srv2.stop(), 0)
        self.assertEqual(srv2.job_states("evt_grace2"), {"slow": ("done", 1)})

    def test_restart_keeps_retry_attempts(self):
        failing = 'rule { name = "f", on = "*", run = function(ev) error("nope") end }'
        srv = Server(rules={"f.lua": failing},
                     config_extra='retry = { schedule = { "2s", "2s", "2s" }, jitter = 0 }').start()
        srv.post(event("evt_attempts"))
        srv.wait_for(lambda: srv.job_states("evt_attempts")["f"] == ("retrying", 1), what="first failure")
        self.assertEqual(srv.stop(), 0)
        srv.start()
        srv.wait_for(lambda: srv.job_states("evt_attempts")["f"][0] == "dead", timeout=30, what="dead")
        # four attempts in all: not reset by the restart
        self.assertEqual(srv.job_states("evt_attempts")["f"], ("dead", 4))
        self.assertEqual(srv.stop(), 0)


V1 = 'rule { name = "r", on = "*", run = function(ev) log.info("V1 " .. ev.id) end }'
V2 = 'rule { name = "r2", on = "*", run = function(ev) log.info("V2 " .. ev.id) end }'
BROKEN = 'rule { name = "r", on = "*", run = function(ev) log.info("BROKEN") end\n'


class Reload(ServerTest):
    server_args = {"rules": {"r.lua": V1}, "config_extra": FAST_RETRY}

    def test_broken_reload_keeps_the_old_rules(self):
        self.srv.post(event("evt_r1"))
        self.srv.wait_for(lambda: self.srv.count("V1 evt_r1") == 1)
        self.srv.write_rules({"r.lua": BROKEN})
        self.srv.proc.send_signal(signal.SIGHUP)
        self.srv.wait_for(lambda: self.srv.count("reload refused") == 1, what="refusal")
        self.assertIn("rules/r.lua:", [l for l in self.srv.lines if "reload refused" in l][0])
        self.srv.post(event("evt_r2"))
        self.srv.wait_for(lambda: self.srv.count("V1 evt_r2") == 1, what="old rule still running")
        status, body, _ = self.srv.admin("/admin/reload", method="POST")
        self.assertEqual((status, json.loads(body)["error"]), (400, "reload_failed"))
        self.assertIn("rules/r.lua:", json.loads(body)["detail"])
        # a good file is taken; a job whose rule is gone dies with a clear message
        self.srv.write_rules({"r.lua": V2})
        status, body, _ = self.srv.admin("/admin/reload", method="POST")
        self.assertEqual((status, json.loads(body)), (200, {"status": "reloaded", "rules": 1}))
        self.srv.post(event("evt_r3"))
        self.srv.wait_for(lambda: self.srv.count("V2 evt_r3") == 1, what="new rule")
        self.assertEqual(self.srv.count("V1 evt_r3"), 0)


RULES_V1 = """
rule { name = "r", on = "scm.*", run = function(ev)
  local t = os.clock() while os.clock() - t < 0.03 do end   -- spread the jobs over the workers
  log.info("V1 " .. ev.id)
end }
rule { name = "bomb", on = "identity.*", run = function(ev)
  local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 65536) .. i end end }
"""


class BrokenFileOnDisk(ServerTest):
    """Workers build their states from the rules compiled at the last good load, never from disk."""
    server_args = {"rules": {"r.lua": RULES_V1},
                   "config_extra": 'workers = 3\nlua = { memory_limit = "8MiB" }\n'
                                   'retry = { schedule = {}, jitter = 0 }\n'}

    def test_a_broken_file_without_a_reload_changes_nothing(self):
        # no job has run yet: every worker builds its first state after the file broke
        self.srv.write_rules({"r.lua": BROKEN})
        for i in range(15):
            self.srv.post(event("evt_disk_%d" % i))
        # a memory-limit hit makes a worker throw its state away and build a new one
        self.srv.post(event("evt_disk_bomb", etype="identity.user.created"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_disk_bomb").get("bomb", ("",))[0] == "dead")
        # a refused reload leaves the last good rules too
        self.srv.proc.send_signal(signal.SIGHUP)
        self.srv.wait_for(lambda: self.srv.count("reload refused") == 1, what="refusal")
        for i in range(15, 30):
            self.srv.post(event("evt_disk_%d" % i))
        self.srv.wait_for(lambda: self.srv.count("V1 evt_disk_") == 30, what="30 jobs on the old rules")
        for i in range(30):
            self.assertEqual(self.srv.job_states("evt_disk_%d" % i), {"r": ("done", 1)})
        self.assertEqual(self.srv.count("cannot build the rule state"), 0)
        self.assertEqual(self.srv.count("BROKEN"), 0)
        rc, out, _ = self.srv.cli("events", "show", "evt_disk_bomb")
        self.assertIn("memory limit exceeded", out)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class ReloadMemory(unittest.TestCase):
    """Old rule generations are freed once no worker uses them: memory stays flat over reloads."""

    def test_a_thousand_reloads(self):
        # under AddressSanitizer freed memory sits in a quarantine; turn it off to see the truth
        asan = "asan" in subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0:"
               "thread_local_quarantine_size_kb=0"} if asan else {}
        rules = {"r%d.lua" % k: "".join('rule { name = "r%d_%d", on = "scm.*", run = function(ev) '
                                         'log.info("R" .. ev.id .. string.rep("x", %d)) end }\n' % (k, i, i)
                                         for i in range(20)) for k in range(5)}
        srv = Server(rules=rules, config_extra="workers = 2\n", env=env).start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.admin_port, timeout=10)

        def reload():
            conn.request("POST", "/admin/reload", headers={"content-type": "application/json"})
            r = conn.getresponse()
            self.assertEqual((r.status, json.loads(r.read())["rules"]), (200, 100))

        def reloads(n, tag, every):
            for i in range(n):
                reload()
                if i % every == 0:  # jobs in between, so the workers move to new generations
                    srv.post(event("evt_rl_%s_%d" % (tag, i)))
                    srv.wait_for(lambda: srv.metric("switchyard_jobs_queued") == 0, what="jobs done")
        # warm up with the same pattern: workers rebuild their states, the allocators (and
        # SQLite's page cache) settle; then the same again is measured
        reloads(1000, "warm", 50)
        before = rss_kib(srv.proc.pid)
        reloads(int(os.environ.get("SY_TEST_RELOADS", "1000")), "run", 50)
        after = rss_kib(srv.proc.pid)
        print("RSS over 1000 reloads: %d -> %d KiB" % (before, after), file=sys.stderr)
        # the current generation and at most one per worker are alive
        self.assertLessEqual(srv.metric("switchyard_rule_generations"), 3)
        self.assertLess(after - before, 2048, "RSS grew from %d to %d KiB over 1000 reloads" % (before, after))
        conn.close()
        self.assertEqual(srv.stop(), 0, srv.log()[-2000:])


class RemovedRule(ServerTest):
    server_args = {"rules": {"t.lua": 'rule { name = "temp", on = "*", run = function() error("x") end }'},
                   "config_extra": 'retry = { schedule = { "2s" }, jitter = 0 }'}

    def test_job_of_a_removed_rule_goes_dead(self):
        self.srv.post(event("evt_gone"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_gone")["temp"][0] == "retrying")
        self.srv.write_rules({"t.lua": V2})
        self.srv.proc.send_signal(signal.SIGHUP)
        self.srv.wait_for(lambda: self.srv.job_states("evt_gone")["temp"][0] == "dead", what="dead")
        rc, out, _ = self.srv.cli("events", "show", "evt_gone")
        self.assertIn("rule 'temp' no longer exists", out)


CORRELATE = """
rule {
  name = "remember",
  on = "scm.pull_request.created",
  when = function(ev) return not ev.data.draft end,
  run = function(ev) kv.set("pr:" .. ev.data.url, { ticket = "T-" .. ev.data.number }, "30d") end,
}
rule {
  name = "recall",
  on = "scm.pull_request.merged",
  integration = "github",
  run = function(ev)
    local t = kv.get("pr:" .. ev.data.url)
    if not t then error("no ticket for " .. ev.data.url) end
    log.info("RESOLVE " .. t.ticket)
  end,
}
"""


class SharedKvAndFilters(ServerTest):
    server_args = {"rules": {"c.lua": CORRELATE}, "config_extra": FAST_RETRY}

    def test_kv_correlation_when_and_integration_filter(self):
        url = "https://github.com/acme/x/pull/7"
        self.srv.post(event("evt_draft", url="https://github.com/acme/x/pull/8", number=8, draft=True))
        self.srv.post(event("evt_open", url=url, number=7, draft=False))
        self.srv.wait_for(lambda: self.srv.job_states("evt_open").get("remember", ("",))[0] == "done")
        self.srv.wait_for(lambda: self.srv.job_states("evt_draft").get("remember", ("",))[0] == "skipped")
        self.srv.post(event("evt_merged", etype="scm.pull_request.merged", url=url))
        self.srv.wait_for(lambda: self.srv.count("RESOLVE T-7") == 1, what="correlation")
        # kv is in the store, with its expiry
        rows = self.srv.rows("SELECT value, expires_at FROM kv WHERE key = ?", ("pr:" + url,))
        self.assertEqual(json.loads(rows[0][0]), {"ticket": "T-7"})
        self.assertGreater(rows[0][1], (time.time() + 29 * 86400) * 1000)
        # the integration filter: a GitLab merge is not for this rule
        body = json.loads(event("evt_gitlab", etype="scm.pull_request.merged", url=url))
        body["integration"]["type"] = "gitlab"
        self.srv.post(json.dumps(body).encode())
        time.sleep(0.5)
        self.assertEqual(self.srv.job_states("evt_gitlab"), {})


ATOMIC = """
rule {
  name = "atomic",
  on = "scm.*",
  run = function(ev)
    kv.set("seen:" .. ev.id, ev.data.number)
    kv.set("gone", 1)
    kv.delete("gone")
    -- a rule sees its own writes at once
    if kv.get("seen:" .. ev.id) ~= ev.data.number or kv.get("gone") ~= nil then error("not read back") end
    if ev.data.fail then error("failed after kv.set") end
  end,
}
"""


class KvCommitsWithTheJob(ServerTest):
    server_args = {"rules": {"a.lua": ATOMIC}, "config_extra": FAST_RETRY}

    def test_a_done_job_keeps_its_kv_writes_and_a_failed_one_leaves_none(self):
        self.srv.post(event("evt_ok", number=1))
        self.srv.post(event("evt_fail", number=2, fail=True))
        self.srv.wait_for(lambda: self.srv.job_states("evt_ok").get("atomic", ("",))[0] == "done")
        self.srv.wait_for(lambda: self.srv.job_states("evt_fail").get("atomic", ("",))[0] == "dead",
                          what="the failing job dead after its retries")
        keys = {k: v for k, v in self.srv.rows("SELECT key, value FROM kv")}
        self.assertEqual(keys, {"seen:evt_ok": "1"})


LIMITS = """
rule { name = "spin", on = "incidents.*", run = function(ev) while true do end end }
rule { name = "bomb", on = "identity.*", run = function(ev)
  local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 65536) .. i end end }
rule { name = "fine", on = "scm.*", run = function(ev) log.info("FINE " .. ev.id) end }
"""


class Limits(ServerTest):
    server_args = {"rules": {"l.lua": LIMITS},
                   "config_extra": 'workers = 1\nlua = { instruction_limit = 100000, memory_limit = "8MiB" }\n'
                                   'retry = { schedule = {}, jitter = 0 }\n'}

    def test_a_runaway_rule_fails_its_job_and_the_worker_goes_on(self):
        self.srv.post(event("evt_spin", etype="incidents.incident.created"))
        self.srv.post(event("evt_bomb", etype="identity.user.created"))
        self.srv.post(event("evt_fine", etype="scm.pull_request.created"))
        self.srv.wait_for(lambda: self.srv.count("FINE evt_fine") == 1, what="the next job")
        self.srv.wait_for(lambda: self.srv.job_states("evt_bomb").get("bomb", ("",))[0] == "dead")
        self.assertEqual(self.srv.job_states("evt_spin"), {"spin": ("dead", 1)})
        rc, out, _ = self.srv.cli("events", "show", "evt_spin")
        self.assertIn("instruction limit exceeded", out)
        rc, out, _ = self.srv.cli("events", "show", "evt_bomb")
        self.assertIn("memory", out)
        self.assertEqual(self.srv.job_states("evt_fine"), {"fine": ("done", 1)})
        # the gauge is set after the commit that makes a job dead: it follows the rows shortly
        self.srv.wait_for(lambda: self.srv.metric("switchyard_jobs_dead") == 2, what="gauge at 2")
        # replaying brings the gauge down while they run (and up again when they die); the
        # "job dead" line is written before the worker's finish commits, so wait on the rows
        self.srv.cli("replay", "--dead")
        self.srv.wait_for(lambda: self.srv.count("replay") >= 1, what="replay")
        self.srv.wait_for(lambda: self.srv.count("job dead") >= 4 and
                          self.srv.job_states("evt_spin")["spin"] == ("dead", 1) and
                          self.srv.job_states("evt_bomb")["bomb"][0] == "dead", what="dead again")
        self.srv.wait_for(lambda: self.srv.metric("switchyard_jobs_dead") == 2, what="gauge at 2 again")


WEDGE = r"""
rule { name = "wedge", on = "scm.pull_request.created", run = function(ev)
  log.info("WEDGE " .. ev.id)
  return ev.data.title:find(".-.-.-.-.-b")
end }
rule { name = "finalizer", on = "incidents.*", run = function(ev)
  setmetatable({}, { __gc = function() while true do end end })
end }
rule { name = "fine", on = "scm.branch.*", run = function(ev) log.info("FINE " .. ev.id) end }
"""


class TimeLimit(ServerTest):
    """Work in C (a pattern on the sender's text) cannot hold the worker: lua.timeout stops it."""
    server_args = {"rules": {"w.lua": WEDGE},
                   "config_extra": 'workers = 1\nlua = { instruction_limit = 1e12, timeout = "300ms" }\n'
                                   'retry = { schedule = { "1s" }, jitter = 0 }\nshutdown_grace = "2s"\n'}

    def test_a_wedging_pattern_fails_each_attempt_and_goes_dead(self):
        self.srv.post(event("evt_wedge", title="a" * 2000))
        self.srv.post(event("evt_gc", etype="incidents.incident.created"))
        self.srv.post(event("evt_next", etype="scm.branch.created"))
        # the one worker gets back after each stopped attempt: the next job runs
        self.srv.wait_for(lambda: self.srv.count("FINE evt_next") == 1, what="the next job")
        self.srv.wait_for(lambda: self.srv.job_states("evt_wedge") == {"wedge": ("dead", 2)},
                          timeout=30, what="dead after its two attempts")
        self.assertEqual(self.srv.count("WEDGE evt_wedge"), 2)
        rc, out, _ = self.srv.cli("events", "show", "evt_wedge")
        self.assertIn("time limit exceeded (lua.timeout = 300 ms)", out)
        self.srv.wait_for(lambda: self.srv.job_states("evt_gc").get("finalizer", ("",))[0] == "dead",
                          timeout=30, what="the finalizer rule refused")
        rc, out, _ = self.srv.cli("events", "show", "evt_gc")
        self.assertIn("__gc metamethods are not allowed", out)
        # and nothing is left running: SIGTERM is answered well within the grace
        self.assertEqual(self.srv.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
