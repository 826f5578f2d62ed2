#!/usr/bin/env python3
"""End to end against a slow Unizo API: how fast a burst of stored events drains.

usage: slow_api.py BUILD_DIR [--events N] [--delays 100,500] [--baseline OLD_BUILD_DIR]
                   [--workers W] [--out FILE]

For each delay, EVENTS events (1 KB, UUID v4 ids, signed) are stored by a
receive-only instance; then an instance with the default engine settings
(4 workers, engine.max_in_flight 64, no caps on the integration) starts with
an API key and base_url pointing at the slow mock (bench/slow_unizo.c, which
holds every call DELAY ms), and the time until every job is done is measured.
The rule makes one ticketing call per event and keeps its id in kv. With
--baseline, the older build drains the same store in the same run and the
table gives the ratio. The mock's counters say how many calls were in flight
at once and whether any Idempotency-Key was sent twice.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from engine import count_done, ingest  # noqa: E402
from run import SECRET, emit, free_port, rss_mib, wait_port  # noqa: E402

RULE = """
rule {
  name = "pr-ticket",
  on = "scm.pull_request.created",
  when = function(ev) return not ev.data.draft end,
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira-prod", title = "Review " .. ev.data.title }
    kv.set("pr:" .. ev.id, t.id, "30d")
  end,
}
"""


def serve(build, d, api_port, workers):
    port = free_port()
    with open(os.path.join(d, "rules", "r.lua"), "w") as f:
        f.write(RULE)
    extra = "" if workers is None else "workers = %d\n" % workers
    with open(os.path.join(d, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = false
webhook = {{ secrets = {{ "{SECRET}" }} }}
store = "sqlite:store.db"
rules = {{ "rules/*.lua" }}
{extra}unizo = {{
  base_url = "http://127.0.0.1:{api_port}",
  api_key = "bench-key",
  integrations = {{ ["jira-prod"] = {{ organization = "default", collection = "ENG" }} }},
}}
log = {{ level = "warn" }}
""")
    p = subprocess.Popen([os.path.join(build, "switchyard"), "serve", "-c", os.path.join(d, "switchyard.lua")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def stats(api_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/_stats" % api_port, timeout=10) as r:
        return json.loads(r.read())


def drain(build, base, root, api_port, workers, total, timeout):
    d = os.path.join(root, "drain")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    os.sync()
    t0 = time.time()
    p = serve(build, d, api_port, workers)
    db = os.path.join(d, "store.db")
    peak = 0.0
    while count_done(db) < total:
        if time.time() - t0 > timeout:
            p.kill()
            p.wait()
            raise RuntimeError("%s: only %d of %d jobs done after %ds" % (build, count_done(db), total, timeout))
        peak = max(peak, rss_mib(p.pid))
        time.sleep(0.05)
    took = time.time() - t0
    p.send_signal(signal.SIGTERM)
    p.wait()
    shutil.rmtree(d)
    return took, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--delays", default="100,500")
    ap.add_argument("--baseline")
    ap.add_argument("--workers", type=int, help="default: the config's default")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out")
    args = ap.parse_args()
    builds = [("this", os.path.abspath(args.build))]
    if args.baseline:
        builds.append(("baseline", os.path.abspath(args.baseline)))
    mock = os.path.join(builds[0][1], "sy-bench-slow-unizo")
    root = tempfile.mkdtemp(prefix="sy-slow-bench-")
    rows = []
    try:
        for delay in [int(x) for x in args.delays.split(",")]:
            api_port = free_port()
            m = subprocess.Popen([mock, str(api_port), "2", str(delay)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            try:
                wait_port(api_port)
                base = os.path.join(root, "base")
                total = ingest(builds[0][1], base, RULE, args.events, args.events, root)
                for label, build in builds:
                    before = stats(api_port)
                    took, peak = drain(build, base, root, api_port, args.workers, total, args.timeout)
                    after = stats(api_port)
                    calls = after["requests"] - before["requests"]
                    row = dict(label=label, delay=delay, jobs=total, seconds=took, rate=total / took,
                               calls=calls, max_in_flight=after["max_in_flight"],
                               repeated=after["repeated_keys"] - before["repeated_keys"], rss=peak)
                    rows.append(row)
                    print("delay=%dms %-8s jobs=%d %.2fs %.0f jobs/s calls=%d peak in flight at the mock=%d"
                          % (delay, label, total, took, total / took, calls, after["max_in_flight"]),
                          file=sys.stderr)
                    # the mock's peak is since its start: restart it for the next build
                    m.terminate()
                    m.wait()
                    m = subprocess.Popen([mock, str(api_port), "2", str(delay)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                    wait_port(api_port)
            finally:
                m.terminate()
                m.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = ["| Unizo API delay | build | events | seconds | processed events/s | calls sent | most calls in flight | keys sent twice | peak RSS MiB | vs baseline |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = [b for b in rows if b["label"] == "baseline" and b["delay"] == r["delay"]]
        ratio = "%.1f×" % (r["rate"] / ref[0]["rate"]) if ref and r["label"] == "this" else ""
        lines.append("| %d ms | %s | %d | %.2f | %.0f | %d | %d | %d | %.1f | %s |" % (
            r["delay"], r["label"], r["jobs"], r["seconds"], r["rate"], r["calls"], r["max_in_flight"],
            r["repeated"], r["rss"], ratio))
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
