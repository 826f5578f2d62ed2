"""C plugins: the loader's refusals, a plugin end to end, its retries, and the SDK out of tree."""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, Mock, Server, event

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
BUILD = os.path.dirname(os.path.abspath(BIN))
PLUGINS = os.path.join(BUILD, "tests")


def plugin(name):
    return os.path.join(PLUGINS, "test_plugin_%s.so" % name)


def check_with(entry):
    d = tempfile.mkdtemp(prefix="sy-plug-")
    cfg = os.path.join(d, "switchyard.lua")
    with open(cfg, "w") as f:
        f.write('webhook = { secrets = { "s" } }\nplugins = { %s }\n' % entry)
    p = subprocess.run([BIN, "check", "-c", cfg], capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Refusals(unittest.TestCase):
    def refused(self, path, message):
        rc, out, err = check_with('{ path = "%s", config = { integration = "x" } }' % path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(path, err)
        self.assertIn(message, err)

    def test_each_broken_plugin_is_refused_with_the_reason(self):
        self.refused(plugin("wrong_abi"), "plugin built for ABI 2.0; this switchyard speaks ABI 1.0")
        self.refused(plugin("short_struct"), "plugin descriptor is 16 bytes; ABI 1 needs at least")
        self.refused(plugin("no_symbol"), "does not export 'switchyard_plugin'")
        self.refused(plugin("failing_init"), "plugin 'failing_init' refused to start (init returned 7)")
        self.refused("/nonexistent/p.so", "No such file or directory")

    def test_a_group_writable_file_is_refused(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "good.so")
        shutil.copy(plugin("good"), path)
        os.chmod(path, 0o664)
        self.refused(path, "writable by its group (chmod go-w)")
        os.chmod(path, 0o646)
        self.refused(path, "writable by everyone")
        os.chmod(path, 0o644)
        rc, out, err = check_with('{ path = "%s", config = { integration = "x" } }' % path)
        self.assertEqual(rc, 0, err)
        self.assertIn("plugin good 1.0", out)
        self.assertIn("1 plugin", out)

    def test_a_file_owned_by_another_user_is_refused(self):
        if os.geteuid() != 0:
            return self.another_owner_in_a_user_namespace()
        d = tempfile.mkdtemp()
        path = os.path.join(d, "good.so")
        shutil.copy(plugin("good"), path)
        os.chmod(path, 0o644)
        os.chown(path, 65534, 65534)
        self.refused(path, "owned by uid 65534, not by root or the user switchyard runs as")
        os.chown(path, 0, 0)
        rc, out, err = check_with('{ path = "%s", config = { integration = "x" } }' % path)
        self.assertEqual(rc, 0, err)

    def another_owner_in_a_user_namespace(self):
        """Without root no file can be given away; in a user namespace where this user is root,
        a file of the real root's shows as owned by 65534, an unmapped user: a system library
        stands in for a plugin owned by someone else, refused before it is opened."""
        lib = "/lib/x86_64-linux-gnu/libm.so.6"
        if not os.path.exists(lib):
            lib = glob.glob("/lib/*/libm.so.6")[0]
        d = tempfile.mkdtemp(prefix="sy-plug-")
        cfg = os.path.join(d, "switchyard.lua")
        with open(cfg, "w") as f:
            f.write('webhook = { secrets = { "s" } }\nplugins = { { path = "%s" } }\n' % lib)
        p = subprocess.run(["unshare", "--user", "--map-root-user", BIN, "check", "-c", cfg],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("owned by uid 65534, not by root or the user switchyard runs as", p.stderr.decode())
        # this user's own copy of a good plugin is root's there, and is taken
        path = os.path.join(d, "good.so")
        shutil.copy(plugin("good"), path)
        os.chmod(path, 0o644)
        with open(cfg, "w") as f:
            f.write('webhook = { secrets = { "s" } }\nplugins = { { path = "%s", config = { integration = "x" } } }\n'
                    % path)
        p = subprocess.run(["unshare", "--user", "--map-root-user", BIN, "check", "-c", cfg],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_refused_file_never_runs_any_of_its_code(self):
        # the library's constructor leaves a mark each time it is mapped: refused copies must not
        d = tempfile.mkdtemp(prefix="sy-ctor-")
        mark = os.path.join(d, "mark")
        plugin_dir = os.path.join(d, "plugins.d")
        os.mkdir(plugin_dir)
        path = os.path.join(plugin_dir, "constructor.so")
        shutil.copy(plugin("constructor"), path)
        cfg = os.path.join(d, "switchyard.lua")
        with open(cfg, "w") as f:
            f.write('webhook = { secrets = { "s" } }\nplugin_dir = "plugins.d"\n')
        env = dict(os.environ, SY_TEST_CONSTRUCTOR_MARK=mark)

        def check():
            p = subprocess.run([BIN, "check", "-c", cfg], capture_output=True, timeout=30, env=env)
            return p.returncode, p.stdout.decode() + p.stderr.decode()
        for mode, why in ((0o666, "writable by everyone"), (0o664, "writable by its group")):
            os.chmod(path, mode)
            rc, out = check()
            self.assertEqual(rc, 1, out)
            self.assertIn(why, out)
            self.assertFalse(os.path.exists(mark), "the refused plugin's constructor ran")
        if os.geteuid() == 0:
            os.chmod(path, 0o644)
            os.chown(path, 65534, 65534)
            rc, out = check()
            self.assertEqual(rc, 1, out)
            self.assertIn("owned by uid 65534", out)
            self.assertFalse(os.path.exists(mark), "the refused plugin's constructor ran")
            os.chown(path, 0, 0)
        # the same file, fixed, loads (and so its constructor runs, once)
        os.chmod(path, 0o644)
        rc, out = check()
        self.assertEqual(rc, 0, out)
        self.assertIn("plugin constructor 1.0", out)
        with open(mark) as f:
            self.assertEqual(f.read(), "ran\n")

    def test_a_plugin_cannot_take_a_rules_name(self):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "r.lua"), "w") as f:
            f.write('rule { name = "good", on = "*", run = function() end }\n')
        cfg = os.path.join(d, "switchyard.lua")
        with open(cfg, "w") as f:
            f.write('webhook = { secrets = { "s" } }\nrules = { "*.lua" }\n'
                    'plugins = { { path = "%s", config = { integration = "x" } } }\n' % plugin("good"))
        p = subprocess.run([BIN, "check", "-c", cfg], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("plugin name 'good' is already a rule's (r.lua:1)", p.stderr.decode())


LUA_SIBLING = 'rule { name = "sibling", on = "scm.*", run = function(ev) log.info("SIBLING " .. ev.id) end }'


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.mock = Mock()
        extra = f"""
plugins = {{ {{ path = "{plugin('good')}", config = {{ integration = "jira-prod" }} }} }}
unizo = {{ base_url = "{self.mock.url}", api_key = env("SY_UNIZO_KEY"),
  integrations = {{ ["jira-prod"] = {{ id = "int-7", organization = "acme", collection = "ENG" }} }} }}
retry = {{ schedule = {{ "1s", "1s" }}, jitter = 0 }}
"""
        self.srv = Server(rules={"s.lua": LUA_SIBLING}, config_extra=extra, env={"SY_UNIZO_KEY": "plugin-key-1"}).start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-2000:])
        self.mock.stop()
        self.assertNotIn("plugin-key-1", self.srv.log())

    def test_plugin_and_rule_on_one_event_each_run_once(self):
        self.srv.post(event("evt_p1"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_p1") == {"good": ("done", 1), "sibling": ("done", 1)})
        reqs = self.mock.requests("/tickets")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["path"], "/ticketing/acme/collections/ENG/tickets")
        self.assertEqual(reqs[0]["body"], {"name": "from a plugin"})
        self.assertEqual(reqs[0]["headers"]["idempotency-key"], "evt_p1/good/1")
        self.assertEqual(reqs[0]["headers"]["integrationid"], "int-7")
        self.assertEqual(self.srv.count("PLUGIN RAN"), 1)
        self.assertEqual(self.srv.count("SIBLING evt_p1"), 1)

    def test_retry_goes_on_the_schedule_and_fail_is_dead_at_once(self):
        self.srv.post(event("evt_retry", mode="retry"))
        self.srv.post(event("evt_fail", mode="fail"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_fail").get("good") == ("dead", 1), what="SY_FAIL")
        self.assertEqual(self.srv.job_states("evt_retry")["good"][0], "retrying")
        self.srv.wait_for(lambda: self.srv.job_states("evt_retry").get("good") == ("dead", 3), what="SY_RETRY")
        self.assertEqual(self.srv.job_states("evt_retry")["sibling"], ("done", 1))
        rc, out, _ = self.srv.cli("events", "show", "evt_fail")
        self.assertIn("plugin 'good' failed (SY_FAIL)", out)


    def test_a_plugins_completed_call_is_not_repeated_by_its_retry(self):
        import json
        # the ticket is created, the comment fails: the retry answers the create from the journal
        self.mock.script([{"method": "POST", "path": "/comments$", "status": 500, "times": 1}])
        self.srv.post(event("evt_pj", mode="comment"))
        self.srv.wait_for(lambda: self.srv.job_states("evt_pj").get("good") == ("done", 2), timeout=30,
                          what="done on the second attempt")
        self.assertEqual(len([r for r in self.mock.requests() if r["path"].endswith("/tickets")]), 1)
        self.assertEqual(len(self.mock.requests("/comments")), 2)
        comments = self.mock.requests("/comments")
        self.assertEqual(comments[0]["path"], comments[1]["path"])  # the same ticket both times
        self.assertEqual([c["headers"]["idempotency-key"] for c in comments], ["evt_pj/good/2"] * 2)
        rc, out, _ = self.srv.cli("events", "show", "evt_pj")
        calls = [j for j in json.loads(out)["jobs"] if j["handler"] == "good"][0]["calls"]
        self.assertEqual([(c["attempt"], c["n"], c["status"], c["replayed"]) for c in calls],
                         [(1, 1, 201, False), (1, 2, 500, False), (2, 1, 201, True), (2, 2, 201, False)])


class Filters(unittest.TestCase):
    """A plugin's config entry may filter by integration and category, as a rule's fields do."""

    def test_integration_and_category_filters(self):
        mock = Mock()
        extra = f"""
plugins = {{ {{ path = "{plugin('good')}", integration = "gitlab", category = "scm",
               config = {{ integration = "jira-prod" }} }} }}
unizo = {{ base_url = "{mock.url}", api_key = "k",
  integrations = {{ ["jira-prod"] = {{ id = "int-7", organization = "acme", collection = "ENG" }} }} }}
"""
        srv = Server(rules={"s.lua": LUA_SIBLING}, config_extra=extra).start()
        try:
            def post(eid, integration, path):
                body = json.loads(event(eid))
                body["integration"]["type"] = integration
                status, data, _ = srv.post(json.dumps(body).encode(), path=path)
                self.assertEqual((status, data["status"]), (200, "accepted"))
            post("evt_pf_match", "gitlab", "/webhooks/unizo/scm")
            post("evt_pf_other_integration", "github", "/webhooks/unizo/scm")
            post("evt_pf_other_category", "gitlab", "/webhooks/unizo/identity")
            for eid in ("evt_pf_match", "evt_pf_other_integration", "evt_pf_other_category"):
                srv.wait_for(lambda: srv.job_states(eid).get("sibling") == ("done", 1), what=eid)
            srv.wait_for(lambda: srv.job_states("evt_pf_match").get("good") == ("done", 1))
            # the filtered-out events never got a job for the plugin, and it ran once in all
            self.assertNotIn("good", srv.job_states("evt_pf_other_integration"))
            self.assertNotIn("good", srv.job_states("evt_pf_other_category"))
            self.assertEqual(srv.count("PLUGIN RAN"), 1)
            self.assertEqual(len(mock.requests("/tickets")), 1)
        finally:
            self.assertEqual(srv.stop(), 0)
            mock.stop()

    def test_a_bad_category_is_refused_at_its_line(self):
        rc, out, err = check_with('{ path = "%s",\n category = "Not A Category" }' % plugin("good"))
        self.assertNotEqual(rc, 0)
        self.assertIn("switchyard.lua:3", err)
        self.assertIn("'plugins[1].category' must be a category name", err)


class Sdk(unittest.TestCase):
    def test_out_of_tree_build_against_an_installed_prefix(self):
        prefix = tempfile.mkdtemp(prefix="sy-prefix-")
        p = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertTrue(os.path.exists(os.path.join(prefix, "include/switchyard/plugin.h")))
        self.assertTrue(os.access(os.path.join(prefix, "bin/switchyard"), os.X_OK))
        # the service kit: the unit and a config that passes `check` once its secret is set
        unit = open(os.path.join(prefix, "share/switchyard/switchyard.service")).read()
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        self.assertIn("StateDirectory=switchyard", unit)
        example = os.path.join(prefix, "share/switchyard/switchyard.example.lua")
        p = subprocess.run([BIN, "check", "-c", example], capture_output=True,
                           env=dict(os.environ, UNIZO_WEBHOOK_SECRET="x"))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        pcdir = os.path.dirname(glob.glob(os.path.join(prefix, "lib*/**/switchyard-plugin.pc"), recursive=True)[0])
        src = os.path.join(ROOT, "plugins/audit_log")
        out = tempfile.mkdtemp(prefix="sy-oot-")
        # one compiler command
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir)
        flags = subprocess.run(["pkg-config", "--cflags", "switchyard-plugin"], capture_output=True,
                               env=env, check=True).stdout.decode().split()
        so1 = os.path.join(out, "audit_log.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-fvisibility=hidden", *flags, "-o", so1,
                        os.path.join(src, "audit_log.c")], check=True)
        # three CMake lines (plugins/audit_log/CMakeLists.txt), found through CMAKE_PREFIX_PATH
        b = os.path.join(out, "cmake-build")
        subprocess.run(["cmake", "-S", src, "-B", b, "-DCMAKE_PREFIX_PATH=" + prefix], check=True,
                       capture_output=True)
        subprocess.run(["cmake", "--build", b], check=True, capture_output=True)
        so2 = os.path.join(b, "audit_log.so")
        for so in (so1, so2):
            audit = os.path.join(out, "audit-%d.jsonl" % len(so))
            rc, stdout, err = check_with('{ path = "%s", config = { path = "%s" } }' % (so, audit))
            self.assertEqual(rc, 0, err)
            self.assertIn("plugin audit_log 1.0.0", stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
