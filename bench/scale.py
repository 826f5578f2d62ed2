#!/usr/bin/env python3
"""How the durable ingest rate holds up as the work grows (issue 19), in one run.

usage: scale.py BUILD_DIR [--duration S] [--connections C] [--stored N,...] [--bodies KB,...]
                          [--rules N,...] [--baseline OLD_BUILD_DIR] [--repeat N] [--smoke] [--out FILE]

Every row is switchyard with SQLite synchronous=FULL, driven by sy-loadgen (signs as it
sends; UUID v4 ids, new in every request), one row at a time on this machine:
  - stored:  the store already holds N events within retention (UUID ids, 1 KB bodies,
             received over the last six days), written straight into the server's schema
             before it starts; the rate is compared with the empty store's;
  - bodies:  1 KB, 16 KB and 256 KB bodies into an empty store (events/s and MB/s);
  - rules:   N Lua rules loaded, one of them on the event's type (each event gets one
             job, run by 2 workers while the ingest goes on); the others on other types.
Prints a Markdown table: accepted events/s, MB/s of bodies, p50/p99 (sy-loadgen), server
CPU per accepted event and its split over the threads (/proc/PID/task: the HTTP loops,
the store's writer, its checkpointer, the rule workers), and the ratio to the first row of
its section and to the empty store without rules.
--checkpoint-at SIZE,... adds rows with those store.checkpoint_at values at the largest
--stored count (one preloaded store for all).
--baseline OLD_BUILD_DIR adds the stored rows once more for the older build and this one,
alternating, two rounds, each build on its own preloaded store of each size (rows made alike, in
each build's schema; this build's sy-loadgen for both).
--repeat N measures the stored rows N times, the sizes taking turns, and reports each size's
round of median rate (the machine's moments move single rows by a quarter).
--smoke: tiny sizes (stored 0 and 2,000; bodies 1 and 16; rules 1 and 10; 1 s), checks nothing.
"""
import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

import run as bench

SECRET = bench.SECRET
TYPES = ["ticketing.ticket.created", "ticketing.ticket.updated", "incident.triggered",
         "incident.resolved", "identity.user.created", "scm.push", "scm.pull_request.merged",
         "scm.pull_request.closed", "communication.message.created", "observability.alert.fired"]


def write_config(d, port, admin, rules, checkpoint_at=None):
    rules_lua = ""
    if rules:
        os.makedirs(os.path.join(d, "rules"))
        for i in range(rules):
            on = "scm.pull_request.created" if i == 0 else "%s.r%d" % (TYPES[i % len(TYPES)], i)
            with open(os.path.join(d, "rules", "r%03d.lua" % i), "w") as f:
                f.write('rule { name = "r%d", on = "%s", run = function(ev) '
                        'local n = #(ev.data.title or "") end }\n' % (i, on))
        rules_lua = 'rules = { "%s/rules/*.lua" }\nworkers = 2\n' % d
    ckpt = 'checkpoint_at = "%s"' % checkpoint_at if checkpoint_at else ""
    with open(os.path.join(d, "switchyard.lua"), "w") as f:
        f.write(f"""
listen = {{ "127.0.0.1:{port}" }}
admin = {{ listen = "127.0.0.1:{admin}" }}
webhook = {{ secrets = {{ "{SECRET}" }}, max_body = "1MiB" }}
store = {{ url = "sqlite:store.db", synchronous = "full", {ckpt} }}
log = {{ level = "info" }}
{rules_lua}
""")


def target(build, d, rules=0, checkpoint_at=None):
    port, admin = bench.free_port(), bench.free_port()
    write_config(d, port, admin, rules, checkpoint_at)
    return bench.Target("scale", [os.path.join(build, "switchyard"), "serve", "-c",
                                  os.path.join(d, "switchyard.lua")],
                        port, metrics_port=admin, workdir=d, kind="switchyard")


def preload(build, d, n):
    """Create the store through the server (its schema, its migrations), then add n events
    as the server would have stored them, in random id order."""
    t = target(build, d)
    t.start()
    t.stop()
    db = sqlite3.connect(os.path.join(d, "store.db"))
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    rnd = random.Random(int.from_bytes(os.urandom(8), "little"))
    now_ms = int(time.time() * 1000)
    span = 6 * 86400 * 1000
    pad = "x" * 700
    batch = []

    def rows():
        for i in range(n):
            eid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            at = now_ms - span + span * i // max(n, 1)
            env = {"id": eid, "type": "scm.pull_request.created",
                   "integration": {"id": "int_github_123", "type": "github", "name": "GitHub (acme)"},
                   "category": "scm", "timestamp": "2024-01-15T10:30:00Z"}
            body = json.dumps(dict(env, data={"number": i, "title": "Add OAuth login",
                                              "url": "https://github.com/acme/payments-api/pull/%d" % i,
                                              "description": pad}), separators=(",", ":"))
            headers = json.dumps({"content-type": "application/json", "x-unizo-timestamp": str(at // 1000),
                                  "x-unizo-signature": "v1=" + "%064x" % rnd.getrandbits(256)},
                                 separators=(",", ":"))
            yield (eid, "scm.pull_request.created", "int_github_123", at, headers, body, "routed",
                   "scm", json.dumps(env, separators=(",", ":")), bench.id_hash(eid))

    # schema 4 keeps each id's hash beside it (an older build's store, for an A/B, does not)
    hashed = any(col[1] == "idh" for col in db.execute("PRAGMA table_info(events)"))
    it = rows()
    while True:
        batch = [r if hashed else r[:-1] for _, r in zip(range(50000), it)]
        if not batch:
            break
        db.executemany("INSERT INTO events(id, type, integration, received_at, headers, body, state, "
                       "category, norm%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?%s)"
                       % ((", idh", ", ?") if hashed else ("", "")), batch)
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def thread_cpu(pid):
    """{thread name: CPU seconds} of one process, threads of the same name summed."""
    out, ticks = {}, os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except OSError:
            continue
        name = re.sub(r"-\d+$", "", stat[stat.index("(") + 1:stat.rindex(")")])
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def loadgen(t, args, body_kb=1):
    before = t.metrics()
    cpu0, _ = bench.proc_stats(t.proc.pid)
    threads0 = thread_cpu(t.proc.pid)
    out = subprocess.run([args.loadgen, "--port", str(t.port), "--secret", SECRET,
                          "--connections", str(args.connections), "--duration", str(args.duration),
                          "--interval", str(args.duration), "--body-kb", str(body_kb)],
                         capture_output=True, text=True, timeout=args.duration + 120)
    cpu1, _ = bench.proc_stats(t.proc.pid)
    threads1 = thread_cpu(t.proc.pid)
    after = t.metrics()
    m = re.search(r"RESULT duration_s=([\d.]+) answered=(\d+) accepted=(\d+) duplicate=(\d+) .*"
                  r"p50_ms=([\d.]+) p99_ms=([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError("sy-loadgen output not understood:\n" + out.stdout + out.stderr)
    dur = float(m.group(1))
    key = 'switchyard_webhook_requests_total{result="accepted"}'
    accepted = after.get(key, 0) - before.get(key, 0)
    per_event = lambda name: (threads1.get(name, 0) - threads0.get(name, 0)) / accepted * 1e6 if accepted else 0
    return {"rate": accepted / dur, "mbs": accepted * body_kb / 1024 / dur,
            "p50": float(m.group(5)), "p99": float(m.group(6)),
            "cpu_us": (cpu1 - cpu0) / accepted * 1e6 if accepted else 0,
            "http_us": per_event("sy-http"), "store_us": per_event("sy-store"),
            "ckpt_us": per_event("sy-checkpoint"), "worker_us": per_event("sy-worker")}


def measure(build, workroot, args, label, stored=0, body_kb=1, rules=0, cache=None, checkpoint_at=None):
    d = tempfile.mkdtemp(prefix="sy-scale-", dir=workroot)
    if stored:
        # one preloaded store per build and size: builds of different schemas each get theirs
        seed = cache.get((build, stored)) if cache is not None else None
        if seed is None:
            seed = tempfile.mkdtemp(prefix="sy-scale-seed-", dir=workroot)
            t0 = time.time()
            preload(build, seed, stored)
            print("preloaded %d events in %.0f s" % (stored, time.time() - t0), file=sys.stderr)
            if cache is not None:
                cache[(build, stored)] = seed
        shutil.copy(os.path.join(seed, "store.db"), os.path.join(d, "store.db"))
    t = target(build, d, rules, checkpoint_at)
    os.sync()
    t.start()
    try:
        r = loadgen(t, args, body_kb)
    finally:
        t.stop()
        shutil.rmtree(d, ignore_errors=True)
        os.sync()
    print("%-40s %s" % (label, {k: round(v, 2) for k, v in r.items()}), file=sys.stderr)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--stored", default="0,1000000,5000000")
    ap.add_argument("--bodies", default="1,16,256")
    ap.add_argument("--rules", default="1,10,100")
    ap.add_argument("--baseline", help="an older build dir: the stored rows A/B, alternating, two rounds")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure the stored rows this many times, taking turns; report the medians")
    ap.add_argument("--checkpoint-at", default="",
                    help="store.checkpoint_at values (\"16MiB,64MiB\"): rows at the largest --stored")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    args.loadgen = os.path.join(build, "sy-loadgen")  # this build's, for both sides of an A/B
    if args.smoke:
        args.duration, args.stored, args.bodies, args.rules = 1, "0,2000", "1,16", "1,10"
    nums = lambda s: [int(x) for x in s.split(",") if x]
    workroot = tempfile.mkdtemp(prefix="sy-scale-", dir=os.environ.get("SY_BENCH_DIR", "/var/tmp"))
    sections = []
    try:
        cache = {}
        # with --repeat, the stored counts take turns (0, 1M, 5M, 0, 1M, ...) and each row is
        # the round of median rate: one slow or fast moment of the machine moves no row
        runs = {}
        for rnd in range(args.repeat):
            for n in nums(args.stored):
                runs.setdefault(n, []).append(measure(build, workroot, args, "stored %d, round %d" % (n, rnd + 1),
                                                      stored=n, cache=cache))
        median = lambda rs: sorted(rs, key=lambda r: r["rate"])[len(rs) // 2]
        sections.append(("events already stored", [("%s stored" % format(n, ",") + (
            " (median of %d)" % args.repeat if args.repeat > 1 else ""), median(runs[n])) for n in nums(args.stored)]))
        sections.append(("body size", [("%d KB bodies" % kb, measure(
            build, workroot, args, "body %d KB" % kb, body_kb=kb)) for kb in nums(args.bodies)]))
        sections.append(("rules loaded", [("%d rules" % n, measure(
            build, workroot, args, "rules %d" % n, rules=n)) for n in nums(args.rules)]))
        sizes = [x for x in args.checkpoint_at.split(",") if x]
        if sizes:
            n = max(nums(args.stored))
            sections.append(("store.checkpoint_at", [("%s at %s stored" % (c, format(n, ",")), measure(
                build, workroot, args, "checkpoint_at %s" % c, stored=n, cache=cache, checkpoint_at=c))
                for c in sizes]))
        if args.baseline:
            ab = []
            for n in nums(args.stored):
                for rnd in (1, 2):
                    for who, b in (("baseline", os.path.abspath(args.baseline)), ("this build", build)):
                        label = "%s stored, %s, round %d" % (format(n, ","), who, rnd)
                        ab.append((label, measure(b, workroot, args, label, stored=n, cache=cache)))
            sections.append(("A/B against the baseline", ab))
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    lines = ["| section | row | accepted events/s | MB/s | p50 ms | p99 ms | server CPU µs per event "
             "| of which loops / writer / checkpoints / workers | vs first row | vs empty store, no rules |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda x, y: "%.0f%%" % (100 * x / y) if y else "-"
    base = sections[0][1][0][1]["rate"] if sections[0][1] else 0
    for name, rows in sections:
        first = rows[0][1]["rate"] if rows else 0
        for label, r in rows:
            lines.append("| %s | %s | %.0f | %.1f | %.2f | %.2f | %.1f | %.1f / %.1f / %.1f / %.1f | %s | %s |" % (
                name, label, r["rate"], r["mbs"], r["p50"], r["p99"], r["cpu_us"], r["http_us"],
                r["store_us"], r["ckpt_us"], r["worker_us"], pct(r["rate"], first), pct(r["rate"], base)))
    header = ("sy-loadgen, %d connections, %d s per row; switchyard with SQLite synchronous=FULL; "
              "UUID v4 ids.\n\n" % (args.connections, args.duration))
    bench.emit(header + "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
