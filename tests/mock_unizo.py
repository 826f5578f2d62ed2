#!/usr/bin/env python3
"""A mock of the Unizo API for tests and the README walkthrough.

Real HTTP on loopback. It records every request and answers from a script:

    POST /_mock/script   [{"method": "POST", "path": "/tickets$", "status": 503,
                           "body": {...}, "headers": {"Retry-After": "2"},
                           "delay": 0.5, "drop": false, "times": 1}, ...]
        Entries are tried in order; "path" is a regular expression searched in
        the request path, "match" (optional) one searched in its raw body; "times" (default 1) is how often an entry answers
        before it is used up (0 = forever). "drop" closes the connection
        without an answer. "hold": NAME keeps the request waiting until
        POST /_mock/release {"name": NAME} (at most 60 s), then answers it as
        the entry says, or as an unscripted request when it has no "status".
    POST /_mock/release  {"name": NAME}: let held requests of that name go
    GET  /_mock/requests  every request so far: method, path, query, headers, body, time
    POST /_mock/reset     forget requests and script
    GET  /_mock/health    200

Anything unscripted gets a plausible answer: POST .../tickets -> 201 with a new
ticket id, POST .../comments -> 201, PUT/PATCH -> 200 echoing the fields, GET
-> 200 with a ticket.

usage: mock_unizo.py [--port N] [--port-file FILE]   (port 0 = any; the port is printed)
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

lock = threading.Lock()
requests = []
script = []
counter = [0]
released = {}  # hold name -> threading.Event


def gate(name):
    with lock:
        return released.setdefault(name, threading.Event())


def scripted(method, path, raw):
    with lock:
        for entry in script:
            if entry.get("method", method) != method or not re.search(entry.get("path", ""), path):
                continue
            if "match" in entry and not re.search(entry["match"], raw.decode(errors="replace")):
                continue
            times = entry.get("times", 1)
            if times == 0:
                return entry
            if entry.get("_used", 0) < times:
                entry["_used"] = entry.get("_used", 0) + 1
                return entry
    return None


def default_answer(method, path, body):
    with lock:
        counter[0] += 1
        n = counter[0]
    if method == "POST" and path.endswith("/tickets"):
        return 201, {"id": "T-%d" % n, "key": "ENG-%d" % n, "name": (body or {}).get("name")}
    if method == "POST" and path.endswith("/comments"):
        return 201, {"id": "C-%d" % n, "content": (body or {}).get("content")}
    if method in ("PUT", "PATCH"):
        out = dict(body or {})
        out["id"] = path.rsplit("/", 1)[-1]
        return 200, out
    return 200, {"id": path.rsplit("/", 1)[-1], "name": "A ticket"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        u = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if u.path.startswith("/_mock/"):
            return self.control(u.path, raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with lock:
            requests.append({"method": self.command, "path": u.path, "query": u.query,
                             "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body, "time": time.time()})
        entry = scripted(self.command, u.path, raw)
        if entry is not None and entry.get("hold"):
            gate(entry["hold"]).wait(60)
            if "status" not in entry:
                entry = None
        if entry is not None:
            if entry.get("delay"):
                time.sleep(entry["delay"])
            if entry.get("drop"):
                self.close_connection = True
                self.connection.shutdown(2)
                return
            return self.reply(entry.get("status", 200), entry.get("body", {}), entry.get("headers"))
        status, obj = default_answer(self.command, u.path, body if isinstance(body, dict) else None)
        self.reply(status, obj)

    def control(self, path, raw):
        global script
        if path == "/_mock/requests":
            with lock:
                return self.reply(200, requests)
        if path == "/_mock/script":
            with lock:
                script = json.loads(raw or b"[]")
            return self.reply(200, {"entries": len(script)})
        if path == "/_mock/release":
            gate(json.loads(raw)["name"]).set()
            return self.reply(200, {})
        if path == "/_mock/reset":
            with lock:
                requests.clear()
                script = []
            return self.reply(200, {})
        return self.reply(200, {"status": "ok"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(str(port))
    print("mock Unizo API on http://127.0.0.1:%d (requests: GET /_mock/requests)" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
