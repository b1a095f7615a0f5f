"""Latency of a fast script next to a slow one: does pipelining hold fast requests behind slow scripts?

Starts Krait (`python -m krait SITE --workers 2`, both CPUs) on a temporary site with hello.py and
slow.py (sleeps 0.2 s), requests /slow.py three times a second from a background thread, and runs
`wrk -t1 -c50 --latency` on /hello for the same time. Prints hello.py's req/s, p50 and p99. Jobs
queued in a worker's pipe behind a slow job would wait for it and show up in the p99.

    python bench/mixed_latency.py [--seconds 6] [--slow-rate 3] [--krait-dir DIR] [--busy]

--krait-dir runs another checkout of Krait (e.g. a git worktree of an older commit) for an A/B.
--busy makes slow.py keep the CPU busy for 0.05 s instead of sleeping, and pins Krait (one worker) to
CPU 0 and wrk to CPU 1: the fast requests then compete for the one CPU the slow script holds.
Linux only; needs wrk.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request

HELLO = 'krait.response = krait.Response("HTTP/1.1", 200, [("Content-Type", "text/plain")], "Hello, world!\\n")\n'
SLOW = 'import time\ntime.sleep(0.2)\nkrait.response = krait.Response("HTTP/1.1", 200, [], "slow")\n'
BUSY = ('import time\nend = time.perf_counter() + 0.05\nwhile time.perf_counter() < end:\n    pass\n'
        'krait.response = krait.Response("HTTP/1.1", 200, [], "slow")\n')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--slow-rate", type=float, default=3.0, help="slow.py requests per second")
    ap.add_argument("--krait-dir", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--busy", action="store_true", help="a CPU-bound slow.py, Krait and wrk on one CPU each")
    args = ap.parse_args()
    site = tempfile.mkdtemp(prefix="krait-mixed-")
    for name, text in (("hello.py", HELLO), ("slow.py", BUSY if args.busy else SLOW)):
        with open(os.path.join(site, name), "w") as f:
            f.write(text)
    port = free_port()
    pin, wrk_pin = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if args.busy else ([], [])
    server = subprocess.Popen([*pin, sys.executable, "-m", "krait", site, "--port", str(port),
                               "--workers", "1" if args.busy else "2", "--graceful-timeout", "1"],
                              cwd=args.krait_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()
    try:
        server.stdout.readline()  # the ready line
        threading.Thread(target=server.stdout.read, daemon=True).start()  # the log must not fill the pipe
        base = "http://127.0.0.1:%d" % port
        for path in ("/hello", "/slow"):  # both files run once: the pool learns how long they take
            urllib.request.urlopen(base + path, timeout=10).read()

        def slow_load() -> None:
            while not stop.wait(1.0 / args.slow_rate):
                threading.Thread(target=lambda: urllib.request.urlopen(base + "/slow", timeout=30).read(),
                                 daemon=True).start()

        threading.Thread(target=slow_load, daemon=True).start()
        out = subprocess.run([*wrk_pin, "wrk", "-t1", "-c50", "-d%ds" % args.seconds, "--latency", base + "/hello"],
                             capture_output=True, text=True).stdout
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        p50 = re.search(r"\s50%\s+(\S+)", out).group(1)
        p99 = re.search(r"\s99%\s+(\S+)", out).group(1)
        print("hello.py next to slow.py (%.0f/s): %s req/s, p50 %s, p99 %s" % (args.slow_rate, rate, p50, p99))
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
