"""Production hardening (issue 7) against the real server: slow and idle clients, the connection limit,
overload, graceful shutdown and reload, and --processes. Every test ends with a normal request that
must still succeed (except where the server was told to stop; there the request in flight is the
normal one, and the exit status is checked)."""

# Strategy: each test starts its own `python -m krait` (tests/conftest.py) with the limits shrunk so
# that a deadline fires within a second or two, attacks it over raw sockets from this process, and then
# measures or checks a normal client. Attack sockets are always closed in a `finally`.

from __future__ import annotations

import concurrent.futures
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import ROOT, needs_shared_port, needs_sighup, wait_for, write_site
from tests.idle_clients import open_idle, rss_kib

SITE = {
    ".py/init.py": "import os, krait\nfrom krait.config import Route\n"
                   "krait.config.routes = [Route('POST', url='/echo'), Route()]\n"
                   "with open(os.path.join(krait.site_root, '.private', 'inits'), 'a') as _f:\n"
                   "    _f.write('%d\\n' % os.getpid())\n",
    ".private/inits": "",
    "hello.txt": "hello\n",
    "pid.py": "import os\nkrait.response = krait.Response('HTTP/1.1', 200, [], str(os.getpid()))\n",
    "hello.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'hi')\n",
    "sleep.py": "import time\ntime.sleep(float(krait.request.query.get('s', '1')))\n"
                "krait.response = krait.Response('HTTP/1.1', 200, [], 'slept')\n",
    "echo.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'got %d' % len(krait.request.body))\n",
}

ATTACK_SLOWLORIS = 300
ATTACK_IDLE = 1000
NORMAL_REQUESTS = 50
P99_BUDGET = 0.100  # seconds, issue 7


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", SITE)


def get(port: int, path: str = "/hello.txt", method: str = "GET", body: bytes | None = None,
        headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One request on a fresh connection; returns (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_normal(port: int) -> None:
    """The normal request every test ends with."""
    assert get(port)[::2] == (200, b"hello\n")


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or until `timeout` passes: then raise)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip("needs %d file descriptors, the hard limit is %d" % (need, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


class Slowloris:
    """Connections that trickle one header line each, round-robin, and never finish the block."""

    def __init__(self, port: int, count: int, period: float = 1.0) -> None:
        self.socks = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
            self.socks.append(s)
        self.period = period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        slices = 10
        while not self.stop.is_set():
            for i in range(slices):
                for s in self.socks[i::slices]:
                    try:
                        s.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
                if self.stop.wait(self.period / slices):
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        close_all(self.socks)


# --- slow and idle clients -----------------------------------------------------------------


def test_slowloris_and_idle_connections_do_not_delay_a_normal_client(site, krait_server):
    raise_fd_limit(2 * (ATTACK_SLOWLORIS + ATTACK_IDLE) + 256)
    srv = krait_server(site, "--header-timeout", "4", "--keepalive-timeout", "60")
    for _ in range(5):
        assert_normal(srv.port)  # warm the static cache
    idle, loris = [], None
    try:
        idle = open_idle(srv.port, ATTACK_IDLE)
        loris = Slowloris(srv.port, ATTACK_SLOWLORIS)
        started = time.monotonic()
        time.sleep(0.5)  # let the accept loop drain the burst: we measure the steady state
        latencies = []
        for _ in range(NORMAL_REQUESTS):
            t0 = time.perf_counter()
            assert_normal(srv.port)
            latencies.append(time.perf_counter() - t0)
        assert p99(latencies) < P99_BUDGET, "p99 %.1f ms" % (p99(latencies) * 1000)
        # The header-block deadline (4 s from each slowloris's first byte) ends every attacker with 408.
        answers = [read_until_closed(s, max(8 - (time.monotonic() - started), 1)) for s in loris.socks[:20]]
        assert all(a.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in a for a in answers)
        # The idle keep-alive connections are still open (60 s timeout) and still usable.
        idle[0].sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle[0].recv(4096).endswith(b"hello\n")
    finally:
        if loris is not None:
            loris.close()
        close_all(idle)
    assert_normal(srv.port)


@pytest.mark.portable  # kernel socket timeouts, as on Windows
def test_idle_keepalive_timeout_closes_silently(site, krait_server):
    srv = krait_server(site, "--keepalive-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).endswith(b"hello\n")
        t0 = time.monotonic()
        assert read_until_closed(s, 5) == b""  # closed without a response
        assert 0.3 < time.monotonic() - t0 < 3
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:  # never sent a byte
        assert read_until_closed(s, 5) == b""
    assert_normal(srv.port)


@pytest.mark.portable
def test_header_deadline_is_total_not_per_byte(site, krait_server):
    srv = krait_server(site, "--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\n")
        t0 = time.monotonic()
        reply = b""
        while not reply:  # one header byte every 0.2 s: never idle long, but never finished
            time.sleep(0.2)
            try:
                s.send(b"X")
            except OSError:
                break
            s.settimeout(0.01)
            try:
                reply = s.recv(4096)
            except (TimeoutError, ConnectionResetError):
                pass
            assert time.monotonic() - t0 < 5, "the header deadline never fired"
        reply += read_until_closed(s, 5)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert 0.8 < time.monotonic() - t0 < 3
    assert_normal(srv.port)


def test_a_head_pipelined_behind_a_request_is_timed_from_its_first_bytes(site, krait_server):
    # The next request's head came in with the first one: its header time runs once the first is
    # answered (a 408 after --header-timeout), not from a keep-alive wait that ends without one.
    srv = krait_server(site, "--header-timeout", "1", "--keepalive-timeout", "10")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        reply = read_until_closed(s, 8)
    assert reply.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in reply
    assert time.monotonic() - t0 < 3
    assert_normal(srv.port)


@pytest.mark.parametrize("request_bytes", [
    b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",  # answered 405, body skipped
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\n",  # a stray CRLF after it
], ids=["skipped-body", "stray-crlf"])
def test_what_is_left_after_a_request_is_no_head_to_time(site, krait_server, request_bytes):
    # Neither the rest of a body being skipped nor the empty lines RFC 9112 s2.2 tolerates before a
    # request line starts a request: the connection waits out its keep-alive time, without a 408.
    srv = krait_server(site, "--header-timeout", "1", "--keepalive-timeout", "10")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(request_bytes)
        first = s.recv(65536)
        assert first.startswith((b"HTTP/1.1 405 ", b"HTTP/1.1 200 ")), first
        s.settimeout(2.5)
        with pytest.raises(TimeoutError):
            s.recv(65536)  # still open and quiet past --header-timeout


def test_minimum_body_rate(site, krait_server):
    # The rate rule is a quota per window: 1000 bytes/s x limits.BODY_RATE_WINDOW (5 s) per window, the
    # first one limits.BODY_RATE_GRACE (5 s) longer. An upload that sends a little and then nothing, and
    # one that trickles (never idle), are cut when that first window ends, whether a script would read
    # the body or it is being discarded (a static file's). The three run at once here.
    srv = krait_server(site, "--min-body-rate", "1000")

    def trickle(target: str, rate: int) -> tuple[bytes, float]:
        """What the server answered (b"" for none) to an upload of `rate` bytes/s, and when."""
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" % target.encode())
            s.settimeout(1 / rate)
            t0 = time.monotonic()
            reply = b""
            while time.monotonic() - t0 < 16:
                try:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    break
                try:
                    s.send(b"x")
                except OSError:
                    break
            return reply, time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        discarded = pool.submit(trickle, "/hello.txt", 4)
        read = pool.submit(trickle, "/echo", 10)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100)
            t0 = time.monotonic()
            reply = read_until_closed(s, 20)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in reply
        assert 9 < time.monotonic() - t0 < 14
        reply, took = read.result(timeout=20)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in reply and 9 < took < 14, reply[:200]
        assert discarded.result(timeout=20)[1] < 14, "a 4 bytes/s body kept the connection past its first window"
    # A body that arrives at a fair rate is accepted.
    assert get(srv.port, "/echo", "POST", b"y" * 50000)[::2] == (200, b"got 50000")
    assert_normal(srv.port)


@pytest.mark.portable
def test_a_full_server_makes_room_by_closing_the_oldest_idle_connection(site, krait_server):
    srv = krait_server(site, "--max-connections", "20")
    held = []
    try:
        held = open_idle(srv.port, 20)
        time.sleep(0.2)
        assert get(srv.port)[::2] == (200, b"hello\n")  # not a 503: an idle connection gave way
        held[0].settimeout(5)
        assert held[0].recv(4096) == b"", "the oldest idle connection was the one closed"
        assert "all 20 connection places taken: closed a waiting connection from 127.0.0.1 to make room" in srv.log()
        for s in held[1:]:  # the others are unaffected
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).endswith(b"hello\n")
    finally:
        close_all(held)


def test_connection_limit_refuses_cleanly_when_every_connection_is_in_a_request(site, krait_server):
    srv = krait_server(site, "--max-connections", "20")
    held = []
    try:
        for _ in range(20):  # each in the middle of a request body
            held.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
            held[-1].sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 50)
        time.sleep(0.3)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                reply = read_until_closed(s, 5)
            head = reply.partition(b"\r\n\r\n")[0]
            assert head.startswith(b"HTTP/1.1 503 "), reply[:200]
            assert b"\r\nRetry-After: 1" in head and b"\r\nConnection: close" in head
        assert "connection refused: 20 connections open (limit 20), all of them in the middle of a request" in srv.log()
        # The held connections are unaffected.
        held[0].sendall(b"y" * 50)
        assert held[0].recv(4096).endswith(b"got 100")
    finally:
        close_all(held)
    time.sleep(0.3)
    assert_normal(srv.port)


def test_memory_per_idle_connection_is_bounded(site, krait_server):
    raise_fd_limit(2 * ATTACK_IDLE + 256)
    srv = krait_server(site, "--keepalive-timeout", "60")
    for _ in range(20):
        assert_normal(srv.port)
    time.sleep(0.2)
    before = rss_kib(srv.proc.pid)
    idle = []
    try:
        idle = open_idle(srv.port, ATTACK_IDLE)
        time.sleep(0.3)
        per_conn = (rss_kib(srv.proc.pid) - before) / ATTACK_IDLE
    finally:
        close_all(idle)
    # One thread (stack pages actually touched) + socket + parser state: about 15-25 KiB measured.
    assert per_conn < 64, "%.1f KiB per idle connection" % per_conn
    assert_normal(srv.port)


# --- overload --------------------------------------------------------------------------------


def test_overload_gives_503_with_retry_after_and_logs_queue_depth(site, krait_server):
    srv = krait_server(site, "--workers", "1", "--max-queued", "2", "--timeout", "10", "--log-level", "debug")
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        futures = [ex.submit(get, srv.port, "/sleep.py?s=0.6") for _ in range(10)]
        results = [f.result() for f in futures]
    codes = sorted(status for status, _, _ in results)
    assert codes.count(200) == 3 and codes.count(503) == 7, codes  # one running + two queued
    assert all(h["retry-after"] == "1" for status, h, _ in results if status == 503)
    assert re.search(r"DEBUG krait\.pool: http queue depth 2\b", srv.log())
    assert get(srv.port, "/hello.py")[::2] == (200, b"hi")
    assert_normal(srv.port)


# --- graceful shutdown and reload ------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_finishes_requests_in_flight(site, krait_server, sig):
    srv = krait_server(site, "--workers", "1")
    worker_pid = int(get(srv.port, "/pid.py")[2])
    idle = open_idle(srv.port, 1)[0]
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            in_flight = ex.submit(get, srv.port, "/sleep.py?s=2.5")
            time.sleep(0.5)
            t0 = time.monotonic()
            srv.signal(sig)
            assert read_until_closed(idle, 3) == b""  # the idle connection is closed at once...
            assert time.monotonic() - t0 < 2
            deadline = time.monotonic() + 3
            while True:  # ...and new connections are refused...
                try:
                    socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "still accepting after the stop signal"
                time.sleep(0.05)
            assert in_flight.result()[::2] == (200, b"slept")  # ...while the request in flight finishes
    finally:
        idle.close()
    assert srv.proc.wait(10) == 0
    deadline = time.monotonic() + 5
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker_pid), "the worker outlived the server"
    assert "stopped" in srv.log()


def test_graceful_timeout_cuts_long_requests(site, krait_server):
    srv = krait_server(site, "--workers", "1", "--graceful-timeout", "1", "--timeout", "30")
    assert_normal(srv.port)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        in_flight = ex.submit(get, srv.port, "/sleep.py?s=20")
        time.sleep(0.5)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            in_flight.result()
        assert srv.proc.wait(10) == 0
        assert time.monotonic() - t0 < 6
    assert "graceful timeout: cutting 1 connections" in srv.log()


def _wrk_problems(output: str) -> list[str]:
    problems = [line.strip() for line in output.splitlines() if "Non-2xx or 3xx responses" in line]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m and any(int(n) for n in m.groups()):
        problems.append(m.group(0))
    return problems


@needs_sighup
def test_sighup_under_wrk_fails_no_request(site, krait_server):
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    srv = krait_server(site, "--workers", "2")
    inits = site / ".private" / "inits"
    before = len(inits.read_text().split())  # one line per worker start (HTTP pool and WebSocket spare)
    proc = subprocess.Popen([wrk, "-t1", "-c10", "-d4s", srv.url + "/hello.py"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        srv.signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert re.search(r"(\d+) requests in", out) and int(re.search(r"(\d+) requests in", out).group(1)) > 100, out
    assert _wrk_problems(out) == [], out
    time.sleep(0.5)
    assert len(inits.read_text().split()) >= before + 2, "init.py did not run again in the new workers"
    assert "reloaded: generation 1 serves" in srv.log()
    assert get(srv.port, "/hello.py")[::2] == (200, b"hi")
    assert_normal(srv.port)


# --- multi-core --------------------------------------------------------------------------------


@needs_shared_port
def test_processes_share_the_port(site, krait_server):
    srv = krait_server(site, "--workers", "1", "--processes", "2")
    pids = {get(srv.port, "/pid.py")[2] for _ in range(40)}
    assert len(pids) >= 2, "only one server process answered: %s" % pids
    assert_normal(srv.port)
    # A second Krait on the same port is refused, as with one process: SO_REUSEPORT must not let it join.
    second = subprocess.run([sys.executable, "-m", "krait", str(site), "--port", str(srv.port), "--processes", "2"],
                            capture_output=True, text=True, timeout=60, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert second.returncode == 1 and "cannot listen on 127.0.0.1:%d" % srv.port in second.stderr
    assert srv.stop() == 0


def _server_processes(parent: int) -> list[int]:
    return [int(pid) for pid in subprocess.run(["pgrep", "-P", str(parent)], capture_output=True,
                                               text=True).stdout.split()]


@needs_shared_port
def test_a_server_process_that_dies_stops_the_others_and_krait_exits_1(site, krait_server):
    # Supervised: the service manager sees the failure (and restarts the whole) instead of a parent that
    # serves nothing, or serves with less than it was asked to.
    srv = krait_server(site, "--workers", "1", "--processes", "2")
    children = _server_processes(srv.proc.pid)
    assert len(children) == 2
    os.kill(children[0], signal.SIGKILL)
    assert srv.proc.wait(20) == 1
    assert "server process %d ended (killed by signal 9): stopping the others" % children[0] in srv.log()
    assert wait_for(lambda: not os.path.exists("/proc/%d" % children[1]), 20), "the other server lives on"


@needs_shared_port
def test_server_processes_stop_when_their_parent_is_gone(site, krait_server):
    srv = krait_server(site, "--workers", "1", "--processes", "2")
    children = _server_processes(srv.proc.pid)
    srv.proc.kill()
    srv.proc.wait(10)
    assert wait_for(lambda: not any(os.path.exists("/proc/%d" % pid) for pid in children), 20), \
        "server processes outlived their parent"
