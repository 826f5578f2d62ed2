"""Several instances on one Redis: shared dedupe, jobs run once, takeover, Redis restarts."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Server, event, free_port, signed_headers


class Redis:
    """A private redis-server with appendonly + appendfsync always, restartable on its port."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sy-redis-")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def cmd(self, *args):
        """One command over RESP; returns str, int, list or None."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        payload = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(str(a).encode()), a) for a in args)
        s.sendall(payload.encode())
        f = s.makefile("rb")

        def read():
            line = f.readline().decode().rstrip("\r\n")
            kind, rest = line[0], line[1:]
            if kind in "+-":
                return rest
            if kind == ":":
                return int(rest)
            if kind == "$":
                n = int(rest)
                if n < 0:
                    return None
                data = f.read(n + 2)[:-2]
                return data.decode()
            if kind == "*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise ValueError(line)
        try:
            return read()
        finally:
            s.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


RULE = """
rule {
  name = "once",
  on = "scm.*",
  run = function(ev)
    if ev.data.slow then local t = os.clock() while os.clock() - t < 3 do end end
    log.info("RAN " .. ev.id)
  end,
}
"""


def server(redis, name, visibility="10m"):
    extra = f"""
store = {{ url = "redis://127.0.0.1:{redis.port}/0", instance = "{name}", visibility = "{visibility}" }}
workers = 2
lua = {{ instruction_limit = 100000000000 }}
retry = {{ schedule = {{ "1s" }}, jitter = 0 }}
"""
    return Server(rules={"once.lua": RULE}, config_extra=extra).start()


def ran(servers, eid):
    return sum(s.count("RAN %s\n" % eid) + s.count("RAN %s " % eid) for s in servers)


class SeveralInstances(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        self.a = server(self.redis, "a", visibility="3s")
        self.b = server(self.redis, "b", visibility="3s")

    def tearDown(self):
        for s in (self.a, self.b):
            if s.proc is not None:
                self.assertEqual(s.stop(), 0, s.log()[-3000:])
        self.redis.close()

    def test_one_id_through_every_endpoint_is_one_event(self):
        # with and without a category, on either instance: the id alone makes the duplicate
        body = event("evt_cats")
        answers = [srv.post(body, signed_headers(body), path=path)[1]["status"]
                   for srv, path in ((self.a, "/webhooks/unizo"), (self.b, "/webhooks/unizo/scm"),
                                     (self.a, "/webhooks/unizo/ticketing"))]
        self.assertEqual(answers, ["accepted", "duplicate", "duplicate"])
        self.a.wait_for(lambda: ran((self.a, self.b), "evt_cats") == 1)
        time.sleep(1)
        self.assertEqual(ran((self.a, self.b), "evt_cats"), 1)

    def test_the_same_event_on_both_is_accepted_once_and_runs_once(self):
        body = event("evt_both")
        headers = signed_headers(body)
        results = []
        barrier = threading.Barrier(2)

        def send(srv):
            barrier.wait()
            results.append(srv.post(body, headers)[1]["status"])
        threads = [threading.Thread(target=send, args=(s,)) for s in (self.a, self.b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), ["accepted", "duplicate"])
        self.a.wait_for(lambda: ran((self.a, self.b), "evt_both") == 1)
        time.sleep(1)
        self.assertEqual(ran((self.a, self.b), "evt_both"), 1)
        # nothing is kept forever: the finished job and the event's job set expire with the event
        self.a.wait_for(lambda: self.redis.cmd("HGET", "switchyard:job:evt_both\nonce", "state") == "done")
        for key in ("switchyard:job:evt_both\nonce", "switchyard:evjobs:evt_both", "switchyard:ev:evt_both",
                    "switchyard:seen:evt_both"):
            self.assertGreater(self.redis.cmd("TTL", key), 0, key)

    def test_a_thousand_events_over_both_run_once_each(self):
        def send(srv, lo, hi):
            c = srv.conn()
            for i in range(lo, hi):
                self.assertEqual(srv.post(event("evt_k%d" % i), conn=c)[0], 200)
            c.close()
        threads = [threading.Thread(target=send, args=(self.a if k % 2 else self.b, k * 125, (k + 1) * 125))
                   for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.a.wait_for(lambda: self.a.count("RAN evt_k") + self.b.count("RAN evt_k") >= 1000, timeout=60,
                        what="1000 runs")
        time.sleep(1)
        lines = [l for s in (self.a, self.b) for l in s.lines if "RAN evt_k" in l]
        ids = [l.split("RAN ")[1].split()[0] for l in lines]
        self.assertEqual(len(ids), 1000)
        self.assertEqual(len(set(ids)), 1000)
        self.assertGreater(self.a.count("RAN evt_k"), 0)  # both instances did work
        self.assertGreater(self.b.count("RAN evt_k"), 0)

    def test_a_killed_instances_job_is_finished_by_the_other(self):
        # the slow job lands on whichever instance reads it first; kill that one mid-job
        self.a.post(event("evt_slow", slow=True))
        deadline = time.time() + 10
        victim = None
        while victim is None and time.time() < deadline:
            time.sleep(0.2)
            # running = delivered to a consumer and not acknowledged
            pending = self.redis.cmd("XPENDING", "switchyard:jobs", "workers")
            if pending and pending[0]:
                owner = pending[3][0][0]
                victim = self.a if owner.startswith("a-") else self.b
        self.assertIsNotNone(victim, "the slow job was never picked up")
        survivor = self.b if victim is self.a else self.a
        victim.kill()
        survivor.wait_for(lambda: survivor.count("RAN evt_slow") == 1, timeout=30, what="takeover")
        self.assertEqual(self.redis.cmd("HGET", "switchyard:job:evt_slow\nonce", "state"), "done")


FLAKY = """
rule {
  name = "needs-fix",
  on = "scm.*",
  run = function(ev)
    if not kv.get("fixed") then error("not fixed for " .. ev.id) end
    log.info("FIXED " .. ev.id)
  end,
}
"""


class InspectAndReplay(unittest.TestCase):
    def test_events_show_and_replay_on_redis(self):
        import json
        redis = Redis()
        extra = f"""
store = {{ url = "redis://127.0.0.1:{redis.port}/0", instance = "i" }}
retry = {{ schedule = {{}}, jitter = 0 }}
"""
        srv = Server(rules={"f.lua": FLAKY}, config_extra=extra).start()
        for eid in ("evt_f1", "evt_f2"):
            srv.post(event(eid))
        key = "switchyard:job:%s\nneeds-fix"
        srv.wait_for(lambda: redis.cmd("HGET", key % "evt_f2", "state") == "dead"
                     and redis.cmd("HGET", key % "evt_f1", "state") == "dead", what="dead")
        rc, out, _ = srv.cli("events", "--status", "dead")
        self.assertEqual(rc, 0)
        self.assertIn("evt_f1", out)
        rc, out, _ = srv.cli("events", "show", "evt_f1")
        shown = json.loads(out)
        self.assertEqual(shown["jobs"][0]["state"], "dead")
        self.assertIn("not fixed for evt_f1", shown["jobs"][0]["last_error"])
        self.assertEqual(shown["headers"]["x-unizo-signature"], "(redacted)")
        status, body, _ = srv.admin("/admin/events?status=dead")
        self.assertEqual(len(json.loads(body)["events"]), 2)
        self.assertEqual(srv.admin("/admin/events/nope")[0], 404)
        redis.cmd("SET", "switchyard:kv:fixed", "true")
        rc, out, _ = srv.cli("replay", "evt_f1")
        self.assertEqual(rc, 0, out)
        srv.wait_for(lambda: srv.count("FIXED evt_f1") == 1, what="CLI replay")
        status, body, _ = srv.admin("/admin/events/evt_f2/replay", method="POST")
        self.assertEqual(json.loads(body)["replayed"], 1)
        srv.wait_for(lambda: srv.count("FIXED evt_f2") == 1, what="admin replay")
        self.assertEqual(redis.cmd("SCARD", "switchyard:dead"), 0)
        self.assertEqual(srv.stop(), 0)
        redis.close()


class RedisRestart(unittest.TestCase):
    def test_redis_restarted_mid_run_loses_nothing_and_servers_recover(self):
        redis = Redis()
        srv = server(redis, "a")
        accepted = []
        for i in range(50):
            status, data, _ = srv.post(event("evt_r%d" % i))
            if data.get("status") == "accepted":
                accepted.append("evt_r%d" % i)
        self.assertEqual(len(accepted), 50)
        redis.stop()
        status, data, resp = srv.post(event("evt_down"))
        self.assertEqual((status, data["error"]), (503, "unavailable"))
        self.assertEqual(resp.getheader("retry-after"), "1")
        self.assertEqual(srv.admin("/readyz")[0], 503)
        redis.start()  # same port, same append-only file
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="ready again")
        # every acknowledged event is still known, and the server takes new ones without a restart
        for eid in accepted:
            self.assertEqual(redis.cmd("EXISTS", "switchyard:seen:" + eid), 1, eid)
        self.assertEqual(srv.post(event("evt_r0"))[1]["status"], "duplicate")
        self.assertEqual(srv.post(event("evt_down"))[1]["status"], "accepted")
        srv.wait_for(lambda: srv.count("RAN evt_down") == 1, what="jobs flow again")
        self.assertEqual(srv.stop(), 0)
        redis.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
