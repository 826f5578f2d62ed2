#!/usr/bin/env python3
"""Run a command with a private redis-server on a free loopback port.

usage: with_redis.py COMMAND ARGS...   ("{port}" in the arguments becomes the port)
The server keeps nothing on disk and is stopped when the command ends.
"""
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def main():
    if shutil.which("redis-server") is None:
        print("with_redis: redis-server is not installed (scripts/bootstrap --test installs it)")
        return 1
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = tempfile.mkdtemp(prefix="sy-redis-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", d],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        args = [a.replace("{port}", str(port)) for a in sys.argv[1:]]
        return subprocess.call(args)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
