"""RFC 6455 conformance of the real server, over raw sockets (docs/websockets.md).

Strategy: one server per module (module-scoped fixture) serving SITE_FILES below, plus a second one
with a small --max-ws-message for the size-cap cases. Frames are built by hand (frame(), masked with
os.urandom keys) and read back by RawWS, which also checks what every server frame must satisfy:
unmasked (section 5.1), RSV bits clear (5.2), minimal length encoding. A bad-frame case sends the
frame, reads the Close the server answers with (asserting its code) and then checks that the server
closes the TCP connection (section 7.1.1: "the server SHOULD close the underlying TCP connection
first"). Bad frames are sent whole, or header-only when the server rejects on the header, so the
server never closes with unread bytes (which would turn its FIN into a RST and lose the Close).
SITE_FILES, RawWS and the frame helpers are shared with test_websockets.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from dataclasses import dataclass

import pytest

from tests.helpers import start_krait, write_site

# --- the site -------------------------------------------------------------------------------------

INIT = """
import krait
from krait.config import Route
krait.config.routes = [
    Route("WEBSOCKET", regex=r"/ws/(?P<name>[a-z]+)", target="/ws/{name}.py"),
    Route("ANY", url="/anyws", target="/ws/fast.py"),
    Route("WEBSOCKET", url="/static-target", target="/small.txt"),
    Route(),
]
"""

CONTROLLERS = '''
import json
import os
import threading
import time

import krait
from krait.websockets import WebsocketsCtrlBase


def note(path, text):
    """Append one line to the marker file `path` (tests read it to see what Krait called)."""
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\\n")


class Echo(WebsocketsCtrlBase):
    """Queue model, exactly as the 0.5.2 docs describe it: poll pop_in_message() in the thread."""

    def on_thread_start(self):
        while not self.should_stop():
            msg = self.pop_in_message()
            if msg is None:
                time.sleep(0.002)
                continue
            self.push_out_message(msg)


class FastEcho(WebsocketsCtrlBase):
    """Event model: no queue, on_in_message answers at once."""

    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.push_out_message(message)


class Info(FastEcho):
    """Sends what the route script saw, then echoes."""

    def __init__(self, info):
        super().__init__()
        self.info = info

    def on_start(self):
        self.push_out_message(json.dumps(self.info))
        super().on_start()


class Lifecycle(WebsocketsCtrlBase):
    """Writes every call Krait makes into the marker file named by the query string."""

    def __init__(self, marker):
        super().__init__()
        self.marker = marker

    def on_start(self):
        note(self.marker, "on_start")
        super().on_start()

    def on_thread_start(self):
        note(self.marker, "thread_start")
        while not self.should_stop():
            msg = self.pop_in_message()
            if msg is None:
                time.sleep(0.005)
                continue
            note(self.marker, "message %s" % msg)
            self.push_out_message("got %s" % msg)
        time.sleep(0.3)  # wait_stopped(None) in on_stop must wait for this
        note(self.marker, "thread_end")

    def on_stop(self):
        note(self.marker, "on_stop")
        super().on_stop()
        note(self.marker, "wait_stopped %s" % self.wait_stopped(None))


class Commands(WebsocketsCtrlBase):
    """Event model; each text message is a command (see test_websockets.py)."""

    def __init__(self):
        super().__init__(use_in_message_queue=False)
        self.go = threading.Event()

    def on_thread_start(self):
        while not self.should_stop():
            if self.go.wait(0.05):
                raise RuntimeError("secret detail from the handler thread")

    def on_in_message(self, message):
        if isinstance(message, bytes):
            self.push_out_message(b"binary:" + message)
            return
        word, _, rest = message.partition(" ")
        if word == "close":
            code, _, reason = rest.partition(" ")
            self.close(int(code), reason)
        elif word == "badclose":
            try:
                self.close(int(rest))
            except ValueError:
                self.push_out_message("ValueError")
        elif word == "bin":
            self.push_out_message(bytes(range(256)))
        elif word == "text":
            self.push_out_message("h\\u00e9llo \\u2603")
        elif word == "many":
            for i in range(int(rest)):
                self.push_out_message(str(i))
        elif word == "burst":
            count, _, size = rest.partition(" ")
            for _ in range(int(count)):
                self.push_out_message(b"b" * int(size))
        elif word == "raise":
            raise RuntimeError("secret detail from on_in_message")
        elif word == "threadraise":
            self.go.set()
        elif word == "pid":
            self.push_out_message(str(os.getpid()))
        elif word == "surrogate":
            try:
                self.push_out_message("\\ud800")
            except UnicodeEncodeError as exc:
                self.push_out_message(type(exc).__name__)
        else:
            self.push_out_message("?" + message)


class Stubborn(WebsocketsCtrlBase):
    """Ignores should_stop(): Krait must give up on it and replace its worker."""

    def __init__(self, marker):
        super().__init__()
        self.marker = marker

    def on_thread_start(self):
        note(self.marker, "pid %d" % os.getpid())
        self.push_out_message("ready")
        while True:
            time.sleep(0.05)
'''

_ACCEPT = """
import krait
from wsctrl import *
if krait.websockets.request is None:
    krait.response = krait.ResponseBadRequest()
else:
    krait.websockets.response = krait.websockets.WebsocketsResponse(%s, %s)
"""

#: ws/echo.py picks "chat" when offered, or whatever ?proto= says (even if not offered: 500).
_ECHO_PROTO = ('krait.request.query.get("proto") or ("chat" if "chat" in krait.websockets.request.protocols '
               'else None)')

SITE_FILES = {
    ".py/init.py": INIT,
    ".py/wsctrl.py": CONTROLLERS,
    "ws/echo.py": _ACCEPT % ("Echo()", _ECHO_PROTO),
    "ws/fast.py": _ACCEPT % ("FastEcho()", "None"),
    "ws/info.py": _ACCEPT % (('Info({"protocols": krait.websockets.request.protocols, '
                              '"params": krait.url_params, "query": krait.request.query_string})'), "None"),
    "ws/life.py": _ACCEPT % ('Lifecycle(krait.request.query.get("marker"))', "None"),
    "ws/cmd.py": _ACCEPT % ("Commands()", "None"),
    "ws/stubborn.py": _ACCEPT % ('Stubborn(krait.request.query.get("marker"))', "None"),
    "ws/refuse.py": "krait.response = krait.ResponseNotFound()\n",
    "ws/ignore.py": "x = 1  # neither accepts nor sets a response\n",
    "small.txt": "small static file\n",
    "hello.py": "krait.response = krait.Response('HTTP/1.1', 200, [('Content-Type', 'text/plain')], 'hello')\n",
}

# --- frames ---------------------------------------------------------------------------------------

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def mask(payload: bytes, key: bytes) -> bytes:
    """Section 5.3: XOR with the 4-byte key repeated; one big-int XOR, no per-byte loop."""
    n = len(payload)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, masked: bool = True,
          header_only: bool = False) -> bytes:
    """One client frame (section 5.2), minimal length encoding, masked with a fresh random key."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if masked else 0
    if n <= 125:
        head = struct.pack("!BB", b0, m | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not masked:
        return head if header_only else head + payload
    key = os.urandom(4)
    return head + key if header_only else head + key + mask(payload, key)


def close_body(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    length_marker: int  # the 7-bit length field as sent: n, 126 or 127

    @property
    def code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def reason(self) -> bytes:
        return self.payload[2:]


def upgrade_request(path: str, key: str, **headers: str | None) -> bytes:
    """A client opening handshake (section 4.1); keyword headers override (None removes one)."""
    fields = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    for name, value in headers.items():
        fields[name.replace("_", "-")] = value
    lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % (k, v) for k, v in fields.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body


def expected_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


class RawWS:
    """A hand-driven client connection: handshake, then raw frames in and out."""

    def __init__(self, port: int, path: str = "/ws/fast", timeout: float = 10.0, rcvbuf: int = 0,
                 **headers: str | None) -> None:
        self.sock = socket.socket()
        if rcvbuf:  # before connecting, so the kernel cannot grow it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.sock.sendall(upgrade_request(path, self.key, **headers))
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        self.status, self.headers, _ = parse_response(bytes(self.buf[:end]))
        del self.buf[:end]

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kw) -> None:
        self.sock.sendall(frame(opcode, payload, **kw))

    def read_frame(self) -> Frame:
        """The next server frame, checked against the rules every server frame obeys."""
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "server frames must not be masked (section 5.1)"
        assert not b0 & 0x70, "RSV bits set without an extension (section 5.2)"
        n = marker = b1 & 0x7F
        if marker == 126:
            n = struct.unpack("!H", self._take(2))[0]
            assert n > 125, "non-minimal 16-bit length (section 5.2)"
        elif marker == 127:
            n = struct.unpack("!Q", self._take(8))[0]
            assert n > 0xFFFF, "non-minimal 64-bit length (section 5.2)"
        return Frame(bool(b0 & 0x80), b0 & 0x0F, self._take(n), marker)

    def read_message(self) -> tuple[int, bytes]:
        """The next data message (fragments joined); pongs are skipped."""
        parts: list[bytes] = []
        opcode = None
        while True:
            f = self.read_frame()
            if f.opcode == PONG:
                continue
            assert f.opcode in (TEXT, BINARY, CONT), "unexpected frame %r" % (f,)
            if opcode is None:
                opcode = f.opcode
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def roundtrip(self, opcode: int, payload: bytes) -> tuple[int, bytes]:
        self.send_frame(opcode, payload)
        return self.read_message()

    def expect_close(self, code: int | None, reason: bytes | None = None) -> Frame:
        """Read up to the server's Close (data frames before it are skipped), check its code,
        then check that the server closes the TCP connection."""
        while True:
            f = self.read_frame()
            if f.opcode == CLOSE:
                break
        assert f.code == code, "close code %r, expected %r (reason %r)" % (f.code, code, f.reason)
        if reason is not None:
            assert f.reason == reason
        self.expect_eof()
        return f

    def expect_eof(self, timeout: float = 5.0) -> None:
        """The server closes the TCP connection within `timeout`, sending nothing more."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail("the server did not close the TCP connection within %ss" % timeout)
        assert not self.buf, "bytes after the Close frame: %r" % bytes(self.buf[:60])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_ws(port: int, path: str = "/ws/fast", **headers: str | None) -> RawWS:
    ws = RawWS(port, path, **headers)
    if ws.status != 101:
        ws.close()
        raise AssertionError("handshake refused: %d %r" % (ws.status, ws.headers))
    return ws


# --- fixtures -------------------------------------------------------------------------------------

SMALL_CAP = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsconf")
    site = write_site(root / "site", SITE_FILES)
    srv = start_krait(site, workdir=root / "run")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    root = tmp_path_factory.mktemp("wscap")
    site = write_site(root / "site", SITE_FILES)
    srv = start_krait(site, "--max-ws-message", str(SMALL_CAP), "--workers", "1", workdir=root / "run")
    yield srv
    srv.stop()


# --- handshake (section 4.2) ----------------------------------------------------------------------


def test_handshake_101_headers(server):
    with open_ws(server.port, "/ws/fast") as ws:
        h = ws.headers
        assert h["sec-websocket-accept"] == expected_accept(ws.key)
        assert h["upgrade"].lower() == "websocket"
        assert "upgrade" in h["connection"].lower()
        assert "sec-websocket-protocol" not in h  # none offered, none chosen
        assert "sec-websocket-extensions" not in h
        assert ws.roundtrip(TEXT, b"hi") == (TEXT, b"hi")


def test_rfc_sample_key(server):
    # Section 1.3's worked example: key dGhlIHNhbXBsZSBub25jZQ== -> s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
    data = server.raw(upgrade_request("/ws/fast", "dGhlIHNhbXBsZSBub25jZQ==") + frame(CLOSE, close_body(1000)))
    status, headers, _ = parse_response(data)
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("upgrade, connection", [
    ("WebSocket", "Upgrade"),
    ("WEBSOCKET", "keep-alive, UPGRADE"),
    ("foo, websocket", "upgrade"),
])
def test_upgrade_tokens_case_insensitive(server, upgrade, connection):
    # RFC 9110 sections 7.6.1 and 7.8: connection options and protocol names are case-insensitive.
    with open_ws(server.port, "/ws/fast", Upgrade=upgrade, Connection=connection) as ws:
        assert ws.roundtrip(BINARY, b"\x00\x01") == (BINARY, b"\x00\x01")


@pytest.mark.parametrize("version", ["8", "12", "14"])
def test_other_version_gets_426(server, version):
    # Section 4.4: answer a version we do not speak with Sec-WebSocket-Version listing ours.
    key = base64.b64encode(os.urandom(16)).decode()
    status, headers, _ = parse_response(server.raw(upgrade_request("/ws/fast", key, Sec_WebSocket_Version=version)))
    assert status == 426
    assert headers["sec-websocket-version"] == "13"
    assert "close" in headers["connection"].lower()


@pytest.mark.parametrize("override", [
    {"Sec_WebSocket_Key": None},
    {"Sec_WebSocket_Key": "c2hvcnQ="},  # base64 of 5 bytes, not 16
    {"Sec_WebSocket_Key": "not base64 at all!!!!!=="},
    {"Sec_WebSocket_Version": None},
])
def test_bad_handshake_gets_400(server, override):
    key = base64.b64encode(os.urandom(16)).decode()
    status, headers, _ = parse_response(server.raw(upgrade_request("/ws/fast", key, **override)))
    assert status == 400
    assert "upgrade" not in headers.get("connection", "").lower()


def test_no_extension_negotiated(server):
    # Section 9.1: the server accepts no extension we did not implement, so none is echoed.
    with open_ws(server.port, "/ws/fast",
                 Sec_WebSocket_Extensions="permessage-deflate; client_max_window_bits") as ws:
        assert "sec-websocket-extensions" not in ws.headers
        ws.send_frame(TEXT, b"plain")
        f = ws.read_frame()
        assert (f.opcode, f.payload) == (TEXT, b"plain")  # RSV1 clear: checked by read_frame


def test_subprotocol_echoed_when_offered(server):
    with open_ws(server.port, "/ws/echo", Sec_WebSocket_Protocol="superchat, chat") as ws:
        assert ws.headers["sec-websocket-protocol"] == "chat"


def test_subprotocol_not_offered_is_500(server):
    # Section 4.2.2 step 5.5: the chosen protocol MUST be one the client offered.
    key = base64.b64encode(os.urandom(16)).decode()
    status, headers, _ = parse_response(server.raw(upgrade_request("/ws/echo?proto=nope", key,
                                                                   Sec_WebSocket_Protocol="chat")))
    assert status == 500
    assert "sec-websocket-protocol" not in headers
    # and the worker holding the half-started controller was given back: the next session works
    with open_ws(server.port, "/ws/echo") as ws:
        assert ws.roundtrip(TEXT, b"after") == (TEXT, b"after")


# --- frames (section 5) ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_payload_length_encodings(server, size):
    payload = os.urandom(size)
    with open_ws(server.port) as ws:
        ws.send_frame(BINARY, payload)
        f = ws.read_frame()
        assert (f.fin, f.opcode, f.payload) == (True, BINARY, payload)
        assert f.length_marker == (size if size <= 125 else 126 if size <= 0xFFFF else 127)


@pytest.mark.parametrize("head", [
    pytest.param(struct.pack("!BBQ", 0x80 | TEXT, 0x80 | 127, 5), id="64-bit-for-5"),
    pytest.param(struct.pack("!BBH", 0x80 | TEXT, 0x80 | 126, 5), id="16-bit-for-5"),
    pytest.param(struct.pack("!BBQ", 0x80 | TEXT, 0x80 | 127, 300), id="64-bit-for-300"),
])
def test_non_minimal_length_is_1002(server, head):
    # Section 5.2: "the minimal number of bytes MUST be used to encode the length"; Krait is strict.
    n = struct.unpack("!Q" if len(head) == 10 else "!H", head[2:])[0]
    key = os.urandom(4)
    with open_ws(server.port) as ws:
        ws.send(head + key + mask(b"h" * n, key))
        ws.expect_close(1002)


def test_64_bit_length_with_top_bit_is_1002(server):
    # Section 5.2: "the most significant bit MUST be 0".
    with open_ws(server.port) as ws:
        ws.send(struct.pack("!BBQ", 0x80 | BINARY, 0x80 | 127, 1 << 63) + os.urandom(4))
        ws.expect_close(1002)


def test_frames_split_across_reads(server):
    with open_ws(server.port) as ws:
        data = frame(TEXT, b"x" * 1000) + frame(BINARY, b"y" * 70000)
        for i in range(0, len(data), 997):
            ws.send(data[i:i + 997])
        assert ws.read_message() == (TEXT, b"x" * 1000)
        assert ws.read_message() == (BINARY, b"y" * 70000)


def test_unmasked_client_frame_is_1002(server):
    # Section 5.1: "The server MUST close the connection upon receiving a frame that is not masked."
    with open_ws(server.port) as ws:
        ws.send_frame(TEXT, b"naked", masked=False)
        ws.expect_close(1002)


def test_ping_gets_pong(server):
    with open_ws(server.port) as ws:
        for payload in (b"", b"ping!", os.urandom(125)):
            ws.send_frame(PING, payload)
            f = ws.read_frame()
            assert (f.opcode, f.payload, f.fin) == (PONG, payload, True)


def test_unsolicited_pong_ignored(server):
    with open_ws(server.port) as ws:
        ws.send_frame(PONG, b"heartbeat")
        assert ws.roundtrip(TEXT, b"still here") == (TEXT, b"still here")


def test_fragmented_message_with_interleaved_control_frames(server):
    # Section 5.4: control frames MAY be injected in the middle of a fragmented message.
    with open_ws(server.port) as ws:
        ws.send_frame(TEXT, b"Hel", fin=False)
        ws.send_frame(PING, b"p1")
        ws.send_frame(CONT, b"lo, ", fin=False)
        ws.send_frame(PONG, b"unsolicited")
        ws.send_frame(PING, b"p2")
        ws.send_frame(CONT, b"world", fin=True)
        assert ws.read_frame().payload == b"p1"
        assert ws.read_frame().payload == b"p2"
        assert ws.read_message() == (TEXT, b"Hello, world")
        ws.send_frame(BINARY, b"\x00" * 10, fin=False)
        ws.send_frame(CONT, b"", fin=False)
        ws.send_frame(CONT, b"\xff" * 10, fin=True)
        assert ws.read_message() == (BINARY, b"\x00" * 10 + b"\xff" * 10)


def test_utf8_character_split_across_fragments(server):
    snowman = "\u2603".encode()
    with open_ws(server.port) as ws:
        ws.send_frame(TEXT, b"a" + snowman[:1], fin=False)
        ws.send_frame(CONT, snowman[1:2], fin=False)
        ws.send_frame(CONT, snowman[2:] + b"b", fin=True)
        assert ws.read_message() == (TEXT, b"a" + snowman + b"b")


@pytest.mark.parametrize("frames", [
    pytest.param([(CONT, b"orphan", True)], id="continuation-without-start"),
    pytest.param([(TEXT, b"a", False), (TEXT, b"b", True)], id="new-message-inside-fragmented"),
    pytest.param([(PING, b"x" * 126, True)], id="control-payload-over-125"),
    pytest.param([(PING, b"x", False)], id="fragmented-control-frame"),
    pytest.param([(0x3, b"x", True)], id="reserved-data-opcode-3"),
    pytest.param([(0x7, b"x", True)], id="reserved-data-opcode-7"),
    pytest.param([(0xB, b"x", True)], id="reserved-control-opcode-B"),
    pytest.param([(0xF, b"", True)], id="reserved-control-opcode-F"),
])
def test_protocol_errors_are_1002(server, frames):
    with open_ws(server.port) as ws:
        for opcode, payload, fin in frames:
            ws.send_frame(opcode, payload, fin=fin)
        ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [0b100, 0b010, 0b001, 0b111])
def test_reserved_bits_are_1002(server, rsv):
    # Section 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated".
    with open_ws(server.port) as ws:
        ws.send_frame(TEXT, b"x", rsv=rsv)
        ws.expect_close(1002)


@pytest.mark.parametrize("frames", [
    pytest.param([(TEXT, b"\xff", True)], id="single-frame"),
    pytest.param([(TEXT, b"ok \xc3\x28", True)], id="bad-continuation-byte"),
    pytest.param([(TEXT, b"\xed\xa0\x80", True)], id="surrogate"),
    pytest.param([(TEXT, b"caf\xc3", True)], id="truncated-at-end"),
    pytest.param([(TEXT, b"valid ", False), (CONT, b"\xc0\xaf", True)], id="second-fragment"),
    pytest.param([(TEXT, b"abc\xe2\x98", False), (CONT, b"x", True)], id="split-sequence-broken"),
    pytest.param([(TEXT, b"abc\xe2", False), (CONT, b"\x98", True)], id="truncated-at-final-fragment"),
])
def test_invalid_utf8_text_is_1007(server, frames):
    # Section 8.1: invalid UTF-8 in a text message -> _Fail the WebSocket Connection_ with 1007.
    with open_ws(server.port) as ws:
        for opcode, payload, fin in frames:
            ws.send_frame(opcode, payload, fin=fin)
        ws.expect_close(1007)


def test_invalid_utf8_fails_before_the_message_ends(server):
    # Section 8.1 lets the endpoint fail as soon as the text cannot become valid; Krait does.
    with open_ws(server.port) as ws:
        ws.send_frame(TEXT, b"start \xff", fin=False)
        ws.expect_close(1007)


def test_binary_is_not_utf8_checked(server):
    with open_ws(server.port) as ws:
        assert ws.roundtrip(BINARY, b"\xff\xfe\xed\xa0\x80") == (BINARY, b"\xff\xfe\xed\xa0\x80")


# --- message size cap (section 7.4.1, 1009) ---------------------------------------------------------


def test_default_cap_is_one_mib(server):
    big = os.urandom(1 << 20)
    with open_ws(server.port) as ws:
        assert ws.roundtrip(BINARY, big) == (BINARY, big)
    with open_ws(server.port) as ws:
        ws.send(frame(BINARY, b"\0" * ((1 << 20) + 1), header_only=True))  # refused on the header
        ws.expect_close(1009)


def test_cap_option_single_frame(capped):
    with open_ws(capped.port) as ws:
        assert ws.roundtrip(TEXT, b"a" * SMALL_CAP) == (TEXT, b"a" * SMALL_CAP)
        ws.send(frame(TEXT, b"a" * (SMALL_CAP + 1), header_only=True))
        ws.expect_close(1009)


def test_cap_option_counts_all_fragments(capped):
    half = SMALL_CAP // 2
    with open_ws(capped.port) as ws:
        ws.send_frame(BINARY, b"a" * half, fin=False)
        ws.send_frame(CONT, b"b" * half, fin=True)
        assert ws.read_message() == (BINARY, b"a" * half + b"b" * half)
        ws.send_frame(BINARY, b"a" * half, fin=False)
        ws.send_frame(PING, b"between")
        assert ws.read_frame().payload == b"between"
        ws.send(frame(CONT, b"b" * (half + 1), header_only=True))
        ws.expect_close(1009)


def test_a_message_in_too_many_frames_is_refused(server):
    # A flood of empty continuation frames never completes a message: it is cut off past the cap on
    # frames per message instead of keeping the server busy parsing them.
    from krait import limits

    with open_ws(server.port) as ws:
        ws.send_frame(TEXT, b"a", fin=False)
        ws.send(frame(CONT, b"", fin=False) * (limits.MAX_WS_FRAGMENTS - 2) + frame(CONT, b"b"))
        assert ws.read_message() == (TEXT, b"ab")
        ws.send_frame(TEXT, b"a", fin=False)
        ws.send(frame(CONT, b"", fin=False) * limits.MAX_WS_FRAGMENTS)
        ws.expect_close(1009)


def test_a_flood_of_control_frames_is_cut_off(server):
    # Unsolicited pongs are allowed (a heartbeat, section 5.5.3), thousands at once are not: the hub's
    # thread would parse them while the other clients wait.
    from krait import limits

    with open_ws(server.port) as other, open_ws(server.port) as flooder:
        flooder.send(frame(PONG, b"beat") * limits.MAX_WS_CONTROL_FRAMES)  # the most one read may bring
        assert flooder.roundtrip(TEXT, b"still open") == (TEXT, b"still open")
        flooder.send(frame(PONG, b"beat") * 20000)  # 200 kB: reads of far more than the cap
        flooder.expect_close(1008, b"more than %d control frames in one read" % limits.MAX_WS_CONTROL_FRAMES)
        assert other.roundtrip(TEXT, b"hello") == (TEXT, b"hello")


def test_unfinished_messages_are_bounded_across_connections(capped):
    # Each connection may hold one message of up to --max-ws-message while it arrives; all of them
    # together hold at most limits.WS_PARTIAL_MESSAGES such messages. Past that, a client that sends more
    # of a large unfinished message is closed with 1013; the others, and small ones, go on.
    from krait import limits

    size = SMALL_CAP - 96
    budget = SMALL_CAP * limits.WS_PARTIAL_MESSAGES
    count = budget // size + 10
    sockets = []
    try:
        frames = [frame(BINARY, bytes([i % 256]) * size) for i in range(count)]
        for f in frames:
            ws = open_ws(capped.port)
            ws.send(f[:-64])  # all but the last bytes of its message
            sockets.append(ws)
        closed = []
        for ws in sockets[budget // size + 1:]:  # past the budget, each one is refused more
            closed.append(ws.expect_close(1013).reason)
        assert set(closed) == {b"the server holds too many unfinished messages"}
        small = open_ws(capped.port)  # a client that holds little is never closed for it
        assert small.roundtrip(TEXT, b"small") == (TEXT, b"small")
        small.close()
        for i, ws in enumerate(sockets[:budget // size - 2]):  # earlier ones finish their messages
            ws.send(frames[i][-64:])
            assert ws.read_message() == (BINARY, bytes([i % 256]) * size)
    finally:
        for ws in sockets:
            ws.close()


# --- closing handshake (sections 5.5.1, 7.4) ---------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 3000, 4000, 4999])
def test_valid_close_code_echoed(server, code):
    with open_ws(server.port) as ws:
        ws.send_frame(CLOSE, close_body(code, "bye \u2603".encode()))
        ws.expect_close(code)


def test_empty_close_echoed_empty(server):
    with open_ws(server.port) as ws:
        ws.send_frame(CLOSE, b"")
        f = ws.expect_close(None)
        assert f.payload == b""


@pytest.mark.parametrize("payload", [
    pytest.param(close_body(1005), id="1005"),
    pytest.param(close_body(1006), id="1006"),
    pytest.param(close_body(1015), id="1015"),
    pytest.param(close_body(1004), id="1004-reserved"),
    pytest.param(close_body(999), id="999"),
    pytest.param(close_body(0), id="0"),
    pytest.param(close_body(2999), id="2999"),
    pytest.param(close_body(5000), id="5000"),
    pytest.param(b"\x03", id="one-byte-body"),
    pytest.param(close_body(1000, b"x" * 124), id="reason-too-long"),
])
def test_invalid_close_is_1002(server, payload):
    with open_ws(server.port) as ws:
        ws.send_frame(CLOSE, payload)
        ws.expect_close(1002)


def test_close_reason_not_utf8_is_1007(server):
    with open_ws(server.port) as ws:
        ws.send_frame(CLOSE, close_body(1000, b"\xff\xfe"))
        ws.expect_close(1007)


def test_nothing_after_close_is_processed(server):
    # Section 5.5.1: after a Close, no more data frames; the server echoes the Close only.
    with open_ws(server.port) as ws:
        ws.send(frame(CLOSE, close_body(1000)) + frame(TEXT, b"late"))
        ws.expect_close(1000)


def test_controller_close_then_client_answer(server):
    with open_ws(server.port, "/ws/cmd") as ws:
        ws.send_frame(TEXT, b"close 4001 done here")
        f = ws.read_frame()
        assert (f.opcode, f.code, f.reason) == (CLOSE, 4001, b"done here")
        ws.send_frame(CLOSE, close_body(4001))
        ws.expect_eof()


@pytest.mark.parametrize("command", [b"raise", b"threadraise"])
def test_controller_exception_is_1011_without_details(server, command):
    with open_ws(server.port, "/ws/cmd") as ws:
        assert ws.roundtrip(TEXT, b"x") == (TEXT, b"?x")
        ws.send_frame(TEXT, command)
        f = ws.read_frame()
        assert (f.opcode, f.code) == (CLOSE, 1011)
        assert b"secret" not in f.payload and b"Error" not in f.payload
        ws.send_frame(CLOSE, close_body(1000))
        ws.expect_eof()
    assert "secret detail" in server.log()  # the traceback goes to the server log instead
