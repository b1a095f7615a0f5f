"""krait/server/hub.py in this process, with a real WebSocket worker: orders of events that a
functional test cannot reach on purpose."""

from __future__ import annotations

import socket
import time

import pytest

from krait import limits
from krait.errors import GatewayTimeout
from krait.http.websocket import WebSocketConnection
from krait.pool import jobs
from krait.server.hub import WebSocketHub
from krait.server.websocket import Opening
from krait.settings import Settings

ROUTE = """import krait


class Quiet(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)


krait.websockets.response = krait.websockets.WebsocketsResponse(Quiet())
"""


ECHO = """import krait


class Echo(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.push_out_message("echo: " + message)


krait.websockets.response = krait.websockets.WebsocketsResponse(Echo())
"""

# Controllers broken by their site code, beyond raising from a callback: each must cost only its own
# connection (1011), never its worker.
BROKEN = {
    "forgets the base __init__": """import krait


class Forgetful(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        self.count = 0


krait.websockets.response = krait.websockets.WebsocketsResponse(Forgetful())
""",
    "overrides close() and fails": """import krait


class OwnClose(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        raise ValueError(message)

    def close(self):
        pass


krait.websockets.response = krait.websockets.WebsocketsResponse(OwnClose())
""",
}


def _job(root, script: str = "ws.py") -> jobs.Job:
    return jobs.Job(jobs.WEBSOCKET, str(root / script), script, "GET", "/ws", "/ws", "", "HTTP/1.1", {}, b"",
                    ("127.0.0.1", 1), "http", ())


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def hub(tmp_path):
    (tmp_path / "ws.py").write_text(ROUTE)
    hub = WebSocketHub(Settings(site_root=str(tmp_path), ws_workers=1))
    hub.start()
    yield hub
    hub.stop()


def _events(sock: socket.socket, ws: WebSocketConnection, count: int = 1, timeout: float = 10) -> list:
    """The next `count` events of the client's session (fewer if the server closes or time runs out)."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        ws.receive_data(data)
        got += ws.events()
        if not data:
            break
    return got


def _connect(hub, root, script: str = "ws.py", sndbuf: int = 0,
             delay: float = 0.0) -> tuple[int, socket.socket, WebSocketConnection]:
    """A connection accepted by the route script, its server end attached to the hub `delay` seconds
    later (as the HTTP thread does once the 101 is out): (number, client end, the client's sans-IO
    session)."""
    result, conn = hub.open(_job(root, script), 30)
    assert result.status == 101
    server_end, client_end = socket.socketpair()
    if sndbuf:
        server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        client_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    time.sleep(delay)
    hub.attach(conn, server_end, b"", lambda: None)
    return conn, client_end, WebSocketConnection(client=True)


@pytest.mark.parametrize("how", ["eof", "close frame"])
def test_a_closed_client_that_does_not_take_its_output_is_dropped_without_spinning(hub, tmp_path, monkeypatch,
                                                                                     how):
    # Pings sent without reading the pongs leave output queued in the hub; the client then ends the
    # session. The hub must neither spin on the readable-at-EOF socket nor hold the connection for ever.
    monkeypatch.setattr(limits, "WS_CLOSE_TIMEOUT", 1.0)
    conn, sock, ws = _connect(hub, tmp_path, sndbuf=4096)
    hub.clients[conn].ws.max_control_frames = 10 ** 6  # the pings come in bursts past the per-read cap
    sock.sendall(ws.send_ping(b"x" * 125) * 3000)  # ~380 KB of pongs, never read
    assert _wait(lambda: hub.clients[conn].unsent > 100000, 10)
    if how == "eof":
        sock.shutdown(socket.SHUT_WR)
    else:
        sock.sendall(ws.send_close(1000, "bye"))
    time.sleep(0.3)
    cpu = time.process_time()
    assert _wait(lambda: conn not in hub.clients, limits.WS_CLOSE_TIMEOUT + 3)
    assert time.process_time() - cpu < 0.5  # the hub slept in select() meanwhile
    sock.close()


@pytest.mark.parametrize("fault", list(BROKEN))
def test_a_broken_controller_closes_only_its_own_connection(hub, tmp_path, fault):
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / "broken.py").write_text(BROKEN[fault])
    pid = hub.workers.workers[0].proc.pid
    _, good, good_ws = _connect(hub, tmp_path, "echo.py")
    _, bad, bad_ws = _connect(hub, tmp_path, "broken.py")
    try:
        bad.sendall(bad_ws.send_text("boom"))
    except OSError:
        pass  # closed already
    assert [(type(e).__name__, e.code) for e in _events(bad, bad_ws)] == [("CloseReceived", 1011)]
    good.sendall(good_ws.send_text("still there"))
    assert [getattr(e, "data", e) for e in _events(good, good_ws)] == ["echo: still there"]
    _, late, late_ws = _connect(hub, tmp_path, "echo.py")  # the worker takes upgrades on
    late.sendall(late_ws.send_text("late"))
    assert [getattr(e, "data", e) for e in _events(late, late_ws)] == ["echo: late"]
    assert [w.proc.pid for w in hub.workers.workers] == [pid]
    for sock in (good, bad, late):
        sock.close()


SNAPSHOT = """import krait


class Snapshot(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_start(self):
        for _ in range(3):
            self.push_out_message(b"s" * 600000)


krait.websockets.response = krait.websockets.WebsocketsResponse(Snapshot())
"""


def test_output_sent_before_the_socket_is_attached_is_not_taken_for_a_slow_reader(hub, tmp_path):
    # on_start() runs as soon as the route script accepts, before the HTTP thread has sent the 101 and
    # attached the socket: more than WS_SLOW_UNSENT may wait for it. The slow-reader clock starts at
    # attach(), so a brand-new connection is never closed 1008 for that.
    (tmp_path / "snapshot.py").write_text(SNAPSHOT)
    _, sock, ws = _connect(hub, tmp_path, "snapshot.py", delay=0.3)
    got = _events(sock, ws, 3)
    assert [(type(e).__name__, len(getattr(e, "data", b""))) for e in got] == [("BinaryMessage", 600000)] * 3
    sock.close()


def test_a_worker_whose_route_script_overran_is_killed_and_replaced(tmp_path):
    # As a script worker is killed with a job past --timeout: a looping route script must not keep its
    # worker spinning for good. Its other connections close with 1011; the next upgrade gets a new worker.
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / "loop.py").write_text("while True:\n    pass\n")
    hub = WebSocketHub(Settings(site_root=str(tmp_path), ws_workers=1, timeout=1.0))
    hub.start()
    try:
        _, sock, ws = _connect(hub, tmp_path, "echo.py")
        worker = hub.workers.workers[0]
        with pytest.raises(GatewayTimeout):
            hub.open(_job(tmp_path, "loop.py"), 1.0)
        assert _wait(lambda: not worker.proc.process.is_alive(), 5)
        assert [(type(e).__name__, e.code) for e in _events(sock, ws)] == [("CloseReceived", 1011)]
        _, late, late_ws = _connect(hub, tmp_path, "echo.py")
        late.sendall(late_ws.send_text("late"))
        assert [getattr(e, "data", e) for e in _events(late, late_ws)] == ["echo: late"]
        assert hub.workers.workers[0] is not worker
        sock.close()
        late.close()
    finally:
        hub.stop()


def test_an_upgrade_accepted_just_after_its_thread_gave_up_waiting_is_released(tmp_path):
    # open() waits for the route script with a deadline; when the deadline passes just before the
    # worker's 101 arrives, the HTTP thread sends no 101 and hands over no socket. The session the
    # worker started must still end, or it holds one of --max-websockets for ever.
    (tmp_path / "ws.py").write_text(ROUTE)
    hub = WebSocketHub(Settings(site_root=str(tmp_path)))
    hub.start()
    try:
        job = jobs.Job(jobs.WEBSOCKET, str(tmp_path / "ws.py"), "ws.py", "GET", "/ws", "/ws", "", "HTTP/1.1",
                       {}, b"", ("127.0.0.1", 1), "http", ())
        opening = Opening(job)
        hub.call(hub._open, opening)
        assert opening.done.wait(30) and opening.result is not None and opening.result.status == 101
        assert hub.count() == 1
        hub.call(hub._abandon, opening)  # what open() does once its wait has run out
        deadline = time.monotonic() + 10
        while hub.count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hub.count() == 0
    finally:
        hub.stop()


CLOSER = """import krait


class Closer(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.close(4000, "done")


krait.websockets.response = krait.websockets.WebsocketsResponse(Closer())
"""


def test_after_its_close_the_hub_waits_for_the_clients_close_and_ignores_data_meanwhile(hub, tmp_path):
    # RFC 6455 section 5.5.1: a client may send data frames before it has read our Close. Dropping the
    # connection on them reset it, and the reset could destroy the Close frame on its way to the client.
    (tmp_path / "closer.py").write_text(CLOSER)
    _, sock, ws = _connect(hub, tmp_path, "closer.py")
    sock.sendall(ws.send_text("first"))
    assert [(type(e).__name__, e.code) for e in _events(sock, ws)] == [("CloseReceived", 4000)]
    sock.sendall(WebSocketConnection(client=True).send_text("sent before it read the close"))
    time.sleep(0.3)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):  # still open: the hub waits for the client's Close
        sock.recv(1)
    sock.setblocking(True)
    sock.sendall(ws.data_to_send())  # the client's Close, echoing ours
    sock.settimeout(3)
    assert sock.recv(1) == b""  # then the hub closes the connection
    sock.close()


FAILS_AT_START = """import krait


class FailsAtStart(krait.websockets.WebsocketsCtrlBase):
    def on_start(self):
        raise RuntimeError("at once")


krait.websockets.response = krait.websockets.WebsocketsResponse(FailsAtStart())
"""


def test_a_close_decided_before_the_socket_is_attached_still_reaches_the_client(hub, tmp_path):
    # on_start() fails as soon as the route script accepts: the worker's 1011 and its end of the session
    # can both reach the hub before the HTTP thread has sent the 101 and attached the socket. The client
    # must still get the Close, not a bare EOF.
    (tmp_path / "fails.py").write_text(FAILS_AT_START)
    _, sock, ws = _connect(hub, tmp_path, "fails.py", delay=0.5)
    assert [(type(e).__name__, e.code) for e in _events(sock, ws)] == [("CloseReceived", 1011)]
    sock.close()
