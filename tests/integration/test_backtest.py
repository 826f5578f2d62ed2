"""`switchyard backtest`: candidate rules over a store filled by a live run, offline."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import BIN, Mock, Server, event
from test_unizo import API_KEY, PR_RULE, config


def pr(eid, n):
    return event(eid, title="Fix %d" % n, url="https://github.com/acme/x/pull/%d" % n, number=n)


class Backtest(unittest.TestCase):
    def setUp(self):
        self.mock = Mock()
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 201,
                           "body": {"id": "T-1", "key": "ENG-1"}}])
        self.srv = Server(rules={"pr.lua": PR_RULE}, config_extra=config(self.mock.url),
                          env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        for n in (1, 2, 3):
            self.srv.post(pr("evt_bt_%d" % n, n))
        self.srv.wait_for(lambda: len(self.mock.requests("/tickets")) == 3, what="three live tickets")
        self.srv.wait_for(lambda: all(self.srv.job_states("evt_bt_%d" % n) == {"pr-review-ticket": ("done", 1)}
                                      for n in (1, 2, 3)), what="jobs done")

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)
        self.mock.stop()

    def backtest(self, rule_text, *args):
        d = tempfile.mkdtemp(prefix="sy-candidates-")
        with open(os.path.join(d, "pr.lua"), "w") as f:
            f.write(rule_text)
        p = subprocess.run([BIN, "backtest", "-c", self.srv.config, "--rules", d, "--since", "1h", *args],
                           capture_output=True, timeout=60, env=dict(os.environ, SY_TEST_UNIZO_KEY=API_KEY))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def snapshot(self):
        return (self.srv.rows("SELECT id, event_id, handler, state, attempts, runs FROM jobs ORDER BY id"),
                self.srv.rows("SELECT key, value FROM kv ORDER BY key"),
                self.srv.rows("SELECT count(*) FROM calls"),
                len(self.mock.requests()))

    def test_a_changed_call_is_reported_for_exactly_its_event(self):
        before = self.snapshot()
        candidate = PR_RULE.replace('title = "Review PR: " .. ev.data.title',
                                    'title = (ev.data.number == 2 and "Review PR (urgent): " or "Review PR: ") '
                                    '.. ev.data.title')
        self.assertNotEqual(candidate, PR_RULE)
        rc, out, err = self.backtest(candidate)
        self.assertEqual(rc, 1, out + err)
        lines = out.strip().splitlines()
        self.assertTrue(lines[0].startswith("candidates ("), lines[0])
        self.assertIn("evt_bt_2", [l.split()[0] for l in lines if "changed: POST /ticketing/acme/collections/ENG/tickets" in l])
        self.assertIn('body.name: "Review PR: Fix 2" -> "Review PR (urgent): Fix 2"', out)
        for n in (1, 3):
            self.assertTrue(any(l.split()[:2] == ["evt_bt_%d" % n, "same"] for l in lines), out)
        self.assertEqual(lines[-2], "backtest: 3 events; calls: 2 same, 1 changed, 0 new, 0 missing")
        self.assertEqual(lines[-1], "2 same, 1 changed")
        # offline: nothing reached the API, and the store's jobs, kv and journal are as they were
        self.assertEqual(self.snapshot(), before)

    def test_the_live_rules_backtest_the_same_and_new_calls_are_new(self):
        rc, out, err = self.backtest(PR_RULE)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out.strip().splitlines()[-1], "3 same, 0 changed")
        commenting = PR_RULE.replace('kv.set(', 'unizo.ticketing.add_comment { integration = "jira-prod", '
                                               'id = t.id, content = "hi" }\n    kv.set(', 1)
        report = os.path.join(tempfile.mkdtemp(), "bt.xml")
        rc, out, err = self.backtest(commenting, "--junit", report)
        self.assertEqual(rc, 1, out + err)
        # each comment goes to the ticket live's create got for that event (answered from the journal)
        live_ids = {}
        for r in self.srv.rows("SELECT j.event_id, c.response FROM calls c JOIN jobs j ON j.id = c.job_id"):
            live_ids[r[0]] = json.loads(r[1])["id"]
        for eid, tid in live_ids.items():
            self.assertIn("%-30s new: POST /ticketing/acme/collections/ENG/tickets/%s/comments" % (eid, tid), out)
        self.assertEqual(len(live_ids), 3)
        self.assertEqual(out.strip().splitlines()[-1], "3 same, 0 changed")
        with open(report) as f:
            self.assertEqual(f.read().count("<failure"), 3)

    def test_type_filter_and_bad_arguments(self):
        rc, out, _ = self.backtest(PR_RULE, "--type", "ticketing.*")
        self.assertEqual((rc, out.strip().splitlines()[-1]), (0, "0 same, 0 changed"))
        p = subprocess.run([BIN, "backtest", "-c", self.srv.config], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
