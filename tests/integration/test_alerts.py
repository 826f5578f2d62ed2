"""switchyard's own events: a dead job, a quarantined delivery and a throttled integration
become events that rules subscribe to; a rule on "*" never sees them, and a failing rule on
alerts raises no alert about itself."""
import json
import time
import unittest

from harness import Mock, Server, event, signed_headers

API_KEY = "uz-test-key-a1e7f0"
RULES = """
rule { name = "bad", on = "scm.pull_request.created",
       run = function(ev) error({ permanent = true, message = "no such project" }) end }
rule { name = "every", on = "*", run = function(ev) log.info("EVERY " .. ev.type) end }
rule { name = "on-dead", on = "switchyard.job.dead",
       run = function(ev) log.info("DEAD " .. ev.data.rule .. " " .. ev.data.event_id .. " " .. ev.data.error) end }
rule { name = "on-quarantine", on = "switchyard.event.quarantined",
       run = function(ev) log.info("QUARANTINED " .. ev.data.event_id .. " " .. ev.data.reason) end }
rule { name = "on-throttle", on = "switchyard.unizo.integration_throttled",
       run = function(ev) log.info("THROTTLED " .. ev.data.integration .. " " .. ev.data.seconds) end }
rule { name = "alerts-fail", on = "switchyard.job.dead",
       run = function(ev) error({ permanent = true, message = "the ops tracker is down" }) end }
rule { name = "on-store", on = "switchyard.store.*",
       run = function(ev) log.info("STORE " .. ev.type .. " " .. tostring(ev.data.seconds or ev.data.since_ms)) end }
rule { name = "calls", on = "scm.branch.created",
       run = function(ev) unizo.ticketing.get_ticket { integration = "jira-prod", id = "T-1" } end }
"""


class Alerts(unittest.TestCase):
    def setUp(self):
        self.mock = Mock()
        extra = f"""
unizo = {{ base_url = "{self.mock.url}", api_key = env("SY_TEST_UNIZO_KEY"),
          retry = {{ attempts = 2, base = "50ms", cap = "1s" }},
          integrations = {{ ["jira-prod"] = {{ id = "int-1", organization = "acme", collection = "ENG" }} }} }}
retry = {{ schedule = {{ "1s" }}, jitter = 0 }}
"""
        self.srv = Server(rules={"r.lua": RULES}, config_extra=extra,
                          env={"SY_TEST_UNIZO_KEY": API_KEY}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])
        self.mock.stop()

    def alerts(self, kind):
        return self.srv.rows("SELECT id, body FROM events WHERE type = ?", (kind,))

    def test_a_dead_job_becomes_an_event_for_the_rules_that_name_it(self):
        srv = self.srv
        self.assertEqual(srv.post(event("evt_dies"))[0], 200)
        srv.wait_for(lambda: srv.count("DEAD bad evt_dies no such project") == 1, what="the alert rule ran")
        rows = self.alerts("switchyard.job.dead")
        self.assertEqual(len(rows), 1)
        self.assertTrue(rows[0][0].startswith("switchyard:job.dead:"))
        body = json.loads(rows[0][1])
        self.assertEqual(body["data"], {"event_id": "evt_dies", "rule": "bad", "error": "no such project",
                                        "attempts": 1})
        # the alert rule that fails goes dead too, and raises no alert about itself
        srv.wait_for(lambda: srv.job_states(rows[0][0]).get("alerts-fail", ("",))[0] == "dead",
                     what="the failing alert rule dead")
        time.sleep(1)
        self.assertEqual(len(self.alerts("switchyard.job.dead")), 1)
        # "*" is every delivery, not the server's alerts
        self.assertEqual(srv.count("EVERY scm.pull_request.created"), 1)
        self.assertEqual(srv.count("EVERY switchyard."), 0)

    def test_a_quarantined_delivery_becomes_an_event(self):
        srv = self.srv
        body = b'{"id": "evt_q_1", "type": 42}'
        status, data, _ = srv.post(body, signed_headers(body))
        self.assertEqual((status, data["status"]), (200, "quarantined"))
        srv.wait_for(lambda: srv.count("QUARANTINED evt_q_1 ") == 1, what="the quarantine alert")
        self.assertEqual(len(self.alerts("switchyard.event.quarantined")), 1)
        # the same delivery again is a duplicate: no second alert
        self.assertEqual(srv.post(body, signed_headers(body))[1]["status"], "duplicate")
        time.sleep(0.5)
        self.assertEqual(len(self.alerts("switchyard.event.quarantined")), 1)

    def test_a_throttled_integration_becomes_an_event(self):
        srv = self.srv
        self.mock.script([{"method": "GET", "path": "/tickets/T-1$", "status": 429,
                           "headers": {"Retry-After": "1"}, "times": 1}])
        self.assertEqual(srv.post(event("evt_thr", etype="scm.branch.created"))[0], 200)
        srv.wait_for(lambda: srv.count("THROTTLED jira-prod ") == 1, what="the throttle alert")
        srv.wait_for(lambda: srv.job_states("evt_thr")["calls"][0] == "done", what="the call done")

    def test_a_store_outage_is_told_once_it_is_over(self):
        from test_durability import Hold
        srv = self.srv
        hold = Hold(srv.db)  # longer than the writer's 5 s busy timeout
        status, data, _ = srv.post(event("evt_busy"))
        self.assertEqual(status, 503)
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 503, what="the store down")
        time.sleep(1.5)  # the watcher sees it
        hold.release()
        self.assertEqual(srv.post(event("evt_busy"))[1]["status"], "accepted")
        srv.wait_for(lambda: srv.count("STORE switchyard.store.recovered ") == 1, what="the recovery alert")
        srv.wait_for(lambda: srv.count("STORE switchyard.store.unavailable ") == 1, what="the outage alert")
        secs = float(srv.lines[[i for i, l in enumerate(srv.lines)
                                if "STORE switchyard.store.recovered" in l][0]].split()[4])
        self.assertGreaterEqual(secs, 0.9)  # the watcher looks once a second


if __name__ == "__main__":
    unittest.main()
