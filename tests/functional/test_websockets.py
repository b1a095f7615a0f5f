"""WebSockets through the real server: routing, the controller API and the process model (docs/websockets.md).

Strategy: happy paths use websocket-client; lifecycle cases that need a precise disconnect use the
raw client of test_ws_conformance.py, which also holds the site (controllers in .py/wsctrl.py, one
route script per controller under ws/). One server per module, started with --max-websockets 256 so
the 200-session test fits; the starvation test starts its own server with --workers 1. Controllers
prove what Krait called by appending lines to a marker file whose path comes in the query string.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests
import websocket

from krait import limits, portable
from tests.functional.test_ws_conformance import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    SITE_FILES,
    TEXT,
    RawWS,
    close_body,
    frame,
    open_ws,
    parse_response,
    upgrade_request,
)
from tests.helpers import assert_quiet, start_krait, wait_for, write_site

pytestmark = pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsfunc")
    site = write_site(root / "site", SITE_FILES)
    srv = start_krait(site, "--max-websockets", "256", workdir=root / "run")
    yield srv
    srv.stop()


def ws_url(server, path: str) -> str:
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def connect(server, path: str = "/ws/echo", **kw) -> websocket.WebSocket:
    return websocket.create_connection(ws_url(server, path), timeout=10, **kw)


def marker_lines(path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


# --- messages ---------------------------------------------------------------------------------------


def test_queue_model_echo_text_and_binary(server):
    ws = connect(server, "/ws/echo")
    try:
        ws.send("h\u00e9llo \u2603")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, "h\u00e9llo \u2603".encode())
        ws.send_binary(b"\x00\xff\x10")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00\xff\x10")
    finally:
        ws.close()


def test_push_out_message_str_is_text_bytes_is_binary(server):
    ws = connect(server, "/ws/cmd")
    try:
        ws.send("text")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, "h\u00e9llo \u2603".encode())
        ws.send("bin")
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, bytes(range(256)))
        ws.send_binary(b"\x01\x02")  # on_in_message gets bytes for a binary message
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"binary:\x01\x02")
    finally:
        ws.close()


def test_messages_arrive_in_order(server):
    ws = connect(server, "/ws/cmd")
    try:
        ws.send("many 300")
        assert [ws.recv() for _ in range(300)] == [str(i) for i in range(300)]
        for i in range(50):
            ws.send("m%d" % i)
        assert [ws.recv() for _ in range(50)] == ["?m%d" % i for i in range(50)]
    finally:
        ws.close()


def test_event_model_100_round_trips_well_under_a_second(server):
    ws = connect(server, "/ws/fast")
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        ws.send("warm-up")
        assert ws.recv() == "warm-up"
        start = time.perf_counter()
        for i in range(100):
            ws.send("msg %d" % i)
            assert ws.recv() == "msg %d" % i
        elapsed = time.perf_counter() - start
    finally:
        ws.close()
    assert elapsed < 0.5, "100 round trips took %.3fs" % elapsed


def test_queue_model_is_prompt_too(server):
    ws = connect(server, "/ws/echo")
    try:
        start = time.perf_counter()
        for i in range(20):
            ws.send(str(i))
            assert ws.recv() == str(i)
        elapsed = time.perf_counter() - start
    finally:
        ws.close()
    assert elapsed < 1.0, "20 polled round trips took %.3fs" % elapsed


# --- handshake and routing -------------------------------------------------------------------------


def test_subprotocol_chosen_from_the_offer(server):
    ws = connect(server, "/ws/echo", subprotocols=["superchat", "chat"])
    try:
        assert ws.getsubprotocol() == "chat"
        assert ws.getheaders()["sec-websocket-protocol"] == "chat"
    finally:
        ws.close()
    ws = connect(server, "/ws/echo")
    try:
        assert ws.getsubprotocol() is None
        assert "sec-websocket-protocol" not in ws.getheaders()
    finally:
        ws.close()


@pytest.mark.parametrize("header, expected", [
    (None, []),
    ("chat", ["chat"]),
    ("a, b ,c", ["a", "b", "c"]),
])
def test_request_protocols(server, header, expected):
    extra = {"Sec_WebSocket_Protocol": header} if header else {}
    with open_ws(server.port, "/ws/info?x=1&y=%C3%A9", **extra) as ws:
        info = json.loads(ws.read_message()[1])
    assert info == {"protocols": expected, "params": {"name": "info"}, "query": "x=1&y=%C3%A9"}


def test_plain_get_to_the_socket_url_gets_the_scripts_400(server):
    r = requests.get(server.url + "/ws/echo", timeout=10)
    assert r.status_code == 400
    assert "upgrade" not in r.headers.get("connection", "").lower()


def test_any_route_accepts_upgrades(server):
    ws = connect(server, "/anyws")
    try:
        ws.send("via ANY")
        assert ws.recv() == "via ANY"
    finally:
        ws.close()


@pytest.mark.parametrize("path", ["/small.txt", "/hello.py", "/no-such-thing"])
def test_upgrade_without_websocket_route(server, path):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    status, headers, _ = parse_response(server.raw(upgrade_request(path, key)))
    assert status in (404, 405)
    assert "sec-websocket-accept" not in headers
    assert headers["connection"].lower() == "close"


def test_websocket_route_to_a_static_file_is_refused(server):
    status, headers, _ = parse_response(server.raw(upgrade_request("/static-target", "dGhlIHNhbXBsZSBub25jZQ==")))
    assert status == 400
    assert "sec-websocket-accept" not in headers


def test_script_refusal_status_is_sent(server):
    status, headers, _ = parse_response(server.raw(upgrade_request("/ws/refuse", "dGhlIHNhbXBsZSBub25jZQ==")))
    assert status == 404
    assert headers["connection"].lower() == "close"


def test_script_that_does_not_accept_gets_400(server):
    status, _, _ = parse_response(server.raw(upgrade_request("/ws/ignore", "dGhlIHNhbXBsZSBub25jZQ==")))
    assert status == 400


# --- controller lifecycle ---------------------------------------------------------------------------


def test_lifecycle_on_client_close(server, tmp_path):
    marker = tmp_path / "life.txt"
    ws = connect(server, "/ws/life?marker=" + quote(str(marker)))
    ws.send("hello")
    assert ws.recv() == "got hello"
    ws.close()
    assert wait_for(lambda: "wait_stopped True" in marker_lines(marker), 5)
    # on_stop ran after the thread was asked to stop; wait_stopped(None) waited for the thread's end
    assert marker_lines(marker) == ["on_start", "thread_start", "message hello", "on_stop", "thread_end",
                                    "wait_stopped True"]


@pytest.mark.parametrize("how", ["fin", "rst", "mid-frame"])
def test_on_stop_called_on_abrupt_disconnect(server, tmp_path, how):
    marker = tmp_path / "abrupt.txt"
    ws = open_ws(server.port, "/ws/life?marker=" + quote(str(marker)))
    ws.send_frame(TEXT, b"x")
    assert ws.read_message() == (TEXT, b"got x")
    if how == "rst":
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how == "mid-frame":
        ws.send(b"\x81\x85ab")  # half a frame header
    ws.close()
    assert wait_for(lambda: "wait_stopped True" in marker_lines(marker), 5), marker_lines(marker)
    assert marker_lines(marker)[-3:] == ["on_stop", "thread_end", "wait_stopped True"]


def test_controller_closes_with_code_and_reason(server):
    ws = connect(server, "/ws/cmd")
    try:
        ws.send("close 4002 see you")
        opcode, frame = ws.recv_data_frame(True)  # websocket-client answers the Close itself
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert frame.data == struct.pack("!H", 4002) + b"see you"
    finally:
        ws.close()


def test_text_that_is_not_unicode_is_refused_at_push_and_the_session_goes_on(server):
    # A str with a lone surrogate has no UTF-8 form: push_out_message() raises at once, in the
    # controller, instead of breaking the connection's sender later.
    ws = connect(server, "/ws/cmd")
    try:
        ws.send("surrogate")
        assert ws.recv() == "UnicodeEncodeError"
        ws.send("text")
        assert ws.recv() == "h\u00e9llo \u2603"
    finally:
        ws.close()


ENUM_SITE = {
    ".py/init.py": """import krait
from krait.config import Route

krait.config.routes = [Route("WEBSOCKET", url="/room", target="/room.py"), Route()]
""",
    ".py/names.py": """import enum


class Room(enum.StrEnum):
    CHAT = "chat"


class Code(enum.IntEnum):
    DONE = 4000
""",
    "room.py": """import krait
from names import Code, Room


class Member(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)
        self.join(Room.CHAT)

    def on_in_message(self, message):
        if message == "bye":
            self.close(Code.DONE, Room.CHAT)
        else:
            krait.websockets.publish(Room.CHAT, message)


krait.websockets.response = krait.websockets.WebsocketsResponse(Member())
""",
    "pub.py": """import krait
from names import Room

krait.websockets.publish(Room.CHAT, "from a script")
""",
}


def test_enum_room_names_close_codes_and_reasons_are_taken_as_plain_values(krait_server, make_site):
    # marshal refuses a str or int subclass and pickle names a site class the server cannot import:
    # that record killed its worker. The API sends the plain value instead.
    srv = krait_server(make_site(ENUM_SITE))
    ws = websocket.create_connection("ws://127.0.0.1:%d/room" % srv.port, timeout=10)
    try:
        ws.send("hello")
        assert ws.recv() == "hello"  # joined Room.CHAT, and published to it from the controller
        assert requests.get(srv.url + "/pub.py", timeout=10).status_code == 200
        assert ws.recv() == "from a script"
        ws.send("bye")
        opcode, frame = ws.recv_data_frame(True)
        assert (opcode, frame.data) == (websocket.ABNF.OPCODE_CLOSE, struct.pack("!H", 4000) + b"chat")
    finally:
        ws.close()
    assert "died" not in srv.log()


INLINE_SITE = {
    ".py/init.py": """import krait
from krait.config import Route

krait.config.routes = [Route("WEBSOCKET", url="/inline", target="/inline.py"), Route()]
""",
    # The controller is defined in the route script and uses that script's globals after it ended.
    "inline.py": """import json
import krait

name = krait.request.query["name"]


class Inline(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.push_out_message(json.dumps([name, message]))


krait.websockets.response = krait.websockets.WebsocketsResponse(Inline())
""",
}


LOOPING_SITE = {
    ".py/init.py": """import krait
from krait.config import Route

krait.config.routes = [Route("WEBSOCKET", url="/loop", target="/loop.py"), Route()]
""",
    # on_in_message streams until the connection ends, as a thread's loop would; the marker file (path
    # in the query string) says what Krait called.
    "loop.py": """import time
import krait

marker = krait.request.query["marker"]


class Looping(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        while not self.should_stop():
            self.push_out_message("tick")
            time.sleep(0.05)
        with open(marker, "a") as f:
            f.write("loop ended\\n")

    def on_stop(self):
        super().on_stop()
        with open(marker, "a") as f:
            f.write("on_stop\\n")


krait.websockets.response = krait.websockets.WebsocketsResponse(Looping())
""",
}


def test_a_callback_looping_until_should_stop_sees_the_end_and_frees_the_slot(krait_server, make_site, tmp_path):
    # should_stop() turns True when the connection ends, even while on_in_message runs; on_stop()
    # follows once it returns, and the connection's --max-websockets slot is free again.
    srv = krait_server(make_site(LOOPING_SITE), "--max-websockets", "1")
    marker = tmp_path / "marker"
    url = "ws://127.0.0.1:%d/loop?marker=%s" % (srv.port, quote(str(marker)))
    ws = websocket.create_connection(url, timeout=10)
    ws.send("go")
    assert ws.recv() == "tick"
    ws.close()
    assert wait_for(lambda: marker.exists() and marker.read_text() == "loop ended\non_stop\n", 5)
    again = None
    deadline = time.monotonic() + 5
    while again is None:
        try:
            again = websocket.create_connection(url, timeout=10)
        except websocket.WebSocketBadStatusException:
            assert time.monotonic() < deadline, "the slot was not freed"
            time.sleep(0.1)
    again.close()


def test_a_controller_defined_in_its_route_script_keeps_that_scripts_globals(krait_server, make_site):
    # Route scripts run in a copy of init.py's namespace (docs/scripts.md): the upgrades that follow in
    # the same worker do not take the first controller's globals away.
    srv = krait_server(make_site(INLINE_SITE), "--ws-workers", "1")
    first = websocket.create_connection("ws://127.0.0.1:%d/inline?name=a" % srv.port, timeout=10)
    second = websocket.create_connection("ws://127.0.0.1:%d/inline?name=b" % srv.port, timeout=10)
    try:
        first.send("x")
        second.send("y")
        assert json.loads(first.recv()) == ["a", "x"]
        assert json.loads(second.recv()) == ["b", "y"]
    finally:
        first.close()
        second.close()


FLOOD_SITE = {
    ".py/init.py": """import krait
from krait.config import Route

krait.config.routes = [Route("WEBSOCKET", url="/hoard", target="/hoard.py"),
                       Route("WEBSOCKET", url="/slow", target="/slow.py"),
                       Route("WEBSOCKET", url="/stop", target="/stop.py"), Route()]
""",
    # Says its worker's pid; "stop" stops that worker (SIGSTOP); "count" answers the bytes received;
    # "bye" closes the connection (1011).
    "stop.py": """import os
import signal
import krait


class Stop(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)
        self.received = 0

    def on_start(self):
        self.push_out_message(str(os.getpid()))

    def on_in_message(self, message):
        if message == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif message == "count":
            self.push_out_message(str(self.received))
        elif message == "bye":
            self.close(1011, "bye")
        else:
            self.received += len(message)


krait.websockets.response = krait.websockets.WebsocketsResponse(Stop())
""",
    # Queues every message for pop_in_message() and never pops.
    "hoard.py": """import krait
krait.websockets.response = krait.websockets.WebsocketsResponse(krait.websockets.WebsocketsCtrlBase())
""",
    # Takes two seconds per message: what the client sends meanwhile waits in the worker.
    "slow.py": """import time
import krait


class Slow(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        time.sleep(2)


krait.websockets.response = krait.websockets.WebsocketsResponse(Slow())
""",
}


@pytest.mark.parametrize("path, handled", [("/hoard", 0), ("/slow", 1)])
def test_a_client_sending_faster_than_its_controller_handles_is_closed(krait_server, make_site, path, handled):
    # Unread input is capped (WS_MAX_UNREAD) like unsent output: past it the connection closes with 1008
    # instead of the worker's memory growing without bound; the worker serves on. The client sends just
    # enough to pass the cap (the slow controller is busy with its first message), then reads.
    srv = krait_server(make_site(FLOOD_SITE))
    ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (srv.port, path), timeout=20)
    try:
        block = b"x" * (1024 * 1024)
        for _ in range(limits.WS_MAX_UNREAD // len(block) + 1 + handled):
            ws.send_binary(block)
        opcode, frame = ws.recv_data_frame(True)
        assert (opcode, frame.data[:2]) == (websocket.ABNF.OPCODE_CLOSE, struct.pack("!H", 1008))
    finally:
        ws.close()
    other = websocket.create_connection("ws://127.0.0.1:%d/hoard" % srv.port, timeout=10)
    other.close()
    assert "died" not in srv.log()


@pytest.mark.parametrize("path, each", [("/hoard", sys.getsizeof(b"")), ("/slow", limits.WS_MESSAGE_OVERHEAD)])
def test_empty_messages_count_against_the_cap_too(krait_server, make_site, path, each):
    # An empty message still takes memory where it waits (an object in the input queue, an item in the
    # mailbox): a flood of them is closed with 1008 like a flood of large ones.
    srv = krait_server(make_site(FLOOD_SITE))
    ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (srv.port, path), timeout=30)
    try:
        if path == "/slow":
            ws.send_binary(b"busy")  # the controller sleeps on this one: the rest waits in the mailbox
        empty = bytes([0x82, 0x80, 1, 2, 3, 4])  # FIN, binary, masked, no payload
        ws.sock.sendall(empty * (limits.WS_MAX_UNREAD // each + 2))
        opcode, frame = ws.recv_data_frame(True)
        assert (opcode, frame.data[:2]) == (websocket.ABNF.OPCODE_CLOSE, struct.pack("!H", 1008))
    finally:
        ws.close()
    assert "died" not in srv.log()


def _rss(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _state(pid: int) -> str:
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_a_worker_that_reads_nothing_holds_its_clients_back_not_the_servers_memory(krait_server, make_site):
    # A WebSocket worker that stops reading its pipe (stopped here; stuck in C code that holds the GIL
    # is the same): past WS_MAX_TO_WORKER of messages waiting for it, the server stops reading its
    # clients, so a client that sends on meets TCP's flow control and the server's memory stays bounded.
    # Once the worker goes on, so does everything, and nothing was lost.
    srv = krait_server(make_site(FLOOD_SITE))
    ws = RawWS(srv.port, "/stop", timeout=30)
    kind, pid = ws.read_message()
    pid = int(pid)
    try:
        ws.send_frame(TEXT, b"stop")
        assert wait_for(lambda: _state(pid) == "T", 10)
        before = _rss(srv.proc.pid)
        message = b"x" * (1024 * 1024)
        data = memoryview(frame(BINARY, message) * 8)
        ws.sock.settimeout(2)
        sent = 0
        while sent < 200 * len(message):
            try:
                sent += ws.sock.send(data[sent % len(data):])
            except (TimeoutError, BlockingIOError):
                break
        else:
            pytest.fail("the server read 200 MiB meant for a worker that reads nothing")
        assert _rss(srv.proc.pid) - before < 2 * limits.WS_MAX_TO_WORKER
        assert "has taken none of" in srv.log()
    finally:
        os.kill(pid, signal.SIGCONT)
    ws.sock.settimeout(30)
    whole, part = divmod(sent, len(data) // 8)
    if part:  # the rest of the message it was sending
        ws.sock.sendall(data[sent % len(data):sent % len(data) + len(data) // 8 - part])
        whole += 1
    ws.send_frame(TEXT, b"count")
    assert ws.read_message() == (TEXT, str(whole * len(message)).encode())
    ws.close()


@pytest.mark.skipif(portable.ACTIVE, reason="600 sockets: more than one select() takes on portable paths")
def test_clients_ready_together_are_not_read_past_the_pause(krait_server, make_site):
    # Many clients of one stopped worker whose messages are all waiting when the hub wakes up (the server
    # is stopped meanwhile, so one select() reports them all): the hub stops reading at the pause, not
    # after every client that select() reported.
    srv = krait_server(make_site(FLOOD_SITE), "--ws-workers", "1")
    first = RawWS(srv.port, "/stop", timeout=30)
    pid = int(first.read_message()[1])
    clients = [first] + [RawWS(srv.port, "/stop", timeout=30) for _ in range(599)]
    try:
        for ws in clients[1:]:
            ws.read_message()
        first.send_frame(TEXT, b"stop")
        assert wait_for(lambda: _state(pid) == "T", 10)
        before = _rss(srv.proc.pid)
        data = frame(BINARY, b"x" * 64000)
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            for ws in clients:
                ws.sock.settimeout(5)
                ws.sock.sendall(data)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        assert wait_for(lambda: "has taken none of" in srv.log(), 10)
        time.sleep(1)
        assert _rss(srv.proc.pid) - before < 1.5 * limits.WS_MAX_TO_WORKER  # 600 x 64 kB were sent
    finally:
        os.kill(pid, signal.SIGCONT)
        for ws in clients:
            ws.close()


def _pause_the_worker(srv, flooder: RawWS, pid: int) -> None:
    """Stop the worker of `flooder` (FLOOD_SITE's /stop, its pid) and send it messages until the hub
    stops reading its clients (WS_MAX_TO_WORKER)."""
    flooder.send_frame(TEXT, b"stop")
    assert wait_for(lambda: _state(pid) == "T", 10)
    data = memoryview(frame(BINARY, b"x" * (1024 * 1024)) * 4)
    flooder.sock.settimeout(0.5)
    sent = 0
    try:
        while not ("has taken none of" in srv.log() and sent > 2 * limits.WS_MAX_TO_WORKER):
            sent += flooder.sock.send(data[sent % len(data):])
    except (TimeoutError, BlockingIOError):  # TCP holds the rest back: the hub reads no more
        pass
    assert wait_for(lambda: "has taken none of" in srv.log(), 5)


def test_a_closing_client_of_a_paused_worker_does_not_make_the_hub_spin(krait_server, make_site):
    # A client whose session its controller ended (so its worker no longer counts it) but that has not
    # answered the close yet is still watched; if it sends while its worker is paused, the hub must stop
    # watching it too rather than be told again and again that it is readable (level-triggered).
    srv = krait_server(make_site(FLOOD_SITE), "--ws-workers", "1")
    flooder = RawWS(srv.port, "/stop", timeout=30)
    pid = int(flooder.read_message()[1])
    closing = RawWS(srv.port, "/stop", timeout=30)
    closing.read_message()
    try:
        closing.send_frame(TEXT, b"bye")
        f = closing.read_frame()
        assert (f.opcode, f.payload[:2]) == (CLOSE, struct.pack("!H", 1011))  # and it does not answer
        time.sleep(0.3)  # the worker's word that the session is over arrives
        _pause_the_worker(srv, flooder, pid)
        closing.sock.sendall(frame(TEXT, b"still here"))
        time.sleep(0.2)
        assert_quiet(srv.proc.pid)  # a spinning hub takes all of one core
    finally:
        os.kill(pid, signal.SIGCONT)
        flooder.close()
        closing.close()


def test_the_clients_of_a_paused_worker_are_not_closed_for_pongs_the_server_did_not_read(krait_server, make_site):
    # While the hub reads none of a paused worker's clients, their pongs wait unread: a client that
    # answers every ping must not be closed for a ping timeout (1011) that was the server's doing.
    srv = krait_server(make_site(FLOOD_SITE), "--ws-workers", "1", "--ws-ping-interval", "0.5",
                       "--ws-ping-timeout", "1")
    flooder = RawWS(srv.port, "/stop", timeout=30)
    pid = int(flooder.read_message()[1])
    idle = RawWS(srv.port, "/stop", timeout=30)
    idle.read_message()
    try:
        _pause_the_worker(srv, flooder, pid)
        idle.sock.settimeout(0.2)
        until = time.monotonic() + 4  # several ping intervals and timeouts
        while time.monotonic() < until:
            try:
                f = idle.read_frame()
            except TimeoutError:
                continue
            assert f.opcode == PING, "closed while its pongs waited unread: %r" % (f,)
            idle.send_frame(PONG, f.payload)
    finally:
        os.kill(pid, signal.SIGCONT)
        flooder.close()
    idle.sock.settimeout(30)
    assert idle.roundtrip(TEXT, b"count") == (TEXT, b"0")  # still open, and served
    idle.close()


def _not_reading(port: int, path: str) -> RawWS:
    """A client with a small receive buffer (set before connecting: the kernel cannot grow it) that reads
    nothing after the handshake until told."""
    ws = RawWS.__new__(RawWS)
    ws.sock = socket.socket()
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws.sock.settimeout(20)
    ws.sock.connect(("127.0.0.1", port))
    ws.buf = bytearray()
    ws.sock.sendall(upgrade_request(path, "dGhlIHNhbXBsZSBub25jZQ=="))
    while b"\r\n\r\n" not in ws.buf:
        ws._fill()
    del ws.buf[:ws.buf.index(b"\r\n\r\n") + 4]
    return ws


def test_a_client_closed_for_not_reading_gets_whole_frames_then_the_close(server):
    # 24 MB pushed at once, past WS_MAX_UNSENT: the server drops what it has not started to send, but
    # the frame it was in the middle of goes out whole before the Close (RFC 6455 section 5.2).
    ws = _not_reading(server.port, "/ws/cmd")
    try:
        ws.send_frame(TEXT, b"burst 24 1000000")
        time.sleep(2)
        while True:
            f = ws.read_frame()
            if f.opcode == CLOSE:
                break
            assert (f.opcode, len(f.payload), set(f.payload)) == (BINARY, 1000000, {ord("b")})
        assert (f.code, f.reason) == (1008, b"too slow")
    finally:
        ws.sock.close()


def test_a_ping_flood_from_a_client_that_does_not_read_is_cut_off(server):
    # Each ping queues a pong, which counts against WS_MAX_UNSENT as any output does (tests/server/
    # test_hub.py); a flood like this one is cut off sooner, at the first read that brings more than
    # MAX_WS_CONTROL_FRAMES. Either way not after a tick and a closing handshake's 5 s of more pongs.
    ws = _not_reading(server.port, "/ws/fast")
    pings = frame(PING, b"p" * 125) * 2000
    sent = 0
    try:
        with pytest.raises(OSError):
            while sent < 1024 * 1024 * 1024:
                ws.sock.sendall(pings)
                sent += len(pings)
        assert sent < 4 * limits.WS_MAX_UNSENT
    finally:
        ws.sock.close()


def test_controller_close_rejects_unsendable_codes(server):
    ws = connect(server, "/ws/cmd")
    try:
        for code in (1005, 1006, 1015, 999, 5000):
            ws.send("badclose %d" % code)
            assert ws.recv() == "ValueError"
    finally:
        ws.close()


@pytest.fixture(scope="module")
def stubborn_server(tmp_path_factory):
    # Its own server: an abandoned worker must not disturb the other tests' pool.
    root = tmp_path_factory.mktemp("wsstubborn")
    srv = start_krait(write_site(root / "site", SITE_FILES), workdir=root / "run")
    yield srv
    srv.stop()


def _stubborn_session(server, marker) -> int:
    """Open a session whose controller ignores on_stop, close it; returns the worker's pid."""
    with open_ws(server.port, "/ws/stubborn?marker=" + quote(str(marker))) as ws:
        assert ws.read_message() == (TEXT, b"ready")
        pid = int(marker_lines(marker)[0].split()[1])
        ws.send_frame(CLOSE, close_body(1000))
        f = ws.read_frame()
        assert (f.opcode, f.payload) == (CLOSE, close_body(1000))
        ws.expect_eof(limits.WS_STOP_TIMEOUT + 5)
    return pid


def test_stubborn_controller_is_abandoned_and_its_worker_serves_on(stubborn_server, tmp_path):
    # One worker process hosts many connections: a controller that ignores on_stop is given up after
    # WS_STOP_TIMEOUT with a warning; its worker is not killed, and serves the next connection.
    pid = _stubborn_session(stubborn_server, tmp_path / "stubborn.txt")
    assert wait_for(lambda: "did not stop within" in stubborn_server.log(), 5), stubborn_server.log()
    os.kill(pid, 0)  # still alive
    marker = tmp_path / "after.txt"
    with open_ws(stubborn_server.port, "/ws/stubborn?marker=" + quote(str(marker))) as ws:
        assert ws.read_message() == (TEXT, b"ready")
        assert int(marker_lines(marker)[0].split()[1]) == pid


def test_next_sessions_work_after_a_stubborn_controller(stubborn_server, tmp_path):
    _stubborn_session(stubborn_server, tmp_path / "stubborn2.txt")
    for i in range(3):
        with RawWS(stubborn_server.port, "/ws/fast") as ws:
            assert ws.status == 101
            assert ws.roundtrip(BINARY, b"%d" % i) == (BINARY, b"%d" % i)


# --- process model ----------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(q * len(values) + 0.5) - 1))]


def test_200_sessions_echo_while_http_stays_fast(server):
    sockets: list[websocket.WebSocket] = []
    try:
        with ThreadPoolExecutor(32) as pool:
            sockets.extend(pool.map(lambda _: connect(server, "/ws/fast"), range(200)))
    except BaseException:
        for ws in sockets:
            ws.close()
        raise
    stop = threading.Event()
    rounds = [0]
    failures: list[str] = []

    def echo_rounds() -> None:
        try:
            while not stop.is_set():
                n = rounds[0]
                for i, ws in enumerate(sockets):
                    ws.send("r%d-%d" % (n, i))
                for i, ws in enumerate(sockets):
                    got = ws.recv()
                    if got != "r%d-%d" % (n, i):
                        failures.append(got)
                rounds[0] += 1
                time.sleep(0.02)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(repr(exc))

    driver = threading.Thread(target=echo_rounds)
    driver.start()
    latencies = []
    try:
        # a dozen rounds first (about 1 s): sessions must also survive sustained traffic
        assert wait_for(lambda: rounds[0] >= 12 or failures, 30), "the echo rounds stalled"
        first_round = rounds[0]
        for _ in range(50):
            t0 = time.perf_counter()
            r = requests.get(server.url + "/small.txt", timeout=10)
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.content == b"small static file\n"
        during = rounds[0] - first_round
    finally:
        stop.set()
        driver.join(30)
        for ws in sockets:
            ws.close()
    assert not failures, "sessions failed or were dropped during the echo rounds: %s" % failures[:5]
    assert during >= 1, "the sessions did not echo while HTTP was served"
    p99 = _percentile(latencies, 0.99)
    print("200 sessions: %d echo rounds during 50 GETs, GET p50 %.1f ms, p99 %.1f ms"
          % (during, _percentile(latencies, 0.5) * 1000, p99 * 1000))
    assert p99 < 0.2, "HTTP p99 %.0f ms during 200 WebSocket sessions" % (p99 * 1000)


def test_websockets_never_starve_http(tmp_path):
    site = write_site(tmp_path / "site", SITE_FILES)
    srv = start_krait(site, "--workers", "1", workdir=tmp_path / "run")
    sockets = []
    try:
        sockets = [websocket.create_connection("ws://127.0.0.1:%d/ws/echo" % srv.port, timeout=10)
                   for _ in range(10)]
        for i, ws in enumerate(sockets):
            ws.send("held %d" % i)
        assert [ws.recv() for ws in sockets] == ["held %d" % i for i in range(10)]
        for _ in range(5):
            t0 = time.perf_counter()
            r = requests.get(srv.url + "/hello.py", timeout=10)
            assert (r.status_code, r.text) == (200, "hello")
            assert time.perf_counter() - t0 < 1.0
        for ws in sockets:  # still alive after the HTTP traffic
            ws.send("again")
            assert ws.recv() == "again"
    finally:
        for ws in sockets:
            ws.close()
        srv.stop()
