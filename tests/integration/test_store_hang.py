"""The admin listener while the store hangs: a real redis-server stopped with SIGSTOP mid-run,
a SQLite write lock held from another connection, a SQLite reader stalled (a test hook). The
probes and /metrics answer at once and say why, store requests answer 503 within their
deadline, the rest of the admin listener goes on, and everything recovers without a restart,
losing nothing that was acknowledged."""
import json
import os
import signal
import threading
import time
import unittest

from harness import Server, event
from test_durability import Hold
from test_redis import Redis

RULE = 'rule { name = "r", on = "scm.*", run = function(ev) log.info("RAN " .. ev.id) end }\n'
DEADLINE_S = 0.5  # admin.store_timeout in these tests
FAST_S = 0.1      # what "at once" means for a probe


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


class ProbeChecks:
    """Assertions shared by the cases: the listener's answers while the store is stuck."""

    def probes_answer_at_once(self, srv, why_word, rounds=5):
        for _ in range(rounds):
            (status, body, _), took = timed(lambda: srv.admin("/healthz"))
            self.assertEqual(status, 200)
            self.assertLess(took, FAST_S, "/healthz took %.3f s" % took)
            self.assertEqual(json.loads(body)["status"], "ok")
            (status, body, resp), took = timed(lambda: srv.admin("/readyz"))
            self.assertLess(took, FAST_S, "/readyz took %.3f s" % took)
            self.assertEqual(status, 503, body)
            ready = json.loads(body)
            self.assertEqual(ready["status"], "unavailable")
            self.assertIn(why_word, ready["store"])
            self.assertEqual(resp.getheader("retry-after"), "1")
            (status, text, _), took = timed(lambda: srv.admin("/metrics"))
            self.assertLess(took, FAST_S, "/metrics took %.3f s" % took)
            self.assertEqual(status, 200)
            self.assertIn("switchyard_webhook_requests_total", text)
            (status, _, _), took = timed(lambda: srv.admin("/"))  # the console's page
            self.assertLess(took, FAST_S, "the console took %.3f s" % took)
            self.assertEqual(status, 200)
            time.sleep(0.2)

    def answers_503_within_the_deadline(self, srv, path, method="GET", body=None, may_complete=False):
        headers = {"content-type": "application/json"} if body is not None else None
        (status, text, resp), took = timed(lambda: srv.admin(path, method=method, body=body, headers=headers))
        self.assertEqual(status, 503, text)
        answer = json.loads(text)
        self.assertEqual(answer["error"], "store_unavailable")
        self.assertIn("did not answer within 0.5 s", answer["detail"])
        self.assertEqual("may still be made" in answer["detail"], may_complete, answer["detail"])
        self.assertEqual(resp.getheader("retry-after"), "1")
        self.assertGreaterEqual(took, DEADLINE_S - 0.05)
        self.assertLess(took, DEADLINE_S + 1.0, "%s took %.3f s" % (path, took))
        return answer


class RedisStopped(unittest.TestCase, ProbeChecks):
    def test_sigstop_then_sigcont(self):
        redis = Redis()
        srv = Server(rules={"r.lua": RULE},
                     config_extra='store = "redis://127.0.0.1:%d/0"\nadmin = { listen = "127.0.0.1:0", '
                                  'store_timeout = "500ms" }\n' % redis.port).start()
        try:
            acked = []
            for i in range(20):
                status, data, _ = srv.post(event("evt_hang_%d" % i))
                self.assertEqual((status, data["status"]), (200, "accepted"))
                acked.append("evt_hang_%d" % i)
            srv.wait_for(lambda: all(srv.count("RAN %s " % e) for e in acked), what="jobs ran")
            self.assertEqual(srv.admin("/readyz")[0], 200)

            os.kill(redis.proc.pid, signal.SIGSTOP)
            # a delivery meanwhile waits for Redis (its answer comes later: 200 or 503)
            late = {}

            def send_late():
                try:
                    late["r"] = srv.post(event("evt_hang_late"))
                except OSError as e:  # the client gave up: not acknowledged
                    late["r"] = (None, {"error": str(e)}, None)
            sender = threading.Thread(target=send_late)
            sender.start()
            srv.wait_for(lambda: srv.admin("/readyz")[0] == 503, timeout=5, what="readyz says unavailable")
            self.probes_answer_at_once(srv, "redis: ")
            self.assertIn("no answer", json.loads(srv.admin("/readyz")[1])["store"])
            self.answers_503_within_the_deadline(srv, "/admin/events?limit=1")
            self.answers_503_within_the_deadline(srv, "/admin/events/evt_hang_3")
            # several at once: each has its own deadline, none waits behind another
            answers = []
            threads = [threading.Thread(target=lambda: answers.append(
                self.answers_503_within_the_deadline(srv, "/admin/events?limit=5"))) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(len(answers), 4)
            self.probes_answer_at_once(srv, "redis: ", rounds=2)

            os.kill(redis.proc.pid, signal.SIGCONT)
            srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, timeout=10, what="ready again")
            sender.join(20)
            status, data, _ = late["r"]
            if status == 200:
                acked.append("evt_hang_late")
            elif status is not None:
                self.assertEqual((status, data["error"]), (503, "unavailable"))
            # nothing acknowledged is lost; new deliveries and the admin API work again
            for e in acked:
                self.assertEqual(redis.cmd("EXISTS", "switchyard:seen:" + e), 1, e)
            self.assertEqual(srv.post(event("evt_hang_after"))[1]["status"], "accepted")
            status, text, _ = srv.admin("/admin/events?limit=50")
            self.assertEqual(status, 200, text)
            listed = {e["id"] for e in json.loads(text)["events"]}
            self.assertTrue(set(acked) <= listed, set(acked) - listed)
            srv.wait_for(lambda: srv.count("RAN evt_hang_after") == 1, what="jobs flow again")
        finally:
            try:
                os.kill(redis.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.assertEqual(srv.stop(), 0, srv.log()[-3000:])
            redis.close()


class SqliteLocked(unittest.TestCase, ProbeChecks):
    def test_a_write_lock_held_elsewhere(self):
        srv = Server(rules={"r.lua": RULE},
                     config_extra='admin = { listen = "127.0.0.1:0", store_timeout = "500ms" }\n').start()
        try:
            self.assertEqual(srv.post(event("evt_lock_1"))[1]["status"], "accepted")
            srv.wait_for(lambda: srv.count("RAN evt_lock_1") == 1, what="the job ran")
            hold = Hold(srv.db)  # the idle writer's probe waits behind it
            srv.wait_for(lambda: srv.admin("/readyz")[0] == 503, timeout=5, what="readyz says unavailable")
            self.probes_answer_at_once(srv, "sqlite: ")
            # a write waits for the writer: 503 at the deadline, saying it may still be made
            self.answers_503_within_the_deadline(srv, "/admin/rules/r/pause", method="POST", body=b"{}",
                                                 may_complete=True)
            # reads do not wait for the writer in WAL mode
            status, text, _ = srv.admin("/admin/events?limit=5")
            self.assertEqual(status, 200, text)
            hold.release()
            srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, timeout=10, what="ready again")
            # the pause was made once the lock went away: the 503 said it might be
            srv.wait_for(lambda: json.loads(srv.admin("/admin/rules")[1])["rules"][0]["paused"],
                         what="the pause made")
            self.assertEqual(srv.post(event("evt_lock_2"))[1]["status"], "accepted")
        finally:
            self.assertEqual(srv.stop(), 0, srv.log()[-3000:])

    def test_a_stalled_reader(self):
        srv = Server(env={"SY_TEST_SQLITE_READ_DELAY_MS": "3000"},
                     config_extra='admin = { listen = "127.0.0.1:0", store_timeout = "500ms" }\n').start()
        try:
            self.assertEqual(srv.post(event("evt_slow_1"))[1]["status"], "accepted")
            answer = self.answers_503_within_the_deadline(srv, "/admin/events?limit=1")
            self.assertIn("it is busy", answer["detail"])  # the writer is well: the read is slow
            self.answers_503_within_the_deadline(srv, "/admin/events/evt_slow_1")
            # meanwhile the listener answers: probes (ready: the writer is well), metrics, console
            for _ in range(3):
                for path in ("/healthz", "/readyz", "/metrics", "/"):
                    (status, _, _), took = timed(lambda: srv.admin(path))
                    self.assertEqual(status, 200, path)
                    self.assertLess(took, FAST_S, "%s took %.3f s" % (path, took))
            # deliveries do not read through it
            self.assertEqual(srv.post(event("evt_slow_2"))[1]["status"], "accepted")
        finally:
            self.assertEqual(srv.stop(), 0, srv.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
