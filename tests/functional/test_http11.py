"""HTTP/1.1 connection behaviour of the real server: keep-alive, pipelining, HEAD, chunked request bodies,
Expect: 100-continue, body limits, slow-client timeouts and the headers on every response (RFC 9110, RFC 9112).

Talks to the server three ways: raw sockets (exact bytes and socket reuse), http.client and requests.
"""

from __future__ import annotations

import email.utils
import http.client
import re
import socket
import time

import pytest
import requests

from tests.helpers import start_krait, write_site

MAX_BODY = 4096

INIT = """
import krait
krait.config.routes = [krait.config.Route("POST", url="/echo"), krait.config.Route()]
"""

FILES = {
    ".py/init.py": INIT,
    "a.txt": "AAA",
    "b.txt": "BBBB",
    "c.txt": "CCCCC",
    "big.bin": bytes(range(256)) * 2400,  # 600 KiB: more than the socket buffers hold
    "echo.py": "krait.response = krait.Response('HTTP/1.1', 200, [], repr(krait.request.body))",
    "script.py": "krait.response = krait.Response('HTTP/1.1', 200, [('X-Script', '1')], 'from script')",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_site(tmp_path_factory.mktemp("http11") / "site", FILES)


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    srv = start_krait(site, "--max-body-size", str(MAX_BODY), workdir=tmp_path_factory.mktemp("run"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def slow_server(site, tmp_path_factory):
    """Short timeouts: idle keep-alive 1 s, header block 1 s (the body rate: tests/functional/test_hardening.py)."""
    srv = start_krait(site, "--keepalive-timeout", "1", "--header-timeout", "1",
                      workdir=tmp_path_factory.mktemp("run-slow"))
    yield srv
    srv.stop()


# --- a minimal response reader for raw sockets ----------------------------------------------------


class Reader:
    """Reads whole responses off a raw socket, keeping any bytes of the next one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def head(self) -> tuple[int, dict[str, str], list[tuple[str, str]]]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed before a response head: %r" % self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert re.fullmatch(r"HTTP/1\.1 \d{3} .*", lines[0]), lines[0]
        pairs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        return int(lines[0].split()[1]), {k.lower(): v for k, v in pairs}, pairs

    def response(self, head_request: bool = False) -> tuple[int, dict[str, str], bytes]:
        status, fields, _ = self.head()
        if head_request or status in (204, 304) or status < 200:
            return status, fields, b""
        assert "transfer-encoding" not in fields  # every body we serve here has a known length
        n = int(fields["content-length"])
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed mid-body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, fields, body

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def get(path: str, *fields: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    return ("%s %s %s\r\nHost: x\r\n%s\r\n" % (method, path, version, "".join(f + "\r\n" for f in fields))).encode()


# --- keep-alive -----------------------------------------------------------------------------------


def test_keep_alive_http11_reuses_the_socket(server):
    with server.connect() as s:
        r = Reader(s)
        local = s.getsockname()
        s.sendall(get("/a.txt"))
        status, fields, body = r.response()
        assert (status, body) == (200, b"AAA")
        assert fields.get("connection", "").lower() != "close"
        s.sendall(get("/b.txt"))
        status, fields, body = r.response()
        assert (status, body) == (200, b"BBBB")
        assert s.getsockname() == local
        s.sendall(get("/script"))
        assert r.response()[2] == b"from script"


def test_http10_closes_by_default(server):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(b"GET /a.txt HTTP/1.0\r\n\r\n")
        status, fields, body = r.response()
        assert (status, body) == (200, b"AAA")
        assert fields.get("connection", "").lower() != "keep-alive"
        assert r.closed()


def test_http10_keep_alive(server):
    with server.connect() as s:
        r = Reader(s)
        for path, expected in (("/a.txt", b"AAA"), ("/script", b"from script"), ("/b.txt", b"BBBB")):
            s.sendall(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % path.encode())
            status, fields, body = r.response()
            assert (status, body) == (200, expected)
            assert fields["connection"].lower() == "keep-alive"
        s.sendall(b"GET /c.txt HTTP/1.0\r\n\r\n")  # without keep-alive: the last one
        assert r.response()[2] == b"CCCCC"
        assert r.closed()


@pytest.mark.parametrize("path", ["/a.txt", "/script"])
def test_connection_close_honoured(server, path):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(get(path, "Connection: close"))
        status, fields, body = r.response()
        assert status == 200 and body
        assert fields["connection"].lower() == "close"
        assert r.closed()


def test_connection_close_stops_pipelining(server):
    raw = server.raw(get("/a.txt", "Connection: close") + get("/b.txt"))
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.endswith(b"AAA")


def test_a_response_before_a_close_is_not_lost_to_what_the_client_sends_meanwhile(server):
    # RFC 9112 section 9.6: had Krait closed at once, the request sent below would meet a closed socket,
    # and its kernel's reset would destroy the tail of the response still on its way.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader: the response waits
        s.settimeout(10)
        s.connect(("127.0.0.1", server.port))  # after the buffer is set: shrinking it later stalls TCP
        s.sendall(get("/big.bin", "Connection: close"))
        time.sleep(0.5)  # Krait has written what the buffers take and finished with the connection
        s.sendall(get("/a.txt"))  # sent before the client read the Connection: close
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert raw.endswith(FILES["big.bin"]) and raw.count(b"HTTP/1.1 ") == 1


# --- pipelining and HEAD --------------------------------------------------------------------------


def test_pipelining_in_order(server):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(get("/a.txt") + get("/script") + get("/c.txt"))
        assert [r.response()[2] for _ in range(3)] == [b"AAA", b"from script", b"CCCCC"]
        s.sendall(get("/b.txt") + get("/a.txt") + get("/missing") + get("/c.txt", "Connection: close"))
        got = [r.response()[:3:2] for _ in range(4)]
        assert [g[1] for g in got[:2]] == [b"BBBB", b"AAA"]
        assert got[2][0] == 404 and got[3] == (200, b"CCCCC")
        assert r.closed()


def test_pipelined_posts_in_order(server):
    def post(body: bytes) -> bytes:
        return b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    with server.connect() as s:
        r = Reader(s)
        s.sendall(post(b"one") + post(b"two") + get("/a.txt") + post(b"three"))
        assert [r.response()[2] for _ in range(4)] == [b"b'one'", b"b'two'", b"AAA", b"b'three'"]


IGNORED = {"date"}


@pytest.mark.parametrize("path", ["/a.txt", "/script", "/missing"])
def test_head_same_headers_as_get_no_body(server, path):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(get(path))
        g_status, g_fields, g_body = r.response()
        s.sendall(get(path, method="HEAD") + get("/b.txt"))
        h_status, h_fields, _ = r.head()
        # The next pipelined response must start right after the HEAD response's head.
        n_status, _, n_body = r.response()
    assert h_status == g_status
    assert {k: v for k, v in h_fields.items() if k not in IGNORED} == \
           {k: v for k, v in g_fields.items() if k not in IGNORED}
    assert int(h_fields["content-length"]) == len(g_body)
    assert (n_status, n_body) == (200, b"BBBB")


def test_head_with_requests(server):
    g = requests.get(server.url + "/c.txt", timeout=10)
    h = requests.head(server.url + "/c.txt", timeout=10)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == g.headers["Content-Length"] == "5"


# --- request bodies -------------------------------------------------------------------------------


def test_chunked_body_with_trailers(server):
    body = (b"5\r\nhello\r\n"
            b"6;ext=1;other=\"q\"\r\n world\r\n"
            b"A\r\n0123456789\r\n"
            b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n")
    with server.connect() as s:
        r = Reader(s)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n" + body
                  + get("/a.txt"))
        assert r.response()[:3:2] == (200, b"b'hello world0123456789'")
        assert r.response()[2] == b"AAA"  # the trailer section was consumed exactly


def test_chunked_body_in_small_pieces(server):
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n")
    with server.connect() as s:
        r = Reader(s)
        for i in range(0, len(raw), 7):
            s.sendall(raw[i:i + 7])
            time.sleep(0.01)
        assert r.response()[:3:2] == (200, b"b'abcdefg'")


def test_chunked_body_with_requests(server):
    def gen():
        yield b"abc"
        yield b"de" * 1000

    r = requests.post(server.url + "/echo", data=gen(), timeout=10)
    assert r.status_code == 200 and r.text == repr(b"abc" + b"de" * 1000)


def test_expect_100_continue(server):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, fields, body = r.response()
        assert status == 100 and r.buf == b""
        s.sendall(b"hello")
        assert r.response()[:3:2] == (200, b"b'hello'")
        s.sendall(get("/a.txt"))  # still usable
        assert r.response()[2] == b"AAA"


def test_expect_100_continue_chunked(server):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        assert r.response()[0] == 100
        s.sendall(b"2\r\nhi\r\n0\r\n\r\n")
        assert r.response()[:3:2] == (200, b"b'hi'")


def test_expect_100_continue_too_large_is_413_without_100(server):
    with server.connect() as s:
        r = Reader(s)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                  % (MAX_BODY + 1))
        status, fields, _ = r.response()
        assert status == 413
        assert fields["connection"].lower() == "close"
        assert r.closed()


def test_body_too_large_is_413_before_reading(server):
    with server.connect(timeout=5) as s:
        r = Reader(s)
        started = time.monotonic()
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 100)
        status, fields, _ = r.response()  # answered without waiting for the 100 MB
        assert status == 413 and time.monotonic() - started < 3
        assert fields["connection"].lower() == "close"


def test_body_limit_exact(server):
    r = requests.post(server.url + "/echo", data=b"y" * MAX_BODY, timeout=10)
    assert r.status_code == 200 and r.text == repr(b"y" * MAX_BODY)
    r = requests.post(server.url + "/echo", data=b"y" * (MAX_BODY + 1), timeout=10)
    assert r.status_code == 413


# --- slow clients ---------------------------------------------------------------------------------


def test_idle_keep_alive_closed(slow_server):
    with slow_server.connect() as s:
        r = Reader(s)
        s.sendall(get("/a.txt"))
        assert r.response()[2] == b"AAA"
        started = time.monotonic()
        assert r.closed(timeout=10)
        assert 0.5 < time.monotonic() - started < 5
        assert r.buf == b""  # closed silently, no 408


def test_idle_keep_alive_not_closed_early(slow_server):
    with slow_server.connect() as s:
        r = Reader(s)
        for _ in range(3):  # each request restarts the idle clock
            time.sleep(0.5)
            s.sendall(get("/b.txt"))
            assert r.response()[2] == b"BBBB"


def test_half_header_gets_408(slow_server):
    with slow_server.connect() as s:
        r = Reader(s)
        started = time.monotonic()
        s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        s.sendall(b"X-Slow: 1\r\n")  # trickling does not extend the header deadline
        s.settimeout(10)
        status, fields, _ = r.response()
        assert status == 408 and 0.5 < time.monotonic() - started < 5
        assert fields["connection"].lower() == "close"
        assert r.closed()


# --- headers on every response and interop --------------------------------------------------------


@pytest.mark.parametrize("request_bytes, status", [
    (get("/a.txt"), 200),
    (get("/script"), 200),
    (get("/a.txt", method="HEAD"), 200),
    (get("/missing"), 404),
    (get("/a.txt", method="DELETE"), 405),
    (get("/a.txt", method="FROB"), 501),
    (get("/a.txt", "If-None-Match: *"), 304),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 200),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n", 413),
    (b"GET /a.txt HTTP/1.1\r\n\r\n", 400),
    (b"GET /a.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /a.txt HTTP/1.0\r\n\r\n", 200),
], ids=["static", "script", "head", "404", "405", "501", "304", "post", "413", "400", "505", "http10"])
def test_date_server_content_length_everywhere(server, request_bytes, status):
    with server.connect() as s:
        s.sendall(request_bytes)
        got_status, fields, pairs = Reader(s).head()
    assert got_status == status
    names = [k.lower() for k, _ in pairs]
    for name in ("date", "server", "content-length"):
        assert names.count(name) == 1, (name, pairs)
    assert fields["server"].startswith("Krait/")
    assert email.utils.parsedate_to_datetime(fields["date"]).tzname() == "UTC"
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", fields["date"])
    if status not in (304,) and not request_bytes.startswith(b"HEAD") and int(fields["content-length"]) > 0:
        assert "content-type" in fields


def test_http_client_twenty_requests_one_connection(server):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        c.connect()
        sock = c.sock
        for i in range(20):
            kind = i % 4
            if kind == 0:
                c.request("GET", "/a.txt")
                expected = (200, b"AAA")
            elif kind == 1:
                body = b"n=%d" % i
                c.request("POST", "/echo", body=body)
                expected = (200, repr(body).encode())
            elif kind == 2:
                c.request("HEAD", "/c.txt")
                expected = (200, b"")
            else:
                c.request("GET", "/missing-%d" % i)
                expected = (404, None)
            resp = c.getresponse()
            data = resp.read()
            assert resp.status == expected[0], i
            if expected[1] is not None:
                assert data == expected[1], i
            assert not resp.will_close, i
            assert c.sock is sock, "the connection was reopened at request %d" % i
    finally:
        c.close()


def test_requests_session_reuses_connection(server):
    with requests.Session() as session:
        first = session.get(server.url + "/a.txt", timeout=10, stream=True)
        sock = first.raw._connection.sock
        assert first.content
        for path in ("/b.txt", "/script", "/c.txt"):
            r = session.get(server.url + path, timeout=10, stream=True)
            assert r.status_code == 200
            assert r.raw._connection.sock is sock
            assert r.content
