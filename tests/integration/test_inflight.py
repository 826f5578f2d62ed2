"""Many jobs in flight per worker, and flow control per integration and per rule.

The mock Unizo API holds calls until the test releases them, so "N calls in flight at
once" is read at the mock (N requests arrived, none answered) rather than timed.
"""
import json
import time
import unittest

from harness import Mock, Server, event

API_KEY = "uz-test-key-5d20aa"

TWO_CALLS = """
rule {
  name = "pr",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review " .. ev.id }
    kv.set("t:" .. ev.id, t.id)
    unizo.ticketing.add_comment { integration = "jira-prod", id = t.id, content = ev.id }
  end,
}
"""


def config(mock_url, integration="", engine="", workers=2):
    return f"""
unizo = {{
  base_url = "{mock_url}",
  api_key = env("SY_TEST_UNIZO_KEY"),
  retry = {{ attempts = 3, base = "50ms", cap = "1s" }},
  timeout = "20s",
  integrations = {{ ["jira-prod"] = {{ id = "int-jira-42", organization = "acme", collection = "ENG", {integration} }} }},
}}
retry = {{ schedule = {{ "1s", "1s" }}, jitter = 0 }}
workers = {workers}
{engine}
"""


def creates(mock):
    return [r for r in mock.requests("/tickets") if r["method"] == "POST" and r["path"].endswith("/tickets")]


class Base(unittest.TestCase):
    def start(self, rules, **kw):
        self.mock = Mock()
        self.srv = Server(rules=rules, config_extra=config(self.mock.url, **kw),
                          env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        return self.srv

    def tearDown(self):
        if getattr(self, "srv", None) is not None and self.srv.proc is not None:
            self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])
        self.mock.release("all")
        self.mock.stop()

    def post_events(self, n, prefix="evt_fl_"):
        ids = ["%s%03d" % (prefix, i) for i in range(n)]
        for eid in ids:
            status, data, _ = self.srv.post(event(eid, title="t", url="https://x/pull/" + eid))
            self.assertEqual(status, 200, data)
        return ids

    def done(self, ids):
        return all(self.srv.job_states(e).get("pr", ("",))[0] == "done" for e in ids)


class InFlight(Base):
    def test_two_workers_hold_forty_calls_at_once_and_each_job_keeps_its_own_answers(self):
        srv = self.start({"r.lua": TWO_CALLS}, engine="engine = { max_in_flight = 32 }")
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(40)
        # 40 creates arrive while none is answered: more than the 2 worker threads
        srv.wait_for(lambda: len(creates(self.mock)) == 40, what="40 calls in flight")
        self.assertEqual(self.mock.requests("/comments"), [])
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), what="every job done")
        kv = dict(srv.rows("SELECT key, value FROM kv"))
        comments = self.mock.requests("/comments")
        self.assertEqual(len(comments), 40)
        for eid in ids:
            # each job's comment went to the ticket its own create returned
            ticket = json.loads(kv["t:" + eid])
            mine = [c for c in comments if c["body"]["content"] == eid]
            self.assertEqual(len(mine), 1, eid)
            self.assertIn("/tickets/%s/comments" % ticket, mine[0]["path"])
            self.assertEqual(mine[0]["headers"]["idempotency-key"], "%s/pr/2" % eid)
        keys = [r["headers"]["idempotency-key"] for r in creates(self.mock)]
        self.assertEqual(sorted(keys), sorted("%s/pr/1" % e for e in ids))
        # the journal has both calls of every job, in order
        rows = srv.rows("SELECT j.event_id, c.n, c.idem_key, c.status FROM calls c JOIN jobs j "
                        "ON j.id = c.job_id ORDER BY j.event_id, c.n")
        self.assertEqual(len(rows), 80)
        for eid, n, key, status in rows:
            self.assertEqual(key, "%s/pr/%d" % (eid, n))
            self.assertEqual(status, 201)

    def test_engine_max_in_flight_bounds_the_jobs_a_worker_runs_at_once(self):
        srv = self.start({"r.lua": TWO_CALLS}, workers=1, engine="engine = { max_in_flight = 5 }")
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(12)
        srv.wait_for(lambda: len(creates(self.mock)) == 5, what="5 calls in flight")
        time.sleep(0.5)
        self.assertEqual(len(creates(self.mock)), 5, "a sixth job started past max_in_flight")
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), what="every job done")

    def test_pcall_around_a_failing_call_goes_on_in_the_coroutine(self):
        rule = """
rule {
  name = "pr",
  on = "scm.pull_request.created",
  run = function(ev)
    local ok, e = pcall(unizo.ticketing.create_ticket, { integration = "jira-prod", title = "x" })
    kv.set("caught:" .. ev.id, { ok = ok, status = e.status })
    local t = unizo.ticketing.get_ticket { integration = "jira-prod", id = "T-9" }
    kv.set("after:" .. ev.id, t.id)
  end,
}
"""
        srv = self.start({"r.lua": rule})
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 422, "delay": 0.3,
                           "body": {"errorCode": "BAD", "errorMessage": "no"}, "times": 0}])
        ids = self.post_events(6)
        srv.wait_for(lambda: self.done(ids), what="every job done")
        kv = dict(srv.rows("SELECT key, value FROM kv"))
        for eid in ids:
            self.assertEqual(json.loads(kv["caught:" + eid]), {"ok": False, "status": 422})
            self.assertEqual(json.loads(kv["after:" + eid]), "T-9")

    def test_a_rule_hitting_its_instruction_limit_leaves_the_jobs_in_flight_beside_it_whole(self):
        spin = """
rule {
  name = "spin",
  on = "ticketing.ticket.created",
  run = function(ev) local n = 0 while true do n = n + 1 end end,
}
"""
        srv = self.start({"r.lua": TWO_CALLS, "spin.lua": spin}, workers=1,
                         engine="lua = { instruction_limit = 100000 }")
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(6)
        srv.wait_for(lambda: len(creates(self.mock)) == 6, what="6 calls in flight")
        status, data, _ = srv.post(event("evt_spin_1", etype="ticketing.ticket.created"))
        self.assertEqual(status, 200, data)
        srv.wait_for(lambda: srv.job_states("evt_spin_1")["spin"][0] == "retrying",
                     what="the spinning job retrying")
        self.assertGreaterEqual(srv.count("instruction limit exceeded"), 1)
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), what="the jobs beside it done")
        kv = dict(srv.rows("SELECT key, value FROM kv"))
        comments = self.mock.requests("/comments")
        for eid in ids:
            ticket = json.loads(kv["t:" + eid])
            mine = [c for c in comments if c["body"]["content"] == eid]
            self.assertEqual(len(mine), 1)
            self.assertIn("/tickets/%s/comments" % ticket, mine[0]["path"])


class RuleCodeAroundCoroutines(Base):
    """Rule code that cannot yield, or fails in odd ways, fails its own job: never the server."""

    def test_a_call_where_the_rule_cannot_yield_is_made_blocking(self):
        rule = """
rule {
  name = "pr",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = { 3, 1, 2 }
    -- a comparator runs behind a C boundary: its call cannot wait in the background
    local ok = pcall(table.sort, t, function(a, b)
      unizo.ticketing.get_ticket { integration = "jira-prod", id = "T-" .. a }
      return a < b
    end)
    local g = unizo.ticketing.get_ticket { integration = "jira-prod", id = "T-last" }
    kv.set("sorted:" .. ev.id, { ok = ok, first = t[1], last = g.id })
  end,
}
"""
        srv = self.start({"r.lua": rule})
        self.mock.script([{"method": "GET", "path": "/tickets/", "delay": 0.2, "times": 0,
                           "body": {"id": "T-9"}}])
        ids = self.post_events(3)
        srv.wait_for(lambda: self.done(ids), what="every job done")
        kv = dict(srv.rows("SELECT key, value FROM kv"))
        for eid in ids:
            self.assertEqual(json.loads(kv["sorted:" + eid]), {"ok": True, "first": 1, "last": "T-9"})
        # every call of every job was answered and journaled once, in order
        rows = srv.rows("SELECT j.event_id, c.n, c.status FROM calls c JOIN jobs j ON j.id = c.job_id "
                        "ORDER BY j.event_id, c.n")
        per = {}
        for eid, n, status in rows:
            per.setdefault(eid, []).append((n, status))
        for eid in ids:
            self.assertEqual([n for n, _ in per[eid]], list(range(1, len(per[eid]) + 1)))
            self.assertTrue(all(st == 200 for _, st in per[eid]))

    def test_the_memory_limit_and_odd_error_values_fail_the_job_not_the_server(self):
        rules = {
            "grow.lua": 'rule { name = "grow", on = "scm.branch.created", '
                        'run = function(ev) local l; while true do l = { l, "xxxxxxxxxxxxxxxx" } end end }\n',
            "odd.lua": 'rule { name = "odd", on = "scm.tag.created", run = function(ev) '
                       'error(setmetatable({}, { __index = function() error("boom") end })) end }\n',
            "r.lua": TWO_CALLS,
        }
        srv = self.start(rules, engine='lua = { memory_limit = "2MiB" }')
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(4)
        srv.wait_for(lambda: len(creates(self.mock)) == 4, what="4 calls in flight")
        for eid, etype in (("evt_grow", "scm.branch.created"), ("evt_odd", "scm.tag.created")):
            status, data, _ = srv.post(event(eid, etype=etype))
            self.assertEqual(status, 200, data)
        srv.wait_for(lambda: srv.job_states("evt_grow").get("grow", ("",))[0] == "retrying",
                     what="the growing rule retrying")
        srv.wait_for(lambda: srv.job_states("evt_odd").get("odd", ("",))[0] == "retrying",
                     what="the odd error retrying")
        self.assertGreaterEqual(srv.count("memory limit exceeded"), 1)
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), what="the jobs in flight beside them done")


class FlowControl(Base):
    def test_integration_max_in_flight_is_shared_by_all_workers(self):
        srv = self.start({"r.lua": TWO_CALLS}, workers=3, integration="max_in_flight = 3")
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(10)
        srv.wait_for(lambda: len(creates(self.mock)) == 3, what="3 calls in flight")
        srv.wait_for(lambda: srv.metric("switchyard_unizo_waiting", '{integration="jira-prod"}') == 7,
                     what="7 calls waiting in the metrics")
        self.assertEqual(srv.metric("switchyard_unizo_in_flight", '{integration="jira-prod"}'), 3)
        time.sleep(0.5)
        self.assertEqual(len(creates(self.mock)), 3, "a fourth call went past max_in_flight")
        # waiting jobs are pending, not failed, and use no attempt
        states = [srv.job_states(e)["pr"] for e in ids]
        self.assertTrue(all(s == ("pending", 0) for s in states), states)
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), what="every job done")
        self.assertEqual([srv.job_states(e)["pr"][1] for e in ids], [1] * 10)

    def test_rate_spaces_the_calls_to_an_integration(self):
        srv = self.start({"r.lua": TWO_CALLS}, workers=2, integration='rate = "10/s"')
        ids = self.post_events(8)
        srv.wait_for(lambda: self.done(ids), timeout=30, what="every job done")
        times = sorted(r["time"] for r in self.mock.requests("/tickets"))
        self.assertEqual(len(times), 16)  # 8 creates, 8 comments: one gate
        # one start every 100 ms: any 5 in a row span 400 ms (arrival times at the mock jitter,
        # so 300 ms is asked); without the cap all 16 arrive within a few ms
        spans = [times[i + 4] - times[i] for i in range(len(times) - 4)]
        self.assertGreater(min(spans), 0.3, spans)
        self.assertGreater(times[-1] - times[0], 1.3)

    def test_a_429_with_retry_after_holds_the_whole_integration(self):
        srv = self.start({"r.lua": TWO_CALLS}, workers=2, integration="max_in_flight = 1")
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 429,
                           "headers": {"Retry-After": "1"}, "times": 1}])
        ids = self.post_events(4)
        srv.wait_for(lambda: self.done(ids), timeout=30, what="every job done")
        reqs = sorted(self.mock.requests("/tickets"), key=lambda r: r["time"])
        self.assertEqual(len(reqs), 9)  # 4 creates, 1 of them twice, 4 comments
        t429 = reqs[0]["time"]
        # nothing at all went to the integration during the hold, not only the 429'd call
        self.assertGreaterEqual(reqs[1]["time"] - t429, 0.95, [r["time"] - t429 for r in reqs])
        self.assertEqual(srv.metric("switchyard_unizo_holds_total", '{integration="jira-prod"}'), 1)

    def test_a_429_storm_slows_the_integration_to_what_the_api_says(self):
        srv = self.start({"r.lua": TWO_CALLS}, workers=2, engine="engine = { max_in_flight = 16 }")
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 429,
                           "headers": {"Retry-After": "1"}, "times": 6}])
        ids = self.post_events(6)
        srv.wait_for(lambda: self.done(ids), timeout=30, what="every job done")
        reqs = sorted(self.mock.requests("/tickets"), key=lambda r: r["time"])
        first = reqs[0]["time"]
        # the first wave got 429s; every later call waited for the hold they set
        later = [r for r in reqs if r["time"] - first > 0.5]
        self.assertTrue(later)
        self.assertGreaterEqual(min(r["time"] for r in later) - first, 0.95)
        self.assertGreaterEqual(srv.metric("switchyard_unizo_holds_total", '{integration="jira-prod"}'), 1)

    def test_rule_concurrency_keeps_the_others_pending_without_using_attempts(self):
        rule = TWO_CALLS.replace('name = "pr",', 'name = "pr",\n  concurrency = 2,')
        srv = self.start({"r.lua": rule}, workers=2)
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(8)
        srv.wait_for(lambda: len(creates(self.mock)) == 2, what="2 calls in flight")
        self.assertEqual(srv.metric("switchyard_rule_running", '{rule="pr"}'), 2)
        time.sleep(0.5)
        self.assertEqual(len(creates(self.mock)), 2, "a third job of the rule ran")
        self.assertTrue(all(srv.job_states(e)["pr"] == ("pending", 0) for e in ids))
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), what="every job done")
        self.assertEqual([srv.job_states(e)["pr"][1] for e in ids], [1] * 8)

    def test_jobs_waiting_for_their_rule_leave_room_for_other_rules(self):
        rule = TWO_CALLS.replace('name = "pr",', 'name = "pr",\n  concurrency = 1,')
        other = 'rule { name = "other", on = "scm.branch.created", run = function(ev) log.info("OTHER " .. ev.id) end }\n'
        # one worker of 8 slots: it keeps at most 2 jobs waiting for "pr", and puts the rest back
        srv = self.start({"r.lua": rule, "o.lua": other}, workers=1, engine="engine = { max_in_flight = 8 }")
        self.mock.script([{"method": "POST", "path": "/tickets$", "hold": "all", "times": 0}])
        ids = self.post_events(12)
        srv.wait_for(lambda: len(creates(self.mock)) == 1, what="the one call of pr")
        status, data, _ = srv.post(event("evt_other", etype="scm.branch.created"))
        self.assertEqual(status, 200, data)
        srv.wait_for(lambda: srv.count("OTHER evt_other") == 1, what="the other rule's job, while pr waits")
        self.assertEqual(len(creates(self.mock)), 1)
        self.assertTrue(all(srv.job_states(e)["pr"] == ("pending", 0) for e in ids))
        self.mock.release("all")
        srv.wait_for(lambda: self.done(ids), timeout=30, what="every job done")
        self.assertEqual([srv.job_states(e)["pr"][1] for e in ids], [1] * 12)

    def test_bad_flow_settings_are_refused_with_the_line(self):
        self.mock = Mock()  # for tearDown
        srv = Server(config_extra=config("http://127.0.0.1:9", integration='rate = "fast"'))
        rc, _, err = srv.cli("check")
        self.assertEqual(rc, 1, err)
        self.assertIn("switchyard.lua:13: 'unizo.integrations.jira-prod.rate'", err)
        self.assertIn('"20/s"', err)
        srv = Server(config_extra=config("http://127.0.0.1:9", engine="engine = { max_in_flight = 0 }"))
        rc, _, err = srv.cli("check")
        self.assertEqual(rc, 1, err)
        self.assertIn("engine.max_in_flight", err)


if __name__ == "__main__":
    unittest.main()
