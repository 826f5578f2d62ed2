#!/usr/bin/env python3
"""Memory soak: measure the maximum signed ingest rate, then hold half of it for a long run
and sample the server's RSS. RSS must stay flat: no growth with the number of events seen.

usage: soak.py BUILD_DIR [--seconds 600] [--sample 10] [--out FILE] [--smoke]

The server runs the shipped defaults (SQLite, synchronous=FULL) with 2 workers and a rule
on every event, and a 2-minute dedupe_retention so the purge runs during the soak.
Requests are signed as they are sent (sy-loadgen), so runs may outlast the 5-minute window.
Exits non-zero when requests failed, jobs were left undone, or RSS grew by more than 20%.
"""
import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from run import Target, free_port, proc_stats, rss_mib

SECRET = "soak-secret-77d1"
RULE = """
rule {
  name = "shape",
  on = "scm.pull_request.*",
  run = function(ev)
    local t = { title = "Review: " .. ev.data.title, labels = { "review", ev.data.repository.name } }
    local s = json.encode(t)
    if #s == 0 then error("empty") end
  end,
}
"""


def loadgen(build, port, seconds, rate, prefix, interval):
    return subprocess.Popen([os.path.join(build, "sy-loadgen"), "--port", str(port), "--secret", SECRET,
                             "--connections", "32", "--duration", str(seconds), "--rate", str(rate),
                             "--interval", str(interval), "--prefix", prefix],
                            stdout=subprocess.PIPE, text=True)


def result(proc):
    out = proc.communicate()[0]
    m = re.search(r"RESULT .*", out)
    if not m:
        raise RuntimeError("sy-loadgen output not understood:\n" + out)
    return dict(kv.split("=") for kv in m.group(0).split()[1:]), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true", help="20 s, RSS growth not checked (run by scripts/test)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.sample = 20, 5
    build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="sy-soak-")
    port, admin = free_port(), free_port()
    os.makedirs(os.path.join(work, "rules"))
    with open(os.path.join(work, "rules", "shape.lua"), "w") as f:
        f.write(RULE)
    with open(os.path.join(work, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = {{ listen = "127.0.0.1:{admin}" }}
webhook = {{ secrets = {{ "{SECRET}" }} }}
store = "sqlite:store.db"
dedupe_retention = "2m"
workers = 2
rules = {{ "rules/*.lua" }}
""")
    target = Target("switchyard", [os.path.join(build, "switchyard"), "serve", "-c", "switchyard.lua"],
                    port, metrics_port=admin, workdir=work)
    target.start()
    failed = []
    try:
        pid = target.proc.pid
        rss_idle = rss_mib(pid)
        r, _ = result(loadgen(build, port, 10, 0, "max", 10))
        maximum = float(r["rps"])
        rate = int(maximum / 2)
        print("maximum %.0f events/s (sy-loadgen, 32 connections, 10 s); soaking at %d/s for %d s"
              % (maximum, rate, args.seconds), file=sys.stderr)
        gen = loadgen(build, port, args.seconds, rate, "soak", args.sample)
        samples = []
        t0 = time.time()
        while gen.poll() is None:
            time.sleep(args.sample)
            if gen.poll() is None:
                samples.append((round(time.time() - t0), rss_mib(pid)))
                print("t=%ds rss=%.1f MiB" % samples[-1], file=sys.stderr)
        r, out = result(gen)
        cpu, peak = proc_stats(pid)
        # let the workers finish, then count what is not done
        deadline = time.time() + 120
        db = os.path.join(work, "store.db")
        undone = None
        while time.time() < deadline:
            con = sqlite3.connect(db, timeout=10)
            undone = con.execute("SELECT count(*) FROM jobs WHERE state != 'done'").fetchone()[0]
            con.close()
            if undone == 0:
                break
            time.sleep(1)
        db_mib = sum(os.path.getsize(os.path.join(work, n)) for n in os.listdir(work)
                     if n.startswith("store.db")) / 2**20
    finally:
        target.stop()
        shutil.rmtree(work, ignore_errors=True)

    # the first sample is taken after a minute of load (caches and pools warm), the last at the end
    warm = [s for s in samples if s[0] >= 60] or samples
    start, end = warm[0], samples[-1]
    growth = (end[1] - start[1]) / start[1]
    lines = [
        "sy-loadgen, 32 keep-alive connections, signing each request as it is sent; "
        "SQLite synchronous=FULL, 2 workers, a rule on every event, dedupe_retention 2m.",
        "",
        "| measure | value |", "|---|---|",
        "| maximum rate (10 s, unthrottled) | %.0f events/s |" % maximum,
        "| soak rate (half) and length | %d events/s for %d s |" % (rate, args.seconds),
        "| answered during the soak | %s (accepted %s, other %s, errors %s) |" % (r["answered"], r["accepted"], r["other"], r["errors"]),
        "| soak p50 / p99 | %s / %s ms |" % (r["p50_ms"], r["p99_ms"]),
        "| RSS idle before load | %.1f MiB |" % rss_idle,
        "| RSS at t=%ds (start of the curve) | %.1f MiB |" % start,
        "| RSS at t=%ds (end) | %.1f MiB |" % end,
        "| RSS max / peak (VmHWM) | %.1f / %.1f MiB |" % (max(s[1] for s in samples), peak),
        "| growth start → end | %+.1f%% |" % (100 * growth),
        "| jobs not done after the run | %s |" % undone,
        "| store size at the end | %.0f MiB |" % db_mib,
        "| server CPU over the whole run | %.0f s |" % cpu,
    ]
    curve = "RSS curve (seconds, MiB): " + ", ".join("%d:%.1f" % s for s in samples)
    text = "\n".join(lines) + "\n\n" + curve + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if int(r["other"]) or int(r["errors"]):
        failed.append("requests failed")
    if undone:
        failed.append("%s jobs not done" % undone)
    if growth > 0.20 and not args.smoke:
        failed.append("RSS grew %.0f%%" % (100 * growth))
    if failed:
        print("soak FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
