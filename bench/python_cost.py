"""The Python work per request, without the kernel, the threads or the process hop.

Where bench/cpu_per_request.py measures whole processes under load, this splits the bill:

  server   one keep-alive request through Krait's real request loop (krait/server/channel.py: sans-IO parse,
           routing, dispatch, response bytes) over an in-memory socket, for a static file, a code-free
           page (which the server serves itself once rendered) and hello.py (the script's answer stands
           in for the worker pool, so the pool's own cost is left out);
  worker   one hello.py job in the worker (krait/worker/run.py handle(): fresh namespace, module reset, the
           script, the Result) plus the marshal codec of its job and answer;
  floor    (--floor, needs wrk and taskset) a do-nothing thread-per-connection server (recv, send a
           canned answer) pinned to CPU 0 under `wrk -t1 -c50` on CPU 1: what the kernel, the threads
           and the GIL cost per request before any HTTP work.

    python bench/python_cost.py [--rounds 5] [--requests 20000] [--floor]

Each figure is the best of --rounds runs (the machine's noise only ever adds time).
"""

from __future__ import annotations

import argparse
import marshal
import os
import socket
import socketserver
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SITE = os.path.join(HERE, "sites", "krait")
sys.path.insert(0, ROOT)
from bench_setup import use_bench_venv  # noqa: E402

use_bench_venv()  # a fresh clone's system python has no ply: go on in bench/.venv

from krait import limits, portable  # noqa: E402
from krait.pool import jobs  # noqa: E402
from krait.server import cli  # noqa: E402
from krait.server.channel import Channel  # noqa: E402
from krait.server.dispatch import App  # noqa: E402
from krait.server.gate import FairGate  # noqa: E402
from krait.worker.run import handle  # noqa: E402
from krait.worker.site import Site  # noqa: E402

HELLO = jobs.Result(200, "OK", (("Content-Type", "text/plain; charset=utf-8"),), b"Hello, world!\n",
                    "text/plain", None, None, None)


class _AnsweringPool:
    """Stands in for the worker pool: every job gets hello.py's answer at once."""

    config = None

    def run(self, job: jobs.Job, timeout: float, generation: int | None = None) -> jobs.Result:
        if job.kind == jobs.TEMPLATE:  # a code-free page, as a worker renders it: then the server serves it
            with open(job.path, "rb") as f:
                st = os.fstat(f.fileno())
                return jobs.Result(200, "OK", (), f.read(), "text/html; charset=utf-8", None, None,
                                   (st.st_mtime_ns, st.st_size))
        return HELLO


class _MemorySocket:
    """A client that sends the same request `count` times, then closes; responses are dropped."""

    def __init__(self, request: bytes, count: int) -> None:
        self.request = request
        self.count = count

    def recv(self, size: int) -> bytes:
        if not self.count:
            return b""
        self.count -= 1
        return self.request

    def send(self, data: bytes) -> int:
        return len(data)

    def settimeout(self, timeout: float | None) -> None:
        pass

    def setsockopt(self, *args: object) -> None:
        pass


class _Server:
    """The attributes of krait.server.listener.Server that a Channel reads."""

    tls = None
    scheme = "http"
    trusted_proxies: frozenset = frozenset()

    def __init__(self, app: App, settings: object) -> None:
        self.app = app
        self.pool = _AnsweringPool()
        self.settings = settings
        self.gate = None if portable.batch_threads() else FairGate(limits.GATE_SLOTS)  # as the server has it

    def logs_access(self) -> bool:
        return False

    def log_access(self, *args: object) -> None:
        pass


def best(fn, rounds: int, count: int) -> float:
    """Microseconds per call of the fastest of `rounds` runs of fn(count)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn(count)
        times.append(time.perf_counter() - started)
    return min(times) / count * 1e6


def server_cost(path: str, rounds: int, count: int, config: object) -> float:
    settings = cli.parse_args([SITE, "--port", "0"])
    server = _Server(App(settings, config), settings)
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
               % path).encode()
    from krait import sockopt

    sockopt.set_recv_timeout = sockopt.set_send_timeout = lambda sock, timeout: None  # no real socket

    def loop(n: int) -> None:
        Channel(server, _MemorySocket(request, n), ("127.0.0.1", 40000)).run()

    return best(loop, rounds, count)


def worker_cost(site: Site, rounds: int, count: int) -> tuple[float, float]:
    path = os.path.join(site.root, "hello.py")
    job = jobs.Job(jobs.SCRIPT, path, "hello.py", "GET", "/hello", "/hello", "", "HTTP/1.1",
                   {"host": "127.0.0.1:8080", "user-agent": "bench", "accept": "*/*"}, b"",
                   ("127.0.0.1", 40000), "http", ())
    wire = marshal.dumps(tuple(job))

    def handle_only(n: int) -> None:
        for _ in range(n):
            handle(site, job)

    def with_codec(n: int) -> None:
        for _ in range(n):
            result = handle(site, jobs.job_from_wire(marshal.loads(wire)))
            marshal.dumps(jobs.result_to_wire(result))

    return best(handle_only, rounds, count), best(with_codec, rounds, count)


_CANNED = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\n\r\nHello, world!\n"


class _FloorHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while sock.recv(65536):
                sock.sendall(_CANNED)
        except OSError:
            pass


def serve_floor(port: int) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.request_queue_size = 1024
    socketserver.ThreadingTCPServer(("127.0.0.1", port), _FloorHandler).serve_forever()


def floor(seconds: int) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, __file__, "--serve-floor", str(port)])
    try:
        time.sleep(1.0)
        url = "http://127.0.0.1:%d/" % port
        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c50", "-d1s", url], capture_output=True)
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c50", "-d%ds" % seconds, url],
                             capture_output=True, text=True).stdout
        return float(out.split("Requests/sec:")[1].split()[0])
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--floor", action="store_true", help="also measure the do-nothing threaded server")
    ap.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return
    site = Site(os.path.realpath(SITE), 64)  # runs the site's init.py, as a worker does
    from krait import config

    site_config = config.snapshot()
    static = server_cost("/static-1k.bin", args.rounds, args.requests, site_config)
    page = server_cost("/page-1k.html", args.rounds, args.requests, site_config)
    hello = server_cost("/hello", args.rounds, args.requests, site_config)
    handle, codec = worker_cost(site, args.rounds, args.requests)
    print("Python work per request, best of %d x %d (Python %s)" % (args.rounds, args.requests,
                                                                     sys.version.split()[0]))
    print("  server, static 1 KiB         %6.1f us" % static)
    print("  server, code-free 1 KiB page %6.1f us" % page)
    print("  server, hello.py (no pool)   %6.1f us" % hello)
    print("  worker, hello.py handle()    %6.1f us" % handle)
    print("  worker, + job/answer codec   %6.1f us" % codec)
    if args.floor:
        rate = floor(5)
        print("  floor: do-nothing threaded server %.0f req/s = %.1f us/request" % (rate, 1e6 / rate))


if __name__ == "__main__":
    main()
