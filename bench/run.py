#!/usr/bin/env python3
"""Ingest benchmark: switchyard against the receivers users would pick instead, one run.

usage: run.py BUILD_DIR [--smoke] [--duration S] [--connections C] [--reps N] [--out FILE]
                        [--only NAME,...]

Targets start on loopback in turn, A B C ... A B C, for --reps repetitions; each gets
the same pre-signed requests (bench/gen.py: 1 KB events, unique ids; a mixed set with 10%
duplicates and 10% bad signatures; a body-signed set for adnanh/webhook) through wrk.
Prints a Markdown table of medians and ratios and checks issue 9's targets; --out also
writes it to FILE. --smoke runs each target once for 2 s and checks nothing.
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

import peers

# one hash for rows written straight into a store, shared with the tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
from idhash import id_hash  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECRET = "bench-secret-0b7e"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def _children():
    """{ppid: [pid, ...]} of every live process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                out.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def proc_stats(pid):
    """(cpu seconds, peak RSS in MiB) of a process and its descendants (nginx's workers,
    webhook's commands): live ones counted directly, reaped ones through the parent."""
    kids = _children()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += kids.get(p, [])
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = peak = 0.0
    for p in tree:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1]) / 1024
        except (OSError, IndexError):
            pass
    return cpu, peak


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Target:
    """One receiver: argv to start in the foreground, the port it answers on, the request set
    it gets, and (switchyard) an admin port for /metrics. 'helpers' start before it (Redis)."""

    def __init__(self, name, argv, port, env=None, metrics_port=None, workdir=None, reqs="unizo",
                 helpers=(), kind="peer", connections=None):
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.connections = connections  # None: the run's --connections
        self.metrics_port, self.workdir, self.reqs = metrics_port, workdir, reqs
        self.helpers, self.kind = list(helpers), kind
        self.procs = []

    def start(self):
        for argv, port in self.helpers:
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               cwd=self.workdir))
            wait_port(port)
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
        for p in [self.proc] + self.procs[::-1]:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def switchyard_target(build, name, workroot, store="sqlite", sync="full", reqs="unizo", rules=None,
                      connections=None, webhook=""):
    d = tempfile.mkdtemp(prefix="sy-bench-", dir=workroot)
    port, admin = free_port(), free_port()
    helpers = []
    if store == "redis":
        rport = free_port()
        helpers.append((["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "yes", "--appendfsync", "always", "--dir", d], rport))
        store_lua = '"redis://127.0.0.1:%d"' % rport
    else:
        store_lua = '{ url = "sqlite:store.db", synchronous = "%s" }' % sync
    extra = ""
    if rules:
        # the demo's rules and Unizo settings, in dry-run (no API key)
        extra = f"""
rules = {{ "{ROOT}/examples/rules/*.lua" }}
workers = 2
unizo = {{
  integrations = {{
    ["jira-prod"] = {{ id = "int_jira_prod", organization = "acme", collection = "ENG" }},
    ["jira-it"]   = {{ id = "int_jira_it",   organization = "acme", collection = "IT" }},
  }},
}}
"""
    with open(os.path.join(d, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = {{ listen = "127.0.0.1:{admin}" }}
webhook = {{ secrets = {{ "{SECRET}" }}, {webhook} }}
store = {store_lua}
log = {{ level = "info" }}
{extra}
""")
    return Target(name, [os.path.join(build, "switchyard"), "serve", "-c", os.path.join(d, "switchyard.lua")],
                  port, metrics_port=admin, workdir=d, reqs=reqs, helpers=helpers,
                  kind="e2e" if rules else "switchyard", connections=connections)


def peer_target(name, make, workroot, reqs="unizo"):
    d = tempfile.mkdtemp(prefix="sy-bench-", dir=workroot)
    port = free_port()
    argv, env, cwd = make(d, port)
    return Target(name, argv, port, env=env, workdir=cwd, reqs=reqs)


def noop_target(build):
    port = free_port()
    return Target("h2o do-nothing handler", [os.path.join(build, "sy-bench-noop"), str(port), "2"], port)


def processed(m):
    return sum(v for k, v in m.items() if k.startswith("switchyard_jobs_total{") and 'outcome="done"' in k)


def run_wrk(target, reqdir, args):
    before = target.metrics()
    cpu0, _ = proc_stats(target.proc.pid)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(target.connections or args.connections), "-d", "%ds" % args.duration,
                          "--latency", "-s", os.path.join(HERE, "wrk.lua"), "http://127.0.0.1:%d/" % target.port],
                         capture_output=True, text=True, env=dict(os.environ, REQ_DIR=reqdir), timeout=args.duration + 120)
    cpu1, peak = proc_stats(target.proc.pid)
    after = target.metrics()
    m = re.search(r"RESULT duration_s=([\d.]+) requests=(\d+) rps=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+) statuses=(\S*)", out.stdout)
    if not m:
        raise RuntimeError("wrk output not understood:\n" + out.stdout + out.stderr)
    dur = float(m.group(1))
    statuses = dict(kv.split("=") for kv in m.group(6).split(",") if kv)
    res = {"rps": float(m.group(3)), "p50": float(m.group(4)), "p99": float(m.group(5)),
           "cpu": (cpu1 - cpu0) / dur, "rss": peak, "statuses": m.group(6)}
    key = 'switchyard_webhook_requests_total{result="accepted"}'
    if key in after:
        res["accepted"] = (after[key] - before.get(key, 0)) / dur
        n = after["switchyard_store_batch_size_count"] - before.get("switchyard_store_batch_size_count", 0)
        s = after["switchyard_store_batch_size_sum"] - before.get("switchyard_store_batch_size_sum", 0)
        res["batch"] = s / n if n else 0
    else:
        # a peer's 200 answers: each one claims to have accepted an event
        res["accepted"] = int(statuses.get("200", 0)) / dur
    if target.kind == "e2e":
        res["processed"] = (processed(after) - processed(before)) / dur
        # then how long the backlog takes to drain, for the whole-run figure
        t0, deadline = time.time(), time.time() + 300
        while time.time() < deadline and target.metrics().get("switchyard_jobs_queued", 0) > 0:
            time.sleep(0.2)
        final = target.metrics()
        res["drained"] = (processed(final) - processed(before)) / (dur + time.time() - t0)
    return res


REQUEST_SETS = {"unizo": [], "mixed": ["--dup", "10", "--badsig", "10"],
                # the PR rule keeps each PR's jobs in order (key = data.url): one URL for every
                # event would run them all one after another, as no real stream does
                "many-prs": ["--urls", "100000"],
                "webhook": ["--path", peers.WEBHOOK_PATH, "--body-sig", peers.WEBHOOK_SIG_HEADER],
                # the other documented delivery forms, with UUID delivery ids
                "form-headers": ["--form", "headers", "--uuid", "--path", "/webhooks/unizo/scm"],
                "form-console": ["--form", "console", "--uuid", "--path", "/webhooks/unizo/scm"],
                "form-body": ["--form", "body-signed", "--uuid"],
                "form-dotted": ["--uuid"]}


class generate(dict):
    """Fresh request sets (signatures inside the 5-minute window, new ids), each written the
    first time a target of this repetition asks for it."""

    def __init__(self, workroot, per_thread):
        super().__init__()
        self.workroot, self.per_thread = workroot, per_thread

    def __missing__(self, name):
        d = os.path.join(self.workroot, "req-" + name)
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), d, "2", str(self.per_thread), SECRET]
                       + REQUEST_SETS[name], check=True)
        self[name] = d
        return d


def idle_rss(build, workroot):
    """RSS of the demo configuration (2 workers, the example rules) after start, at rest."""
    t = switchyard_target(build, "idle", workroot, rules=True)
    t.start()
    time.sleep(2)
    rss = rss_mib(t.proc.pid)
    t.stop()
    return rss


def emit(table, out=None):
    """Print a result table, and write it to 'out' as well when one is named."""
    print(table)
    if out:
        with open(out, "w") as f:
            f.write(table + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", help="comma-separated substrings of target names")
    ap.add_argument("--out")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if args.smoke:
        args.duration, args.reps = 2, 1
    per_thread = 3000 if args.smoke else 400000
    workroot = tempfile.mkdtemp(prefix="sy-bench-")
    b = args.build

    NGINX = "nginx `return 200` (ceiling)"
    EXPRESS = "Express, `express.json()` (Unizo docs' reference)"
    EXPRESS_RAW = "Express, raw body"
    WEBHOOK = "adnanh/webhook (Debian)"
    FULL = "switchyard, SQLite synchronous=FULL"
    FULL_256 = "switchyard, SQLite synchronous=FULL, 256 connections"
    E2E = "switchyard end to end: FULL + PR rule (dry-run), 2 workers"
    FORM_DOTTED = "form: body envelope, dotted type (UUID ids), FULL"
    FORM_HEADERS = "form: type and delivery id in headers, /scm endpoint, FULL"
    FORM_CONSOLE = "form: console envelope (event, source), FULL"
    FORM_BODY = "form: body-only sha256= signature, FULL"
    targets = [
        (NGINX, lambda: peer_target(NGINX, peers.nginx, workroot)),
        ("h2o do-nothing handler", lambda: noop_target(b)),
        (EXPRESS, lambda: peer_target(EXPRESS, lambda d, p: peers.express("json", d, p, SECRET), workroot)),
        (EXPRESS_RAW, lambda: peer_target(EXPRESS_RAW, lambda d, p: peers.express("raw", d, p, SECRET), workroot)),
        (WEBHOOK, lambda: peer_target(WEBHOOK, lambda d, p: peers.webhook(d, p, SECRET), workroot, reqs="webhook")),
        (FULL, lambda: switchyard_target(b, FULL, workroot)),
        (FULL_256, lambda: switchyard_target(b, FULL_256, workroot, connections=256)),
        ("switchyard, SQLite synchronous=NORMAL", lambda: switchyard_target(b, "switchyard, SQLite synchronous=NORMAL", workroot, sync="normal")),
        ("switchyard, Redis (appendfsync always)", lambda: switchyard_target(b, "switchyard, Redis (appendfsync always)", workroot, store="redis")),
        ("switchyard, FULL, 10% duplicates + 10% bad signatures", lambda: switchyard_target(b, "switchyard, FULL, 10% duplicates + 10% bad signatures", workroot, reqs="mixed")),
        (FORM_DOTTED, lambda: switchyard_target(b, FORM_DOTTED, workroot, reqs="form-dotted")),
        (FORM_HEADERS, lambda: switchyard_target(b, FORM_HEADERS, workroot, reqs="form-headers")),
        (FORM_CONSOLE, lambda: switchyard_target(b, FORM_CONSOLE, workroot, reqs="form-console")),
        (FORM_BODY, lambda: switchyard_target(b, FORM_BODY, workroot, reqs="form-body",
                                              webhook='signed_payload = "body"')),
        ("Express raw, 10% duplicates + 10% bad signatures", lambda: peer_target("Express raw, 10% duplicates + 10% bad signatures", lambda d, p: peers.express("raw", d, p, SECRET), workroot, reqs="mixed")),
        (E2E, lambda: switchyard_target(b, E2E, workroot, rules=True, reqs="many-prs")),
    ]
    if args.only:
        want = args.only.split(",")
        targets = [t for t in targets if any(w in t[0] for w in want)]
    unavailable = peers.install(tolerate=args.smoke)
    if "express" in unavailable:
        targets = [t for t in targets if "Express" not in t[0]]
    results = {}
    try:
        for rep in range(args.reps):
            reqs = generate(workroot, per_thread)
            for name, make in targets:
                target = make()
                # start from a quiet disk: the generator's files and the previous target's
                # database must not be written back during this run
                os.sync()
                target.start()
                try:
                    r = run_wrk(target, reqs[target.reqs], args)
                finally:
                    target.stop()
                    if target.workdir and target.workdir.startswith(workroot):
                        shutil.rmtree(target.workdir, ignore_errors=True)
                    os.sync()
                results.setdefault(name, []).append(r)
                print("rep %d %-58s %s" % (rep + 1, name, {k: (round(v, 2) if isinstance(v, float) else v)
                                                          for k, v in r.items()}), file=sys.stderr)
        idle = idle_rss(b, workroot)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)

    med = lambda name, k: statistics.median(r[k] for r in results[name]) if name in results else None
    ceiling = med(NGINX, "rps")
    express = med(EXPRESS, "accepted")
    webhook = med(WEBHOOK, "accepted")
    lines = ["| target | answered req/s | accepted events/s | processed events/s | p50 ms | p99 ms | CPU (cores) | peak RSS MiB | events per fsync | vs Express | vs webhook | vs nginx |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratio = lambda x, y: "%.1f×" % (x / y) if x and y else "-"
    for name in results:
        acc = med(name, "accepted")
        proc = "-" if "processed" not in results[name][0] else "%.0f (%.0f with the drain)" % (
            med(name, "processed"), med(name, "drained"))
        batch = "-" if "batch" not in results[name][0] else "%.1f" % med(name, "batch")
        lines.append("| %s | %.0f | %.0f | %s | %.2f | %.2f | %.2f | %.1f | %s | %s | %s | %s |" % (
            name, med(name, "rps"), acc, proc, med(name, "p50"), med(name, "p99"), med(name, "cpu"),
            med(name, "rss"), batch, ratio(acc, express), ratio(acc, webhook), ratio(med(name, "rps"), ceiling)))
    lines.append("")
    lines.append("Idle RSS, demo configuration with 2 workers and the example rules: %.1f MiB" % idle)
    if not args.smoke and FULL in results:
        full = med(FULL, "accepted")
        # the rate target names no concurrency; the ratios compare like with like (32 connections)
        best = max(full, med(FULL_256, "accepted") or 0)
        cpu_us = med(FULL, "cpu") / full * 1e6 if full else 0
        e2e = med(E2E, "processed") if E2E in results else 0
        checks = [("FULL accepted ≥ 50,000/s (issue 9; the better of 32 and 256 connections)", best >= 50000, "%.0f" % best),
                  ("FULL ≥ 10× Express (reference), both at %d connections" % args.connections, express and full >= 10 * express, ratio(full, express)),
                  ("FULL ≥ 5× adnanh/webhook, both at %d connections" % args.connections, webhook and full >= 5 * webhook, ratio(full, webhook)),
                  ("FULL ≥ ½ nginx return 200", ceiling and med(FULL, "rps") >= ceiling / 2, ratio(med(FULL, "rps"), ceiling)),
                  ("FULL p99 < 5 ms at %d connections" % args.connections, med(FULL, "p99") < 5, "%.2f ms" % med(FULL, "p99")),
                  ("server CPU per accepted event ≤ 20 µs at FULL (process CPU / accepted)", cpu_us and cpu_us <= 20,
                   "%.0f µs" % cpu_us),
                  ("end to end PR rule ≥ 90% of the FULL ingest rate", e2e >= 0.9 * full,
                   "%.0f processed/s, %.0f%%" % (e2e, 100 * e2e / full if full else 0)),
                  ("idle RSS < 20 MiB with 2 workers", idle < 20, "%.1f MiB" % idle)]
        lines += ["", "| target (issues 9 and 19) | measured | met |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (what, got, "yes" if ok else "**no**") for what, ok, got in checks]
    table = "\n".join(lines)
    header = ("wrk -t2 -c%d -d%ds, %d repetition(s), medians; 1 KB events with UUID v4 ids, signed; "
              "targets in turn, A B C … A B C.\n\n" % (args.connections, args.duration, args.reps))
    emit(header + table, args.out)


if __name__ == "__main__":
    main()
