"""WebSockets at scale through the real server: many connections per worker process, rooms and publish
(across --processes too), slow members, pings, and upgrades that never hold HTTP up
(docs/websockets.md)."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import websocket

from krait import limits
from tests.functional.test_ws_conformance import BINARY, CLOSE, PING, PONG, TEXT, RawWS, close_body, upgrade_request
from tests.helpers import needs_shared_port, read_all, start_krait, write_site

INIT = """
import krait
from krait.config import Route
krait.config.routes = [
    Route("WEBSOCKET", url="/ws", target="/ws.py"),
    Route("POST", url="/publish", target="/publish.py"),
    Route(),
]
"""

WS = """
import os
import threading
import time

import krait
from krait import websockets


class Echo(websockets.WebsocketsCtrlBase):
    # Event model (no queue, no thread of its own), with commands for the tests.
    def __init__(self, first, fail_start=False):
        super().__init__(use_in_message_queue=False)
        self.first = first
        self.fail_start = fail_start

    def on_start(self):
        super().on_start()
        if self.fail_start:
            raise RuntimeError("a failing on_start")
        self.push_out_message(self.first)

    def on_in_message(self, message):
        if isinstance(message, bytes):
            self.push_out_message(message)
            return
        word, _, rest = message.partition(" ")
        if word == "raise":
            raise RuntimeError("a controller bug")
        elif word == "block":
            time.sleep(float(rest))
            self.push_out_message("unblocked")
        elif word == "pid":
            self.push_out_message("%d %d" % (os.getpid(), os.getppid()))
        elif word == "threads":
            self.push_out_message(str(threading.active_count()))
        elif word == "join":
            self.join(rest)
            self.push_out_message("joined " + rest)
        elif word == "leave":
            self.leave(rest)
            self.push_out_message("left " + rest)
        elif word == "pub":
            room, _, text = rest.partition(" ")
            websockets.publish(room, text)
        elif word == "flood":
            room, count, size = rest.split()
            for i in range(int(count)):
                websockets.publish(room, ("%d " % i).encode() + b"x" * int(size))
            self.push_out_message("flooded")
        else:
            self.push_out_message(message)


class Threaded(Echo):
    def on_thread_start(self):
        while not self.should_stop():
            time.sleep(0.02)


query = krait.request.query
time.sleep(float(query.get("slow", "0")))  # a slow route script: another upgrade may come meanwhile
seen = "tag:%s same:%s" % (krait.request.query.get("tag"), krait.websockets.request.http_request is krait.request)
if query.get("refuse"):
    krait.response = krait.Response("HTTP/1.1", 403, [], "refused")
else:
    controller = (Threaded if query.get("mode") == "thread" else Echo)(seen, query.get("fail") == "start")
    if query.get("join"):
        controller.join(query["join"])  # in __init__'s time: takes effect when the connection opens
    krait.websockets.response = krait.websockets.WebsocketsResponse(controller)
"""

PUBLISH = """
import krait
form = krait.request.get_post_form()
for i in range(int(form.get("count", "1"))):
    krait.websockets.publish(form["room"], form["text"] if form.get("count") is None else "%s %d" % (form["text"], i))
krait.response = krait.Response("HTTP/1.1", 204, [], b"")
"""

SITE = {".py/init.py": INIT, "ws.py": WS, "publish.py": PUBLISH, "hello.txt": "hello\n"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsscale")
    srv = start_krait(write_site(root / "site", SITE), "--ws-workers", "2", workdir=root / "run")
    yield srv
    srv.stop()


def connect(srv, query: str = "", timeout: float = 10.0) -> websocket.WebSocket:
    ws = websocket.create_connection("ws://127.0.0.1:%d/ws%s" % (srv.port, query), timeout=timeout)
    ws.first = ws.recv()  # what the route script saw
    return ws


def ask(ws: websocket.WebSocket, text: str) -> str:
    ws.send(text)
    return ws.recv()


def threads_of(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


# --- many connections per worker process ------------------------------------------------------------


def test_many_connections_share_two_workers_and_cost_no_threads(server):
    first = connect(server)
    server_threads = threads_of(server.proc.pid)
    worker_pid = int(ask(first, "pid").split()[0])
    worker_threads = threads_of(worker_pid)
    sockets = [first]
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            sockets += pool.map(lambda _: connect(server), range(300))
        pids = {int(ask(ws, "pid").split()[0]) for ws in sockets}
        assert len(pids) <= 2, pids  # --ws-workers 2 hold all 301 connections
        assert all(ask(ws, "m%d" % i) == "m%d" % i for i, ws in enumerate(sockets))
        # the server process's threads do not grow with open WebSockets, nor an event-mode worker's
        assert threads_of(server.proc.pid) <= server_threads + 4
        assert threads_of(worker_pid) <= worker_threads + 4
    finally:
        for ws in sockets:
            ws.close()


def test_a_controller_with_its_own_thread_keeps_it(server):
    # A worker runs three threads of its own (pipe reader, route scripts, watchdog); a controller that
    # overrides on_thread_start adds one, for as long as its connection lasts.
    threaded = [connect(server, "?mode=thread") for _ in range(4)]
    per_worker: dict[int, int] = {}
    for ws in threaded:
        pid = int(ask(ws, "pid").split()[0])
        per_worker[pid] = per_worker.get(pid, 0) + 1
    try:
        for pid, count in per_worker.items():
            assert threads_of(pid) >= 3 + count
        assert all(ask(ws, "x") == "x" for ws in threaded)
    finally:
        for ws in threaded:
            ws.close()
    deadline = time.monotonic() + 10
    while any(threads_of(pid) > 4 for pid in per_worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(threads_of(pid) <= 4 for pid in per_worker)  # their threads ended with them


def test_concurrent_route_scripts_each_see_their_own_request(server):
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        socks = list(pool.map(lambda i: connect(server, "?slow=0.2&tag=%d" % i), range(6)))
    try:
        assert [ws.first for ws in socks] == ["tag:%d same:True" % i for i in range(6)]
    finally:
        for ws in socks:
            ws.close()


def test_a_blocking_controller_delays_only_its_own_connection(server):
    socks = [connect(server) for _ in range(6)]  # several on each worker
    try:
        blocked = socks[0]
        blocked.send("block 3")
        time.sleep(0.2)
        started = time.monotonic()
        assert all(ask(ws, "still here") == "still here" for ws in socks[1:])
        assert time.monotonic() - started < 2.0  # not held up the 3 s of the blocked one
        assert blocked.recv() == "unblocked"
    finally:
        for ws in socks:
            ws.close()


def test_an_exception_in_on_start_closes_only_its_connection_and_upgrades_go_on(server):
    with RawWS(server.port, "/ws?fail=start") as failing:
        frame = failing.read_frame()
        assert (frame.opcode, frame.payload) == (CLOSE, close_body(1011))
        failing.send_frame(CLOSE, close_body(1011))
        failing.expect_eof()
    socks = [connect(server) for _ in range(6)]  # both WebSocket workers get some: neither is wedged
    try:
        assert all(ask(ws, "ok") == "ok" for ws in socks)
        assert "RuntimeError: a failing on_start" in server.log()
    finally:
        for ws in socks:
            ws.close()


def test_an_exception_in_a_controller_closes_only_its_connection(server):
    socks = [connect(server) for _ in range(4)]
    try:
        with RawWS(server.port, "/ws") as failing:
            assert failing.read_message()[0] == TEXT  # what the route script saw
            failing.send_frame(TEXT, b"raise")
            frame = failing.read_frame()
            assert (frame.opcode, frame.payload) == (CLOSE, close_body(1011))  # RFC 6455 7.4.1, no details
            failing.send_frame(CLOSE, close_body(1011))
            failing.expect_eof()
        assert all(ask(ws, "ok") == "ok" for ws in socks)
        assert "RuntimeError: a controller bug" in server.log()
    finally:
        for ws in socks:
            ws.close()


def test_a_dying_worker_closes_only_its_connections_and_is_replaced(tmp_path):
    srv = start_krait(write_site(tmp_path / "site", SITE), "--ws-workers", "2", workdir=tmp_path / "run")
    socks: list = []
    try:
        # The second worker starts once the first holds a connection; new ones then go to the emptier.
        by_pid: dict[int, list] = {}
        deadline = time.monotonic() + 15
        while (len(by_pid) < 2 or len(socks) < 8) and time.monotonic() < deadline:
            ws = connect(srv)
            socks.append(ws)
            by_pid.setdefault(int(ask(ws, "pid").split()[0]), []).append(ws)
            time.sleep(0.1)
        assert len(by_pid) == 2, by_pid
        victim, survivor = sorted(by_pid)
        os.kill(victim, signal.SIGKILL)
        for ws in by_pid[victim]:  # closed by the server (1011), or at least cut
            try:
                ws.settimeout(10)
                while ws.recv_data_frame(True)[0] != websocket.ABNF.OPCODE_CLOSE:
                    pass
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                pass
        assert all(ask(ws, "fine") == "fine" for ws in by_pid[survivor])
        fresh = [connect(srv) for _ in range(4)]  # new connections work: the worker was replaced
        assert all(ask(ws, "new") == "new" for ws in fresh)
        assert victim not in {int(ask(ws, "pid").split()[0]) for ws in fresh}
        socks += fresh
    finally:
        for ws in socks:
            ws.close()
        srv.stop()
    assert "WebSocket worker %d died" % victim in srv.log()


# --- HTTP is never held up --------------------------------------------------------------------------


def test_upgrades_past_the_limit_get_503_at_once_and_http_stays_prompt(tmp_path):
    srv = start_krait(write_site(tmp_path / "site", SITE), "--max-websockets", "5", workdir=tmp_path / "run")
    held = [connect(srv) for _ in range(5)]
    try:
        def upgrade(_):
            started = time.monotonic()
            with RawWS(srv.port, "/ws") as ws:
                return ws.status, ws.headers.get("retry-after"), time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(100) as pool:
            refused = pool.map(upgrade, range(100))
            static = []
            for _ in range(5):
                started = time.monotonic()
                assert requests.get(srv.url + "/hello.txt", timeout=5).text == "hello\n"
                static.append(time.monotonic() - started)
            refused = list(refused)
        assert all(status == 503 and retry == "1" for status, retry, _ in refused), refused[:3]
        assert max(took for _, _, took in refused) < 1.0
        assert max(static) < 1.0
        assert all(ask(ws, "alive") == "alive" for ws in held)
    finally:
        for ws in held:
            ws.close()
        srv.stop()


def connect_from(srv, source: str, headers: list[str] | None = None, query: str = "") -> websocket.WebSocket:
    """A WebSocket from the loopback address `source` (any of 127.0.0.0/8 reaches the server)."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=(source, 0))
    ws = websocket.create_connection("ws://127.0.0.1:%d/ws%s" % (srv.port, query), timeout=10, socket=sock,
                                     header=headers)
    ws.first = ws.recv()
    return ws


def closed_with(ws: websocket.WebSocket) -> int:
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    return int.from_bytes(data[:2], "big")


def refused(srv, source: str, headers: list[str] | None = None, query: str = "") -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect_from(srv, source, headers, query)
    return caught.value.status_code


def test_a_full_server_makes_room_for_an_upgrade_from_an_address_holding_fewer(tmp_path):
    # When every --max-websockets place is taken, a newcomer closes (1013 Try Again Later) the oldest
    # connection of the address holding the most, while that holds at least two more than the
    # newcomer's; otherwise 503 as before. One address cannot lock the others out.
    srv = start_krait(write_site(tmp_path / "site", SITE), "--max-websockets", "6", workdir=tmp_path / "run")
    first = connect_from(srv, "127.0.0.2")
    many = [connect_from(srv, "127.0.0.1") for _ in range(5)]
    try:
        newcomers = []
        for victim in many[:2]:  # 5 against 1, then 4 against 2
            newcomers.append(connect_from(srv, "127.0.0.2"))
            assert closed_with(victim) == 1013
        assert refused(srv, "127.0.0.2") == 503  # 3 against 3: shares are even
        assert refused(srv, "127.0.0.1") == 503
        newcomers.append(connect_from(srv, "127.0.0.3"))  # 0 against 3: the oldest of the top ones goes
        assert closed_with(first) == 1013
        for ws in many[2:] + newcomers:
            assert ask(ws, "alive") == "alive"
    finally:
        for ws in [first, *many, *newcomers]:
            ws.close()
        srv.stop()
    assert "all 6 WebSocket places taken: closed (1013) a connection from 127.0.0.1 to make room" in srv.log()


def test_an_upgrade_its_script_refuses_closes_nobody(tmp_path):
    # Room is made for an upgrade only once its route script has accepted it: upgrades that are refused
    # (or given up) cannot close other clients' connections one after another.
    srv = start_krait(write_site(tmp_path / "site", SITE), "--max-websockets", "3", workdir=tmp_path / "run")
    held = [connect_from(srv, "127.0.0.1") for _ in range(3)]
    try:
        for _ in range(3):
            assert refused(srv, "127.0.0.2", query="?refuse=1") == 403
        assert [ask(ws, "alive") for ws in held] == ["alive"] * 3
        held.append(connect_from(srv, "127.0.0.2"))  # accepted: now the oldest of 127.0.0.1's goes
        assert closed_with(held[0]) == 1013 and ask(held[3], "alive") == "alive"
    finally:
        for ws in held:
            ws.close()
        srv.stop()


@pytest.mark.parametrize("holders, same, other", [
    (["10.0.0.1"] * 3, "10.0.0.1", "10.0.0.2"),
    # A host picks the low 64 bits of its IPv6 address itself: three addresses of one /64 hold three
    # places of that /64, and a fourth of it is that /64 too.
    (["[2001:db8::1]:4000", "2001:db8::2", "2001:db8::3"], "2001:db8::ffff:4", "2001:db8:0:1::1"),
])
def test_behind_a_trusted_proxy_places_are_shared_by_forwarded_address(tmp_path, holders, same, other):
    srv = start_krait(write_site(tmp_path / "site", SITE), "--max-websockets", "3",
                      "--forwarded-allow-ips", "127.0.0.1", workdir=tmp_path / "run")
    held = [connect_from(srv, "127.0.0.1", ["X-Forwarded-For: " + address]) for address in holders]
    try:
        assert refused(srv, "127.0.0.1", ["X-Forwarded-For: " + same]) == 503
        newcomer = connect_from(srv, "127.0.0.1", ["X-Forwarded-For: " + other])
        held.append(newcomer)
        assert closed_with(held[0]) == 1013 and ask(newcomer, "alive") == "alive"
    finally:
        for ws in held:
            ws.close()
        srv.stop()


def test_max_websockets_fits_the_open_file_limit(tmp_path):
    out = subprocess.run([sys.executable, "-m", "krait", "--help"], capture_output=True, text=True).stdout
    assert "--max-websockets MAX_WEBSOCKETS" in out and "10000" in out

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (700, 700))

    site = write_site(tmp_path / "site", SITE)
    cmd = [sys.executable, "-m", "krait", str(site), "--port", "0", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=low_limit)
    try:
        line = proc.stdout.readline()
        assert "serving" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "the open-file limit is 700" in err and "--max-websockets from 10000 to" in err, err


# --- rooms ----------------------------------------------------------------------------------------


def test_publish_reaches_every_member_in_order_and_leave_stops_it(server):
    members = [connect(server, "?join=lobby") for _ in range(6)]  # joined in __init__
    outsider = connect(server)
    try:
        publisher = members[0]
        for i in range(20):
            publisher.send("pub lobby n%d" % i)
        for ws in members:
            assert [ws.recv() for _ in range(20)] == ["n%d" % i for i in range(20)]
        assert ask(members[1], "leave lobby") == "left lobby"
        assert ask(outsider, "join lobby") == "joined lobby"
        publisher.send("pub lobby after")
        assert outsider.recv() == "after" and members[2].recv() == "after"
        members[1].settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            members[1].recv()  # left: nothing more
    finally:
        for ws in members + [outsider]:
            ws.close()


def test_a_script_publishes_to_the_room(server):
    members = [connect(server, "?join=news") for _ in range(3)]
    try:
        r = requests.post(server.url + "/publish", data={"room": "news", "text": "extra"}, timeout=10)
        assert r.status_code == 204
        assert [ws.recv() for ws in members] == ["extra"] * 3
        r = requests.post(server.url + "/publish", data={"room": "news", "text": "item", "count": "30"}, timeout=10)
        for ws in members:
            assert [ws.recv() for _ in range(30)] == ["item %d" % i for i in range(30)]
    finally:
        for ws in members:
            ws.close()


@needs_shared_port
def test_publish_crosses_server_processes(tmp_path):
    srv = start_krait(write_site(tmp_path / "site", SITE), "--processes", "2", "--ws-workers", "1",
                      workdir=tmp_path / "run")
    socks = []
    try:
        # Connections land on either process (SO_REUSEPORT); each process has its own forkserver, so a
        # worker's parent pid tells the processes apart.
        deadline = time.monotonic() + 20
        parents: dict[int, websocket.WebSocket] = {}
        while len(parents) < 2 and time.monotonic() < deadline:
            ws = connect(srv, "?join=all")
            socks.append(ws)
            parents.setdefault(int(ask(ws, "pid").split()[1]), ws)
        assert len(parents) == 2, "every connection landed on one process"
        one, other = parents.values()
        one.send("pub all from-one")
        for ws in socks:
            assert ws.recv() == "from-one"
        requests.post(srv.url + "/publish", data={"room": "all", "text": "from-http"}, timeout=10)
        for ws in socks:
            assert ws.recv() == "from-http"
    finally:
        for ws in socks:
            ws.close()
        srv.stop()


def test_a_member_that_does_not_read_is_closed_and_does_not_slow_the_others(server):
    readers = [connect(server, "?join=firehose") for _ in range(3)]
    # A client with a tiny receive buffer (set before connecting, so the kernel cannot grow it), that
    # stops reading after the handshake.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.port))
    slow.sendall(upgrade_request("/ws?join=firehose", base64.b64encode(os.urandom(16)).decode()))
    head = b""
    while b"\r\n\r\n" not in head:
        head += slow.recv(1)
    try:
        assert head.startswith(b"HTTP/1.1 101 ")

        def read_all(ws):
            got = [ws.recv() for _ in range(250)]
            return [m[:m.index(b" ")] for m in got]

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            reading = [pool.submit(read_all, ws) for ws in readers]
            # 8 MB for each member: more than the kernel's send buffer (at most 4 MB by default) and
            # WS_SLOW_UNSENT together; the readers keep up, however large the burst
            readers[0].send("flood firehose 250 32768")
            for future in reading:
                assert future.result(timeout=60) == [b"%d" % i for i in range(250)]
        assert readers[0].recv() == "flooded"
        # the slow member, still not reading, is cut off after WS_SEND_STALL: past what it had in flight,
        # it finds a close (1008) and the end
        time.sleep(limits.WS_SEND_STALL + 2)
        slow.settimeout(10)
        rest = b""
        try:
            while chunk := slow.recv(1 << 20):
                rest += chunk
        except ConnectionError:
            pass
        assert len(rest) < 250 * 32768
        assert rest.endswith(b"\x88" + bytes([2 + len(b"too slow")]) + close_body(1008, b"too slow"))
        assert all(ask(ws, "on") == "on" for ws in readers)
    finally:
        slow.close()
        for ws in readers:
            ws.close()


# --- pings ------------------------------------------------------------------------------------------


def test_idle_clients_are_pinged_and_silent_ones_closed(tmp_path):
    srv = start_krait(write_site(tmp_path / "site", SITE), "--ws-ping-interval", "0.5", "--ws-ping-timeout", "1",
                      workdir=tmp_path / "run")
    try:
        with RawWS(srv.port, "/ws") as answering, RawWS(srv.port, "/ws") as silent:
            for ws in (answering, silent):
                ws.sock.settimeout(5)
                assert ws.read_frame().opcode == TEXT  # what the route script saw
            for _ in range(3):  # it answers every ping: it stays open
                frame = answering.read_frame()
                assert frame.opcode == PING
                answering.send_frame(PONG, frame.payload)
            answering.send_frame(BINARY, b"still open")
            frame = answering.read_frame()
            assert (frame.opcode, frame.payload) == (BINARY, b"still open")
            assert silent.read_frame().opcode == PING  # never answered
            frame = silent.read_frame()
            assert (frame.opcode, frame.payload[:2]) == (CLOSE, close_body(1011)[:2])
    finally:
        srv.stop()


def test_a_client_reading_a_backlog_steadily_is_not_closed_for_a_late_pong(tmp_path):
    # The ping waits behind 3 MB queued for a client that reads about 600 kB/s: the pong timeout counts
    # from when the ping leaves, not from when it was queued.
    srv = start_krait(write_site(tmp_path / "site", SITE), "--ws-ping-interval", "0.5", "--ws-ping-timeout", "1",
                      workdir=tmp_path / "run")
    try:
        with RawWS(srv.port, "/ws?join=backlog", rcvbuf=32768) as reader, RawWS(srv.port, "/ws") as sender:
            assert reader.read_frame().opcode == TEXT and sender.read_frame().opcode == TEXT

            def steady() -> None:
                chunk = reader.sock.recv(16384)
                if not chunk:
                    raise EOFError("server closed the connection")
                reader.buf += chunk
                time.sleep(0.025)

            reader._fill = steady  # type: ignore[method-assign]
            sender.send_frame(TEXT, b"flood backlog 12 262144")
            got: list[bytes] = []
            while got[-1:] != [b"still open"]:
                frame = reader.read_frame()
                if frame.opcode == PING:  # the first comes after the backlog
                    reader.send_frame(PONG, frame.payload)
                    if len(got) == 12:
                        reader.send_frame(TEXT, b"still open")
                    continue
                assert frame.opcode in (BINARY, TEXT), (frame.opcode, frame.payload[:40], len(got))
                got.append(frame.payload if frame.opcode == TEXT else frame.payload.split(b" ")[0])
            assert got == [b"%d" % i for i in range(12)] + [b"still open"]
    finally:
        srv.stop()


# --- reloads ------------------------------------------------------------------------------------------


def test_an_edit_under_py_reaches_new_connections_and_a_broken_one_takes_nothing_down(tmp_path):
    files = dict(SITE)
    files[".py/version.py"] = "VERSION = 'one'\n"
    files["ws.py"] = WS.replace('seen = "tag:%s same:%s"', 'import version\nseen = version.VERSION + " tag:%s same:%s"')
    site = write_site(tmp_path / "site", files)
    srv = start_krait(site, workdir=tmp_path / "run")
    socks = []
    try:
        old = connect(srv)
        socks.append(old)
        assert old.first.startswith("one ")
        (site / ".py" / "version.py").write_text("VERSION = 'two'\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ws = connect(srv)
            socks.append(ws)
            if ws.first.startswith("two "):
                break
            time.sleep(0.3)
        assert socks[-1].first.startswith("two "), "new connections never got the edited module"
        assert ask(old, "still") == "still"  # the connection from before the reload carries on
        (site / ".py" / "init.py").write_text(INIT + "\nraise ImportError('broken on purpose')\n")
        time.sleep(3)  # the watcher saw it; the new worker failed to start
        ws = connect(srv)  # still served, by the workers of the last good generation
        socks.append(ws)
        assert ws.first.startswith("two ") and ask(ws, "fine") == "fine"
        assert "broken on purpose" in srv.log()
    finally:
        for ws in socks:
            ws.close()
        srv.stop()


def test_a_publish_from_init_py_does_not_stop_the_server_starting(tmp_path):
    # init.py runs in every worker before its start-up report; a publish there reaches nobody.
    site = dict(SITE)
    site[".py/init.py"] = INIT + "krait.websockets.publish('news', 'starting')\n"
    srv = start_krait(write_site(tmp_path / "site", site), "--workers", "1", workdir=tmp_path / "run")
    try:
        ws = connect(srv)
        try:
            assert ask(ws, "ok") == "ok"
        finally:
            ws.close()
        assert requests.get(srv.url + "/hello.txt", timeout=10).text == "hello\n"
    finally:
        srv.stop()


def test_an_upgrade_with_a_body_is_refused_and_holds_no_connection(server):
    # The body would be read as frames after the 101, and its session was never released.
    for extra in ({"Content_Length": "1"}, {"Transfer_Encoding": "chunked"}):
        body = b"x" if "Content_Length" in extra else b"1\r\nx\r\n0\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(upgrade_request("/ws", base64.b64encode(os.urandom(16)).decode(), **extra) + body)
            assert read_all(sock).startswith(b"HTTP/1.1 400 "), extra
    ws = connect(server)
    try:
        assert ask(ws, "ok") == "ok"
    finally:
        ws.close()
