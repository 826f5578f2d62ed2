"""`switchyard test`, the rule-test runner, on the files in tests/data/testkit."""
import os
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import BIN

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
DATA = os.path.join(ROOT, "tests/data/testkit")


def run(*args):
    p = subprocess.run([BIN, "test", "-c", os.path.join(DATA, "switchyard.lua"), *args],
                       capture_output=True, cwd=ROOT, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


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
