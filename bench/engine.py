#!/usr/bin/env python3
"""Engine throughput: how fast N stored jobs drain through a rule.

usage: engine.py BUILD_DIR [--events N] [--workers 1,2] [--baseline OLD_BUILD_DIR] [--only NAME,...]

For each case, events (1 KB, UUID v4 ids) are ingested first by a receive-only
instance (workers = 0); then an instance with W workers starts and the time until
every job is done is measured (reading each job and its event back from SQLite,
running the rule, committing its outcome and kv writes, and, for rules that call
Unizo, the journal lines; dry-run, so no network is involved).

Cases: a no-op rule; the PR rule (when + kv.set); the PR rule with an ordering key
over 1,000 distinct PR URLs and over 10 hot ones; a rule that makes two Unizo calls
(each journaled). With --baseline, every case that the older binary can run (no
ordering keys) runs on it too, in the same run, and the table gives the ratio.
"""
import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import SECRET, free_port, wait_port  # noqa: E402

PR = """
rule {
  name = "pr-review",
  on = "scm.pull_request.created",%s
  when = function(ev) return not ev.data.draft end,
  run = function(ev)
    local title = "Review PR: " .. ev.data.title
    kv.set("pr:" .. ev.data.url .. ev.id, { title = title, number = ev.data.number }, "30d")
  end,
}
"""
CALLS = """
rule {
  name = "two-calls",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review " .. ev.data.title }
    unizo.ticketing.add_comment { integration = "jira-prod", id = t.id, content = ev.data.url }
    kv.set("pr:" .. ev.id, t.id, "30d")
  end,
}
"""

# name, rule, distinct PR URLs, needs ordering keys (the baseline cannot run it)
CASES = [
    ("noop", 'rule { name = "noop", on = "*", run = function(ev) end }\n', 1000, False),
    ("pr-review", PR % "", 1000, False),
    ("pr-review, key: 1000 URLs", PR % '\n  key = "data.url",', 1000, True),
    ("pr-review, key: 10 hot URLs", PR % '\n  key = "data.url",', 10, True),
    ("two Unizo calls (journal)", CALLS, 1000, False),
]


def serve(build, d, workers, rule):
    port = free_port()
    with open(os.path.join(d, "rules", "r.lua"), "w") as f:
        f.write(rule)
    with open(os.path.join(d, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = false
webhook = {{ secrets = {{ "{SECRET}" }} }}
store = "sqlite:store.db"
rules = {{ "rules/*.lua" }}
workers = {workers}
unizo = {{ integrations = {{ ["jira-prod"] = {{ organization = "default", collection = "ENG" }} }} }}
log = {{ level = "warn" }}
""")
    p = subprocess.Popen([os.path.join(build, "switchyard"), "serve", "-c", os.path.join(d, "switchyard.lua")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def count_done(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute("SELECT count(*) FROM jobs WHERE state IN ('done', 'skipped')").fetchone()[0]
    finally:
        c.close()


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait()


def ingest(build, base, rule, events, urls, root):
    """Store 'events' fresh events (signed now) with a receive-only instance; returns the job count."""
    reqdir = os.path.join(root, "req")
    shutil.rmtree(reqdir, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), reqdir, "2", str(events // 2), SECRET,
                    "--uuid", "--urls", str(urls)], check=True)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.join(base, "rules"))
    p, port = serve(build, base, 0, rule)
    w = subprocess.Popen(["wrk", "-t2", "-c32", "-d600s", "-s", os.path.join(HERE, "wrk.lua"),
                          "http://127.0.0.1:%d/" % port], env=dict(os.environ, REQ_DIR=reqdir, ONCE="1"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = os.path.join(base, "store.db")
    deadline = time.time() + 600
    # wrk's ONCE mode sends everything (but the last request of each thread), then idles
    # until its duration: stop it once the store stops growing
    stored, still = -1, 0
    while w.poll() is None and time.time() < deadline and still < 5:
        time.sleep(0.2)
        c = sqlite3.connect(db, timeout=30)
        now = c.execute("SELECT count(*) FROM events").fetchone()[0]
        c.close()
        still = still + 1 if now == stored and now > 0 else 0
        stored = now
    w.terminate()
    w.wait()
    stop(p)
    c = sqlite3.connect(db)
    total = c.execute("SELECT count(*) FROM jobs").fetchone()[0]
    c.close()
    if total < events * 0.99:
        raise RuntimeError("only %d of %d events were stored" % (total, events))
    return total


def drain(build, base, root, rule, workers, total):
    d = os.path.join(root, "drain")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    os.sync()
    t0 = time.time()
    p, _ = serve(build, d, workers, rule)
    db = os.path.join(d, "store.db")
    while count_done(db) < total:
        time.sleep(0.02)
    took = time.time() - t0
    stop(p)
    shutil.rmtree(d)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--baseline", help="an older build to measure beside this one")
    ap.add_argument("--only", help="comma-separated case names (prefixes)")
    args = ap.parse_args()
    builds = [("this", os.path.abspath(args.build))]
    if args.baseline:
        builds.append(("baseline", os.path.abspath(args.baseline)))
    workers = [int(w) for w in args.workers.split(",")]
    root = tempfile.mkdtemp(prefix="sy-engine-bench-")
    results = {}
    try:
        for name, rule, urls, keyed in CASES:
            if args.only and not any(name.startswith(o) for o in args.only.split(",")):
                continue
            for label, build in builds:
                if keyed and label == "baseline":
                    continue
                base = os.path.join(root, "base")
                total = ingest(build, base, rule, args.events, urls, root)
                for w in workers:
                    took = drain(build, base, root, rule, w, total)
                    results[(name, label, w)] = (total, took)
                    print("%-30s %-8s workers=%d jobs=%d %.2fs %.0f jobs/s" % (name, label, w, total, took,
                                                                             total / took), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| case | workers | jobs | seconds | jobs/s | vs baseline pr-review | vs baseline, same case |")
    print("|---|---|---|---|---|---|---|")
    for (name, label, w), (total, took) in results.items():
        if label != "this":
            continue
        rate = total / took
        ref = results.get(("pr-review", "baseline", w))
        same = results.get((name, "baseline", w))
        fmt = lambda r: "%.2f" % (rate / (r[0] / r[1])) if r else "–"
        print("| %s | %d | %d | %.2f | %.0f | %s | %s |" % (name, w, total, took, rate, fmt(ref), fmt(same)))
    for (name, label, w), (total, took) in results.items():
        if label == "baseline":
            print("| %s (baseline) | %d | %d | %.2f | %.0f | | |" % (name, w, total, took, total / took))


if __name__ == "__main__":
    main()
