#!/usr/bin/env python3
"""Ingest benchmark: switchyard against a do-nothing h2o server, A B A B.

usage: run.py BUILD_DIR [--smoke] [--duration S] [--connections C] [--reps N] [--out FILE]
Prints a Markdown table of medians and ratios; --out also writes it to FILE.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "bench-secret-0b7e"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def proc_stats(pid):
    """(cpu seconds, peak RSS in MiB) of a live process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cpu, peak


class Target:
    def __init__(self, name, argv, port, env=None, metrics_port=None, workdir=None):
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.metrics_port, self.workdir = metrics_port, workdir

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, **(self.env or {})), cwd=self.workdir)
        wait_port(self.port)
        if self.metrics_port:
            wait_port(self.metrics_port)

    def metrics(self):
        if not self.metrics_port:
            return {}
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def switchyard_target(build, name, sync, workroot):
    d = tempfile.mkdtemp(prefix="sy-bench-", dir=workroot)
    port, admin = free_port(), free_port()
    with open(os.path.join(d, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = {{ listen = "127.0.0.1:{admin}" }}
webhook = {{ secrets = {{ "{SECRET}" }} }}
store = {{ url = "sqlite:store.db", synchronous = "{sync}" }}
log = {{ level = "info" }}
""")
    return Target(name, [os.path.join(build, "switchyard"), "serve", "-c", os.path.join(d, "switchyard.lua")],
                  port, metrics_port=admin, workdir=d)


def run_wrk(target, reqdir, args):
    before = target.metrics()
    cpu0, _ = proc_stats(target.proc.pid)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(args.connections), "-d", "%ds" % args.duration,
                          "--latency", "-s", os.path.join(HERE, "wrk.lua"), "http://127.0.0.1:%d/" % target.port],
                         capture_output=True, text=True, env=dict(os.environ, REQ_DIR=reqdir), timeout=args.duration + 120)
    cpu1, peak = proc_stats(target.proc.pid)
    m = re.search(r"RESULT duration_s=([\d.]+) requests=(\d+) rps=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+) statuses=(\S*)", out.stdout)
    if not m:
        raise RuntimeError("wrk output not understood:\n" + out.stdout + out.stderr)
    dur = float(m.group(1))
    res = {"rps": float(m.group(3)), "p50": float(m.group(4)), "p99": float(m.group(5)),
           "cpu": (cpu1 - cpu0) / dur, "rss": peak, "statuses": m.group(6)}
    after = target.metrics()
    key = 'switchyard_webhook_requests_total{result="accepted"}'
    if key in after:
        res["accepted"] = (after[key] - before.get(key, 0)) / dur
        n = after["switchyard_store_batch_size_count"] - before.get("switchyard_store_batch_size_count", 0)
        s = after["switchyard_store_batch_size_sum"] - before.get("switchyard_store_batch_size_sum", 0)
        res["batch"] = s / n if n else 0
    else:
        res["accepted"] = None
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if args.smoke:
        args.duration, args.reps = 2, 1
    per_thread = 3000 if args.smoke else 300000
    workroot = tempfile.mkdtemp(prefix="sy-bench-")
    reqdir = os.path.join(workroot, "req")

    noop_port = free_port()
    targets = [
        Target("h2o do-nothing handler (ceiling)", [os.path.join(args.build, "sy-bench-noop"), str(noop_port), "2"], noop_port),
        lambda: switchyard_target(args.build, "switchyard, SQLite synchronous=FULL", "full", workroot),
        lambda: switchyard_target(args.build, "switchyard, SQLite synchronous=NORMAL", "normal", workroot),
    ]
    results = {}
    try:
        for rep in range(args.reps):
            # fresh signatures (inside the 5-minute window) and fresh ids every repetition
            shutil.rmtree(reqdir, ignore_errors=True)
            subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), reqdir, "2", str(per_thread), SECRET], check=True)
            for t in targets:
                target = t() if callable(t) else t
                # start from a quiet disk: the generator's files and the previous
                # target's database must not be written back during this run
                os.sync()
                target.start()
                try:
                    r = run_wrk(target, reqdir, args)
                finally:
                    target.stop()
                    if target.workdir:
                        shutil.rmtree(target.workdir, ignore_errors=True)
                        os.sync()
                results.setdefault(target.name, []).append(r)
                print("rep %d %-40s %s" % (rep + 1, target.name, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}), file=sys.stderr)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)

    ceiling = statistics.median(r["rps"] for r in results[targets[0].name])
    lines = ["| target | answered req/s | accepted events/s | p50 ms | p99 ms | server CPU (cores) | peak RSS MiB | events per fsync | vs ceiling |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rs in results.items():
        med = lambda k: statistics.median(r[k] for r in rs)
        acc = "-" if rs[0]["accepted"] is None else "%.0f" % med("accepted")
        batch = "-" if "batch" not in rs[0] else "%.1f" % med("batch")
        lines.append("| %s | %.0f | %s | %.2f | %.2f | %.2f | %.1f | %s | %.2f |" % (
            name, med("rps"), acc, med("p50"), med("p99"), med("cpu"), med("rss"), batch, med("rps") / ceiling))
    table = "\n".join(lines)
    header = "wrk -t2 -c%d -d%ds, %d repetition(s), medians; 1 KB events with unique ids, signed.\n\n" % (
        args.connections, args.duration, args.reps)
    print(header + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(header + table + "\n")


if __name__ == "__main__":
    main()
