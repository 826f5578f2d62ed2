"""`switchyard test`, the rule-test runner, on the files in tests/data/testkit."""
import json
import os
import time
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import BIN, SECRET, Server, event, sign

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
DATA = os.path.join(ROOT, "tests/data/testkit")


def run(*args):
    p = subprocess.run([BIN, "test", "-c", os.path.join(DATA, "switchyard.lua"), *args],
                       capture_output=True, cwd=ROOT, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class KvTtl(unittest.TestCase):
    """kv.set's ttl in seconds, as a number or as text, on the test runner's clock."""

    def test_a_numeric_ttl_is_seconds(self):
        d = tempfile.mkdtemp(prefix="sy-ttl-")
        with open(os.path.join(d, "ttl.lua"), "w") as f:
            f.write('rule { name = "ttl", on = "scm.*", run = function(ev)\n'
                    '  kv.set("n:" .. ev.id, "number", 60); kv.set("t:" .. ev.id, "text", "2m") end }\n')
        with open(os.path.join(d, "ttl_test.lua"), "w") as f:
            f.write('test("ttl", function()\n'
                    '  fire({ id = "e1", type = "scm.x", integration = { id = "i", type = "github" } })\n'
                    '  advance(59)\n'
                    '  expect(kv.get("n:e1")).to_be("number")\n'
                    '  advance(2)\n'
                    '  expect(kv.get("n:e1")).to_be(nil)\n'
                    '  expect(kv.get("t:e1")).to_be("text")\n'
                    '  advance(60)\n'
                    '  expect(kv.get("t:e1")).to_be(nil)\n'
                    'end)\n')
        env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_CONFIG"}
        p = subprocess.run([BIN, "test", d], capture_output=True, cwd=d, env=env, timeout=60)
        out = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("1 passed, 0 failed", out)


class WhichRules(unittest.TestCase):
    """Without -c, a test sees the rule files beside it: never the demo's."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sy-beside-")
        with open(os.path.join(self.dir, "pr_review.lua"), "w") as f:
            # the demo has a rule of the same name that writes another value
            f.write('rule { name = "pr-review-ticket", on = "scm.pull_request.created",\n'
                    '  run = function(ev) kv.set("pr:" .. ev.data.url, "beside") end }\n')
        with open(os.path.join(self.dir, "pr_review_test.lua"), "w") as f:
            f.write('test("the rule beside the test ran", function()\n'
                    '  local run = fire({ id = "e1", type = "scm.pull_request.created",\n'
                    '    integration = { id = "i", type = "github" }, data = { url = "u" } })\n'
                    '  expect(run.jobs[1]).to_equal({ rule = "pr-review-ticket", outcome = "done" })\n'
                    '  expect(kv.get("pr:u")).to_be("beside")\n'
                    'end)\n')
        self.elsewhere = tempfile.mkdtemp(prefix="sy-cwd-")  # no switchyard.lua here

    def test_the_rules_beside_the_tests(self):
        env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_CONFIG"}
        p = subprocess.run([BIN, "test", self.dir], capture_output=True, cwd=self.elsewhere, env=env,
                           timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        first = out.splitlines()[0]
        self.assertTrue(first.startswith("rules (beside the tests): "), first)
        self.assertIn(os.path.join(os.path.realpath(self.dir), "pr_review.lua"), first)
        self.assertNotIn("examples", first)
        self.assertEqual(out.strip().splitlines()[-1], "1 passed, 0 failed")
        # the test file itself, too
        p = subprocess.run([BIN, "test", os.path.join(self.dir, "pr_review_test.lua")], capture_output=True,
                           cwd=self.elsewhere, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode())

    def test_no_paths_and_no_config_is_a_usage_error(self):
        env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_CONFIG"}
        p = subprocess.run([BIN, "test"], capture_output=True, cwd=self.elsewhere, env=env, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no rules to test", p.stderr.decode())

    def test_with_a_config_its_rules(self):
        p = subprocess.run([BIN, "test", "-c", os.path.join(ROOT, "examples/switchyard.lua"), self.dir],
                           capture_output=True, cwd=self.elsewhere, timeout=60)
        out = p.stdout.decode()
        self.assertTrue(out.splitlines()[0].startswith("rules (%s): " % os.path.join(ROOT, "examples/switchyard.lua")),
                        out.splitlines()[0])
        self.assertEqual(p.returncode, 1, out)  # the demo's rule writes another value


class Parity(unittest.TestCase):
    """The same deliveries through the live server and through `switchyard test`: the same answers."""

    def deliveries(self):
        now = int(time.time())
        out = []

        def add(name, body, ts=now, sign_it=True, ctype="application/json", drop=(), tamper=False):
            ts_s, sig = sign(body, ts)
            h = {"content-type": ctype, "x-unizo-timestamp": ts_s, "x-unizo-signature": sig}
            if tamper:
                h["x-unizo-signature"] = "v1=" + "0" * 64
            for k in drop:
                h.pop(k, None)
            out.append((name, h, body))
        good = event("evt_parity_ok", title="Parity")
        add("valid", good)
        add("bad signature", event("evt_parity_badsig"), tamper=True)
        add("stale", event("evt_parity_stale"), ts=now - 1000)
        add("no timestamp", event("evt_parity_nots"), drop=("x-unizo-timestamp",))
        add("no signature", event("evt_parity_nosig"), drop=("x-unizo-signature",))
        b = event("evt_parity_junk_ts")
        ts_s, sig = sign(b, "12abc")
        out.append(("junk timestamp", {"content-type": "application/json", "x-unizo-timestamp": "12abc",
                                       "x-unizo-signature": sig}, b))
        add("text/plain", event("evt_parity_text"), ctype="text/plain")
        add("no type", json.dumps({"id": "evt_parity_notype", "data": {}}).encode())
        add("not json", b"{not json")
        add("a list", b"[1, 2]")
        return out

    def test_live_and_test_answer_alike(self):
        srv = Server(rules={"p.lua": 'rule { name = "p", on = "*", run = function(ev) end }\n'}).start()
        d = tempfile.mkdtemp(prefix="sy-parity-")
        lines = []
        try:
            for i, (name, headers, body) in enumerate(self.deliveries()):
                status, data, _ = srv.post(body, headers)
                with open(os.path.join(d, "d%d.json" % i), "w") as f:
                    json.dump({"headers": headers, "body": body.decode()}, f)
                quarantined = data.get("detail") if data.get("status") == "quarantined" else None
                rejected = data.get("error")
                lines.append('test(%s, function()\n'
                             '  local run = fire("d%d.json", { secret = %s })\n'
                             '  expect(run.status).to_be(%d)\n' % (json.dumps(name), i, json.dumps(SECRET), status))
                if rejected:  # refused: the same code and the same words
                    lines.append('  expect(run.rejected).to_be(%s)\n' % json.dumps(rejected))
                    lines.append('  expect(run.detail).to_be(%s)\n' % json.dumps(data["detail"]))
                elif quarantined:  # kept as quarantined: the same reason
                    lines.append('  expect(run.quarantined).to_be(%s)\n' % json.dumps(quarantined))
                else:
                    lines.append('  expect(run.rejected).to_be_nil()\n  expect(run.quarantined).to_be_nil()\n'
                                 '  expect(run.jobs[1].outcome).to_be("done")\n')
                lines.append("end)\n")
            with open(os.path.join(d, "parity_test.lua"), "w") as f:
                f.write("".join(lines))
            p = subprocess.run([BIN, "test", "-c", srv.config, os.path.join(d, "parity_test.lua")],
                               capture_output=True, timeout=60)
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, out + p.stderr.decode())
            self.assertEqual(out.strip().splitlines()[-1], "10 passed, 0 failed")
        finally:
            self.assertEqual(srv.stop(), 0)


class CallParity(unittest.TestCase):
    """A rule's calls, keys and kv are the same live and under `switchyard test`."""

    def test_the_same_calls_and_kv(self):
        from harness import Mock
        from test_unizo import API_KEY, PR_RULE, config
        mock = Mock()
        mock.script([{"method": "POST", "path": "/tickets$", "status": 201, "body": {"id": "T-7"}}])
        srv = Server(rules={"pr.lua": PR_RULE}, config_extra=config(mock.url),
                     env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        d = tempfile.mkdtemp(prefix="sy-call-parity-")
        try:
            body = event("evt_cp_1", title="Calls", url="https://github.com/acme/x/pull/5", number=5)
            ts, sig = sign(body)
            headers = {"content-type": "application/json", "x-unizo-timestamp": ts, "x-unizo-signature": sig}
            self.assertEqual(srv.post(body, headers)[0], 200)
            srv.wait_for(lambda: srv.job_states("evt_cp_1") == {"pr-review-ticket": ("done", 1)}, what="live job")
            live = mock.requests("/tickets")
            self.assertEqual(len(live), 1)
            kv = dict(srv.rows("SELECT key, value FROM kv"))
            with open(os.path.join(d, "d.json"), "w") as f:
                json.dump({"headers": headers, "body": body.decode()}, f)
            (key, value), = kv.items()
            with open(os.path.join(d, "calls_test.lua"), "w") as f:
                f.write('test("same calls and kv", function()\n'
                        '  respond("POST", "/tickets$", { status = 201, body = { id = "T-7" } })\n'
                        '  local run = fire("d.json", { secret = %s })\n'
                        '  expect(#run.calls).to_be(1)\n'
                        '  expect(run.calls[1].method).to_be(%s)\n'
                        '  expect(run.calls[1].path).to_be(%s)\n'
                        '  expect(run.calls[1].body).to_equal(json.decode(%s))\n'
                        '  expect(run.calls[1].headers["Idempotency-Key"]).to_be(%s)\n'
                        '  expect(run.jobs[1]).to_equal({ rule = "pr-review-ticket", outcome = "done" })\n'
                        '  expect(kv.get(%s)).to_equal(json.decode(%s))\n'
                        'end)\n' % (json.dumps(SECRET), json.dumps(live[0]["method"]), json.dumps(live[0]["path"]),
                                     json.dumps(json.dumps(live[0]["body"])),
                                     json.dumps(live[0]["headers"]["idempotency-key"]), json.dumps(key),
                                     json.dumps(value)))
            p = subprocess.run([BIN, "test", "-c", srv.config, os.path.join(d, "calls_test.lua")],
                               capture_output=True, timeout=60, env=dict(os.environ, SY_TEST_UNIZO_KEY=API_KEY))
            out = p.stdout.decode()
            self.assertEqual(p.returncode, 0, out + p.stderr.decode())
            self.assertEqual(out.strip().splitlines()[-1], "1 passed, 0 failed")
        finally:
            self.assertEqual(srv.stop(), 0)
            mock.stop()


FLOW_RULES = r"""
rule {
  name = "open-then-comment",
  on = "flow.two_calls",
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira", title = ev.data.title }
    unizo.ticketing.add_comment { integration = "jira", id = t.id, content = "second" }
    kv.set("flow:" .. ev.id, t.id)
  end,
}
rule {
  name = "keyed",
  on = "flow.keyed",
  key = "data.k",
  run = function(ev)
    unizo.ticketing.create_ticket { integration = "jira", title = ev.id }
  end,
}
"""

PIPELINE_TEST = r"""
local function ev(id, type, data)
  return { id = id, type = type, integration = { id = "i", type = "github" }, data = data or {} }
end

test("a plugin takes the fired event and its calls are the test's", function()
  respond("POST", "/tickets$", { status = 201, body = { id = "P-1" } })
  local run = fire(ev("evt_plug", "scm.pull_request.created"))
  expect(run.jobs).to_contain({ rule = "good", outcome = "done" })
  expect(#run.calls).to_be(1)
  expect(run.calls[1].path).to_match("/tickets$")
  expect(run.calls[1].headers["Idempotency-Key"]).to_be("evt_plug/good/1")
end)

test("a plugin's SY_FAIL makes its job dead", function()
  local run = fire(ev("evt_plug_fail", "scm.pull_request.created", { mode = "fail" }))
  expect(run.jobs).to_contain({ rule = "good", outcome = "dead", error = "plugin 'good' failed (SY_FAIL)" })
end)

test("a retry is a new attempt: the journal answers the call that succeeded", function()
  freeze_time(1700000000)
  local comments = 0
  respond("POST", "/tickets$", { status = 201, body = { id = "T-1" } })
  respond("POST", "/comments$", function()
    comments = comments + 1
    if comments == 1 then return { status = 400, body = { errorMessage = "not yet" } } end
    return { status = 201, body = { id = "C-1" } }
  end)
  local first = fire(ev("evt_two", "flow.two_calls", { title = "x" }))
  expect(first.jobs).to_equal({ { rule = "open-then-comment", outcome = "failed", error = first.jobs[1].error } })
  expect(first.attempts[1].attempt).to_be(1)
  expect(#first.calls).to_be(2)
  expect(kv.get("flow:evt_two")).to_be_nil()          -- a failed attempt commits no kv
  expect(#advance(1).jobs).to_be(0)                  -- not due yet
  local due = first.attempts[1].retry_at - os.time()
  local second = advance(due)
  expect(second.jobs).to_equal({ { rule = "open-then-comment", outcome = "done" } })
  expect(second.attempts[1].attempt).to_be(2)
  expect(#second.calls).to_be(1)                       -- the ticket came from the journal
  expect(second.calls[1].path).to_match("/comments$")
  expect(second.calls[1].headers["Idempotency-Key"]).to_be(first.calls[2].headers["Idempotency-Key"])
  expect(kv.get("flow:evt_two")).to_be("T-1")
end)

test("the retry schedule ends in dead", function()
  freeze_time(1700000000)
  respond("POST", "/tickets$", { status = 400, body = { errorMessage = "never" } })
  local run = fire(ev("evt_dead", "flow.keyed", { k = "A" }))
  expect(run.jobs[1].outcome).to_be("failed")
  run = advance(3600)
  expect(run.jobs[1].outcome).to_be("dead")
end)

test("an ordering key holds the next event until the first is done", function()
  freeze_time(1700000000)
  local n = 0
  respond("POST", "/tickets$", function(call)
    n = n + 1
    if n == 1 then return { status = 400, body = { errorMessage = "busy" } } end
    return { status = 201, body = { id = "T-" .. n } }
  end)
  local a = fire(ev("evt_k1", "flow.keyed", { k = "same" }))
  expect(a.jobs[1].outcome).to_be("failed")
  local b = fire(ev("evt_k2", "flow.keyed", { k = "same" }))
  expect(#b.jobs).to_be(0)                             -- waits behind evt_k1
  local c = fire(ev("evt_k3", "flow.keyed", { k = "other" }))
  expect(c.jobs[1].outcome).to_be("done")              -- another key runs at once
  local later = advance(3600)
  expect(#later.jobs).to_be(2)
  expect(later.attempts[1].event).to_be("evt_k1")
  expect(later.attempts[2].event).to_be("evt_k2")
  expect(later.jobs[2].outcome).to_be("done")
end)

test("fire inside a response is refused and the running job is unharmed", function()
  local nested
  respond("POST", "/tickets$", function()
    local ok, err = pcall(fire, ev("evt_inner", "flow.keyed", { k = "in" }))
    nested = err
    return { status = 201, body = { id = "T-1" } }
  end)
  respond("POST", "/comments$", { status = 201, body = { id = "C-1" } })
  local run = fire(ev("evt_outer", "flow.two_calls", { title = "x" }))
  expect(nested).to_match("cannot be called while jobs run")
  expect(run.jobs).to_equal({ { rule = "open-then-comment", outcome = "done" } })
  expect(kv.get("flow:evt_outer")).to_be("T-1")
end)

-- the whole declared body reaches the call path, as an API's bytes would (the ASan build
-- caught a read past a copy that stopped at the NUL)
test("a declared body with a NUL in it is taken whole", function()
  respond("POST", "/tickets$", { status = 201, body = '{"id":"T-1"}' .. "\0" .. "tail" })
  local run = fire(ev("evt_nul", "flow.keyed", { k = "n" }))
  expect(#run.calls).to_be(1)
  expect(run.jobs[1].rule).to_be("keyed")
end)

test("the same id again is a duplicate and runs nothing", function()
  respond("POST", "/tickets$", { status = 201, body = { id = "T-1" } })
  local once = fire(ev("evt_dup", "flow.keyed", { k = "d" }))
  expect(once.result).to_be("accepted")
  local again = fire(ev("evt_dup", "flow.keyed", { k = "d" }))
  expect(again.result).to_be("duplicate")
  expect(#again.jobs).to_be(0)
  expect(#again.calls).to_be(0)
end)
"""


class Pipeline(unittest.TestCase):
    """fire() goes through the live pipeline: store, router (plugins too), job runner, journal."""

    def test_plugins_retries_keys_and_duplicates(self):
        build = os.path.dirname(os.path.abspath(BIN))
        plugin = os.path.join(build, "tests", "test_plugin_good.so")
        self.assertTrue(os.path.exists(plugin), plugin)
        d = tempfile.mkdtemp(prefix="sy-pipeline-")
        os.mkdir(os.path.join(d, "rules"))
        with open(os.path.join(d, "rules", "flow.lua"), "w") as f:
            f.write(FLOW_RULES)
        with open(os.path.join(d, "pipeline_test.lua"), "w") as f:
            f.write(PIPELINE_TEST)
        with open(os.path.join(d, "switchyard.lua"), "w") as f:
            f.write('webhook = { secrets = { "s" } }\nrules = { "rules/*.lua" }\n'
                    'retry = { schedule = { "1m" }, jitter = 0.2 }\n'
                    'plugins = { { path = "%s", config = { integration = "jira" } } }\n'
                    'unizo = { integrations = { jira = { id = "int-j", organization = "o", collection = "C" } } }\n'
                    % plugin)
        p = subprocess.run([BIN, "test", "-c", os.path.join(d, "switchyard.lua"), os.path.join(d, "pipeline_test.lua")],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertEqual(out.strip().splitlines()[-1], "8 passed, 0 failed", out)


class Runner(unittest.TestCase):
    def test_passing_file(self):
        rc, out, _ = run("tests/data/testkit/pass_test.lua")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip().splitlines()[-1], "8 passed, 0 failed")
        self.assertIn("ok   tests/data/testkit/pass_test.lua: a failed run leaves no kv writes behind, as in the server", out)
        self.assertIn("ok   tests/data/testkit/pass_test.lua: a bad signature is rejected like the live server would", out)

    def test_failing_file_names_the_line_and_shows_a_diff(self):
        rc, out, _ = run("tests/data/testkit/fail_test.lua")
        self.assertEqual(rc, 1)
        self.assertIn("FAIL tests/data/testkit/fail_test.lua: the body differs", out)
        self.assertIn('tests/data/testkit/fail_test.lua:4: values differ at name: expected "Something else", got "Bare"', out)
        self.assertEqual(out.strip().splitlines()[-1], "1 passed, 1 failed")

    def test_unmatched_outbound_call_fails_and_lists_the_call(self):
        rc, out, _ = run("tests/data/testkit/unmatched_test.lua")
        self.assertEqual(rc, 1)
        self.assertIn("outbound call(s) with no declared response", out)
        self.assertIn('POST /ticketing/acme/collections/OPS/tickets {"name":"Bare"}', out)

    def test_filter_and_junit(self):
        report = tempfile.mktemp(suffix=".xml")
        rc, out, _ = run("--filter", "reaches the rules", "--junit", report, "tests/data/testkit/pass_test.lua",
                         "tests/data/testkit/fail_test.lua")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip().splitlines()[-1], "1 passed, 0 failed")
        cases = ET.parse(report).getroot().findall(".//testcase")
        self.assertEqual([c.get("name") for c in cases], ["frozen time reaches the rules"])
        rc, out, _ = run("--junit", report, "tests/data/testkit/fail_test.lua")
        failures = ET.parse(report).getroot().findall(".//failure")
        self.assertEqual(len(failures), 1)
        self.assertIn("values differ at name", failures[0].get("message"))

    def test_usage_and_load_errors(self):
        p = subprocess.run([BIN, "test", "--bogus"], capture_output=True)
        self.assertEqual(p.returncode, 2)
        broken = tempfile.mkdtemp()
        with open(os.path.join(broken, "broken_test.lua"), "w") as f:
            f.write("test('x', function() end\n")
        rc, out, _ = run(broken)
        self.assertEqual(rc, 1)
        self.assertIn("cannot load", out)
        self.assertIn("broken_test.lua:", out)

    def test_the_examples_have_passing_tests(self):
        p = subprocess.run([BIN, "test", "-c", os.path.join(ROOT, "examples/switchyard.lua")],
                           capture_output=True, cwd=ROOT, timeout=120)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out)
        last = out.strip().splitlines()[-1]
        self.assertTrue(last.endswith(" passed, 0 failed"), last)
        # every example rule file is exercised by a test file
        rules = [f for f in os.listdir(os.path.join(ROOT, "examples/rules"))
                 if f.endswith(".lua") and not f.endswith("_test.lua")]
        for name in ("pr-review-ticket", "pr-merged-resolve", "sev1-incident-ticket",
                     "sev1-incident-acknowledged", "sev1-incident-resolved", "offboarding-ticket"):
            self.assertTrue(any(name in open(os.path.join(ROOT, "examples/rules", f)).read() for f in rules))


if __name__ == "__main__":
    unittest.main(verbosity=2)
