"""The README's edge setup, run as shipped: Debian's nginx with examples/edge/nginx.conf ends TLS
and speaks HTTP/2 to the sender, and switchyard with examples/edge/switchyard.lua stays on
HTTP/1.1 on loopback behind it. A signed delivery over HTTP/2 through nginx is stored once;
a sender's own X-Forwarded-For does not reach switchyard."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import SECRET, Server, event, free_port, signed_headers

HERE = os.path.dirname(os.path.abspath(__file__))
EDGE = os.path.join(HERE, "../../examples/edge")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Edge(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(EDGE, "switchyard.lua")) as f:
            example = f.read()
        # the example as it is, then what a test must change: ports, the store's place, and an
        # allow list that only the client nginx names can pass
        self.srv = Server(config_extra=example + """
listen = { "127.0.0.1:0" }
admin = { listen = "127.0.0.1:0" }
store = "sqlite:store.db"
webhook.allow = { "127.0.0.1/32" }
""", env={"UNIZO_WEBHOOK_SECRET": SECRET}).start()
        self.addCleanup(lambda: self.assertEqual(self.srv.stop(), 0))
        self.dir = tempfile.mkdtemp(prefix="sy-edge-")
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=hooks.example.com", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        self.port = free_port()
        with open(os.path.join(EDGE, "nginx.conf")) as f:
            site = f.read()
        for old, new in (("listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % self.port),
                         ("listen [::]:443 ssl http2;", ""),
                         ("/etc/ssl/certs/hooks.example.com.pem", cert),
                         ("/etc/ssl/private/hooks.example.com.key", key),
                         ("http://127.0.0.1:8080", "http://127.0.0.1:%d" % self.srv.port)):
            self.assertEqual(site.count(old), 1, old)
            site = site.replace(old, new)
        with open(os.path.join(self.dir, "site.conf"), "w") as f:
            f.write(site)
        d = self.dir
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    include {d}/site.conf;
}}
""")
        self.nginx = subprocess.Popen([NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf"),
                                       "-e", os.path.join(d, "error.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self.stop_nginx)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                self.assertIsNone(self.nginx.poll(), self.nginx.stderr.read())
                self.assertLess(time.time(), deadline, "nginx did not start")
                time.sleep(0.05)

    def stop_nginx(self):
        self.nginx.send_signal(signal.SIGQUIT)
        self.nginx.wait(10)
        self.nginx.stderr.close()

    def curl(self, body, headers, http="--http2"):
        path = os.path.join(self.dir, "body.json")
        with open(path, "wb") as f:
            f.write(body)
        argv = ["curl", "-sk", http, "-o", "-", "-w", "\n%{http_code} %{http_version}",
                "--data-binary", "@" + path, "https://127.0.0.1:%d/webhooks/unizo" % self.port]
        for k, v in headers.items():
            argv += ["-H", "%s: %s" % (k, v)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        text, _, last = out.rpartition("\n")
        code, version = last.split()
        return int(code), version, text

    def test_a_delivery_over_http2_through_nginx_is_stored_once(self):
        body = event("evt_edge_1")
        code, version, text = self.curl(body, signed_headers(body))
        self.assertEqual((code, version), (200, "2"), text)
        self.assertIn('"accepted"', text)
        code, version, text = self.curl(body, signed_headers(body), http="--http1.1")
        self.assertEqual((code, version), (200, "1.1"), text)
        self.assertIn('"duplicate"', text)
        self.assertEqual([r[0] for r in self.srv.rows("SELECT id FROM events")], ["evt_edge_1"])
        # behind nginx switchyard spoke HTTP/1.1 and warned of nothing
        self.assertFalse(any("http2" in l for l in self.srv.lines))

    def test_a_senders_own_forwarded_for_is_replaced(self):
        # nginx appending instead would hand switchyard 10.9.9.9 as the client: refused by allow
        body = event("evt_edge_2")
        headers = dict(signed_headers(body), **{"X-Forwarded-For": "10.9.9.9"})
        code, version, text = self.curl(body, headers)
        self.assertEqual(code, 200, text)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(1,)])

    def test_an_unsigned_delivery_is_refused_through_nginx_too(self):
        code, _, text = self.curl(event("evt_edge_3"), {"content-type": "application/json"})
        self.assertEqual(code, 401, text)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
