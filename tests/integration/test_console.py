"""The console on the admin listener: its assets, its login and sessions, and the CSRF and
forged-POST refusals, checked by their side effects (did the refused action run?)."""
import http.client
import json
import os
import re
import unittest

from harness import Server, event

TOKEN = "adm-console-token-93f1c2"
RULE = 'rule { name = "r", on = "scm.*", run = function(ev) end }\n'
HERE = os.path.dirname(os.path.abspath(__file__))


def request(srv, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.admin_port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data.decode(), r


def rule_names(srv, headers=None):
    status, body, _ = request(srv, "GET", "/admin/rules", headers=headers)
    return sorted(r["name"] for r in json.loads(body)["rules"])


SECOND = 'rule { name = "second", on = "scm.*", run = function(ev) end }\n'


class Assets(unittest.TestCase):
    def setUp(self):
        self.srv = Server(rules={"r.lua": RULE}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)

    def test_the_page_and_its_assets_come_from_the_binary_with_a_strict_policy(self):
        status, body, r = request(self.srv, "GET", "/")
        self.assertEqual(status, 200)
        self.assertIn('<script src="/console/app.js" defer></script>', body)
        csp = r.getheader("content-security-policy")
        self.assertIn("script-src 'self'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(r.getheader("x-content-type-options"), "nosniff")
        for path, kind in (("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")):
            status, text, r = request(self.srv, "GET", path)
            self.assertEqual(status, 200, path)
            self.assertTrue(r.getheader("content-type").startswith(kind))
            with open(os.path.join(HERE, "../../src/http/console", path.rsplit("/", 1)[1])) as f:
                self.assertEqual(text, f.read())  # embedded at build time, byte for byte
        # the admin API's answers carry the same headers
        status, _, r = request(self.srv, "GET", "/admin/rules")
        self.assertEqual(status, 200)
        self.assertEqual(r.getheader("x-content-type-options"), "nosniff")

    def test_the_script_never_inserts_text_as_html(self):
        with open(os.path.join(HERE, "../../src/http/console/app.js")) as f:
            js = f.read()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                     "new Function"):
            self.assertNotIn(sink, js)

    def test_without_a_token_a_post_a_web_page_could_forge_is_refused_and_runs_nothing(self):
        self.srv.write_rules({"second.lua": SECOND})  # a reload that ran would load it
        # a cross-site form can send text/plain or form-encoded bodies, never application/json
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": ctype} if ctype else {}
            status, body, _ = request(self.srv, "POST", "/admin/reload", body=b"x", headers=headers)
            self.assertEqual(status, 403, body)
            self.assertEqual(json.loads(body)["error"], "content_type")
        status, body, _ = request(self.srv, "POST", "/admin/rules/r/pause", body=b"{}",
                                  headers={"content-type": "text/plain"})
        self.assertEqual(status, 403)
        self.assertEqual(rule_names(self.srv), ["r"])
        status, body, _ = request(self.srv, "GET", "/admin/rules")
        self.assertFalse(json.loads(body)["rules"][0]["paused"])
        # the CLI and API clients send JSON
        status, body, _ = request(self.srv, "POST", "/admin/reload", body=b"{}",
                                  headers={"content-type": "application/json"})
        self.assertEqual(status, 200, body)
        self.assertEqual(rule_names(self.srv), ["r", "second"])

    def test_without_a_token_the_console_session_gives_a_csrf_token_that_posts_need(self):
        status, body, r = request(self.srv, "GET", "/console/session")
        self.assertEqual(status, 200)
        s = json.loads(body)
        self.assertEqual((s["token_required"], s["authenticated"]), (False, True))
        cookie = r.getheader("set-cookie").split(";")[0]
        status, body, _ = request(self.srv, "POST", "/admin/rules/r/pause", body=b"{}",
                                  headers={"cookie": cookie, "content-type": "application/json"})
        self.assertEqual(status, 403, body)
        self.assertEqual(json.loads(body)["error"], "csrf")
        status, body, _ = request(self.srv, "GET", "/admin/rules")
        self.assertFalse(json.loads(body)["rules"][0]["paused"])
        status, body, _ = request(self.srv, "POST", "/admin/rules/r/pause", body=b"{}",
                                  headers={"cookie": cookie, "content-type": "application/json",
                                           "x-csrf-token": s["csrf"]})
        self.assertEqual(status, 200, body)


class Overview(unittest.TestCase):
    def setUp(self):
        self.srv = Server(rules={"r.lua": RULE}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)

    def test_the_overview_counts_what_arrived_without_prometheus(self):
        from harness import event
        for i in range(5):
            self.assertEqual(self.srv.post(event("evt_ov_%d" % i))[0], 200)
        self.assertEqual(self.srv.post(event("evt_ov_0"))[0], 200)  # a duplicate
        self.srv.wait_for(lambda: self.srv.metric("switchyard_jobs_total", '{rule="r",outcome="done"}') == 5)
        status, body, _ = request(self.srv, "GET", "/admin/overview")
        self.assertEqual(status, 200, body)
        o = json.loads(body)
        self.assertEqual(o["every_s"], 10)
        series = {s["name"]: s for s in o["series"]}
        for name in ("accepted", "duplicate", "rejected", "quarantined", "jobs_done", "jobs_dead",
                     "queue", "unizo_ok", "unizo_latency"):
            self.assertIn(name, series)
        # one sample so far, and the newest point is now: its rate covers what was sent
        self.assertEqual(len(series["accepted"]["values"]), 1)
        self.assertGreater(series["accepted"]["now"], 0)
        self.assertGreater(series["duplicate"]["now"], 0)
        self.assertGreater(series["jobs_done"]["now"], 0)
        self.assertEqual(series["jobs_dead"]["now"], 0)
        self.assertEqual(series["quarantined"]["link"], "#/quarantine")
        status, body, _ = request(self.srv, "GET", "/admin/rules")
        r = json.loads(body)["rules"][0]
        self.assertEqual((r["on"], r["key"], r["attempts"]["done"]), (["scm.*"], [], 5))


class WithToken(unittest.TestCase):
    def setUp(self):
        self.srv = Server(rules={"r.lua": RULE},
                          config_extra='admin = { listen = "127.0.0.1:0", token = env("SY_TEST_ADMIN_TOKEN") }',
                          env={"SY_TEST_ADMIN_TOKEN": TOKEN}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)
        self.assertNotIn(TOKEN, self.srv.log())

    def login(self):
        status, body, r = request(self.srv, "POST", "/console/login", body=json.dumps({"token": TOKEN}),
                                  headers={"content-type": "application/json"})
        self.assertEqual(status, 200, body)
        cookie = r.getheader("set-cookie")
        self.assertRegex(cookie, r"^sy_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict; Max-Age=\d+$")
        return cookie.split(";")[0], json.loads(body)["csrf"]

    def test_the_page_loads_but_nothing_else_answers_without_the_token(self):
        self.assertEqual(request(self.srv, "GET", "/")[0], 200)
        status, body, _ = request(self.srv, "GET", "/console/session")
        self.assertEqual(json.loads(body), {"token_required": True, "authenticated": False, "csrf": None})
        for path in ("/admin/events", "/admin/rules", "/metrics"):
            self.assertEqual(request(self.srv, "GET", path)[0], 401, path)
        status, body, _ = request(self.srv, "POST", "/console/login", body=b'{"token": "nope"}',
                                  headers={"content-type": "application/json"})
        self.assertEqual(status, 401)
        # a made-up session is no session
        fake = "sy_session=" + "0" * 64
        self.assertEqual(request(self.srv, "GET", "/admin/events", headers={"cookie": fake})[0], 401)

    def test_a_session_reads_and_acts_only_with_its_csrf_token(self):
        cookie, csrf = self.login()
        status, body, _ = request(self.srv, "GET", "/admin/rules", headers={"cookie": cookie})
        self.assertEqual(status, 200, body)
        self.srv.write_rules({"second.lua": SECOND})
        status, body, _ = request(self.srv, "POST", "/admin/reload", body=b"{}",
                                  headers={"cookie": cookie, "content-type": "application/json"})
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["error"], "csrf")
        status, body, _ = request(self.srv, "POST", "/admin/reload", body=b"{}",
                                  headers={"cookie": cookie, "x-csrf-token": "f" * 32})
        self.assertEqual(status, 403)
        self.assertEqual(rule_names(self.srv, {"cookie": cookie}), ["r"])  # neither refused reload ran
        status, body, _ = request(self.srv, "POST", "/admin/reload", body=b"{}",
                                  headers={"cookie": cookie, "x-csrf-token": csrf})
        self.assertEqual(status, 200, body)
        self.assertEqual(rule_names(self.srv, {"cookie": cookie}), ["r", "second"])
        # logging out ends the session
        status, _, r = request(self.srv, "POST", "/console/logout", headers={"cookie": cookie})
        self.assertEqual(status, 200)
        self.assertIn("Max-Age=0", r.getheader("set-cookie"))
        self.assertEqual(request(self.srv, "GET", "/admin/rules", headers={"cookie": cookie})[0], 401)

    def test_the_bearer_token_still_works_for_api_clients_without_csrf(self):
        status, body, _ = request(self.srv, "POST", "/admin/reload", body=b"",
                                  headers={"authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200, body)


FAILING = 'rule { name = "r", on = "scm.*", run = function(ev) log.info("RAN " .. ev.id); error("no") end }\n'
GETS = ("/metrics", "/admin/overview", "/admin/events", "/admin/events/evt_auth_1", "/admin/rules")
POSTS = (("/admin/events/evt_auth_1/replay", b"{}"), ("/admin/replay", b'{"ids": ["evt_auth_1"]}'),
         ("/admin/reload", b"{}"), ("/admin/rules/r/pause", b"{}"), ("/admin/rules/r/resume", b"{}"))
FORMS = ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x")


class EveryEndpoint(unittest.TestCase):
    """Each admin endpoint, refused without the token, with a wrong one and to a cross-site form,
    checked by what did not happen: no replay ran, nothing paused, no reload."""

    def start(self, token):
        extra = 'retry = { schedule = {}, jitter = 0 }\n'
        if token:
            extra += 'admin = { listen = "127.0.0.1:0", token = env("SY_TEST_ADMIN_TOKEN") }\n'
        self.srv = Server(rules={"r.lua": FAILING}, config_extra=extra,
                          env={"SY_TEST_ADMIN_TOKEN": TOKEN} if token else None).start()
        self.addCleanup(lambda: self.assertEqual(self.srv.stop(), 0))
        self.assertEqual(self.srv.post(event("evt_auth_1"))[0], 200)
        self.srv.wait_for(lambda: self.job_state() == "dead", what="the job dead")
        self.srv.write_rules({"second.lua": SECOND})  # a reload that ran would load it

    def job_state(self):
        headers = {"authorization": "Bearer " + TOKEN}
        status, body, _ = request(self.srv, "GET", "/admin/events/evt_auth_1", headers=headers)
        return json.loads(body)["jobs"][0]["state"] if status == 200 else None

    def nothing_happened(self, auth):
        self.assertEqual(self.srv.count("RAN evt_auth_1"), 1)  # no replay ran the job again
        self.assertEqual(self.job_state(), "dead")
        status, body, _ = request(self.srv, "GET", "/admin/rules", headers=auth)
        rules = json.loads(body)["rules"]
        self.assertEqual([(r["name"], r["paused"]) for r in rules], [("r", False)])  # no reload, no pause

    def test_with_a_token_each_endpoint_answers_401_without_it(self):
        self.start(token=True)
        refusals = [{}, {"authorization": "Bearer wrong"}, {"authorization": "Bearer " + TOKEN[:-1]},
                    {"authorization": "Bearer " + TOKEN + "x"}, {"authorization": TOKEN},
                    # the right length, wrong in the last character or the first
                    {"authorization": "Bearer " + TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y")},
                    {"authorization": "Bearer " + ("x" if TOKEN[0] != "x" else "y") + TOKEN[1:]},
                    {"authorization": "Basic " + TOKEN}]
        for path in GETS:
            for h in refusals:
                status, body, _ = request(self.srv, "GET", path, headers=h)
                self.assertEqual(status, 401, (path, h, body))
        for path, data in POSTS:
            for h in refusals:
                status, body, _ = request(self.srv, "POST", path, body=data,
                                          headers=dict(h, **{"content-type": "application/json"}))
                self.assertEqual((status, json.loads(body)["error"]), (401, "unauthorized"), (path, h))
            for form in FORMS:  # what a page on another site could make a browser send
                status, body, _ = request(self.srv, "POST", path, body=b"ids=evt_auth_1",
                                          headers={"content-type": form, "origin": "https://evil.example"})
                self.assertEqual(status, 401, (path, form, body))
        auth = {"authorization": "Bearer " + TOKEN}
        self.nothing_happened(auth)
        # the same requests with the token do act: the refusals above were the token's doing
        status, body, _ = request(self.srv, "POST", "/admin/events/evt_auth_1/replay", body=b"{}",
                                  headers=auth)
        self.assertEqual((status, json.loads(body)["replayed"]), (200, 1), body)
        self.srv.wait_for(lambda: self.srv.count("RAN evt_auth_1") == 2, what="the replay ran")

    def test_without_a_token_each_write_refuses_a_cross_site_form(self):
        self.start(token=False)
        for path, data in POSTS:
            for form in FORMS + (None,):
                headers = {"origin": "https://evil.example"}
                if form:
                    headers["content-type"] = form
                status, body, _ = request(self.srv, "POST", path, body=b"ids=evt_auth_1", headers=headers)
                self.assertEqual((status, json.loads(body)["error"]), (403, "content_type"), (path, form))
        self.nothing_happened({})


if __name__ == "__main__":
    unittest.main()
