#!/usr/bin/env python3
# Production-hardening measurements (issues 7 and 20), by hand:
#   python bench/hardening.py [--only 5,6,7,8,9] [--seconds S]
#
# Strategy: each measurement starts its own `python -m krait SITE --port 0` from this checkout (--workers 1;
# 2 for measurement 3) on a throwaway site (a 1 KiB static file, hello.txt, hello.py, the scripts of 5-8,
# and an init.py whose routes let POSTs reach upload.py), waits for the ready line, measures, and stops
# the server by PID in a finally block. A measurement that fails prints "N. failed: ..." and the run goes
# on. Printed figures:
#   1. p50/p99 of 200 normal requests (one fresh connection each) alone, then while 300 slowloris
#      connections trickle header lines and 1,000 keep-alive connections sit idle;
#   2. server RSS (VmRSS of the server process) before/after 1,000 idle connections, per connection;
#   3. failed requests (non-2xx, socket errors) of wrk on /hello.py across two SIGHUPs;
#   4. wrk req/s on the 1 KiB static file with --processes 1 and --processes 2.
# Measurements 5-8 (issue 20 item 7) are attacks on memory and time. During each one a normal client
# (NormalClient: GETs of /hello.txt on a fresh connection each, 10 ms apart, in a thread) gives its p50/p99
# and failures, and an RssSampler sums VmRSS from /proc every 20 ms, for the server process and for its
# tree (the server and every descendant: its workers). "Above idle" is the peak, or a later reading, minus
# the reading taken just before the attack. MB = 10^6 bytes (the targets' unit).
#   5. one 200 MiB POST to upload.py, which reads krait.request.body_file in 64 KiB pieces and answers the
#      count (--max-body-size 300 MiB): the answer, peak tree and server-process RSS above idle (target:
#      tree < 64 MB); then the same to upload_body.py, which takes krait.request.body whole (one copy in
#      the worker is expected). When waitress is
#      importable, side by side: the same upload to waitress at its defaults (4 threads) running a WSGI
#      app that reads wsgi.input in 64 KiB pieces, and its peak;
#   6. 40 connections each send a POST head with Content-Length: 16777216 and 16,777,000 body bytes, then
#      go silent: peak tree RSS above idle (target < 100 MB); how many the server closed within 60 s of
#      the bodies being sent (a non-blocking recv on each socket every 50 ms sees b"", a response such
#      as a 408, or a reset; target: all), by which outcome, and when the last was; the tree RSS above
#      idle 1 s after the last close, or at 60 s (is the memory given back?);
#   7. a 1,000 MiB script response, read at full speed by a raw-socket client that counts the body bytes
#      (by Content-Length, chunked, or until close) and checks the total, with the time to the status
#      line: (a) big.py sets one bytes object as the body: the server-process peak above idle is the
#      target (< 64 MB; the worker necessarily holds its own bytes); (b) stream.py sets a generator of
#      1000 x 1 MiB: the tree peak is the target (< 64 MB), or "not supported by this checkout" when the
#      answer is not a 200 of the right length;
#   8. a client that requests big.py and never reads: when the response began to arrive (the unread bytes
#      of our end in /proc/net/tcp), how long until the server let go of the connection (its end has left
#      every descriptor: inode 0 or gone from /proc/net/tcp; at most 120 s are waited, else ">120 s"), and
#      the server RSS above idle after 5 s, at its peak and 1 s after the server let go.
#   9. one address (127.0.0.2) opens 2,100 connections and sends nothing, more than the 2,000 places of
#      --max-connections at its default; then, for --seconds, a normal client from 127.0.0.1: its
#      p50/p99 and failures (before Krait made room when full, every one of its requests got a 503), and
#      how many of the silent connections the server closed.
# The load generator runs in this process (1, 2, 5-8) or as wrk (3, 4); nothing is pinned to a CPU, so on
# a 2-core machine the figures include the client's share of the CPUs.

from __future__ import annotations

import argparse
import http.client
import importlib.util
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
from collections import Counter
from collections.abc import Callable, Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests.idle_clients import open_idle, rss_kib  # noqa: E402  (shared with the hardening tests)

READY = re.compile(r"Krait \S+ serving .* at https?://[^/]+:(\d+)/")
MIB = 1024 * 1024
UPLOAD_SIZE = 200 * MIB
BIG_RESPONSE = 1000 * MIB
SITE: dict[str, str | bytes] = {
    ".py/init.py": ("import krait\n"
                    "from krait.config import Route\n"
                    "krait.config.routes = [Route('POST', url='/upload.py'), Route('POST', url='/upload_body.py'),\n"
                    "                       Route()]\n"),
    "static-1k.bin": bytes(range(256)) * 4,
    "hello.txt": b"hello\n",
    "hello.py": b"krait.response = krait.Response('HTTP/1.1', 200, [], 'hi')\n",
    # Reads the body in 64 KiB pieces, as the waitress app does; upload_body.py takes it whole.
    "upload.py": ("size = 0\n"
                  "with krait.request.body_file as f:\n"
                  "    for block in iter(lambda: f.read(65536), b''):\n"
                  "        size += len(block)\n"
                  "krait.response = krait.Response('HTTP/1.1', 200, [], str(size))\n"),
    "upload_body.py": "krait.response = krait.Response('HTTP/1.1', 200, [], str(len(krait.request.body)))\n",
    "big.py": "krait.response = krait.Response('HTTP/1.1', 200, [], b'x' * %d)\n" % BIG_RESPONSE,
    "stream.py": ("def pieces():\n"
                  "    piece = b'x' * %d\n"
                  "    for _ in range(%d):\n"
                  "        yield piece\n"
                  "\n"
                  "krait.response = krait.Response('HTTP/1.1', 200, [], pieces())\n" % (MIB, BIG_RESPONSE // MIB)),
}

# Measurement 5's side-by-side peer: waitress at its defaults, with a WSGI app that reads a body in 64 KiB
# pieces and answers its length, and answers GETs with hello.txt's body for the normal client.
WAITRESS_APP = """
import waitress

def app(environ, start_response):
    total = 0
    while piece := environ["wsgi.input"].read(65536):
        total += len(piece)
    body = str(total).encode() if environ["REQUEST_METHOD"] == "POST" else b"hello\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

server = waitress.create_server(app, host="127.0.0.1", port=0)
print("waitress serving at http://127.0.0.1:%s/" % server.effective_port, flush=True)
server.run()
"""


class Server:
    """A server process started by this script; `port` once its ready line is printed. stop() by PID."""

    ready = READY

    def __init__(self, site: str, *args: str) -> None:
        self.start("krait", [sys.executable, "-m", "krait", site, "--port", "0", *args])

    def start(self, name: str, command: list[str]) -> None:
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(command, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while True:
            self.out.seek(0)
            m = self.ready.search(self.out.read().decode(errors="replace"))
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.err.seek(0)
                message = self.err.read().decode(errors="replace")
                self.stop()
                raise RuntimeError("%s did not start:\n%s" % (name, message))
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


class Waitress(Server):
    """WAITRESS_APP under waitress, with the Python that runs this script."""

    ready = re.compile(r"waitress serving at http://[^/]+:(\d+)/")

    def __init__(self) -> None:
        self.start("waitress", [sys.executable, "-c", WAITRESS_APP])


def write_site(root: str) -> str:
    for rel, content in SITE.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    return root


# --- the normal client ---------------------------------------------------------------------------


def normal_request(port: int) -> float:
    """One GET of /hello.txt on a fresh connection; its duration in seconds."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/hello.txt")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200 or body != b"hello\n":
        raise ValueError("/hello.txt answered %d %r" % (resp.status, body[:50]))
    return time.perf_counter() - t0


def normal_latencies(port: int, count: int) -> list[float]:
    return sorted(normal_request(port) for _ in range(count))


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


class NormalClient:
    """A normal visitor during an attack: normal_request() in a thread, `pause` s apart, for as long as the
    with block lasts. A request that fails (error, timeout, wrong answer) is counted, not timed."""

    def __init__(self, port: int, pause: float = 0.01) -> None:
        self.port = port
        self.pause = pause
        self.latencies: list[float] = []
        self.failed = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.latencies.append(normal_request(self.port))
            except (OSError, http.client.HTTPException, ValueError):
                self.failed += 1
            self.done.wait(self.pause)

    def __enter__(self) -> NormalClient:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def summary(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return "normal client: no answer (%d failed)" % self.failed
        return "normal client during it: p50 %.2f ms p99 %.2f ms (%d requests, %d failed)" % (
            pct(lat, 0.5), pct(lat, 0.99), len(lat), self.failed)


# --- memory ------------------------------------------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants, from the children files of every thread of each process."""
    pids = [pid]
    for parent in pids:  # the list grows while it is walked: breadth first
        try:
            tasks = os.listdir("/proc/%d/task" % parent)
        except FileNotFoundError:
            continue
        for tid in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (parent, tid)) as f:
                    pids += [int(child) for child in f.read().split()]
            except FileNotFoundError:
                pass
    return pids


def rss_or_zero(pid: int) -> int:
    try:
        return rss_kib(pid)
    except (OSError, LookupError):  # gone, or a zombie
        return 0


def mb(kib: float) -> str:
    return "%.1f MB" % (kib * 1024 / 1e6)


class RssSampler:
    """The resident memory (KiB) of a server process and of its whole tree: `base_*` read on entering the
    with block (just before the attack), `peak_*` the highest of the samples taken every `interval` s
    in a thread until the block ends."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.base_server = self.base_tree = self.peak_server = self.peak_tree = 0

    def sample(self) -> tuple[int, int]:
        """(server, tree) now."""
        server = rss_or_zero(self.pid)
        return server, server + sum(rss_or_zero(pid) for pid in tree_pids(self.pid)[1:])

    def run(self) -> None:
        while not self.done.wait(self.interval):
            server, tree = self.sample()
            self.peak_server = max(self.peak_server, server)
            self.peak_tree = max(self.peak_tree, tree)

    def __enter__(self) -> RssSampler:
        self.base_server, self.base_tree = self.peak_server, self.peak_tree = self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def peaks(self) -> str:
        return "peak RSS above idle: tree +%s, server process +%s" % (
            mb(self.peak_tree - self.base_tree), mb(self.peak_server - self.base_server))


# --- raw clients ---------------------------------------------------------------------------------


def upload(port: int, size: int, path: str = "/upload.py") -> str:
    """POST `size` bytes to `path`, sent 1 MiB at a time; the answer as "STATUS body"."""
    piece = memoryview(b"x" * MIB)

    def pieces() -> Iterator[memoryview]:
        for sent in range(0, size, MIB):
            yield piece[:size - sent]

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=pieces(), headers={"Content-Length": str(size)})
        resp = conn.getresponse()
        return "%d %s" % (resp.status, resp.read()[:60].decode(errors="replace"))
    finally:
        conn.close()


class CountingReader:
    """Reads an HTTP response from a socket: lines are returned, body bytes only counted."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.scratch = bytearray(MIB)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed in the middle of a line")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def skip(self, count: int | None) -> int:
        """Read `count` bytes, or until the server closes if None; how many came."""
        got = len(self.buf) if count is None else min(len(self.buf), count)
        self.buf = self.buf[got:]
        while count is None or got < count:
            n = self.sock.recv_into(self.scratch, MIB if count is None else min(MIB, count - got))
            if not n:
                break
            got += n
        return got


def download(port: int, path: str) -> tuple[int, int, float]:
    """GET `path`, reading as fast as the server sends; (status, body length received, seconds until the
    status line came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        reader = CountingReader(sock)
        status = int(reader.line().split()[1])
        head = time.monotonic() - t0
        headers = {}
        while line := reader.line():
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            return status, reader.skip(int(headers[b"content-length"])), head
        if headers.get(b"transfer-encoding") == b"chunked":
            total = 0
            while size := int(reader.line().split(b";")[0], 16):
                total += reader.skip(size)
                reader.line()
            return status, total, head
        return status, reader.skip(None), head


def close_seen(sock: socket.socket) -> str:
    """How the server ended a connection, from one non-blocking recv: "" while it is still open."""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return ""
    except OSError:
        return "reset"
    if not data:
        return "closed"
    status = data.split(b"\r\n", 1)[0].split(b" ")
    return "answered " + (status[1].decode(errors="replace") if len(status) > 1 else "?")


def tcp_entry(local_port: int, remote_port: int) -> list[str] | None:
    """The /proc/net/tcp fields of the loopback connection's end at `local_port`, if the kernel has it."""
    ends = "0100007F:%04X 0100007F:%04X" % (local_port, remote_port)
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if " ".join(fields[1:3]) == ends:
                return fields
    return None


def server_holds(server_port: int, client_port: int) -> bool:
    """Whether a process still holds the server's end of our connection from `client_port`. Closed with
    unsent data, that end lingers in the kernel with no inode (field 9)."""
    fields = tcp_entry(server_port, client_port)
    return fields is not None and fields[9] != "0"


def unread_bytes(client_port: int, server_port: int) -> int:
    """Bytes received on our end of the connection that we have not read (rx_queue, field 4)."""
    fields = tcp_entry(client_port, server_port)
    return int(fields[4].split(":")[1], 16) if fields else 0


# --- measurements 1-4 ---------------------------------------------------------------------------


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


def measure_one_address_holds_every_place(site: str, seconds: float, count: int = 2100) -> None:
    srv = Server(site)
    hog: list[socket.socket] = []
    try:
        for _ in range(count):
            hog.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10,
                                                source_address=("127.0.0.2", 0)))
        time.sleep(0.5)
        with NormalClient(srv.port) as normal:
            time.sleep(seconds)
        for s in hog:
            s.setblocking(False)
        closed = Counter(close_seen(s) or "open" for s in hog)
        print("9. one address holds %d silent connections: %s; the server closed %d of them (%s)"
              % (count, normal.summary(), count - closed.pop("open", 0), dict(closed)))
    finally:
        for s in hog:
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


# --- measurements 5-8 (issue 20 item 7) ----------------------------------------------------------


def measure_upload(site: str) -> None:
    def upload_figures(srv: Server, path: str = "/upload.py") -> tuple[str, str, str]:
        normal_latencies(srv.port, 20)
        with RssSampler(srv.proc.pid) as rss, NormalClient(srv.port) as normal:
            t0 = time.monotonic()
            answer = upload(srv.port, UPLOAD_SIZE, path)
            seconds = time.monotonic() - t0
        return "answered %r in %.1f s" % (answer, seconds), rss.peaks(), normal.summary()

    srv = Server(site, "--workers", "1", "--max-body-size", str(300 * MIB))
    try:
        answer, peaks, normal = upload_figures(srv)
        whole = upload_figures(srv, "/upload_body.py")
    finally:
        srv.stop()
    print("5. one %d MiB upload to a .py script reading krait.request.body_file in 64 KiB pieces (%s): %s "
          "(target: tree < 64 MB)" % (UPLOAD_SIZE // MIB, answer, peaks))
    print("   " + normal)
    print("   the same, the script taking krait.request.body whole (%s): %s" % whole[:2])
    print("   " + whole[2])
    if importlib.util.find_spec("waitress") is None:
        print("   waitress side by side: skipped (not importable here: pip install waitress)")
        return
    srv = Waitress()
    try:
        answer, peaks, normal = upload_figures(srv)
    finally:
        srv.stop()
    print("   waitress side by side (4 threads, wsgi.input read in 64 KiB pieces; %s): %s" % (answer, peaks))
    print("   " + normal)


def measure_stalled_bodies(site: str, count: int = 40, length: int = 16 * MIB, sent: int = 16_777_000) -> None:
    srv = Server(site, "--workers", "1")
    socks: list[socket.socket] = []
    closes: dict[int, tuple[float, str]] = {}  # socket index -> (seconds since the attack began, how)
    try:
        normal_latencies(srv.port, 20)
        head = b"POST /upload.py HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length
        body = b"x" * sent

        def send(i: int) -> None:  # in a thread per connection, so that a server that stops reading costs 30 s
            try:
                socks[i].sendall(head)
                socks[i].sendall(body)
            except TimeoutError:
                pass  # the server stopped reading: the rest waits in our socket, and the connection goes silent
            except OSError:
                closes[i] = (time.monotonic() - start, "reset while sending")

        with RssSampler(srv.proc.pid) as rss, NormalClient(srv.port) as normal:
            start = time.monotonic()
            socks += [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(count)]
            senders = [threading.Thread(target=send, args=(i,)) for i in range(count)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            silent = time.monotonic()
            for sock in socks:
                sock.setblocking(False)
            while len(closes) < count and time.monotonic() < silent + 60:
                for i, sock in enumerate(socks):
                    if i not in closes and (how := close_seen(sock)):
                        closes[i] = (time.monotonic() - start, how)
                time.sleep(0.05)
            time.sleep(1)
            after = rss.sample()[1]
        hows = ", ".join("%s %d" % item for item in sorted(Counter(how for _, how in closes.values()).items()))
        last = ", the last %.1f s after the attack began" % max(t for t, _ in closes.values()) if closes else ""
        print("6. %d connections sent a POST head (Content-Length: %d) and %d body bytes each, then went silent "
              "(bodies sent %.1f s after the attack began):" % (count, length, sent, silent - start))
        print("   %s (target: tree < 100 MB)" % rss.peaks())
        print("   closed by the server within 60 s: %d of %d (%s)%s (target: all)" % (len(closes), count,
                                                                                     hows or "none", last))
        print("   tree RSS above idle %s: +%s" % ("1 s after the last close" if len(closes) == count else
                                                  "after 60 s, %d still open" % (count - len(closes)),
                                                  mb(after - rss.base_tree)))
        print("   " + normal.summary())
    finally:
        for sock in socks:
            sock.close()
        srv.stop()


def measure_big_response(site: str) -> None:
    variants = [("a", "/big.py", "one bytes object", "server process"),
                ("b", "/stream.py", "a generator of 1 MiB pieces", "tree")]
    for label, path, what, target in variants:
        srv = Server(site, "--workers", "1")
        try:
            normal_latencies(srv.port, 20)
            with RssSampler(srv.proc.pid) as rss, NormalClient(srv.port) as normal:
                t0 = time.monotonic()
                try:
                    status, length, head = download(srv.port, path)
                    got = "%d, %d bytes" % (status, length)
                except OSError as exc:
                    status, length, head, got = 0, 0, 0.0, "%s: %s" % (type(exc).__name__, exc)
                seconds = time.monotonic() - t0
        finally:
            srv.stop()
        intro = "7%s. a %d MiB script response, %s (%s)" % (label, BIG_RESPONSE // MIB, what, path)
        if status != 200 or length != BIG_RESPONSE:
            print("%s: %s" % (intro, "not supported by this checkout (got %s)" % got if label == "b" else
                              "failed: got " + got))
            continue
        print("%s, read in %.1f s (the status line after %.1f s): %s (target: %s < 64 MB)" % (
            intro, seconds, head, rss.peaks(), target))
        print("   " + normal.summary())


def measure_unread_response(site: str, cap: float = 120) -> None:
    srv = Server(site, "--workers", "1")
    try:
        normal_latencies(srv.port, 20)
        with (RssSampler(srv.proc.pid) as rss, NormalClient(srv.port) as normal,
              socket.create_connection(("127.0.0.1", srv.port)) as sock):
            sock.sendall(b"GET /big.py HTTP/1.1\r\nHost: x\r\n\r\n")
            start = time.monotonic()
            client_port = sock.getsockname()[1]
            at_5s = began = None
            while (held := time.monotonic() - start) < cap and server_holds(srv.port, client_port):
                if at_5s is None and held >= 5:
                    at_5s = rss.sample()[0]
                if began is None and unread_bytes(client_port, srv.port):
                    began = held
                time.sleep(0.1)
            time.sleep(1)
            after = rss.sample()[0]
        print("8. a client requests the %d MiB response (big.py) and never reads: the response began to arrive "
              "after %s; the server let go of the connection after %s" % (
                  BIG_RESPONSE // MIB, "%.1f s" % began if began is not None else "never",
                  ">%d s" % cap if held >= cap else "%.1f s" % held))
        print("   server RSS above idle: %s after 5 s, peak +%s, +%s 1 s after it let go" % (
            "+" + mb(at_5s - rss.base_server) if at_5s is not None else "(let go before 5 s)",
            mb(rss.peak_server - rss.base_server), mb(after - rss.base_server)))
        print("   " + normal.summary())
    finally:
        srv.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Production-hardening measurements (see the header comment).")
    parser.add_argument("--seconds", type=float, default=6, help="wrk duration per run (default 6)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8,9",
                        help="comma list of measurements to run (default all)")
    args = parser.parse_args()
    only = sorted({int(n) for n in args.only.split(",")})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard) if hard > 0 else 4096, hard))
    with tempfile.TemporaryDirectory() as tmp:
        site = write_site(os.path.join(tmp, "site"))
        seconds = int(args.seconds)
        measurements: dict[int, Callable[[], None]] = {
            1: lambda: measure_slow_clients(site),
            2: lambda: measure_idle_memory(site),
            3: lambda: measure_sighup(site, seconds),
            4: lambda: measure_processes(site, seconds),
            5: lambda: measure_upload(site),
            6: lambda: measure_stalled_bodies(site),
            7: lambda: measure_big_response(site),
            8: lambda: measure_unread_response(site),
            9: lambda: measure_one_address_holds_every_place(site, seconds),
        }
        for n in only:
            if n in (3, 4) and shutil.which("wrk") is None:
                print("%d. skipped: wrk is not installed (apt-get install -y wrk)" % n)
                continue
            try:
                measurements[n]()
            except Exception as exc:  # one failed measurement never ends the run
                print("%d. failed: %s: %s" % (n, type(exc).__name__, exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
