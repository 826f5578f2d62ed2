#!/usr/bin/env python3
"""Engine throughput: how fast N stored jobs drain through a rule, with 1 and 2 workers.

usage: engine.py BUILD_DIR [--events N]
Events are ingested first by a receive-only instance (workers = 0); then an
instance with W workers starts and the time until every job is done is measured
(this includes reading each job and its event back from SQLite and committing
its outcome).
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

RULES = {
    "noop": 'rule { name = "noop", on = "*", run = function(ev) end }\n',
    "pr-review": """
rule {
  name = "pr-review",
  on = "scm.pull_request.created",
  when = function(ev) return not ev.data.draft end,
  run = function(ev)
    local title = "Review PR: " .. ev.data.title
    kv.set("pr:" .. ev.data.url .. ev.id, { title = title, number = ev.data.number }, "30d")
  end,
}
""",
}


def serve(build, d, workers, rule):
    port = free_port()
    with open(os.path.join(d, "rules", "r.lua"), "w") as f:
        f.write(RULES[rule])
    with open(os.path.join(d, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = false
webhook = {{ secrets = {{ "{SECRET}" }} }}
store = "sqlite:store.db"
rules = {{ "rules/*.lua" }}
workers = {workers}
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--events", type=int, default=100000)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    root = tempfile.mkdtemp(prefix="sy-engine-bench-")
    reqdir = os.path.join(root, "req")
    subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), reqdir, "2", str(args.events // 2), SECRET], check=True)
    base = os.path.join(root, "base")
    os.makedirs(os.path.join(base, "rules"))
    results = []
    try:
        for rule in ("noop", "pr-review"):
            # ingest once with no workers
            shutil.rmtree(base)
            os.makedirs(os.path.join(base, "rules"))
            p, port = serve(build, base, 0, rule)
            subprocess.run(["wrk", "-t2", "-c32", "-d60s", "-s", os.path.join(HERE, "wrk.lua"),
                            "http://127.0.0.1:%d/" % port], env=dict(os.environ, REQ_DIR=reqdir, ONCE="1"),
                           capture_output=True, timeout=120)
            p.send_signal(signal.SIGTERM)
            p.wait()
            total = sqlite3.connect(os.path.join(base, "store.db")).execute("SELECT count(*) FROM jobs").fetchone()[0]
            for workers in (1, 2):
                d = os.path.join(root, "%s-%d" % (rule, workers))
                shutil.copytree(base, d)
                os.sync()
                t0 = time.time()
                p, _ = serve(build, d, workers, rule)
                db = os.path.join(d, "store.db")
                while count_done(db) < total:
                    time.sleep(0.05)
                took = time.time() - t0
                p.send_signal(signal.SIGTERM)
                p.wait()
                results.append((rule, workers, total, took))
                print("%-10s workers=%d jobs=%d %.2fs %.0f jobs/s" % (rule, workers, total, took, total / took), file=sys.stderr)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| rule | workers | jobs | seconds | jobs/s |\n|---|---|---|---|---|")
    for rule, w, total, took in results:
        print("| %s | %d | %d | %.2f | %.0f |" % (rule, w, total, took, total / took))


if __name__ == "__main__":
    main()
