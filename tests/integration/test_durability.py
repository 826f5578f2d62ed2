"""Dedupe and durability: concurrency, restarts, SIGKILL, a busy or full store, purge."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import BIN, SECRET, Server, ServerTest, event, id_hash, signed_headers


def concurrently(n, fn):
    """Run fn(i) on n threads released at the same instant; return the results in order."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class Hold:
    """Hold SQLite's write lock from outside, so the writer waits (busy) behind it."""
    def __init__(self, path):
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self):
        self.db.execute("ROLLBACK")
        self.db.close()


class Concurrency(ServerTest):
    def test_same_new_event_on_50_connections_is_stored_once(self):
        body = event("evt_race")
        headers = signed_headers(body)
        conns = [self.srv.conn() for _ in range(50)]
        for c in conns:
            c.connect()
        results = concurrently(50, lambda i: self.srv.post(body, headers, conn=conns[i]))
        for c in conns:
            c.close()
        statuses = [r[1]["status"] for r in results]
        self.assertEqual(statuses.count("accepted"), 1, statuses)
        self.assertEqual(statuses.count("duplicate"), 49)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events WHERE id = 'evt_race'"), [(1,)])

    def test_many_distinct_events_in_parallel_all_stored(self):
        def send(i):
            c = self.srv.conn()
            out = [self.srv.post(event("evt_par_%d_%d" % (i, k)), conn=c)[0] for k in range(10)]
            c.close()
            return out
        results = concurrently(40, send)
        self.assertEqual(sum(r.count(200) for r in results), 400)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events")[0][0], 400)
        # group commit: fewer transactions than events
        batches = self.srv.metric("switchyard_store_batch_size_count")
        self.assertLess(batches, 400)


def send_1200_events(srv):
    """1200 events of ~3 KB from 8 connections: ~8 MB of WAL frames."""
    def send(i):
        c = srv.conn()
        for k in range(150):
            srv.post(event("evt_ckpt_%d_%d" % (i, k), pad="x" * 3000), conn=c)
        c.close()
    concurrently(8, send)


class Checkpoints(ServerTest):
    # the mechanics at a small scale: a checkpoint starts at 4 MiB of WAL, the writer steps in at 64
    server_args = {"config_extra": 'store = { url = "sqlite:store.db", checkpoint_at = "4MiB" }'}

    def test_wal_is_checkpointed_in_the_background(self):
        send_1200_events(self.srv)
        # ~8 MB of frames are well past 4 MiB: the main file must have grown
        deadline = time.time() + 10
        while time.time() < deadline and os.path.getsize(self.srv.db) < 2_000_000:
            time.sleep(0.1)
        self.assertGreater(os.path.getsize(self.srv.db), 2_000_000)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(1200,)])


    def test_the_wal_stays_bounded_under_constant_load(self):
        """A passive checkpoint alone never copies the frames written meanwhile, so under a
        constant load the WAL used to grow to the writer's 64 MiB limit. The checkpointer now
        hands the last few frames to the writer and the WAL starts over (the file keeps its
        high-water size, which is what is measured here)."""
        loadgen = os.path.join(os.path.dirname(BIN), "sy-loadgen")
        wal = self.srv.db + "-wal"
        biggest = [0]
        done = threading.Event()

        def watch():
            while not done.is_set():
                if os.path.exists(wal):
                    biggest[0] = max(biggest[0], os.path.getsize(wal))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            p = subprocess.run([loadgen, "--port", str(self.srv.port), "--secret", SECRET, "--connections", "16",
                                "--duration", "8", "--interval", "8"], capture_output=True, text=True, timeout=60)
        finally:
            done.set()
            watcher.join()
        result = dict(kv.split("=") for kv in re.search(r"RESULT (.*)", p.stdout).group(1).split())
        self.assertEqual((result["errors"], result["other"]), ("0", "0"), p.stdout)
        self.assertGreater(int(result["accepted"]), 20000, "too little load to say anything")
        # before, it passed the 64 MiB at which the writer checkpoints itself (74 MB here)
        self.assertLess(biggest[0], 56 * 2**20, "the WAL grew to %d bytes" % biggest[0])


class LateCheckpoints(ServerTest):
    """By default a checkpoint waits for 64 MiB of WAL (issue 19): the later it starts, the
    more index pages it finds written twice and copies once. ~8 MB of frames stay in the WAL,
    every event readable and durable there, and nothing is copied into the main file yet."""

    def test_the_default_checkpoint_waits_for_64_mib(self):
        send_1200_events(self.srv)
        time.sleep(1.5)  # a checkpoint, were one wanted, would have started by now
        self.assertLess(os.path.getsize(self.srv.db), 1_000_000)
        self.assertGreater(os.path.getsize(self.srv.db + "-wal"), 3 * 2**20)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(1200,)])
        # and after a restart they are all there, deduplicated
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])
        self.srv.start()
        status, body, _ = self.srv.post(event("evt_ckpt_3_7", pad="x" * 3000))
        self.assertEqual((status, body["status"]), (200, "duplicate"))


class Restarts(unittest.TestCase):
    def test_dedupe_survives_restart(self):
        srv = Server().start()
        # the start-up line says the mode the database really runs with
        self.assertEqual(srv.count('durability="journal_mode=wal synchronous=full"'), 1, srv.log()[-2000:])
        body = event("evt_restart")
        self.assertEqual(srv.post(body)[1]["status"], "accepted")
        self.assertEqual(srv.stop(), 0, srv.log()[-5000:])
        srv.start()
        self.assertEqual(srv.post(body)[1]["status"], "duplicate")
        self.assertEqual(srv.stop(), 0, srv.log()[-5000:])

    def test_accepted_survives_sigkill_right_after_the_answer(self):
        srv = Server().start()
        ids = ["evt_kill_%d" % i for i in range(30)]
        results = concurrently(30, lambda i: srv.post(event(ids[i]))[1]["status"])
        srv.kill()  # immediately after the last 200
        self.assertEqual(results, ["accepted"] * 30)
        stored = {r[0] for r in srv.rows("SELECT id FROM events")}
        self.assertTrue(set(ids) <= stored, set(ids) - stored)
        srv.start()
        self.assertEqual(srv.post(event(ids[0]))[1]["status"], "duplicate")
        self.assertEqual(srv.stop(), 0, srv.log()[-5000:])

    def test_sigterm_answers_requests_waiting_on_the_store(self):
        srv = Server().start()
        srv.rows("SELECT 1")  # the store file exists
        hold = Hold(srv.db)
        out = []
        t = threading.Thread(target=lambda: out.append(srv.post(event("evt_inflight"))))
        t.start()
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        hold.release()
        t.join(10)
        self.assertEqual(srv.proc.wait(10), 0)
        self.assertEqual(srv.stop(), 0)  # already exited: its status again
        self.assertEqual(out[0][0], 200)
        self.assertEqual(out[0][1]["status"], "accepted")
        self.assertEqual(srv.rows("SELECT id FROM events"), [("evt_inflight",)])


# The schema of the first release (user_version 1), as a store written by it looks.
SCHEMA_V1 = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
  integration TEXT, received_at INTEGER NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'routed');
CREATE TABLE jobs (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
  handler TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due_at INTEGER NOT NULL,
  last_error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, UNIQUE(event_id, handler));
CREATE INDEX jobs_state ON jobs(state, id);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER);
CREATE INDEX kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE replay_requests (id INTEGER PRIMARY KEY, event_id TEXT, requested_at INTEGER NOT NULL);
PRAGMA user_version = 1;
"""

UPGRADE_RULE = """
rule { name = "r", on = "scm.*", run = function(ev) log.info("RAN " .. ev.id .. " kv=" .. tostring(kv.get("k"))) end }
"""


class Upgrade(unittest.TestCase):
    def test_a_store_from_schema_1_is_upgraded_in_place_and_its_jobs_run(self):
        srv = Server(rules={"r.lua": UPGRADE_RULE}, config_extra='retry = { schedule = { "1s" }, jitter = 0 }\n')
        db = sqlite3.connect(srv.db)
        db.executescript(SCHEMA_V1)
        now = int(time.time() * 1000)
        for eid, state, attempts in (("evt_v1_pending", "pending", 0), ("evt_v1_retry", "retrying", 1),
                                     ("evt_v1_done", "done", 1)):
            db.execute("INSERT INTO events(id, type, integration, received_at, headers, body) VALUES "
                       "(?, 'scm.pull_request.created', 'github', ?, '{}', ?)", (eid, now, event(eid).decode()))
            db.execute("INSERT INTO jobs(event_id, handler, state, attempts, due_at, created_at, updated_at) "
                       "VALUES (?, 'r', ?, ?, ?, ?, ?)", (eid, state, attempts, now, now, now))
        db.execute("INSERT INTO kv VALUES ('k', '\"kept\"', NULL)")
        db.commit()
        db.close()
        srv.start()
        self.assertIn("store schema upgraded", srv.log())
        srv.wait_for(lambda: srv.count("RAN evt_v1_pending kv=kept") == 1 and srv.count("RAN evt_v1_retry") == 1)
        self.assertEqual(srv.job_states("evt_v1_retry"), {"r": ("done", 2)})
        self.assertEqual(srv.job_states("evt_v1_done"), {"r": ("done", 1)})
        self.assertEqual(srv.count("RAN evt_v1_done"), 0)
        self.assertEqual(srv.rows("PRAGMA user_version"), [(4,)])
        self.assertEqual(srv.rows("SELECT runs FROM jobs WHERE event_id = 'evt_v1_retry'"), [(2,)])
        # dedupe across the upgrade, and new events on the new schema
        self.assertEqual(srv.post(event("evt_v1_done"))[1]["status"], "duplicate")
        self.assertEqual(srv.post(event("evt_v2_new"))[1]["status"], "accepted")
        srv.wait_for(lambda: srv.count("RAN evt_v2_new") == 1)
        self.assertEqual(srv.stop(), 0, srv.log()[-3000:])
        # a second start finds nothing to upgrade
        srv.start()
        self.assertEqual(srv.stop(), 0)
        self.assertNotIn("store schema upgraded", srv.log())

    def test_a_store_from_a_newer_switchyard_is_refused(self):
        srv = Server()
        db = sqlite3.connect(srv.db)
        db.execute("PRAGMA user_version = 99")
        db.close()
        with self.assertRaises(RuntimeError) as e:
            srv.start()
        self.assertIn("the store has schema version 99; this switchyard understands 4", str(e.exception))


# Round 1's last schema (user_version 3): version 1, the journal (2), the normalized envelopes
# (3). Event ids sit behind a UNIQUE index; jobs point at their event by id.
SCHEMA_V3 = SCHEMA_V1.replace("PRAGMA user_version = 1;", "") + """
ALTER TABLE jobs ADD COLUMN key TEXT;
ALTER TABLE jobs ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_key ON jobs(key, id) WHERE key IS NOT NULL AND state = 'pending';
CREATE TABLE calls (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL, n INTEGER NOT NULL, idem_key TEXT, method TEXT NOT NULL, path TEXT NOT NULL,
  request TEXT, status INTEGER NOT NULL, response TEXT, truncated INTEGER NOT NULL DEFAULT 0,
  replayed INTEGER NOT NULL DEFAULT 0, dry_run INTEGER NOT NULL DEFAULT 0, error TEXT, at INTEGER NOT NULL,
  ms REAL NOT NULL DEFAULT 0);
CREATE INDEX calls_job ON calls(job_id, id);
ALTER TABLE events ADD COLUMN category TEXT;
ALTER TABLE events ADD COLUMN norm TEXT;
ALTER TABLE events ADD COLUMN reason TEXT;
CREATE INDEX events_quarantined ON events(seq) WHERE state = 'quarantined';
PRAGMA user_version = 3;
"""

V3_RULE = """
rule { name = "r", on = "scm.*", key = "data.url",
       run = function(ev) log.info("RAN " .. ev.id) end }
"""


def v3_store(path, bulk):
    """A schema-3 store as round 1 left it: 'bulk' unrouted events with UUID-like ids, and one
    event each with a pending (keyed), a dead (with a journaled call) and a done job, and a
    quarantined one."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V3)
    now = int(time.time() * 1000)
    pad = "x" * 900
    db.executemany("INSERT INTO events(id, type, integration, received_at, headers, body, state) "
                   "VALUES (?, 'bulk.item.created', 'github', ?, '{}', ?, 'unrouted')",
                   (("%08x-%04x-4%03x-8%03x-%012x" % (i * 2654435761 % 2**32, i % 65536, i % 4096,
                                                         (i * 7) % 4096, i * 11400714819323198485 % 2**48),
                     now - 1000 + i % 1000, '{"n": %d, "pad": "%s"}' % (i, pad)) for i in range(bulk)))
    for eid, state, key in (("evt_v3_pending", "pending", "k1"), ("evt_v3_dead", "dead", None),
                            ("evt_v3_done", "done", None)):
        db.execute("INSERT INTO events(id, type, integration, received_at, headers, body) VALUES "
                   "(?, 'scm.pull_request.created', 'github', ?, '{}', ?)", (eid, now, event(eid).decode()))
        db.execute("INSERT INTO jobs(event_id, handler, state, attempts, due_at, created_at, updated_at, "
                   "key, runs) VALUES (?, 'r', ?, ?, ?, ?, ?, ?, ?)",
                   (eid, state, 0 if state == "pending" else 3, now, now, now, key, 0 if state == "pending" else 3))
    db.execute("INSERT INTO calls(job_id, attempt, n, idem_key, method, path, status, response, at) "
               "SELECT id, 3, 1, 'evt_v3_dead/r/1', 'POST', '/ticketing/x/tickets', 500, '{\"e\": 1}', ? "
               "FROM jobs WHERE event_id = 'evt_v3_dead'", (now,))
    db.execute("INSERT INTO events(id, type, integration, received_at, headers, body, state, reason) VALUES "
               "('evt_v3_quarantined', 'unknown', NULL, ?, '{}', '{\"no\": \"type\"}', 'quarantined', "
               "'no event type')", (now,))
    db.commit()
    db.close()
    return bulk + 4


class UpgradeToFour(unittest.TestCase):
    """Schema 4 drops the UNIQUE index on event ids: the events and jobs tables are rebuilt."""

    def test_a_schema_3_store_is_rebuilt_and_keeps_everything(self):
        srv = Server(rules={"r.lua": V3_RULE}, config_extra='retry = { schedule = { "1s" }, jitter = 0 }\n')
        total = v3_store(srv.db, 2000)
        srv.start()
        try:
            self.assertRegex(srv.log(), r"store schema upgraded from=3 to=4")
            self.assertIn("stored event ids loaded events=%d" % total, srv.log())
            self.assertEqual(srv.rows("PRAGMA user_version"), [(4,)])
            self.assertEqual(srv.rows("PRAGMA integrity_check"), [("ok",)])
            self.assertEqual(srv.rows("PRAGMA foreign_key_check"), [])
            # no b-tree index on ids any more: the index in arrival order and the quarantine's
            self.assertEqual(sorted(r[0] for r in srv.rows(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'events' AND type = 'index'")),
                ["events_ids", "events_quarantined"])
            rows = srv.rows("SELECT id, idh FROM events")
            self.assertEqual(len(rows), total)
            self.assertEqual([r for r in rows if r[1] != id_hash(r[0])], [])
            self.assertEqual(srv.rows("SELECT count(*) FROM jobs AS j JOIN events AS e ON e.seq = j.event_seq "
                                      "AND e.id = j.event_id"), [(3,)])
            self.assertEqual(srv.rows("SELECT c.idem_key FROM calls AS c JOIN jobs AS j ON j.id = c.job_id "
                                      "WHERE j.event_id = 'evt_v3_dead'"), [("evt_v3_dead/r/1",)])
            self.assertEqual(srv.rows("SELECT state, reason FROM events WHERE id = 'evt_v3_quarantined'"),
                             [("quarantined", "no event type")])
            # the pending job runs; the done one does not run again
            srv.wait_for(lambda: srv.count("RAN evt_v3_pending") == 1)
            # every stored id is a duplicate, across the rebuild
            for eid in ["evt_v3_done", "evt_v3_dead", rows[0][0], rows[1234][0], rows[-5][0]]:
                self.assertEqual(srv.post(event(eid))[1]["status"], "duplicate", eid)
            self.assertEqual(srv.post(event("evt_v4_new"))[1]["status"], "accepted")
            srv.wait_for(lambda: srv.count("RAN evt_v4_new") == 1)
            # the dead job replays, found by its event's id, and its old journal is still shown
            status, body, _ = srv.admin("/admin/events/evt_v3_dead/replay", method="POST", body=b"{}",
                                        headers={"content-type": "application/json"})
            self.assertEqual(status, 200, body)
            srv.wait_for(lambda: srv.count("RAN evt_v3_dead") == 1)
            rc, out, err = srv.cli("events", "show", "evt_v3_dead")
            self.assertEqual(rc, 0, err)
            self.assertIn("evt_v3_dead/r/1", out)
            self.assertEqual(srv.count("RAN evt_v3_done"), 0)
        finally:
            self.assertEqual(srv.stop(), 0, srv.log()[-3000:])
        srv.start()
        self.assertEqual(srv.stop(), 0)
        self.assertNotIn("store schema upgraded", srv.log())

    def test_the_cli_refuses_a_store_it_cannot_read_and_says_what_to_do(self):
        srv = Server()
        v3_store(srv.db, 10)
        for args in (("events",), ("events", "show", "evt_v3_done"), ("replay", "evt_v3_dead")):
            rc, out, err = srv.cli(*args)
            self.assertEqual(rc, 1, (args, out, err))
            self.assertIn("the store has schema version 3 and this switchyard reads 4: start this "
                          "version's server once (it upgrades the store)", err, args)
        db = sqlite3.connect(srv.db)
        self.assertEqual(db.execute("PRAGMA user_version").fetchall(), [(3,)])  # nothing written
        self.assertEqual(db.execute("SELECT count(*) FROM replay_requests").fetchall(), [(0,)])
        db.close()

    def test_an_upgrade_killed_midway_runs_again_whole(self):
        srv = Server()
        total = v3_store(srv.db, 150000)
        proc = subprocess.Popen([BIN, "serve", "-c", srv.config], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            for line in proc.stderr:
                if b"store schema upgrade to 4" in line:
                    break
            # the rebuild's transaction is open once its rollback journal holds something
            journal = srv.db + "-journal"
            deadline = time.time() + 30
            while time.time() < deadline and not (os.path.exists(journal) and os.path.getsize(journal) > 0):
                time.sleep(0.001)
            self.assertTrue(os.path.exists(journal), "the upgrade ended before it could be killed")
            proc.kill()
            proc.wait()
        finally:
            proc.stderr.close()
        db = sqlite3.connect(srv.db)  # reading rolls the journal back
        self.assertEqual(db.execute("PRAGMA user_version").fetchall(), [(3,)])
        self.assertEqual(db.execute("SELECT count(*) FROM events").fetchall(), [(total,)])
        db.close()
        srv.start(timeout=120)
        try:
            self.assertRegex(srv.log(), r"store schema upgraded from=3 to=4")
            self.assertEqual(srv.rows("SELECT count(*) FROM events"), [(total,)])
            self.assertEqual(srv.rows("PRAGMA integrity_check"), [("ok",)])
            some = srv.rows("SELECT id FROM events WHERE seq IN (1, 75000, 150000)")
            self.assertEqual(len(some), 3)
            for (eid,) in some:
                self.assertEqual(srv.post(event(eid))[1]["status"], "duplicate", eid)
        finally:
            self.assertEqual(srv.stop(), 0, srv.log()[-3000:])


class FullQueue(ServerTest):
    server_args = {"config_extra": 'store = { url = "sqlite:store.db", queue = 2, max_batch = 1 }'}

    def test_full_queue_answers_503_never_200(self):
        self.srv.rows("SELECT 1")
        hold = Hold(self.srv.db)
        results = []
        threads = []
        for i in range(6):
            th = threading.Thread(target=lambda i=i: results.append((i, self.srv.post(event("evt_full_%d" % i)))))
            th.start()
            threads.append(th)
            time.sleep(0.1)  # in order: the first is taken by the writer, two wait, three overflow
        time.sleep(0.3)
        rejected = [r for r in results if r[1][0] == 503]
        self.assertEqual(len(rejected), 3, [(i, r[0]) for i, r in results])
        for _, (status, data, resp) in rejected:
            self.assertEqual(data["error"], "unavailable")
            self.assertEqual(resp.getheader("retry-after"), "1")
        hold.release()
        for th in threads:
            th.join(10)
        ok = sorted(i for i, r in results if r[0] == 200)
        self.assertEqual(len(ok), 3)
        stored = {r[0] for r in self.srv.rows("SELECT id FROM events")}
        self.assertEqual(stored, {"evt_full_%d" % i for i in ok})  # nothing rejected was stored
        # the sender's retry of a 503 is accepted
        i = next(i for i, r in results if r[0] == 503)
        self.assertEqual(self.srv.post(event("evt_full_%d" % i))[1]["status"], "accepted")


class StoreFailure(ServerTest):
    def test_store_error_answers_503_and_readyz_follows(self):
        self.assertEqual(self.srv.admin("/readyz")[0], 200)
        self.srv.rows("SELECT 1")
        hold = Hold(self.srv.db)  # longer than the writer's 5 s busy timeout
        status, data, resp = self.srv.post(event("evt_busy"))
        self.assertEqual((status, data["error"]), (503, "unavailable"))
        self.assertEqual(resp.getheader("retry-after"), "1")
        self.assertEqual(self.srv.admin("/readyz")[0], 503)
        hold.release()
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])
        self.assertEqual(self.srv.post(event("evt_busy"))[1]["status"], "accepted")
        self.assertEqual(self.srv.admin("/readyz")[0], 200)
        self.assertGreaterEqual(self.srv.metric("switchyard_store_errors_total"), 1)


class Purge(ServerTest):
    server_args = {"config_extra": 'dedupe_retention = "2s"'}

    def test_ids_older_than_retention_are_purged(self):
        body = event("evt_purge")
        self.assertEqual(self.srv.post(body)[1]["status"], "accepted")
        deadline = time.time() + 10
        while time.time() < deadline and self.srv.rows("SELECT count(*) FROM events")[0][0] > 0:
            time.sleep(0.25)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])
        self.assertEqual(self.srv.post(body)[1]["status"], "accepted")


class PurgeKeepsUnfinished(ServerTest):
    server_args = {"config_extra": 'dedupe_retention = "2s"\nretry = { schedule = {}, jitter = 0 }\n',
                   "rules": {"r.lua": 'rule { name = "r", on = "scm.*", run = function(ev) '
                                      'log.info("RAN " .. ev.id); error("down") end }\n',
                             "ok.lua": 'rule { name = "ok", on = "ticketing.*", run = function(ev) end }\n'}}

    def test_an_event_with_a_dead_job_outlives_the_retention(self):
        self.assertEqual(self.srv.post(event("evt_purge_dead"))[1]["status"], "accepted")
        self.assertEqual(self.srv.post(event("evt_purge_done", etype="ticketing.ticket.created"))[1]["status"],
                         "accepted")
        self.srv.wait_for(lambda: self.srv.job_states("evt_purge_dead").get("r", ("",))[0] == "dead",
                          what="the job dead")
        # the finished one goes with the retention; the dead one stays to be seen and replayed
        self.srv.wait_for(lambda: self.srv.rows("SELECT id FROM events") == [("evt_purge_dead",)],
                          timeout=15, what="the finished event purged")
        time.sleep(2.5)  # another purge pass or more
        self.assertEqual(self.srv.rows("SELECT id FROM events"), [("evt_purge_dead",)])
        status, body, _ = self.srv.admin("/admin/events/evt_purge_dead/replay", method="POST", body=b"{}",
                                         headers={"content-type": "application/json"})
        self.assertEqual((status, json.loads(body)["replayed"]), (200, 1), body)
        self.srv.wait_for(lambda: self.srv.count("RAN evt_purge_dead") == 2, what="the replay ran")


if __name__ == "__main__":
    unittest.main(verbosity=2)
