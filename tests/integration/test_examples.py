"""The example rules in examples/rules, end to end on the real binary."""
import glob
import json
import os
import unittest

from harness import EVENTS, ServerTest

EXAMPLES = os.path.join(os.path.dirname(__file__), "../../examples/rules")


def example_rules():
    out = {}
    for p in glob.glob(os.path.join(EXAMPLES, "*.lua")):
        with open(p) as f:
            out[os.path.basename(p)] = f.read()
    return out


def sample(name):
    with open(os.path.join(EVENTS, name + ".json"), "rb") as f:
        return f.read()


class Examples(ServerTest):
    server_args = {"rules": example_rules(), "config_extra": """
workers = 2
unizo = { integrations = { ["jira-prod"] = { organization = "default", collection = "ENG" },
                           ["jira-it"] = { organization = "default", collection = "IT" } } }
"""}

    def test_pr_review_then_merge_and_sev1_incident(self):
        self.assertGreaterEqual(len(self.server_args["rules"]), 3)
        # no API key in this config: the demo's dry-run mode, calls logged and not sent
        self.srv.post(sample("scm.pull_request.created"))
        self.srv.wait_for(lambda: self.srv.count("review ticket created") == 1)
        url = "https://github.com/acme/payments-api/pull/42"
        # the rule's kv.set commits with its job's outcome, just after the log line
        self.srv.wait_for(lambda: self.srv.rows("SELECT value FROM kv WHERE key = ?", ("pr:" + url,)),
                          what="the correlation committed")
        value = self.srv.rows("SELECT value FROM kv WHERE key = ?", ("pr:" + url,))
        self.assertEqual(json.loads(value[0][0])["ticket"], "dry-run:evt_01HM8Q0002/pr-review-ticket/1")

        self.srv.post(sample("scm.pull_request.merged"))
        self.srv.wait_for(lambda: self.srv.count("review ticket resolved") == 1)
        self.srv.wait_for(lambda: self.srv.rows("SELECT count(*) FROM kv")[0][0] == 0, what="kv cleared")

        self.srv.post(sample("incidents.incident.created"))  # sev2: skipped
        self.srv.post(sample("incidents.incident.created.sev1"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_01HM8Q0017-sev1") ==
                          {"sev1-incident-ticket": ("done", 1)}, what="sev1 ticket")
        self.assertEqual(self.srv.count("unizo dry-run"), 4)
        self.srv.wait_for(lambda: self.srv.job_states("evt_01HM8Q0017") ==
                          {"sev1-incident-ticket": ("skipped", 1)}, what="skip")
        self.assertNotIn("job failed", self.srv.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
