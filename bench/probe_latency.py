"""The admin listener's answer times while the store hangs: a real redis-server is stopped with
SIGSTOP, then /healthz, /readyz and /metrics are asked 100 times each, an event list once (it
waits for admin.store_timeout), and the time to ready again after SIGCONT is taken.
usage: python3 bench/probe_latency.py   (after a build; SWITCHYARD_BIN picks another binary)"""
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/integration"))
from harness import Server, event  # noqa: E402
from test_redis import Redis  # noqa: E402

PROBES = ("/healthz", "/readyz", "/metrics")


def timed_ms(fn):
    t0 = time.monotonic()
    out = fn()
    return out, (time.monotonic() - t0) * 1000


def main():
    redis = Redis()
    srv = Server(config_extra='store = "redis://127.0.0.1:%d/0"\nadmin = { listen = "127.0.0.1:0" }\n'
                 % redis.port).start()
    try:
        for i in range(50):
            srv.post(event("evt_probe_%d" % i))
        os.kill(redis.proc.pid, signal.SIGSTOP)
        time.sleep(1.5)  # past the store's 1 s stall mark
        times = {p: [] for p in PROBES}
        for _ in range(100):
            for p in PROBES:
                times[p].append(timed_ms(lambda: srv.admin(p))[1])
        (status, body, _), took = timed_ms(lambda: srv.admin("/admin/events?limit=1"))
        print("GET /admin/events?limit=1: %d in %.0f ms: %s" % (status, took, body[:160]))
        print("GET /readyz: %d %s" % srv.admin("/readyz")[:2])
        for p, v in times.items():
            v.sort()
            print("%-9s median %.2f ms  p99 %.2f ms  max %.2f ms (100 requests, Redis stopped)"
                  % (p, statistics.median(v), v[98], v[-1]))
        os.kill(redis.proc.pid, signal.SIGCONT)
        t0 = time.monotonic()
        while srv.admin("/readyz")[0] != 200:
            time.sleep(0.01)
        print("ready again %.2f s after SIGCONT" % (time.monotonic() - t0))
    finally:
        try:
            os.kill(redis.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        srv.stop()
        redis.close()


if __name__ == "__main__":
    main()
