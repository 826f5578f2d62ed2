#!/usr/bin/env python3
"""The console on a big store: time to first render and to a filtered list.

usage: console.py BUILD_DIR [--events 1000000] [--small 1000] [--reps 5] [--out FILE]
                  [--screenshots DIR]

Two SQLite stores are filled the way a busy server leaves them: EVENTS events
(and SMALL, the peer measured in the same run) with UUID v4 ids, ~900-byte
bodies, twelve types over six integrations and their categories, one job
each (97% done, 2% skipped, 1% dead), received over the last week. The
release binary serves each store with no rules to run, and headless Chromium
(Debian's chromium and chromium-driver, python3-selenium, run under
/usr/bin/python3) loads each console page from a blank tab; the time is
performance.now() when the page's table is on screen (navigation start = 0).
The admin API's answer time for the same list is measured too (median of
REPS). The table gives the big store's figure, the small store's, and the
ratio; and the bytes the embedded assets add to the binary.
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from chrome import Chrome  # noqa: E402
from run import free_port, id_hash, wait_port  # noqa: E402

TYPES = [("scm.pull_request.created", "github", "scm"), ("scm.pull_request.merged", "github", "scm"),
         ("scm.push", "github", "scm"), ("scm.branch.created", "gitlab", "scm"),
         ("scm.pull_request.created", "gitlab", "scm"), ("ticketing.ticket.created", "jira", "ticketing"),
         ("ticketing.ticket.updated", "jira", "ticketing"), ("ticketing.comment.created", "jira", "ticketing"),
         ("incidents.incident.created", "pagerduty", "incidents"),
         ("incidents.incident.resolved", "pagerduty", "incidents"),
         ("ticketing.ticket.created", "servicenow", "ticketing"),
         ("identity.user.deactivated", "okta", "identity")]

# (name, console route, API query, the selector that is on screen once it rendered)
PAGES = [
    ("overview", "#/overview", None, ".cards .card"),
    ("events, newest", "#/events", "limit=50", "#events tr.link"),
    ("events, type scm.pull_request.*", "#/events?type=scm.pull_request.*",
     "type=scm.pull_request.*&limit=50", "#events tr.link"),
    ("events, pagerduty + dead jobs", "#/events?integration=pagerduty&state=dead",
     "integration=pagerduty&state=dead&limit=50", "#events tr.link, #no-match"),
    ("events, last 2 h, ticketing", "#/events?category=ticketing&since=2h",
     "category=ticketing&since=2h&limit=50", "#events tr.link, #no-match"),
    ("events, text search", "#/events?q=needle-", "q=needle-&limit=50", "#events tr.link, #no-match"),
    ("event by id", "#/events?q={old_id}", "q={old_id}&limit=50", "#events tr.link"),
    ("one event", "#/event/{old_id}", None, "#event-id"),
]


def make_store(build, path, n):
    """Create the schema with the binary itself, then fill it in one transaction."""
    d = os.path.dirname(path)
    cfg = os.path.join(d, "switchyard.lua")
    port, admin = free_port(), free_port()
    with open(cfg, "w") as f:
        f.write('listen = { "127.0.0.1:%d" }\nadmin = { listen = "127.0.0.1:%d" }\n'
                'webhook = { secrets = { "bench-secret-0123" } }\nstore = "sqlite:%s"\n'
                'workers = 1\ndedupe_retention = "30d"\n' % (port, admin, path))
    p = subprocess.Popen([os.path.join(build, "switchyard"), "serve", "-c", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(admin)
    p.terminate()
    p.wait(20)
    rnd = random.Random(7)
    now = int(time.time() * 1000)
    week = 7 * 24 * 3600 * 1000
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    filler = "x" * 700
    old_id = None

    def rows():
        nonlocal old_id
        for i in range(n):
            eid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            if i == 10:
                old_id = eid
            t, integ, cat = TYPES[rnd.randrange(len(TYPES))]
            note = "needle-%d" % i if rnd.random() < 0.00002 else "hay"
            body = json.dumps({"id": eid, "type": t, "integration": {"type": integ},
                               "data": {"title": "change %d" % i, "note": note, "pad": filler}})
            yield (i + 1, eid, t, integ, now - week + i * week // n, "{}", body, "routed", cat,
                   id_hash(eid))

    db.executemany("INSERT INTO events (seq, id, type, integration, received_at, headers, body, "
                   "state, category, idh) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    db.execute("INSERT INTO jobs (event_seq, event_id, handler, state, attempts, due_at, created_at, "
               "updated_at, runs, last_error) SELECT seq, id, 'pr-review', CASE WHEN seq % 100 = 7 THEN 'dead' "
               "WHEN seq % 50 = 3 THEN 'skipped' ELSE 'done' END, 1, received_at, received_at, "
               "received_at, 1, CASE WHEN seq % 100 = 7 THEN 'rules/pr.lua:9: jira is down' END "
               "FROM events")
    db.commit()
    db.close()
    return cfg, old_id


def serve(build, cfg):
    p = subprocess.Popen([os.path.join(build, "switchyard"), "serve", "-c", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(cfg) as f:
        admin = int(f.read().split('admin = { listen = "127.0.0.1:')[1].split('"')[0])
    wait_port(admin)
    return p, "http://127.0.0.1:%d" % admin


def api_ms(base, query, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        with urllib.request.urlopen(base + "/admin/events?" + query, timeout=60) as r:
            r.read()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


RENDERED = """
const sel = arguments[0], done = arguments[arguments.length - 1];
(function poll() {
  if (document.querySelector(sel)) return done(performance.now());
  if (performance.now() > 60000) return done(-1);
  setTimeout(poll, 1);
})();"""


def render_ms(driver, base, route, sel, reps):
    times = []
    for _ in range(reps):
        driver.get("about:blank")
        driver.get(base + "/" + route)
        times.append(driver.execute_async_script(RENDERED, sel))
    return statistics.median(times)


def measure(build, cfg, old_id, reps, shots=None):
    p, base = serve(build, cfg)
    out = {}
    try:
        chrome = Chrome()
        driver = chrome.driver
        driver.set_script_timeout(90)
        try:
            for name, route, query, sel in PAGES:
                r = render_ms(driver, base, route.format(old_id=old_id), sel, reps)
                a = api_ms(base, query.format(old_id=old_id), reps) if query else None
                out[name] = (r, a)
                if shots:
                    path = os.path.join(shots, "bench-" + name.split(",")[0].replace(" ", "-") +
                                        ("-" + name.split(",")[1].strip().split()[0] if "," in name else "") + ".png")
                    driver.save_screenshot(path)
        finally:
            chrome.quit()
    finally:
        p.terminate()
        p.wait(20)
    return out


def asset_bytes(build):
    """The console's share of the binary: its object file's text + data, and the raw assets."""
    obj = None
    for root, _, files in os.walk(build):
        for f in files:
            if f.startswith("console_assets") and f.endswith(".o"):
                obj = os.path.join(root, f)
    src = os.path.join(HERE, "..", "src", "http", "console")
    raw = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src))
    size = None
    if obj:
        cols = subprocess.run(["size", obj], capture_output=True, text=True).stdout.split("\n")[1].split()
        size = int(cols[0]) + int(cols[1])
    return raw, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out")
    ap.add_argument("--screenshots", help="save a screenshot of each page on the big store here")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="sy-console-bench-")
    try:
        results = {}
        for label, n in (("big", a.events), ("small", a.small)):
            os.makedirs(os.path.join(work, label))
            t0 = time.time()
            cfg, old_id = make_store(build, os.path.join(work, label, "store.db"), n)
            size = os.path.getsize(os.path.join(work, label, "store.db"))
            print("store of %d events: %.0f MiB, filled in %.0f s" % (n, size / 2**20, time.time() - t0),
                  file=sys.stderr)
            results[label] = measure(build, cfg, old_id, a.reps,
                                     a.screenshots if label == "big" else None)
        lines = ["console on SQLite: %d events vs %d, medians of %d (ms; render = navigation start "
                 "to the table on screen in headless Chromium; api = GET /admin/events)" %
                 (a.events, a.small, a.reps), "",
                 "| page | render, %d | render, %d | ratio | api, %d | api, %d |" % (
                     a.events, a.small, a.events, a.small),
                 "|---|---:|---:|---:|---:|---:|"]
        for name, _, _, _ in PAGES:
            (rb, ab), (rs, as_) = results["big"][name], results["small"][name]
            lines.append("| %s | %.0f | %.0f | %.2f | %s | %s |" % (
                name, rb, rs, rb / rs if rs > 0 else 0, "%.1f" % ab if ab is not None else "-",
                "%.1f" % as_ if as_ is not None else "-"))
        raw, size = asset_bytes(build)
        lines += ["", "embedded assets: %d bytes of HTML, CSS and JavaScript; the object holding them "
                  "adds %s bytes to the binary" % (raw, size)]
        text = "\n".join(lines)
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
