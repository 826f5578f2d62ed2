"""The admin listener, TLS and HTTP/2, and the command line (check, sign, send)."""
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest
import http.client

from harness import BIN, SECRET, Server, ServerTest, event, sign


def run(*args, env=None, input=None):
    e = dict(os.environ, **(env or {}))
    p = subprocess.run([BIN, *args], capture_output=True, env=e, input=input, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Admin(ServerTest):
    def test_health_ready_metrics(self):
        status, body, _ = self.srv.admin("/healthz")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok", "store": "ready"}))
        status, body, _ = self.srv.admin("/readyz")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ready", "store": "ready"}))
        for _ in range(3):
            self.srv.post(event())
        self.srv.post(event(), {})
        status, text, r = self.srv.admin("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(r.getheader("content-type").startswith("text/plain"))
        self.assertIn('switchyard_webhook_requests_total{result="accepted"} 3', text)
        self.assertIn('switchyard_webhook_requests_total{result="missing_timestamp"} 1', text)
        self.assertIn("switchyard_store_commit_seconds_bucket{le=\"+Inf\"}", text)
        self.assertIn("switchyard_store_batch_size_count", text)
        self.assertIn("switchyard_store_queue_depth 0", text)
        status, body, _ = self.srv.admin("/nope")
        self.assertEqual((status, json.loads(body)["error"]), (404, "not_found"))
        status, body, r = self.srv.admin("/metrics", method="POST")
        self.assertEqual(status, 405)


class AdminToken(ServerTest):
    server_args = {"config_extra": 'admin = { listen = "127.0.0.1:0", token = env("SY_ITEST_TOKEN") }',
                   "env": {"SY_ITEST_TOKEN": "admintok-5e1"}}

    def test_bearer_token_enforced_except_probes(self):
        self.assertEqual(self.srv.admin("/healthz")[0], 200)
        self.assertEqual(self.srv.admin("/readyz")[0], 200)
        status, body, r = self.srv.admin("/metrics")
        self.assertEqual((status, json.loads(body)["error"]), (401, "unauthorized"))
        self.assertEqual(r.getheader("www-authenticate"), "Bearer")
        self.assertEqual(self.srv.admin("/metrics", {"authorization": "Bearer wrong"})[0], 401)
        self.assertEqual(self.srv.admin("/metrics", {"authorization": "Bearer admintok-5e"})[0], 401)
        self.assertEqual(self.srv.admin("/metrics", {"authorization": "Bearer admintok-5e1"})[0], 200)
        self.assertNotIn("admintok-5e1", self.srv.log())


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class Tls(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sy-tls-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", os.path.join(self.dir, "key.pem"),
                        "-out", os.path.join(self.dir, "cert.pem")], check=True, capture_output=True)
        self.srv = Server(workdir=self.dir, config_extra='http = { threads = 2, http2 = true, '
                          'tls = { cert = "cert.pem", key = "key.pem" } }').start()

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])

    def test_https_and_h2(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=ctx, timeout=10)
        status, data, _ = self.srv.post(event("evt_tls"), conn=c)
        self.assertEqual((status, data["status"]), (200, "accepted"))
        c.close()
        if shutil.which("curl"):
            body = event("evt_h2")
            ts, sig = sign(body)
            p = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                                "-H", "content-type: application/json", "-H", "x-unizo-timestamp: " + ts,
                                "-H", "x-unizo-signature: " + sig, "--data-binary", body,
                                "https://127.0.0.1:%d/webhooks/unizo" % self.srv.port],
                               capture_output=True, timeout=30)
            self.assertEqual(p.stdout.decode(), "2 200")


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sy-cli-")
        self.body = os.path.join(self.dir, "ev.json")
        with open(self.body, "wb") as f:
            f.write(event("evt_cli"))

    def test_usage_and_version(self):
        self.assertEqual(run("version")[0], 0)
        self.assertIn("switchyard", run("version")[1])
        self.assertEqual(run()[0], 2)
        self.assertEqual(run("frobnicate")[0], 2)
        for cmd in ("serve", "check", "sign", "send"):
            rc, out, _ = run(cmd, "--help")
            self.assertEqual(rc, 0, cmd)
            self.assertIn("usage: switchyard " + cmd, out)
            self.assertEqual(run(cmd, "--bogus-flag")[0], 2, cmd)

    def test_version_names_the_commit_and_the_libraries_it_runs_with(self):
        rc, out, _ = run("version")
        self.assertEqual(rc, 0)
        lines = dict(line.split(None, 1) for line in out.strip().splitlines())
        self.assertEqual(sorted(lines), sorted(["switchyard", "h2o", "OpenSSL", "Lua", "SQLite",
                                                "libcurl", "jansson", "hiredis"]))
        # the commit of this checkout (the build folder is configured from it)
        head = subprocess.run(["git", "-C", os.path.dirname(__file__), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True)
        m = re.match(r"(\d+\.\d+\.\d+) \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)$", lines["switchyard"])
        self.assertIsNotNone(m, lines["switchyard"])
        if head.returncode == 0:
            self.assertEqual(m.group(2)[:12], head.stdout.strip())
        # what the libraries say of themselves, against their own tools on this machine
        self.assertEqual(lines["SQLite"], subprocess.run(["sqlite3", "--version"], capture_output=True,
                                                         text=True).stdout.split()[0])
        self.assertIn(lines["OpenSSL"], subprocess.run(["openssl", "version"], capture_output=True,
                                                       text=True).stdout)
        self.assertIn("libcurl/" + lines["libcurl"], subprocess.run(["curl", "--version"], capture_output=True,
                                                                   text=True).stdout)
        self.assertRegex(lines["h2o"], r"^2\.2\.\d+ \(libh2o-evloop\.so\.[\d.]+\)$")
        self.assertRegex(lines["Lua"], r"^Lua 5\.4\.\d+ \(liblua5\.4\.so[\d.]*\)$")
        self.assertRegex(lines["jansson"], r"^2\.\d+")
        self.assertRegex(lines["hiredis"], r"^\d+\.\d+\.\d+ \(libhiredis\.so[\d.]*\)$")
        self.assertEqual(run("--version")[1], out)
        self.assertEqual(run("version", "extra")[0], 2)

    def test_serve_overrides_workers(self):
        srv = Server()
        srv.start_args = ["--workers", "0"]
        srv.start()
        self.assertIn("workers=0", [l for l in srv.lines if "switchyard started" in l][0])
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(run("serve", "--workers", "-1")[0], 2)

    def test_check_reports_file_and_line(self):
        cfg = os.path.join(self.dir, "bad.lua")
        with open(cfg, "w") as f:
            f.write('listen = { "127.0.0.1:8080" }\nwebhook = {\n  secrets = { "x" },\n  tolerence = 5,\n}\n')
        rc, out, err = run("check", "-c", cfg)
        self.assertEqual(rc, 1)
        self.assertIn(cfg + ":4: unknown key 'webhook.tolerence'", err)
        with open(cfg, "w") as f:
            f.write('webhook = { secrets = { env("SY_ITEST_SECRET") } }\n')
        rc, out, err = run("check", "-c", cfg, env={"SY_ITEST_SECRET": "abc"})
        self.assertEqual(rc, 0, err)
        self.assertIn("ok", out)
        rc, out, err = run("check", "-c", cfg, env={"SY_ITEST_SECRET": ""})
        self.assertEqual(rc, 1)
        self.assertIn("empty", err)
        # serve refuses to start without a secret
        rc, _, err = run("serve", "-c", cfg)
        self.assertEqual(rc, 1)
        self.assertIn("webhook.secrets is empty", err)

    def test_sign_matches_an_independent_hmac(self):
        rc, out, err = run("sign", "--secret-env", "SY_S", "--timestamp", "1700000000", self.body,
                           env={"SY_S": SECRET})
        self.assertEqual(rc, 0, err)
        with open(self.body, "rb") as f:
            _, sig = sign(f.read(), 1700000000)
        self.assertIn("x-unizo-timestamp: 1700000000\n", out)
        self.assertIn("x-unizo-signature: " + sig + "\n", out)
        self.assertNotIn(SECRET, out + err)
        # the secret never comes from argv
        self.assertEqual(run("sign", self.body)[0], 2)
        rc, _, err = run("sign", "--secret-env", "SY_UNSET_VAR_X", self.body)
        self.assertEqual(rc, 1)
        self.assertIn("SY_UNSET_VAR_X", err)
        # stdin
        with open(self.body, "rb") as f:
            data = f.read()
        rc, out2, _ = run("sign", "--secret-env", "SY_S", "--timestamp", "1700000000", "-",
                          env={"SY_S": SECRET}, input=data)
        self.assertEqual(out2, out)

    def test_send_posts_and_reports(self):
        srv = Server().start()
        url = "http://127.0.0.1:%d/webhooks/unizo" % srv.port
        env = {"SY_S": SECRET}
        rc, out, err = run("send", "--url", url, "--secret-env", "SY_S", self.body, self.body, env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn('200 {"status":"accepted","id":"evt_cli"}', out)
        self.assertIn('200 {"status":"duplicate","id":"evt_cli"}', out)
        rc, out, _ = run("send", "--url", url, "--secret-env", "SY_S", self.body, env={"SY_S": "wrong"})
        self.assertEqual(rc, 1)
        self.assertIn("401", out)
        rc, out, _ = run("send", "--url", url, "--secret-env", "SY_S", "--timestamp", "1000", self.body, env=env)
        self.assertEqual(rc, 1)
        self.assertIn("stale_timestamp", out)
        rc, _, err = run("send", "--url", url, "--secret-env", "SY_S", "/nonexistent.json", env=env)
        self.assertEqual(rc, 1)
        self.assertIn("/nonexistent.json", err)
        self.assertEqual(srv.stop(), 0, srv.log()[-5000:])
        self.assertNotIn(SECRET, srv.log())
        # nothing listening
        rc, _, err = run("send", "--url", url, "--secret-env", "SY_S", self.body, env=env)
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
