#!/usr/bin/env python3
"""Write pre-signed raw HTTP requests for wrk: one file per wrk thread.

usage: gen.py OUTDIR THREADS COUNT_PER_THREAD SECRET [--dup PCT] [--badsig PCT]
              [--path PATH] [--body-sig HEADER] [--sequential] [--urls N] [--form FORM]
Each body is a ~1 KB Unizo event with a unique id (duplicates and bad
signatures are mixed in when asked), signed with the current time. Ids are
UUID v4, as real delivery ids are (random keys cost a store more than rising
ones), new in every run; --sequential gives evt_RUN_THREAD_N instead (--uuid,
the old switch, is accepted and changes nothing). --urls N spreads the events
over N pull request URLs at random (default: one URL for all). --form picks the
delivery form: "dotted" (default: the body envelope, dotted type), "headers"
(body {"data": ...}; type and UUID delivery id in x-unizo-event-type and
x-unizo-delivery-id), "console" ({"event", "source", "data"} and a delivery id
header) or "body-signed" (the dotted envelope, "sha256=" HMAC of the body alone,
no timestamp).
--path sets the request path (default /webhooks/unizo); --body-sig HEADER adds
a header "HEADER: sha256=<hex HMAC-SHA256(secret, body)>" for receivers that
sign the body alone (a bad signature spoils both).
"""
import hashlib
import hmac
import json
import os
import random
import sys
import time
import uuid


def main():
    out, threads, count, secret = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
    dup = badsig = 0.0
    args = sys.argv[5:]
    if "--dup" in args:
        dup = float(args[args.index("--dup") + 1]) / 100
    if "--badsig" in args:
        badsig = float(args[args.index("--badsig") + 1]) / 100
    path = "/webhooks/unizo"
    if "--path" in args:
        path = args[args.index("--path") + 1]
    body_sig = None
    if "--body-sig" in args:
        body_sig = args[args.index("--body-sig") + 1]
    uuids = "--sequential" not in args
    ids = random.Random(int.from_bytes(os.urandom(8), "little"))  # new ids in every run
    form = args[args.index("--form") + 1] if "--form" in args else "dotted"
    urls = int(args[args.index("--urls") + 1]) if "--urls" in args else 1
    rnd = random.Random(42)
    ts = str(int(time.time())).encode()
    run = "%x" % int(time.time() * 1000)
    os.makedirs(out, exist_ok=True)
    template = {
        "type": "scm.pull_request.created",
        "timestamp": "2024-01-15T10:30:00Z",
        "integration": {"id": "int_github_123", "type": "github", "name": "GitHub (acme)"},
        "data": {"number": 42, "title": "Add OAuth login", "state": "open", "draft": False,
                 "url": "https://github.com/acme/payments-api/pull/42",
                 "author": {"id": "usr_1042", "login": "mchen", "name": "Mei Chen"},
                 "repository": {"id": "repo_5521", "name": "payments-api", "full_name": "acme/payments-api"},
                 "description": ""},
    }
    for t in range(threads):
        with open(os.path.join(out, "req.%d" % t), "wb") as f:
            last = None
            for i in range(count):
                if last is not None and rnd.random() < dup:
                    eid = last
                elif uuids:
                    eid = str(uuid.UUID(int=ids.getrandbits(128), version=4))
                else:
                    eid = "evt_%s_%d_%d" % (run, t, i)
                last = eid
                ev = dict(template, id=eid)
                ev["data"] = dict(template["data"])
                if urls > 1:
                    ev["data"]["url"] = "https://github.com/acme/payments-api/pull/%d" % rnd.randrange(urls)
                extra = ""
                if form in ("headers", "console"):
                    # the same event, delivered as the newer pages show it
                    extra = "x-unizo-delivery-id: %s\r\n" % eid
                    if form == "headers":
                        extra += "x-unizo-event-type: pull_request:created\r\n"
                        ev = {"data": ev["data"]}
                    else:
                        ev = {"event": "pull_request:created", "timestamp": template["timestamp"],
                              "source": {"type": "github", "integration_id": "int_github_123"},
                              "data": ev["data"]}
                base = len(json.dumps(ev))
                ev["data"]["description"] = "x" * max(0, 1024 - base)
                body = json.dumps(ev, separators=(",", ":")).encode()
                mac = hmac.new(secret, ts + b"." + body, hashlib.sha256).hexdigest()
                bmac = hmac.new(secret, body, hashlib.sha256).hexdigest() if body_sig or form == "body-signed" else ""
                if rnd.random() < badsig:
                    mac = mac[::-1]
                    bmac = bmac[::-1]
                if body_sig:
                    extra += "%s: sha256=%s\r\n" % (body_sig, bmac)
                if form == "body-signed":
                    sig = "x-unizo-signature: sha256=%s\r\n" % bmac
                else:
                    sig = "x-unizo-timestamp: %s\r\nx-unizo-signature: v1=%s\r\n" % (ts.decode(), mac)
                head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "content-type: application/json\r\n%s%scontent-length: %d\r\n\r\n"
                        % (path, sig, extra, len(body))).encode()
                f.write(head + body + b"\0")


if __name__ == "__main__":
    main()
