"""Rules calling the Unizo API through the real binary and the mock API."""
import json
import os
import time
import unittest

from harness import EVENTS, Mock, Server, event

API_KEY = "uz-test-key-7c41e0"
PR_RULE = """
rule {
  name = "pr-review-ticket",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = unizo.ticketing.create_ticket {
      integration = "jira-prod",
      title = "Review PR: " .. ev.data.title,
      description = "PR needs review",
      custom_fields = { pr_url = ev.data.url },
    }
    kv.set("pr:" .. ev.data.url, t.id)
    log.info("TICKET " .. tostring(t.id) .. " dry_run=" .. tostring(t.dry_run))
  end,
}
"""


def config(mock_url, extra=""):
    return f"""
unizo = {{
  base_url = "{mock_url}",
  api_key = env("SY_TEST_UNIZO_KEY"),
  retry = {{ attempts = 3, base = "50ms", cap = "1s" }},
  timeout = "2s",
  integrations = {{ ["jira-prod"] = {{ id = "int-jira-42", organization = "acme", collection = "ENG" }} }},
}}
retry = {{ schedule = {{ "1s", "1s" }}, jitter = 0 }}
workers = 2
{extra}
"""


def pr_event(eid):
    return event(eid, title="Add OAuth login", url="https://github.com/acme/x/pull/%s" % eid, number=1)


CRLF_RULE = """
rule {
  name = "echo",
  on = "scm.*",
  run = function(ev)
    log.info("RAN " .. ev.id)
    unizo.request { method = "GET", path = "/ticketing/x", integration = "jira-prod" }
  end,
}
"""


class ControlCharactersInIds(unittest.TestCase):
    """An id is the sender's text: it must not become a header or a log line of its own."""

    def test_a_crlf_in_an_event_id_reaches_no_header_and_no_log_line(self):
        mock = Mock()
        srv = Server(rules={"r.lua": CRLF_RULE}, config_extra=config(mock.url),
                     env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        eid = "evt_crlf\r\nX-Evil: 1\r\n"
        status, data, _ = srv.post(event(eid))
        self.assertEqual(status, 200, data)
        srv.wait_for(lambda: len(mock.requests("/ticketing/x")) == 1, what="the call")
        r = mock.requests("/ticketing/x")[0]
        self.assertNotIn("x-evil", r["headers"])
        self.assertEqual(r["headers"]["idempotency-key"], "evt_crlf%0D%0AX-Evil:%201%0D%0A/echo/1")
        srv.wait_for(lambda: srv.count("job done") == 1)
        self.assertEqual(srv.stop(), 0)
        # every log line is one line: nothing starts with the injected text
        self.assertFalse([l for l in srv.lines if l.startswith("X-Evil")], srv.log()[-2000:])
        self.assertEqual(srv.count("RAN evt_crlf\\r\\nX-Evil: 1"), 1)
        mock.stop()


INJECT_RULE = r"""
rule {
  name = "inject",
  on = "scm.*",
  run = function(ev)
    local d = ev.data
    local tries = {
      function() return unizo.request { path = "/ticketing/" .. d.id, integration = "jira-prod" } end,
      function() return unizo.request { method = d.method, path = "/x" } end,
      function() return unizo.request { path = "/x", integration = d.integration } end,
      function() return unizo.request { path = "/x", query = d.query } end,
      function() return unizo.request { path = "/x/" .. d.title } end,
      function() return unizo.ticketing.update_ticket { integration = "jira-prod", id = "..", status = "done" } end,
      function() return unizo.ticketing.add_comment { integration = d.integration, organization = "acme",
                                                       collection = "ENG", id = "T-1", content = "x" } end,
    }
    for i, f in ipairs(tries) do
      local ok, e = pcall(f)
      log.info("TRY " .. i .. " " .. tostring(ok) .. " " .. (type(e) == "table" and e.message or tostring(e)))
    end
    unizo.request { method = "GET", path = "/ticketing/ok", integration = "jira-prod" }
  end,
}
"""


class OutboundInjection(unittest.TestCase):
    """Paths, methods, queries and header values built from event data are checked before sending."""

    def test_nothing_built_from_event_data_changes_the_request(self):
        mock = Mock()
        srv = Server(rules={"r.lua": INJECT_RULE}, config_extra=config(mock.url),
                     env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        body = event("evt_inject", id="../../admin/keys",
                     method="GET /admin HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET",
                     integration="int-1\r\nX-Evil: 1", query="a=1\r\nX-Evil: 1",
                     title="Fix login\r\nX-Evil: 1")
        status, data, _ = srv.post(body)
        self.assertEqual(status, 200, data)
        srv.wait_for(lambda: srv.count("job done") == 1, what="the job")
        # exactly the one good request reached the API: no extra header, no smuggled request
        reqs = mock.requests()
        self.assertEqual([r["path"] for r in reqs], ["/ticketing/ok"])
        self.assertNotIn("x-evil", reqs[0]["headers"])
        lines = [l for l in srv.lines if "TRY " in l]
        self.assertEqual(len(lines), 7, lines)
        want = ["'.' or '..' segment", "the method must be GET, POST, PUT, PATCH or DELETE",
                "the integration must be 1 to 512 visible ASCII characters",
                "the query holds a control character", "the path holds a space",
                "'.' or '..' segment", "the integration must be"]
        for i, (line, why) in enumerate(zip(lines, want)):
            self.assertIn("TRY %d false" % (i + 1), line)
            self.assertIn("not sent: ", line)
            self.assertIn(why, line)
        self.assertEqual(srv.stop(), 0)
        self.assertFalse([l for l in srv.lines if l.startswith("X-Evil")])
        mock.stop()


class UnizoCalls(unittest.TestCase):
    def setUp(self):
        self.mock = Mock()
        self.srv = Server(rules={"pr.lua": PR_RULE}, config_extra=config(self.mock.url),
                          env={"SY_TEST_UNIZO_KEY": API_KEY}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])
        self.mock.stop()
        self.assertNotIn(API_KEY, self.srv.log())

    def test_one_ticket_with_the_documented_request(self):
        self.srv.post(pr_event("evt_u1"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u1").get("pr-review-ticket", ("",))[0] == "done")
        reqs = self.mock.requests("/tickets")
        self.assertEqual(len(reqs), 1)
        r = reqs[0]
        self.assertEqual((r["method"], r["path"]), ("POST", "/ticketing/acme/collections/ENG/tickets"))
        self.assertEqual(r["body"], {"name": "Review PR: Add OAuth login", "description": "PR needs review",
                                     "metadata": {"pr_url": "https://github.com/acme/x/pull/evt_u1"}})
        self.assertEqual(r["headers"]["apikey"], API_KEY)
        self.assertEqual(r["headers"]["integrationid"], "int-jira-42")
        self.assertEqual(r["headers"]["idempotency-key"], "evt_u1/pr-review-ticket/1")
        self.assertEqual(r["headers"]["content-type"], "application/json")
        self.assertTrue(r["headers"]["user-agent"].startswith("switchyard/"))
        # the answer came back to the rule as a table
        self.assertEqual(self.srv.count("TICKET T-1 dry_run=nil"), 1)
        self.assertGreaterEqual(self.srv.metric("switchyard_unizo_requests_total",
                                                '{endpoint="create_ticket",status="201"}'), 1)

    def test_503s_are_retried_with_the_same_idempotency_key(self):
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 503, "times": 2}])
        self.srv.post(pr_event("evt_u2"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u2").get("pr-review-ticket", ("",))[0] == "done")
        reqs = self.mock.requests("/tickets")
        self.assertEqual(len(reqs), 3)
        self.assertEqual({r["headers"]["idempotency-key"] for r in reqs}, {"evt_u2/pr-review-ticket/1"})
        self.assertEqual(self.srv.job_states("evt_u2")["pr-review-ticket"], ("done", 1))  # one job attempt
        self.assertEqual(self.srv.metric("switchyard_unizo_retries_total"), 2)

    def test_429_retry_after_is_honoured(self):
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 429,
                           "headers": {"Retry-After": "2"}, "body": {"errorCode": "RATE_LIMITED"}}])
        self.srv.post(pr_event("evt_u3"))
        self.srv.wait_for(lambda: len(self.mock.requests("/tickets")) == 2, timeout=15, what="the retry")
        first, second = self.mock.requests("/tickets")
        self.assertGreaterEqual(second["time"] - first["time"], 2.0)
        self.srv.wait_for(lambda: self.srv.job_states("evt_u3")["pr-review-ticket"][0] == "done")

    def test_retry_after_as_http_date_and_rate_limit_reset_after(self):
        from email.utils import formatdate
        self.mock.script([
            {"method": "POST", "path": "/tickets$", "status": 503,
             "headers": {"Retry-After": formatdate(time.time() + 3, usegmt=True)}},
            {"method": "POST", "path": "/tickets$", "status": 429, "headers": {"X-RateLimit-Reset-After": "1.5"}},
        ])
        self.srv.post(pr_event("evt_u8"))
        self.srv.wait_for(lambda: len(self.mock.requests("/tickets")) == 3, timeout=20, what="two retries")
        a, b, c = self.mock.requests("/tickets")
        self.assertGreaterEqual(b["time"] - a["time"], 1.9)  # the date has one-second resolution
        self.assertGreaterEqual(c["time"] - b["time"], 1.5)
        self.srv.wait_for(lambda: self.srv.job_states("evt_u8")["pr-review-ticket"][0] == "done")

    def test_400_is_not_retried_in_the_call_and_its_message_is_kept(self):
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 400, "times": 0,
                           "body": {"errorCode": "INVALID_COLLECTION", "errorMessage": "Collection ENG does not exist"}}])
        self.srv.post(pr_event("evt_u4"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u4")["pr-review-ticket"][0] == "dead", what="dead")
        # one HTTP request per job attempt: three attempts (first + two retries), no in-call retries
        self.assertEqual(len(self.mock.requests("/tickets")), 3)
        rc, out, _ = self.srv.cli("events", "show", "evt_u4")
        self.assertIn("HTTP 400 INVALID_COLLECTION: Collection ENG does not exist", out)

    def test_a_job_retried_after_a_failed_call_sends_the_same_idempotency_key(self):
        # the first attempt's call fails without in-call retries; the job is retried a second later
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 400, "times": 1,
                           "body": {"errorCode": "INVALID", "errorMessage": "try again"}}])
        self.srv.post(pr_event("evt_u9"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u9")["pr-review-ticket"][0] == "done",
                          what="done on the second attempt")
        self.assertEqual(self.srv.job_states("evt_u9")["pr-review-ticket"], ("done", 2))
        reqs = self.mock.requests("/tickets")
        self.assertEqual(len(reqs), 2)  # one call per attempt
        # the same key on both attempts: Unizo can tell the second is the first again
        self.assertEqual([r["headers"]["idempotency-key"] for r in reqs],
                         ["evt_u9/pr-review-ticket/1"] * 2)

    def test_api_down_then_back_and_replay_creates_one_ticket(self):
        port = self.mock.port
        self.mock.stop()
        self.srv.post(pr_event("evt_u5"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u5")["pr-review-ticket"][0] == "dead",
                          timeout=30, what="dead while the API is down")
        rc, out, _ = self.srv.cli("events", "show", "evt_u5")
        self.assertIn("no answer", out)
        self.mock = Mock(port)
        self.srv.cli("replay", "evt_u5")
        self.srv.wait_for(lambda: self.srv.job_states("evt_u5")["pr-review-ticket"][0] == "done", what="replay")
        reqs = self.mock.requests("/tickets")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["headers"]["idempotency-key"], "evt_u5/pr-review-ticket/1")

    def test_a_dropped_connection_is_retried(self):
        self.mock.script([{"method": "POST", "path": "/tickets$", "drop": True}])
        self.srv.post(pr_event("evt_u6"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u6")["pr-review-ticket"][0] == "done")
        self.assertEqual(len(self.mock.requests("/tickets")), 2)

    def test_slower_than_the_timeout_is_retried(self):
        self.mock.script([{"method": "POST", "path": "/tickets$", "delay": 3}])
        self.srv.post(pr_event("evt_u7"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_u7")["pr-review-ticket"][0] == "done", timeout=20)
        self.assertEqual(len(self.mock.requests("/tickets")), 2)


REPLAY_TEST = """
local d = "deliveries/scm.pull_request.created--evt_rec_1.json"
test("the recorded delivery replays with its cassette like it ran live", function()
  freeze_time(tonumber(fixture(d).headers["x-unizo-timestamp"]))
  local run = fire(d, { secret = "%s", cassette = "cassettes/evt_rec_1.jsonl" })
  expect(run.status).to_be(200)
  expect(#run.cassette).to_be(1)
  expect(#run.calls).to_be(#run.cassette)
  for i, c in ipairs(run.cassette) do
    expect(run.calls[i].method).to_be(c.method)
    expect(run.calls[i].path).to_be(c.path)
    expect(run.calls[i].body).to_equal(c.request)
    expect(run.calls[i].headers["Idempotency-Key"]).to_be(c.key)
  end
  expect(run.jobs[1].outcome).to_be("done")
  expect(kv.get("pr:https://github.com/acme/x/pull/evt_rec_1")).to_be(run.cassette[1].response.id)
end)
"""


class Record(unittest.TestCase):
    def test_record_then_replay_in_a_rule_test(self):
        import subprocess
        import tempfile
        from harness import BIN, SECRET
        mock = Mock()
        rec = tempfile.mkdtemp(prefix="sy-rec-")
        srv = Server(rules={"pr.lua": PR_RULE}, config_extra=config(mock.url),
                     env={"SY_TEST_UNIZO_KEY": API_KEY})
        srv.proc = None
        # start with --record: the harness passes extra args through the environment-free path
        srv.start_args = ["--record", rec]
        srv.start()
        body = pr_event("evt_rec_1")
        self.assertEqual(srv.post(body)[1]["status"], "accepted")
        srv.wait_for(lambda: srv.job_states("evt_rec_1").get("pr-review-ticket", ("",))[0] == "done")
        self.assertEqual(srv.stop(), 0)
        mock.stop()
        saved = os.path.join(rec, "deliveries", "scm.pull_request.created--evt_rec_1.json")
        with open(saved) as f:
            delivery = json.load(f)
        self.assertEqual(delivery["body"].encode(), body)  # the raw body, byte for byte
        self.assertIn("x-unizo-signature", delivery["headers"])
        with open(os.path.join(rec, "cassettes", "evt_rec_1.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual(len(lines), 1)
        self.assertEqual((lines[0]["method"], lines[0]["status"], lines[0]["apikey"]),
                         ("POST", 201, "(redacted)"))
        for root, _, files in os.walk(rec):
            for name in files:
                with open(os.path.join(root, name)) as f:
                    self.assertNotIn(API_KEY, f.read())
        with open(os.path.join(rec, "replay_test.lua"), "w") as f:
            f.write(REPLAY_TEST % SECRET)
        p = subprocess.run([BIN, "test", "-c", srv.config, os.path.join(rec, "replay_test.lua")],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("1 passed, 0 failed", out)

    def test_different_ids_are_recorded_to_different_files(self):
        import tempfile
        rec = tempfile.mkdtemp(prefix="sy-rec-")
        srv = Server()
        srv.start_args = ["--record", rec]
        srv.start()
        ids = ["evt/a", "evt_a", "evt:a", "evt%2Fa", "x" * 255, "x" * 254 + "y"]
        for eid in ids:
            self.assertEqual(srv.post(event(eid))[1]["status"], "accepted")
        self.assertEqual(srv.stop(), 0)
        files = sorted(os.listdir(os.path.join(rec, "deliveries")))
        self.assertEqual(len(files), len(ids), files)
        found = set()
        for name in files:
            self.assertLessEqual(len(name.encode()), 255)
            with open(os.path.join(rec, "deliveries", name)) as f:
                found.add(json.loads(json.load(f)["body"])["id"])
        self.assertEqual(found, set(ids))
        # short names are reversible: the id is the name, percent-decoded
        from urllib.parse import unquote
        self.assertIn("scm.pull_request.created--evt%2Fa.json", files)
        self.assertEqual(unquote("evt%252Fa"), "evt%2Fa")
        self.assertIn("scm.pull_request.created--evt%252Fa.json", files)


class DryRun(unittest.TestCase):
    def test_without_an_api_key_calls_are_logged_not_sent(self):
        mock = Mock()
        srv = Server(rules={"pr.lua": PR_RULE}, config_extra=config(mock.url)).start()
        srv.post(pr_event("evt_dry"))
        srv.wait_for(lambda: srv.job_states("evt_dry").get("pr-review-ticket", ("",))[0] == "done")
        self.assertEqual(mock.requests(), [])
        line = [l for l in srv.lines if "unizo dry-run" in l][0]
        self.assertIn("method=POST", line)
        self.assertIn("path=/ticketing/acme/collections/ENG/tickets", line)
        self.assertIn("Review PR: Add OAuth login", line)
        self.assertEqual(srv.count("dry_run=true"), 1)
        self.assertEqual(srv.stop(), 0)
        mock.stop()


def sample(name):
    with open(os.path.join(EVENTS, name + ".json"), "rb") as f:
        return f.read()


class Workflows(unittest.TestCase):
    """examples/rules (a)-(d) against the mock, with the demo's integrations."""

    def test_examples_end_to_end(self):
        import glob
        rules = {os.path.basename(p): open(p).read()
                 for p in glob.glob(os.path.join(os.path.dirname(__file__), "../../examples/rules/*.lua"))}
        mock = Mock()
        extra = f"""
unizo = {{ base_url = "{mock.url}", api_key = env("SY_TEST_UNIZO_KEY"),
  integrations = {{ ["jira-prod"] = {{ organization = "default", collection = "ENG" }},
                   ["jira-it"] = {{ organization = "default", collection = "IT" }} }} }}
workers = 1
"""
        srv = Server(rules=rules, config_extra=extra, env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        order = ["scm.pull_request.created", "scm.pull_request.merged", "incidents.incident.created",
                 "incidents.incident.created.sev1", "incidents.incident.acknowledged.sev1",
                 "incidents.incident.resolved.sev1", "identity.user.deactivated"]
        for name in order:
            self.assertEqual(srv.post(sample(name))[1]["status"], "accepted", name)
            srv.wait_for(lambda: srv.rows("SELECT count(*) FROM jobs WHERE state IN ('pending', 'retrying')")[0][0] == 0,
                         what=name)
        got = [(r["method"], r["path"], r["headers"].get("integrationid")) for r in mock.requests()]
        self.assertEqual(got, [
            ("POST", "/ticketing/default/collections/ENG/tickets", "jira-prod"),          # (a) review ticket T-1
            ("PUT", "/ticketing/default/collections/ENG/tickets/T-1", "jira-prod"),       # (b) resolved via kv
            ("POST", "/ticketing/default/collections/ENG/tickets/T-1/comments", "jira-prod"),
            ("POST", "/ticketing/default/collections/ENG/tickets", "jira-prod"),          # (c) sev1 only
            ("POST", "/ticketing/default/collections/ENG/tickets/T-4/comments", "jira-prod"),
            ("PUT", "/ticketing/default/collections/ENG/tickets/T-4", "jira-prod"),
            ("POST", "/ticketing/default/collections/IT/tickets", "jira-it"),             # (d) offboarding
        ])
        reqs = mock.requests()
        self.assertEqual(reqs[1]["body"], {"status": "resolved"})
        self.assertIn("9f1c2e7b4d0a8c3e5f6a7b8c9d0e1f2a3b4c5d6e", reqs[2]["body"]["content"])
        self.assertEqual(reqs[0]["body"]["metadata"]["pr_url"], "https://github.com/acme/payments-api/pull/42")
        self.assertTrue(reqs[6]["body"]["name"].startswith("Offboard jdoe@acme.example"))
        self.assertEqual(srv.rows("SELECT count(*) FROM jobs WHERE state = 'dead'"), [(0,)])
        # correlations cleaned up (a job's kv writes commit with its outcome, just after its calls)
        srv.wait_for(lambda: srv.rows("SELECT count(*) FROM kv") == [(0,)], what="kv cleared")
        self.assertEqual(srv.stop(), 0)
        mock.stop()
        self.assertNotIn(API_KEY, srv.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
