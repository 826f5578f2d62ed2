"""HTTP/2 stays off unless asked, and turning it on warns with the h2o version and the advisories
it lacks (README: HTTP/2 and TLS at the edge). Checked on the wire: an h2c upgrade and a
prior-knowledge HTTP/2 preface get an HTTP/1.1 answer by default, and HTTP/2 when it is on."""
import os
import re
import socket
import subprocess
import tempfile
import unittest

from harness import BIN, Server, event

CVES = ("CVE-2019-9512", "CVE-2019-9514", "CVE-2019-9515", "CVE-2023-44487")
H2C_UPGRADE = (b"GET /webhooks/unizo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def h2o_version():
    out = subprocess.run([BIN, "version"], capture_output=True, text=True, check=True).stdout
    return re.search(r"^h2o\s+(\S+)", out, re.M).group(1)


def check_config(text):
    d = tempfile.mkdtemp(prefix="sy-h2-")
    path = os.path.join(d, "switchyard.lua")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def first_bytes(port, payload, n=64):
    """What the server sends first on a connection that opened with 'payload' (b"" = it closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    got = b""
    try:
        while len(got) < n:
            chunk = s.recv(n - len(got))
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got


def is_settings_frame(data):
    # an HTTP/2 frame: 24-bit length, type 0x4 (SETTINGS), flags, stream 0
    return len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\x00\x00\x00\x00"


class Warning(unittest.TestCase):
    def test_check_warns_naming_the_h2o_version_and_the_advisories(self):
        version = h2o_version()
        rc, out, err = check_config('webhook = { secrets = { "s" } }\nhttp = { http2 = true }\n')
        self.assertEqual(rc, 0, err)  # a warning, not a refusal
        self.assertIn("warning: http.http2 is on: HTTP/2 comes from h2o %s" % version, err)
        for cve in CVES:
            self.assertIn(cve, err)
        self.assertIn("HTTP/2 and TLS at the edge", err)
        rc, out, err = check_config('webhook = { secrets = { "s" } }\n')
        self.assertEqual(rc, 0, err)
        self.assertNotIn("http2", err)
        rc, out, err = check_config('webhook = { secrets = { "s" } }\nhttp = { http2 = false }\n')
        self.assertNotIn("http2", err)

    def test_serve_warns_at_start_when_it_is_on(self):
        srv = Server(config_extra="http = { http2 = true }\n").start()
        try:
            warn = [l for l in srv.lines if "http.http2 is on" in l]
            self.assertEqual(len(warn), 1, srv.log()[-2000:])
            self.assertIn(" warn ", warn[0])
            self.assertIn("h2o %s" % h2o_version(), warn[0])
        finally:
            self.assertEqual(srv.stop(), 0)
        srv = Server().start()
        try:
            self.assertFalse(any("http2" in l for l in srv.lines), srv.log()[-2000:])
        finally:
            self.assertEqual(srv.stop(), 0)


class OffUnlessAsked(unittest.TestCase):
    def test_by_default_an_h2c_upgrade_and_a_preface_get_http_1_1(self):
        srv = Server().start()
        try:
            got = first_bytes(srv.port, H2C_UPGRADE)
            self.assertTrue(got.startswith(b"HTTP/1.1 405"), got)  # the method's answer; no 101
            got = first_bytes(srv.port, PREFACE)
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 400"), got)
            self.assertFalse(is_settings_frame(got), got)
            # the admin listener never speaks HTTP/2
            self.assertTrue(first_bytes(srv.admin_port, PREFACE)[:9] in (b"", b"HTTP/1.1 "))
            self.assertEqual(srv.post(event("evt_h1"))[1]["status"], "accepted")
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_when_asked_both_switch_to_http_2(self):
        # the checks above can tell: with http2 on, the same bytes get HTTP/2
        srv = Server(config_extra="http = { http2 = true }\n").start()
        try:
            got = first_bytes(srv.port, H2C_UPGRADE, n=40)
            self.assertTrue(got.startswith(b"HTTP/1.1 101 "), got)
            got = first_bytes(srv.port, PREFACE)
            self.assertTrue(is_settings_frame(got), got)
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
