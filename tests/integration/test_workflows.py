"""The flagship workflows on the real binary and the mock Unizo API, when events race, jobs
retry, the API drops an answer on the floor, and rule files change on a live server."""
import json
import os
import re
import signal
import time
import unittest

from harness import EVENTS, Mock, Server
from test_redis import Redis

API_KEY = "uz-workflow-key-3b9d"
RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../examples/rules")


def example_rules(*names):
    return {n: open(os.path.join(RULES, n)).read() for n in names}


def config(mock_url, extra=""):
    # one HTTP attempt per call: a 503 fails the job at once and the job-level retry takes over
    return f"""
unizo = {{
  base_url = "{mock_url}",
  api_key = env("SY_TEST_UNIZO_KEY"),
  retry = {{ attempts = 1 }},
  timeout = "5s",
  integrations = {{ ["jira-prod"] = {{ id = "int-jira-42", organization = "default", collection = "ENG" }} }},
}}
retry = {{ schedule = {{ "3s", "3s" }}, jitter = 0 }}
workers = 2
{extra}
"""


def sample(name, eid, **data):
    """A sample event from examples/events with another id and some data fields replaced."""
    body = json.load(open(os.path.join(EVENTS, name)))
    body["id"] = eid
    body["data"].update(data)
    return json.dumps(body).encode()


def pr_url(n):
    return "https://github.com/acme/payments-api/pull/%d%d" % (os.getpid(), n)


def state(srv, eid, handler):
    return srv.job_states(eid).get(handler, ("", 0))[0]


def creates(mock):
    return [r for r in mock.requests() if r["method"] == "POST" and r["path"].endswith("/tickets")]


def shown(srv, eid):
    rc, out, err = srv.cli("events", "show", eid)
    assert rc == 0, err
    return json.loads(out)


def job_of(event, handler):
    return [j for j in event["jobs"] if j["handler"] == handler][0]


class Reordering(unittest.TestCase):
    """The merge arrives while the PR's ticket is still waiting for its retry."""

    def setUp(self):
        self.mock = Mock()
        self.srv = Server(rules=example_rules("pr_review.lua", "pr_merged.lua"),
                          config_extra=config(self.mock.url), env={"SY_TEST_UNIZO_KEY": API_KEY}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])
        self.mock.stop()

    def test_merge_during_the_retry_resolves_the_one_ticket(self):
        url, other = pr_url(1), pr_url(2)
        # the create fails once; its retry is held at the API until the checks below are done
        self.mock.script([{"method": "POST", "path": "/tickets$", "status": 503, "times": 1},
                          {"method": "POST", "path": "/tickets$", "match": re.escape(url), "hold": "retry"}])
        self.srv.post(sample("scm.pull_request.created.json", "evt_wf_c", url=url))
        self.srv.wait_for(lambda: state(self.srv, "evt_wf_c", "pr-review-ticket") == "retrying")
        self.srv.post(sample("scm.pull_request.merged.json", "evt_wf_m", url=url))
        # another PR is not held up by this one's retry
        self.srv.post(sample("scm.pull_request.created.json", "evt_wf_o", url=other))
        self.srv.wait_for(lambda: state(self.srv, "evt_wf_o", "pr-review-ticket") == "done")
        self.assertEqual(state(self.srv, "evt_wf_c", "pr-review-ticket"), "retrying")
        self.assertEqual(state(self.srv, "evt_wf_m", "pr-merged-resolve"), "pending")
        # the merge waits, and says for what
        merged = job_of(shown(self.srv, "evt_wf_m"), "pr-merged-resolve")
        self.assertEqual(merged["state"], "pending")
        self.assertEqual(merged["key"], url)
        self.assertEqual(merged["waiting_for"], {"event": "evt_wf_c", "handler": "pr-review-ticket"})
        status, body, _ = self.srv.admin("/admin/events/evt_wf_m")
        self.assertEqual(json.loads(body)["jobs"][0]["waiting_for"]["event"], "evt_wf_c")
        self.assertEqual([r for r in self.mock.requests() if r["method"] == "PUT"], [])

        self.mock.release("retry")
        self.srv.wait_for(lambda: state(self.srv, "evt_wf_m", "pr-merged-resolve") == "done", timeout=30,
                          what="the merge after the retry")
        self.assertEqual(self.srv.job_states("evt_wf_c")["pr-review-ticket"], ("done", 2))
        mine = [r for r in creates(self.mock) if r["body"]["metadata"]["pr_url"] == url]
        self.assertEqual(len(mine), 2)  # the 503, then the one ticket
        puts = [r for r in self.mock.requests() if r["method"] == "PUT"]
        self.assertEqual(len(puts), 1)
        self.assertEqual(puts[0]["body"], {"status": "resolved"})
        tid = puts[0]["path"].rsplit("/", 1)[1]
        comments = [r for r in self.mock.requests() if r["path"].endswith("/tickets/%s/comments" % tid)]
        self.assertEqual(len(comments), 1)
        self.assertIn("9f1c2e7b4d0a8c3e5f6a7b8c9d0e1f2a3b4c5d6e", comments[0]["body"]["content"])
        # the ticket created for this PR is the one resolved
        self.assertEqual(self.srv.count("review ticket created"), 2)
        self.assertIn("ticket=%s" % tid, [l for l in self.srv.lines if "review ticket resolved" in l][0])
        # the merge ran after the ticket was created, not beside it
        reqs = self.mock.requests()
        self.assertLess(reqs.index(mine[1]), reqs.index(puts[0]))
        self.assertEqual(self.srv.count("no review ticket recorded"), 0)


INCIDENT = example_rules("incident_sev1.lua")


class IncidentLifecycle(unittest.TestCase):
    def test_acknowledged_and_resolved_wait_for_the_ticket_and_keep_their_order(self):
        mock = Mock()
        srv = Server(rules=INCIDENT, config_extra=config(mock.url, "workers = 4\n"),
                     env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        mock.script([{"method": "POST", "path": "/tickets$", "status": 503, "times": 1},
                     {"method": "POST", "path": "/tickets$", "hold": "retry", "times": 1}])
        inc = {"id": "INC-%d" % os.getpid()}
        srv.post(sample("incidents.incident.created.sev1.json", "evt_i1", **inc))
        srv.wait_for(lambda: state(srv, "evt_i1", "sev1-incident-ticket") == "retrying")
        srv.post(sample("incidents.incident.acknowledged.sev1.json", "evt_i2", **inc))
        srv.post(sample("incidents.incident.resolved.sev1.json", "evt_i3", **inc))
        srv.wait_for(lambda: srv.job_states("evt_i3") != {})
        self.assertEqual(state(srv, "evt_i2", "sev1-incident-acknowledged"), "pending")
        self.assertEqual(state(srv, "evt_i3", "sev1-incident-resolved"), "pending")
        mock.release("retry")
        srv.wait_for(lambda: state(srv, "evt_i3", "sev1-incident-resolved") == "done", timeout=30)
        self.assertEqual(state(srv, "evt_i2", "sev1-incident-acknowledged"), "done")
        calls = [(r["method"], r["path"].rsplit("/collections/ENG", 1)[1]) for r in mock.requests()]
        self.assertEqual(len(calls), 4, calls)
        tid = calls[2][1].split("/")[2]
        self.assertEqual(calls, [("POST", "/tickets"), ("POST", "/tickets"),
                                 ("POST", "/tickets/%s/comments" % tid), ("PUT", "/tickets/%s" % tid)])
        self.assertEqual(srv.rows("SELECT count(*) FROM kv"), [(0,)])  # resolved: the link is gone
        self.assertEqual(srv.stop(), 0)
        mock.stop()


TWO_CALLS = """
rule {
  name = "ticket-and-comment",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review " .. ev.data.title }
    unizo.ticketing.add_comment { integration = "jira-prod", id = t.id, content = "opened by " .. ev.id }
    log.info("TWO CALLS DONE " .. t.id)
  end,
}
"""


class Journal(unittest.TestCase):
    """The API does not honour Idempotency-Key: only the journal keeps a retry from repeating."""

    def setUp(self):
        self.mock = Mock()
        self.srv = Server(rules={"two.lua": TWO_CALLS}, config_extra=config(self.mock.url),
                          env={"SY_TEST_UNIZO_KEY": API_KEY}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])
        self.mock.stop()

    def test_a_retry_replays_the_create_and_sends_only_the_comment(self):
        self.mock.script([{"method": "POST", "path": "/comments$", "status": 500,
                           "body": {"errorCode": "DOWN", "errorMessage": "try later"}, "times": 1}])
        self.srv.post(sample("scm.pull_request.created.json", "evt_j1", url=pr_url(3)))
        self.srv.wait_for(lambda: state(self.srv, "evt_j1", "ticket-and-comment") == "done", timeout=30)
        self.assertEqual(self.srv.job_states("evt_j1")["ticket-and-comment"], ("done", 2))
        self.assertEqual(len(creates(self.mock)), 1)
        comments = [r for r in self.mock.requests() if r["path"].endswith("/comments")]
        self.assertEqual(len(comments), 2)
        tid = comments[0]["path"].split("/tickets/")[1].split("/")[0]
        self.assertEqual(comments[1]["path"], comments[0]["path"])  # the replayed answer's ticket id
        self.assertEqual(self.srv.count("TWO CALLS DONE %s" % tid), 1)
        # the journal, both attempts, in `events show` and the admin API
        for view in (shown(self.srv, "evt_j1"), json.loads(self.srv.admin("/admin/events/evt_j1")[1])):
            calls = job_of(view, "ticket-and-comment")["calls"]
            self.assertEqual([(c["attempt"], c["n"], c["method"], c["status"], c["replayed"]) for c in calls],
                             [(1, 1, "POST", 201, False), (1, 2, "POST", 500, False),
                              (2, 1, "POST", 201, True), (2, 2, "POST", 201, False)])
            self.assertEqual([c["key"] for c in calls], ["evt_j1/ticket-and-comment/%d" % n for n in (1, 2, 1, 2)])
            self.assertEqual(calls[0]["path"], "/ticketing/default/collections/ENG/tickets")
            self.assertEqual(calls[0]["response"]["id"], tid)
            self.assertEqual(calls[0]["request"]["name"], "Review Add OAuth login")
            self.assertEqual(calls[1]["response"], {"errorCode": "DOWN", "errorMessage": "try later"})
            self.assertEqual(calls[2]["response"], calls[0]["response"])
        self.assertEqual(self.srv.count("unizo call replayed from the journal; not sent"), 1)
        self.assertEqual(self.srv.metric("switchyard_unizo_replayed_total"), 1)

    def test_a_call_that_changed_is_sent_again(self):
        # the retry's first call goes to another collection (kv changed meanwhile): the same n,
        # another path, so the journal does not answer it
        rule = TWO_CALLS.replace('title = "Review " .. ev.data.title',
                                 'title = "Review " .. ev.data.title, collection = kv.get("col") or "ENG"')
        rule += 'rule { name = "set-col", on = "ticketing.ticket.created", run = function() kv.set("col", "OPS") end }'
        self.srv.write_rules({"two.lua": rule})
        self.assertEqual(self.srv.admin("/admin/reload", method="POST")[0], 200)
        # the first attempt's comment is held at the API while the collection changes, then fails
        self.mock.script([{"method": "POST", "path": "/comments$", "status": 500, "hold": "c", "times": 1}])
        self.srv.post(sample("scm.pull_request.created.json", "evt_j2", url=pr_url(4)))
        self.srv.wait_for(lambda: len(self.mock.requests("/comments")) == 1)
        self.srv.post(sample("ticketing.ticket.created.json", "evt_j2_col"))
        self.srv.wait_for(lambda: state(self.srv, "evt_j2_col", "set-col") == "done")
        self.mock.release("c")
        self.srv.wait_for(lambda: state(self.srv, "evt_j2", "ticket-and-comment") == "done", timeout=30)
        self.assertEqual([r["path"] for r in creates(self.mock)],
                         ["/ticketing/default/collections/ENG/tickets",
                          "/ticketing/default/collections/OPS/tickets"])
        calls = job_of(shown(self.srv, "evt_j2"), "ticket-and-comment")["calls"]
        self.assertEqual([(c["attempt"], c["replayed"]) for c in calls],
                         [(1, False), (1, False), (2, False), (2, False)])


SLOW_AFTER_CREATE = """
rule {
  name = "create-then-slow",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review " .. ev.data.title }
    log.info("CREATED " .. t.id)
    local c = os.clock() while os.clock() - c < 30 do end
    log.info("FINISHED " .. t.id)
  end,
}
"""


class CrashAfterACall(unittest.TestCase):
    def test_a_call_journaled_before_a_kill_is_not_sent_again_after_the_restart(self):
        mock = Mock()
        srv = Server(rules={"slow.lua": SLOW_AFTER_CREATE},
                     config_extra=config(mock.url, 'lua = { instruction_limit = 100000000000 }\n'),
                     env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        srv.post(sample("scm.pull_request.created.json", "evt_kill", url=pr_url(7)))
        # the create was answered and its journal line committed; the rule is still running
        srv.wait_for(lambda: srv.rows("SELECT count(*) FROM calls") == [(1,)], what="the journal line")
        self.assertEqual(state(srv, "evt_kill", "create-then-slow"), "pending")
        self.assertEqual(srv.kill(), -signal.SIGKILL)  # it was still running
        self.assertEqual(len(creates(mock)), 1)
        # the same rule without the wait runs at the restart
        srv.write_rules({"slow.lua": SLOW_AFTER_CREATE.replace("while os.clock() - c < 30", "while false")})
        srv.start()
        srv.wait_for(lambda: state(srv, "evt_kill", "create-then-slow") == "done", timeout=30)
        self.assertEqual(len(creates(mock)), 1)  # not sent again
        calls = job_of(shown(srv, "evt_kill"), "create-then-slow")["calls"]
        self.assertEqual([(c["attempt"], c["n"], c["replayed"]) for c in calls], [(1, 1, False), (2, 1, True)])
        self.assertEqual(srv.count("FINISHED " + calls[0]["response"]["id"]), 1)
        self.assertEqual(srv.stop(), 0)
        mock.stop()


class RedisTwoInstances(unittest.TestCase):
    def test_merge_on_the_other_instance_waits_for_the_retry(self):
        redis = Redis()
        mock = Mock()
        rules = example_rules("pr_review.lua", "pr_merged.lua")

        def instance(name):
            extra = f'store = {{ url = "redis://127.0.0.1:{redis.port}/0", instance = "{name}" }}\n'
            return Server(rules=rules, config_extra=config(mock.url, extra),
                          env={"SY_TEST_UNIZO_KEY": API_KEY}).start()
        a, b = instance("a"), instance("b")
        url = pr_url(5)
        job = "switchyard:job:%s\n%s"
        mock.script([{"method": "POST", "path": "/tickets$", "status": 503, "times": 1},
                     {"method": "POST", "path": "/tickets$", "match": re.escape(url), "hold": "retry"}])
        a.post(sample("scm.pull_request.created.json", "evt_rc", url=url))
        a.wait_for(lambda: redis.cmd("HGET", job % ("evt_rc", "pr-review-ticket"), "state") == "retrying")
        b.post(sample("scm.pull_request.merged.json", "evt_rm", url=url))
        b.post(sample("scm.pull_request.created.json", "evt_ro", url=pr_url(6)))
        a.wait_for(lambda: redis.cmd("HGET", job % ("evt_ro", "pr-review-ticket"), "state") == "done")
        self.assertEqual(redis.cmd("HGET", job % ("evt_rm", "pr-merged-resolve"), "state"), "pending")
        merged = job_of(shown(b, "evt_rm"), "pr-merged-resolve")
        self.assertEqual(merged["waiting_for"], {"event": "evt_rc", "handler": "pr-review-ticket"})
        mock.release("retry")
        a.wait_for(lambda: redis.cmd("HGET", job % ("evt_rm", "pr-merged-resolve"), "state") == "done",
                   timeout=30, what="the merge after the retry")
        mine = [r for r in creates(mock) if r["body"]["metadata"]["pr_url"] == url]
        self.assertEqual(len(mine), 2)
        puts = [r for r in mock.requests() if r["method"] == "PUT"]
        self.assertEqual(len(puts), 1)
        self.assertEqual(puts[0]["body"], {"status": "resolved"})
        reqs = mock.requests()
        self.assertLess(reqs.index(mine[1]), reqs.index(puts[0]))
        self.assertEqual(a.count("no review ticket recorded") + b.count("no review ticket recorded"), 0)
        # the key is free again, and nothing waits for it
        self.assertIsNone(redis.cmd("GET", "switchyard:ka:" + url))
        self.assertEqual(redis.cmd("ZCARD", "switchyard:kq:" + url), 0)
        # the journal is on Redis too
        calls = job_of(shown(a, "evt_rc"), "pr-review-ticket")["calls"]
        self.assertEqual([(c["attempt"], c["status"]) for c in calls], [(1, 503), (2, 201)])
        for s in (a, b):
            self.assertEqual(s.stop(), 0)
        mock.stop()
        redis.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
