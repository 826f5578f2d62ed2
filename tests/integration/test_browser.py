"""The console in a real browser: headless Chromium driven by Selenium, against the real
binary with admin.token set. Log in, find an event by id, read its calls, fix a rule, reload,
replay its dead job and see it run, pause and resume a rule, a PR title holding markup shown
as text, and a POST without the CSRF token refused (nothing paused). Screenshots of each page
go to SY_SCREENSHOT_DIR (CTest: the build folder's screenshots/).

Runs under Debian's /usr/bin/python3 (python3-selenium, chromium, chromium-driver)."""
import json
import os
import tempfile
import unittest

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from chrome import Chrome
from harness import Server, event

TOKEN = "adm-browser-token-5d1e77"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
SHOTS = os.environ.get("SY_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="sy-shots-")

BROKEN_RULE = """
rule { name = "pr-ticket", on = "scm.pull_request.*",
       run = function(ev)
         unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review: " .. ev.data.title }
         error("jira is down")
       end }
"""
FIXED_RULE = """
rule { name = "pr-ticket", on = "scm.pull_request.*",
       run = function(ev)
         unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review: " .. ev.data.title }
         log.info("ticket made, at last")
       end }
"""
SYNTAX_ERROR = 'rule { name = "pr-ticket", on = "scm.*", run = function(ev) end\n'
OTHER = 'rule { name = "other", on = "scm.branch.*", run = function(ev) end }\n'


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(SHOTS, exist_ok=True)
        cls.srv = Server(rules={"r.lua": BROKEN_RULE, "other.lua": OTHER},
                         config_extra="""
admin = { listen = "127.0.0.1:0", token = env("SY_TEST_ADMIN_TOKEN") }
retry = { schedule = { "50ms" }, jitter = 0 }
unizo = { integrations = { ["jira-prod"] = { organization = "default", collection = "ENG" } } }
""", env={"SY_TEST_ADMIN_TOKEN": TOKEN}).start()
        cls.chrome = Chrome()
        cls.driver = cls.chrome.driver
        cls.base = "http://127.0.0.1:%d" % cls.srv.admin_port

    @classmethod
    def tearDownClass(cls):
        cls.chrome.quit()
        rc = cls.srv.stop()
        assert rc == 0, rc
        assert TOKEN not in cls.srv.log()

    # ---- helpers ----
    def wait(self, cond, timeout=15):
        # a page re-renders its table after an action: an element read as it is replaced is
        # read again on the next poll
        return WebDriverWait(self.driver, timeout,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)

    def css(self, sel):
        return self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, sel)))

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def login(self):
        self.driver.delete_all_cookies()
        self.driver.get(self.base + "/")
        self.css("#token").send_keys(TOKEN)
        self.css("#login button").click()
        self.css(".cards")

    def go(self, hash_):
        self.driver.get(self.base + "/" + hash_)

    def admin_json(self, path):
        status, body, _ = self.srv.admin(path, headers={"authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def dead_event(self, eid, title):
        body = event(eid, "scm.pull_request.created", title=title, number=7,
                     url="https://github.com/acme/api/pull/7")
        self.assertEqual(self.srv.post(body)[0], 200)
        self.srv.wait_for(lambda: self.srv.job_states(eid) == {"pr-ticket": ("dead", 2)},
                          what="the job dead")

    # ---- tests ----
    def test_1_login_is_needed_and_a_wrong_token_is_refused(self):
        self.driver.delete_all_cookies()
        self.driver.get(self.base + "/")
        self.css("#token").send_keys("not-the-token")
        self.css("#login button").click()
        self.wait(lambda d: d.find_element(By.ID, "login-error").text != "")
        self.assertNotIn("cards", self.driver.page_source)
        self.shot("login")
        self.login()
        self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, ".card[data-series=accepted]"))
        self.shot("overview")
        # the session cookie is HttpOnly: the page's script cannot read it
        self.assertEqual(self.driver.execute_script("return document.cookie"), "")

    def test_2_find_an_event_by_id_and_read_its_calls_with_markup_shown_as_text(self):
        self.dead_event("evt_browser_xss", XSS)
        self.login()
        self.go("#/events")
        box = self.css("#filters input[name=q]")
        box.send_keys("evt_browser_xss")
        self.css("#filters button").click()
        self.wait(lambda d: [r.get_attribute("data-id") for r in
                             d.find_elements(By.CSS_SELECTOR, "#events tr.link")] == ["evt_browser_xss"])
        self.shot("events")
        self.css("#events tr.link").click()
        self.css("#event-id")
        self.assertEqual(self.css("#event-id").text, "evt_browser_xss")
        calls = self.driver.find_elements(By.CSS_SELECTOR, "section.job table.calls tr")
        self.assertGreaterEqual(len(calls), 3)  # a header and the call of each attempt
        text = " ".join(c.text for c in calls)
        self.assertIn("POST", text)
        self.assertIn("dry run", text)
        self.assertIn("replayed from the journal", text)  # the second attempt did not send it again
        self.assertIn("jira is down", self.css("section.job pre.error").text)
        # the title is text on the page, and none of it ran
        self.assertIn("<script>window.__xss = 1</script>", self.css("#body").text)
        self.assertIsNone(self.driver.execute_script("return window.__xss"))
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR, "#main script, #main img")), 0)
        self.shot("event")

    def test_3_a_refused_reload_names_the_line_then_the_fix_is_replayed_and_runs(self):
        self.dead_event("evt_browser_fix", "Fix the login")
        self.login()
        self.srv.write_rules({"r.lua": SYNTAX_ERROR})
        self.go("#/rules")
        self.css("#reload").click()
        self.wait(lambda d: "r.lua:" in d.find_element(By.ID, "reload-result").text)
        self.shot("rules-reload-refused")
        self.srv.write_rules({"r.lua": FIXED_RULE})
        self.css("#reload").click()
        self.wait(lambda d: d.find_element(By.ID, "reload-result").text == "" and
                  "Reloaded" in d.find_element(By.ID, "toast").text)
        self.go("#/event/evt_browser_fix")
        self.css("#replay-dead").click()
        self.srv.wait_for(lambda: self.srv.job_states("evt_browser_fix")["pr-ticket"][0] == "done",
                          what="the replayed job done")
        # the page shows it once it reloads itself after the replay
        self.wait(lambda d: any(s.text == "done" for s in
                                d.find_elements(By.CSS_SELECTOR, "section.job h2 .state")))
        self.assertEqual(self.srv.count("ticket made, at last"), 1)
        self.shot("event-replayed")

    def test_4_pause_and_resume_a_rule(self):
        self.login()
        self.go("#/rules")
        row = '#rules tr[data-rule="other"]'
        self.css(row + " button.pause").click()
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, row + " td.rule-state").text == "paused")
        self.assertTrue([r for r in self.admin_json("/admin/rules")["rules"] if r["name"] == "other"][0]["paused"])
        self.shot("rules")
        self.css(row + " button.pause").click()
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, row + " td.rule-state").text == "active")
        self.assertFalse([r for r in self.admin_json("/admin/rules")["rules"] if r["name"] == "other"][0]["paused"])

    def test_5_a_post_without_the_csrf_token_is_refused_and_changes_nothing(self):
        self.login()
        self.go("#/rules")
        self.css("#rules")
        paused_before = self.srv.count("rule paused")
        status = self.driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch("/admin/rules/other/pause", {method: "POST", credentials: "same-origin",
                   headers: {"content-type": "application/json"}, body: "{}"})
              .then((r) => done(r.status), () => done(-1));""")
        self.assertEqual(status, 403)
        self.assertFalse([r for r in self.admin_json("/admin/rules")["rules"] if r["name"] == "other"][0]["paused"])
        self.assertEqual(self.srv.count("rule paused"), paused_before)

    def test_6_quarantine_page(self):
        self.login()
        self.go("#/quarantine")
        self.css("#events")
        self.shot("quarantine")


if __name__ == "__main__":
    unittest.main(verbosity=2)
