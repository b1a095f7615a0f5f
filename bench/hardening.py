#!/usr/bin/env python3
# Production-hardening measurements (issue 7), by hand: `python bench/hardening.py [--seconds S]`.
#
# Strategy: each measurement starts its own `python -m krait SITE --port 0` from this checkout on a
# throwaway site (a 1 KiB static file, a .py hello, an init.py), waits for the ready line, measures,
# and stops the server by PID in a finally block. Printed figures:
#   1. p50/p99 of 200 normal requests (one fresh connection each) alone, then while 300 slowloris
#      connections trickle header lines and 1,000 keep-alive connections sit idle;
#   2. server RSS (VmRSS of the server process) before/after 1,000 idle connections, per connection;
#   3. failed requests (non-2xx, socket errors) of wrk on /hello.py across two SIGHUPs;
#   4. wrk req/s on the 1 KiB static file with --processes 1 and --processes 2.
# The load generator runs in this process (1, 2) or as wrk (3, 4); nothing is pinned to a CPU, so on a
# 2-core machine the figures include the client's share of the CPUs.

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests.idle_clients import open_idle, rss_kib  # noqa: E402  (shared with the hardening tests)

READY = re.compile(r"Krait \S+ serving .* at https?://[^/]+:(\d+)/")
SITE = {
    ".py/init.py": "import krait\n",
    "static-1k.bin": bytes(range(256)) * 4,
    "hello.txt": b"hello\n",
    "hello.py": b"krait.response = krait.Response('HTTP/1.1', 200, [], 'hi')\n",
}


class Server:
    def __init__(self, site: str, *args: str) -> None:
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "krait", site, "--port", "0", *args],
                                     stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while True:
            self.out.seek(0)
            m = READY.search(self.out.read().decode(errors="replace"))
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.err.seek(0)
                message = self.err.read().decode(errors="replace")
                self.stop()
                raise RuntimeError("krait did not start:\n" + message)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()


def write_site(root: str) -> str:
    for rel, content in SITE.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    return root


def normal_latencies(port: int, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/hello.txt")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"hello\n"
        conn.close()
        out.append(time.perf_counter() - t0)
    return sorted(out)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def measure_slow_clients(site: str) -> None:
    srv = Server(site, "--workers", "1", "--keepalive-timeout", "120", "--header-timeout", "120")
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        normal_latencies(srv.port, 20)
        alone = normal_latencies(srv.port, 200)
        socks = open_idle(srv.port, 1000)
        loris = []
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
            loris.append(s)
        socks += loris

        def trickle() -> None:
            while not stop.is_set():
                for i in range(10):
                    for s in loris[i::10]:
                        try:
                            s.send(b"X-Slow: 1\r\n")
                        except OSError:
                            pass
                    if stop.wait(0.1):
                        return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        time.sleep(0.5)
        attacked = normal_latencies(srv.port, 200)
        stop.set()
        thread.join()
        print("1. normal client, 200 requests: alone p50 %.2f ms p99 %.2f ms; with 300 slowloris + 1000 idle "
              "p50 %.2f ms p99 %.2f ms (budget p99 < 100 ms)" % (pct(alone, 0.5), pct(alone, 0.99),
                                                                 pct(attacked, 0.5), pct(attacked, 0.99)))
    finally:
        stop.set()
        for s in socks:
            s.close()
        srv.stop()


def measure_idle_memory(site: str) -> None:
    srv = Server(site, "--workers", "1", "--keepalive-timeout", "120")
    socks: list[socket.socket] = []
    try:
        normal_latencies(srv.port, 50)
        time.sleep(0.3)
        before = rss_kib(srv.proc.pid)
        socks = open_idle(srv.port, 1000)
        time.sleep(0.5)
        after = rss_kib(srv.proc.pid)
        print("2. server RSS: %.1f MiB before, %.1f MiB with 1000 idle connections: %.1f MiB per 1000 "
              "(%.1f KiB each)" % (before / 1024, after / 1024, (after - before) / 1024, (after - before) / 1000))
    finally:
        for s in socks:
            s.close()
        srv.stop()


def wrk(url: str, seconds: float, conns: int = 50, during=None) -> str:
    proc = subprocess.Popen(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, url], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        if during is not None:
            during()
        return proc.communicate(timeout=seconds + 30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def failures(out: str) -> str:
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    total = re.search(r"(\d+) requests in", out)
    return "%s requests, %s non-2xx, socket errors: %s" % (total.group(1) if total else "?",
                                                           non2xx.group(1) if non2xx else "0",
                                                           sock.group(1) if sock else "none")


def measure_sighup(site: str, seconds: float) -> None:
    srv = Server(site, "--workers", "2")
    try:
        def hup_twice() -> None:
            for _ in range(2):
                time.sleep(seconds / 3)
                srv.proc.send_signal(signal.SIGHUP)

        out = wrk("http://127.0.0.1:%d/hello.py" % srv.port, seconds, 10, hup_twice)
        print("3. wrk -c10 %ds on /hello.py with 2 SIGHUPs: %s" % (seconds, failures(out)))
    finally:
        srv.stop()


def measure_processes(site: str, seconds: float) -> None:
    rates = {}
    for n in (1, 2):
        srv = Server(site, "--workers", "1", "--processes", str(n))
        try:
            url = "http://127.0.0.1:%d/static-1k.bin" % srv.port
            wrk(url, 1)  # warm-up
            out = wrk(url, seconds)
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            rates[n] = float(m.group(1)) if m else 0.0
            print("4. --processes %d: %.0f req/s (wrk -t2 -c50 %ds, 1 KiB static; %s)" % (n, rates[n], seconds,
                                                                                         failures(out)))
        finally:
            srv.stop()
    if rates.get(1):
        print("   --processes 2 / --processes 1 = %.2fx on %d CPUs" % (rates[2] / rates[1], os.cpu_count() or 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6, help="wrk duration per run (default 6)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard) if hard > 0 else 4096, hard))
    with tempfile.TemporaryDirectory() as tmp:
        site = write_site(os.path.join(tmp, "site"))
        measure_slow_clients(site)
        measure_idle_memory(site)
        if shutil.which("wrk") is None:
            print("3-4. skipped: wrk is not installed (apt-get install -y wrk)")
            return 0
        measure_sighup(site, int(args.seconds))
        measure_processes(site, int(args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
