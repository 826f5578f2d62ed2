"""Start the real switchyard binary on loopback and talk HTTP to it.

Every server gets its own temporary folder, config file and SQLite store,
and ports chosen by the kernel (read back from the "listening" log lines).
"""
import array
import atexit
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import select
import sqlite3
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

from idhash import id_hash  # noqa: F401 - for the tests that import it from here

BIN = os.environ.get("SWITCHYARD_BIN", os.path.join(os.path.dirname(__file__), "../../build/switchyard"))
EVENTS = os.path.join(os.path.dirname(__file__), "../../examples/events")
SECRET = "itest-secret-9f2c"
OLD_SECRET = "itest-old-secret-41aa"

# With SY_TEST_LOG_DIR set (CTest sets it), every server log of the run is kept there, with
# every secret, key, token and signature the tests used; tests/scan_logs.py then greps the
# lot for them once the whole suite has run.
LOG_DIR = os.environ.get("SY_TEST_LOG_DIR")
SENSITIVE = {SECRET, OLD_SECRET}
_log_seq = [0]


def _write_sensitive():
    if LOG_DIR and os.path.isdir(LOG_DIR):
        with open(os.path.join(LOG_DIR, "sensitive-%d.txt" % os.getpid()), "w") as f:
            f.write("".join(v + "\n" for v in sorted(SENSITIVE)))


atexit.register(_write_sensitive)


def sign(body: bytes, ts=None, secret=SECRET, form="v1=%s"):
    ts = str(int(time.time())) if ts is None else str(ts)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    SENSITIVE.add(mac)
    return ts, form % mac


def event(event_id=None, etype="scm.pull_request.created", **data):
    return json.dumps({
        "id": event_id or "evt_%d_%d" % (os.getpid(), time.monotonic_ns()),
        "type": etype,
        "integration": {"id": "int_1", "type": "github", "name": "GitHub"},
        "data": data or {"number": 1},
    }).encode()


def signed_headers(body, ts=None, secret=SECRET):
    ts, sig = sign(body, ts, secret)
    return {"content-type": "application/json", "x-unizo-timestamp": ts, "x-unizo-signature": sig}


class Server:
    def __init__(self, config_extra="", secrets=(SECRET, OLD_SECRET), webhook_extra="", workdir=None,
                 env=None, rules=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="sy-itest-")
        if rules:
            config_extra += '\nrules = { "rules/*.lua" }\n'
            self.write_rules(rules)
        self.db = os.path.join(self.dir, "store.db")
        secrets_lua = ", ".join('"%s"' % s for s in secrets)
        self.config = os.path.join(self.dir, "switchyard.lua")
        with open(self.config, "w") as f:
            f.write(f"""
listen = {{ "127.0.0.1:0" }}
admin = {{ listen = "127.0.0.1:0" }}
http = {{ threads = 2 }}
webhook = {{ secrets = {{ {secrets_lua} }}, max_body = "64KiB", {webhook_extra} }}
store = "sqlite:store.db"
{config_extra}
""")
        self.env = dict(os.environ, **(env or {}))
        SENSITIVE.update(secrets)
        SENSITIVE.update(v for k, v in self.env.items()
                         if k.startswith("SY_") and re.search(r"KEY|TOKEN|SECRET", k) and len(v) >= 6)
        self.proc = None
        self._lines = []
        self._log_lock = threading.Lock()
        self._log_fd = None
        self.port = self.admin_port = None

    def write_rules(self, rules):
        """rules: {file name: Lua source} written under rules/ (None removes the file)."""
        os.makedirs(os.path.join(self.dir, "rules"), exist_ok=True)
        for name, text in rules.items():
            path = os.path.join(self.dir, "rules", name)
            if text is None:
                os.remove(path)
            else:
                with open(path, "w") as f:
                    f.write(text)

    @property
    def lines(self):
        """Every complete line the server has written so far, including those still in the pipe:
        a test that saw a job commit in the store also sees the log line written before it."""
        self._sync_log()
        with self._log_lock:
            return list(self._lines)

    def _sync_log(self, timeout=10):
        # The reader drains the pipe only while holding the lock, so an empty pipe seen under
        # the lock means every byte written so far is in _lines.
        deadline = time.time() + timeout
        while True:
            with self._log_lock:
                if self._log_fd is None:
                    return
                avail = array.array("i", [0])
                fcntl.ioctl(self._log_fd, termios.FIONREAD, avail)
                if avail[0] == 0:
                    return
            if time.time() > deadline:
                raise AssertionError("the log reader did not drain the server's stderr")
            time.sleep(0.002)

    def count(self, needle):
        return sum(1 for line in self.lines if needle in line)

    def wait_for(self, cond, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; log tail:\n%s" % (what, self.log()[-3000:]))

    def job_states(self, event_id):
        return {h: (st, att) for h, st, att in self.rows(
            "SELECT handler, state, attempts FROM jobs WHERE event_id = ?", (event_id,))}

    def cli(self, *args):
        p = subprocess.run([BIN, *args, "-c", self.config] if args[0] != "events" or len(args) == 1 or args[1] != "show"
                           else [BIN, "events", "-c", self.config, *args[1:]],
                           capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def start(self, timeout=10):
        self._lines = []
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.config, *getattr(self, "start_args", [])],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)
        self._log_fd = self.proc.stderr.fileno()
        self._reader = threading.Thread(target=self._read, args=(self._log_fd,), daemon=True)
        self._reader.start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.port and ("admin.listen" not in self.config_text() or self.admin_port):
                if any("switchyard started" in l for l in self.lines):
                    return self
            if self.proc.poll() is not None:
                time.sleep(0.1)
                raise RuntimeError("server exited %s:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise RuntimeError("server did not start:\n" + self.log())

    def config_text(self):
        with open(self.config) as f:
            return f.read()

    def _read(self, fd):
        partial = b""
        while True:
            select.select([fd], [], [])
            with self._log_lock:
                chunk = os.read(fd, 65536)
                if not chunk:
                    if partial:
                        self._take_line(partial.decode(errors="replace"))
                    return
                *whole, partial = (partial + chunk).split(b"\n")
                for raw in whole:
                    self._take_line(raw.decode(errors="replace") + "\n")

    def _take_line(self, line):
        self._lines.append(line)
        m = re.search(r"listening kind=(\w+) addr=([\d.]+|\[[^\]]+\]):(\d+)", line)
        if m:
            if m.group(1) == "webhook" and self.port is None:
                self.port = int(m.group(3))
            elif m.group(1) == "admin":
                self.admin_port = int(m.group(3))

    def log(self):
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(5)
        with self._log_lock:
            self._log_fd = None
        self.proc.stderr.close()
        if LOG_DIR and os.path.isdir(LOG_DIR):
            _log_seq[0] += 1
            name = "%s-%d-%d.log" % (os.path.basename(sys.argv[0]).removesuffix(".py"), os.getpid(), _log_seq[0])
            with open(os.path.join(LOG_DIR, name), "w") as f:
                f.write(self.log())
        self.proc = None
        self.port = self.admin_port = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    # ---- HTTP ----
    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def post(self, body, headers=None, path="/webhooks/unizo", method="POST", conn=None):
        c = conn or self.conn()
        c.request(method, path, body=body, headers=headers if headers is not None else signed_headers(body))
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, (json.loads(data) if data.startswith(b"{") else data), r

    def admin(self, path, headers=None, method="GET", body=None):
        """A request to the admin listener. A POST is JSON unless 'headers' says otherwise
        (without admin.token, the server refuses a POST that a web page could forge)."""
        headers = dict(headers or {})
        if method == "POST" and not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data.decode(), r

    def metric(self, name, labels=""):
        status, text, _ = self.admin("/metrics")
        for line in text.splitlines():
            if line.startswith(name + labels + " "):
                return float(line.split()[-1])
        return None

    # ---- store ----
    def rows(self, sql="SELECT id, type, body, headers FROM events ORDER BY seq", args=()):
        db = sqlite3.connect(self.db, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()


MOCK = os.path.join(os.path.dirname(__file__), "../mock_unizo.py")


class Mock:
    """The mock Unizo API (tests/mock_unizo.py) on a free loopback port."""

    def __init__(self, port=0):
        self.port_file = tempfile.mktemp(prefix="sy-mock-port-")
        self.proc = subprocess.Popen([sys.executable, MOCK, "--port", str(port), "--port-file", self.port_file],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not (os.path.exists(self.port_file) and open(self.port_file).read()):
            if time.time() > deadline:
                raise RuntimeError("mock did not start")
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())
        self.url = "http://127.0.0.1:%d" % self.port
        while True:
            try:
                self._call("GET", "/_mock/health")
                break
            except OSError:
                time.sleep(0.02)

    def _call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None)
        data = c.getresponse().read()
        c.close()
        return json.loads(data)

    def script(self, entries):
        self._call("POST", "/_mock/script", entries)

    def release(self, name):
        """Let the requests held by a {"hold": name} entry go."""
        self._call("POST", "/_mock/release", {"name": name})

    def requests(self, path_contains=""):
        return [r for r in self._call("GET", "/_mock/requests") if path_contains in r["path"]]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def free_port():
    """A loopback port free now (for a peer that must be told its port before it starts)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raw_exchange(port, payload: bytes, expect_responses=1, timeout=10):
    """Send raw bytes on one connection and read that many HTTP responses."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(payload)
    f = s.makefile("rb")
    out = []
    for _ in range(expect_responses):
        status_line = f.readline()
        if not status_line:
            break
        headers = {}
        while True:
            l = f.readline()
            if l in (b"\r\n", b""):
                break
            k, v = l.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", "0")))
        out.append((int(status_line.split()[1]), headers, body))
    s.close()
    return out


def http_request(method, path, body, headers):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % kv for kv in headers.items()]
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ServerTest(unittest.TestCase):
    """A test case with one running server per test (self.srv), stopped afterwards."""
    server_args = {}

    def setUp(self):
        self.srv = Server(**self.server_args).start()

    def tearDown(self):
        if self.srv.proc is not None:
            rc = self.srv.stop()
            self.assertEqual(rc, 0, "server did not exit cleanly:\n" + self.srv.log()[-4000:])
        # nothing secret may reach the log
        log = self.srv.log()
        self.assertNotIn(SECRET, log)
        self.assertNotIn(OLD_SECRET, log)
