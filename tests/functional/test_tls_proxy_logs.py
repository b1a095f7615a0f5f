"""Production hardening (issue 7) against the real server: HTTPS and wss://, trusted proxies, the access
and error logs, and gzip. Every test ends with a normal request that must still succeed."""

# Strategy: the certificate is made at test time with the openssl CLI (skipped when it is missing),
# with a subjectAltName for 127.0.0.1 so the client verifies it for real. Requests go through
# http.client over raw sockets so the test sees exactly what was sent (no automatic decompression).

from __future__ import annotations

import gzip
import http.client
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import read_all, write_site

TEXT = ("Krait compresses text above a threshold. " * 100).encode()  # ~4 KiB, compresses well

INIT = '''
import krait
from krait.config import Route
krait.config.routes = [Route("WEBSOCKET", url="/ws"), Route()]
'''

ECHO_CTRL = '''
from krait.websockets import WebsocketsCtrlBase

class Echo(WebsocketsCtrlBase):
    def __init__(self, scheme):
        super().__init__(use_in_message_queue=False)
        self.scheme = scheme

    def on_in_message(self, message):
        self.push_out_message(self.scheme + ":" + message)
'''

SITE = {
    ".py/init.py": INIT,
    ".py/echo_ctrl.py": ECHO_CTRL,
    "hello.txt": "hello\n",
    "big.txt": TEXT,
    "big.png": TEXT,  # already-compressed type by name: never gzipped whatever the bytes
    "big.gz": TEXT,
    "small.txt": b"x" * 500,
    "huge.txt": TEXT * 70,  # ~280 KiB: past GZIP_MAX_SIZE, sent with sendfile
    "part.py": "krait.response = krait.Response('HTTP/1.1', 206, [('Content-Type', 'text/plain'), "
               "('Content-Range', 'bytes 0-1999/*')], 'p' * 2000)\n",
    "who.py": "import json\nr = krait.request\n"
              "krait.response = krait.Response('HTTP/1.1', 200, [('Content-Type', 'application/json')], "
              "json.dumps({'addr': list(r.remote_addr) if r.remote_addr else None, 'scheme': r.scheme}))\n",
    "bigdyn.py": "krait.response = krait.Response('HTTP/1.1', 200, [('Content-Type', 'text/plain')], 'dyn ' * 2000)\n",
    "sleep.py": "import time\ntime.sleep(1)\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'slept')\n",
    "raise.py": "def inner():\n    raise ValueError('boom-detail')\ninner()\n",
    "ws.py": "import krait, krait.websockets\nfrom echo_ctrl import Echo\n"
             "krait.websockets.response = krait.websockets.WebsocketsResponse(Echo(krait.request.scheme))\n",
}


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", SITE)


def get(port: int, path: str = "/hello.txt", method: str = "GET", headers: dict | None = None,
        tls: ssl.SSLContext | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One request on a fresh connection; returns (status, lower-cased headers, raw body)."""
    if tls is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                                                         context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_normal(port: int, tls: ssl.SSLContext | None = None) -> None:
    """The normal request every test ends with."""
    assert get(port, tls=tls)[::2] == (200, b"hello\n")


# --- HTTPS -----------------------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate (apt-get install -y openssl)")
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def test_an_encrypted_key_is_refused_at_start_without_a_prompt(site, cert, krait_server, tmp_path):
    crt, key = cert
    locked = tmp_path / "locked.pem"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret", "-out", str(locked)],
                   check=True, capture_output=True, timeout=60)
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(locked), expect_ready=False)
    assert srv.proc.wait(30) == 1
    assert "cannot load the certificate: the private key is encrypted" in srv.log()
    assert "pass phrase:" not in srv.log()


def test_https_scheme_wss_and_stalled_handshakes(site, cert, krait_server):
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key))
    assert srv.url.startswith("https://")
    tls = ssl.create_default_context(cafile=str(crt))
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=15) for _ in range(30)]
    opened = time.monotonic()
    try:
        # 30 clients that connect and never speak do not block anyone.
        t0 = time.monotonic()
        status, _, body = get(srv.port, "/who", tls=tls)
        assert time.monotonic() - t0 < 1.0
        assert status == 200 and json.loads(body)["scheme"] == "https"
        assert json.loads(body)["addr"][0] == "127.0.0.1"
        # Plain HTTP to the HTTPS port: the handshake fails in that connection's thread, which is closed.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            try:
                data = s.recv(4096)
                while data and not data.startswith(b"HTTP/"):
                    more = s.recv(4096)
                    if not more:
                        break
                    data += more
            except ConnectionResetError:
                data = b""
            assert not data.startswith(b"HTTP/1.1 200")
        assert_normal(srv.port, tls)
        # wss:// works and the WebSocket script sees the scheme.
        import websocket

        ws = websocket.create_connection("wss://127.0.0.1:%d/ws" % srv.port, timeout=10,
                                         sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(crt)})
        try:
            ws.send("ping")
            assert ws.recv() == "https:ping"
        finally:
            ws.close()
        # The handshake deadline (limits.TLS_HANDSHAKE_TIMEOUT, 10 s) drops the silent clients.
        from krait import limits

        for s in silent:
            s.settimeout(max(limits.TLS_HANDSHAKE_TIMEOUT + 3 - (time.monotonic() - opened), 0.5))
            try:
                assert s.recv(4096) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in silent:
            s.close()
    assert_normal(srv.port, tls)


def _threads(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def test_a_request_half_sent_when_a_graceful_stop_begins_is_answered_over_tls(site, cert, krait_server):
    # The stop waits for a request that has begun, and never drops the connection's TLS state (an
    # SSLSocket's shutdown() does: what was sent next went out in cleartext).
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key))
    tls = ssl.create_default_context(cafile=str(crt))
    with tls.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=10),
                         server_hostname="127.0.0.1") as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        srv.signal(signal.SIGTERM)
        time.sleep(0.5)  # past the stop's 0.2 s for idle connections to notice
        s.sendall(b"\r\n")
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"hello\n"), reply
    assert b"\r\nConnection: close\r\n" in reply
    assert srv.proc.wait(10) == 0


def test_a_graceful_stop_closes_an_idle_tls_connection_without_an_alert(site, cert, krait_server):
    # Shutting only the reading side made OpenSSL answer the end of input with a decode_error alert.
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key))
    tls = ssl.create_default_context(cafile=str(crt))
    with tls.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=10),
                         server_hostname="127.0.0.1") as idle:
        idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).endswith(b"hello\n")
        srv.signal(signal.SIGTERM)
        assert idle.recv(4096) == b""
    assert srv.proc.wait(10) == 0


def test_tls_handshakes_count_against_the_connection_limit(site, cert, krait_server):
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key), "--max-connections", "5")
    tls = ssl.create_default_context(cafile=str(crt))
    assert_normal(srv.port, tls)
    time.sleep(0.2)
    base = _threads(srv.proc.pid)
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(40)]
    try:
        time.sleep(0.5)
        assert _threads(srv.proc.pid) <= base + 5 + 2, "one thread per handshaking client, past the limit"
    finally:
        for s in silent:
            s.close()


def test_tls_connection_limit_refuses_cleanly(site, cert, krait_server):
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key), "--max-connections", "1")
    tls = ssl.create_default_context(cafile=str(crt))
    held = tls.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=5), server_hostname="127.0.0.1")
    try:
        held.sendall(b"GET /sleep.py HTTP/1.1\r\nHost: x\r\n\r\n")  # in the middle of a request for 1 s
        time.sleep(0.2)
        try:  # a 503 over TLS, or a plain close: never cleartext bytes into a TLS handshake
            assert get(srv.port, tls=tls)[0] == 503
        except (ConnectionError, ssl.SSLEOFError):
            pass
        assert held.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        held.close()
    time.sleep(0.3)
    assert_normal(srv.port, tls)


def test_a_full_tls_server_makes_room_by_closing_silent_handshakes_and_idle_connections(site, cert, krait_server):
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key), "--max-connections", "3")
    tls = ssl.create_default_context(cafile=str(crt))
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(2)]  # no ClientHello
    idle = tls.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=5), server_hostname="127.0.0.1")
    newcomers = []
    try:
        idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).endswith(b"hello\n")
        for s in silent:  # each newcomer is served at once, not after a 10 s handshake timeout frees a place
            newcomers.append(tls.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=3),
                                             server_hostname="127.0.0.1"))
            newcomers[-1].sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert newcomers[-1].recv(4096).endswith(b"hello\n")  # and stays open
            s.settimeout(3)
            assert s.recv(4096) == b""
        assert get(srv.port, tls=tls, timeout=3)[::2] == (200, b"hello\n")  # the idle TLS connection's turn
        try:
            assert idle.recv(4096) == b""
        except (ConnectionError, ssl.SSLEOFError):
            pass
    finally:
        for s in silent + newcomers:
            s.close()
        idle.close()


def test_plain_http_on_the_https_port_gets_a_cleartext_400(site, cert, krait_server):
    crt, key = cert
    srv = krait_server(site, "--certfile", str(crt), "--keyfile", str(key))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: plain\r\n\r\n")
        reply = read_all(s)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"\r\nConnection: close" in head, reply[:300]
    assert b"https://" in body
    assert "400 plain HTTP on the HTTPS port" in srv.log()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:  # not HTTP, not TLS: closed
        s.sendall(b"\x00\x01\x02")
        assert read_all(s) == b""
    assert_normal(srv.port, ssl.create_default_context(cafile=str(crt)))


def test_plain_server_reports_http_scheme(site, krait_server):
    srv = krait_server(site)
    assert json.loads(get(srv.port, "/who")[2])["scheme"] == "http"
    assert_normal(srv.port)


# --- behind a proxy ----------------------------------------------------------------------------


def _who(port: int, headers: dict) -> tuple[list, str]:
    d = json.loads(get(port, "/who", headers=headers)[2])
    return d["addr"], d["scheme"]


def test_forwarded_headers_from_a_trusted_proxy(site, krait_server, tmp_path):
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))  # default --forwarded-allow-ips: 127.0.0.1
    addr, scheme = _who(srv.port, {"X-Forwarded-For": "203.0.113.9, 198.51.100.7",
                                   "X-Forwarded-Proto": "https"})
    assert addr[0] == "198.51.100.7" and scheme == "https"  # the address the proxy appended, not the client's
    addr, scheme = _who(srv.port, {"Forwarded": 'for="[2001:db8::1]:4711";proto=https',
                                   "X-Forwarded-For": "192.0.2.1"})
    assert addr == ["2001:db8::1", 4711] and scheme == "https"  # RFC 7239 wins
    addr, scheme = _who(srv.port, {"Forwarded": "for=192.0.2.60;proto=http;by=203.0.113.43"})
    assert addr[0] == "192.0.2.60" and scheme == "http"
    addr, scheme = _who(srv.port, {"X-Forwarded-Proto": "gopher"})
    assert addr[0] == "127.0.0.1" and scheme == "http"
    assert_normal(srv.port)
    lines = _wait_lines(log, 5)
    assert [line.split()[0] for line in lines] == ["198.51.100.7", "2001:db8::1", "192.0.2.60", "127.0.0.1",
                                                   "127.0.0.1"]


def test_forwarded_headers_from_others_are_ignored(site, krait_server, tmp_path):
    log = tmp_path / "access.log"
    srv = krait_server(site, "--forwarded-allow-ips", "10.9.9.9", "--access-log", str(log))
    for headers in ({"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"},
                    {"Forwarded": "for=192.0.2.60;proto=https"}):
        addr, scheme = _who(srv.port, headers)
        assert addr[0] == "127.0.0.1" and scheme == "http"
    assert_normal(srv.port)
    assert all(line.startswith("127.0.0.1 ") for line in _wait_lines(log, 3))


def test_forwarded_clients_that_are_not_ip_addresses_are_ignored(site, krait_server, tmp_path):
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    for headers in ({"X-Forwarded-For": 'evil" 200 "x'}, {"X-Forwarded-For": "198.51.100.7, \x9b31mred"},
                    {"Forwarded": "for=unknown;proto=https"}, {"Forwarded": 'for="_hidden"'},
                    {"X-Forwarded-For": "fe80::1%eth0"}, {"Forwarded": 'for="[fe80::1%eth0]:80"'}):  # zone IDs
        addr, _ = _who(srv.port, headers)
        assert addr[0] == "127.0.0.1", headers
    assert_normal(srv.port)
    assert all(line.startswith("127.0.0.1 ") for line in _wait_lines(log, 7))


def _dual_stack() -> bool:
    """Whether a socket listening on :: takes IPv4 connections here (not where IPv6 is off or v6-only)."""
    try:
        with socket.socket(socket.AF_INET6) as listener:
            listener.bind(("::", 0))
            listener.listen()
            with socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=2):
                pass
        return True
    except OSError:
        return False


@pytest.mark.parametrize("allow", [None, "10.0.0.0/8,127.0.0.0/8"])
def test_a_dual_stack_proxy_is_known_by_its_ipv4_address(site, krait_server, tmp_path, allow):
    # Listening on ::, an IPv4 client's address is ::ffff:127.0.0.1 to the socket: it matches the default
    # 127.0.0.1 entry (or 127.0.0.0/8), and scripts and the access log see 127.0.0.1.
    if not _dual_stack():
        pytest.skip("no dual-stack IPv6 socket here")
    log = tmp_path / "access.log"
    srv = krait_server(site, "--host", "::", "--access-log", str(log),
                       *(["--forwarded-allow-ips", allow] if allow else []))
    assert _who(srv.port, {})[0][0] == "127.0.0.1"
    assert _who(srv.port, {"X-Forwarded-For": "203.0.113.9"})[0][0] == "203.0.113.9"
    assert _who(srv.port, {"Forwarded": 'for="[::ffff:198.51.100.7]"'})[0][0] == "198.51.100.7"
    assert_normal(srv.port)
    # Each line is written once its response went out, by the connection's own thread: the next request
    # can be logged first.
    assert sorted(line.split()[0] for line in _wait_lines(log, 4)) == ["127.0.0.1", "127.0.0.1", "198.51.100.7",
                                                                       "203.0.113.9"]


# --- logs --------------------------------------------------------------------------------------

CLF = re.compile(r'^(?P<host>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                 r'"(?P<line>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" '
                 r'(?P<ms>\d+\.\d+)ms$')


def _wait_lines(path: Path, count: int, timeout: float = 5.0) -> list[str]:
    """The complete lines of a log file, once there are `count` of them (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = text[:text.rfind("\n") + 1].splitlines()
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_access_log_is_combined_log_format_with_time(site, krait_server, tmp_path):
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    get(srv.port, "/hello.txt?x=1", headers={"Referer": "http://example.com/a", "User-Agent": "probe/1.0"})
    get(srv.port, "/missing")
    get(srv.port, "/hello.txt?etag", headers={"If-None-Match": get(srv.port, "/hello.txt?tag")[1]["etag"]})
    lines = _wait_lines(log, 4)
    assert len(lines) == 4, lines
    m = [CLF.match(line) for line in lines]
    assert all(m), lines
    # A line is written once its response was sent, so lines of back-to-back requests may swap places.
    by_line = {x["line"]: x.groupdict() for x in m}
    first = by_line["GET /hello.txt?x=1 HTTP/1.1"]
    assert first["host"] == "127.0.0.1"
    assert (first["status"], first["size"], first["referer"], first["agent"]) == ("200", "6", "http://example.com/a",
                                                                                 "probe/1.0")
    assert float(first["ms"]) < 1000
    assert by_line["GET /missing HTTP/1.1"]["status"] == "404"
    assert by_line["GET /hello.txt?tag HTTP/1.1"]["referer"] == "-"
    assert (by_line["GET /hello.txt?etag HTTP/1.1"]["status"], by_line["GET /hello.txt?etag HTTP/1.1"]["size"]) == \
        ("304", "-")
    assert_normal(srv.port)


def test_access_log_head_size(site, krait_server, tmp_path):
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    assert get(srv.port, method="HEAD")[0] == 200
    line = _wait_lines(log, 1)[0]
    assert '"HEAD /hello.txt HTTP/1.1" 200 - ' in line, line
    assert_normal(srv.port)


def test_access_log_holds_only_responses_that_were_sent(site, krait_server, tmp_path):
    # A POST to a static file is answered early (405) and its body skipped; the client then leaves
    # before the body's end. The core's error has nothing left to answer: no 400 line for it.
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        assert s.recv(4096).startswith(b"HTTP/1.1 405 ")
        s.shutdown(socket.SHUT_WR)
        s.recv(4096)
    assert get(srv.port)[0] == 200
    assert [line.split('" ')[1].split()[0] for line in _wait_lines(log, 3, timeout=2)] == ["405", "200"]


def test_access_log_escapes_quotes(site, krait_server, tmp_path):
    # Apache escapes '"' and '\' in logged fields, so a client cannot forge extra fields in the line.
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    get(srv.port, headers={"User-Agent": 'evil" 999 "x', "Referer": "a\\b"})
    line = _wait_lines(log, 1)[0]
    assert line.endswith('"a\\\\b" "evil\\" 999 \\"x"' + line[line.rindex(" "):]), line
    assert_normal(srv.port)


def test_access_log_escapes_control_and_non_ascii_bytes(site, krait_server, tmp_path):
    # Header values may carry obs-text (bytes 0x80-0xFF), C1 controls such as CSI (0x9b) among them: logged
    # as \\xhh, so the log stays one ASCII line per request that no terminal interprets.
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x9b31mb\x85c\tq\xe9\r\n"
                  b"Referer: r\\\"\r\nConnection: close\r\n\r\n")
        assert read_all(s).endswith(b"hello\n")
    raw = log.read_bytes() if _wait_lines(log, 1) else b""
    assert raw.isascii(), raw
    line = raw.decode().splitlines()[0]
    assert '"r\\\\\\"" "a\\x9b31mb\\x85c\\x09q\\xe9" ' in line, line
    assert CLF.match(line.replace('\\"', "")), line
    assert_normal(srv.port)


def test_access_log_to_stdout(site, krait_server):
    srv = krait_server(site, "--access-log", "-")
    assert_normal(srv.port)
    deadline = time.monotonic() + 5
    while "GET /hello.txt HTTP/1.1" not in srv.stdout() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(x for x in srv.stdout().splitlines() if "GET /hello.txt" in x)
    assert CLF.match(line), line


def test_errors_are_logged_with_the_request_line_not_sent(site, krait_server):
    srv = krait_server(site)
    status, _, body = get(srv.port, "/raise?q=1")
    assert status == 500 and b"boom-detail" not in body and b"Traceback" not in body
    log = srv.log()
    line = [x for x in log.splitlines() if "boom-detail" in x and "ERROR" in x]
    assert line and "GET /raise?q=1" in line[0] and "ValueError" in line[0], log
    assert_normal(srv.port)


def test_debug_shows_the_traceback(site, krait_server):
    srv = krait_server(site, "--debug")
    status, _, body = get(srv.port, "/raise")
    assert status == 500 and b"boom-detail" in body and b"raise.py" in body and b"Traceback" in body
    assert_normal(srv.port)


# --- compression -------------------------------------------------------------------------------

GZ = {"Accept-Encoding": "gzip"}


def test_gzip_for_compressible_types_above_threshold(site, krait_server):
    srv = krait_server(site)
    status, h, body = get(srv.port, "/big.txt", headers=GZ)
    assert status == 200 and h["content-encoding"] == "gzip" and h["vary"] == "Accept-Encoding"
    assert int(h["content-length"]) == len(body) < len(TEXT) // 4
    assert gzip.decompress(body) == TEXT
    head = get(srv.port, "/big.txt", "HEAD", headers=GZ)
    assert head[2] == b"" and head[1]["content-length"] == h["content-length"]
    assert head[1]["content-encoding"] == "gzip" and head[1]["etag"] == h["etag"]
    status, h, body = get(srv.port, "/bigdyn", headers={"Accept-Encoding": "deflate, gzip;q=0.5"})
    assert h["content-encoding"] == "gzip" and gzip.decompress(body) == b"dyn " * 2000
    assert_normal(srv.port)


@pytest.mark.parametrize("path, headers, vary", [
    ("/big.txt", {}, True),  # client did not ask
    ("/big.txt", {"Accept-Encoding": "gzip;q=0, deflate"}, True),  # refused explicitly
    ("/big.txt", {"Accept-Encoding": "*, gzip;q=0"}, True),  # refused by name: "*" means the others
    ("/big.txt", {"Accept-Encoding": "identity"}, True),
    ("/small.txt", GZ, False),  # under limits.GZIP_MIN_SIZE
    ("/big.png", GZ, False),  # already compressed
    ("/big.gz", GZ, False),
])
def test_no_gzip(site, krait_server, path, headers, vary):
    srv = krait_server(site)
    status, h, body = get(srv.port, path, headers=headers)
    assert status == 200 and "content-encoding" not in h and int(h["content-length"]) == len(body)
    assert ("vary" in h) == vary
    assert_normal(srv.port)


def test_no_gzip_for_ranges(site, krait_server):
    srv = krait_server(site)
    status, h, body = get(srv.port, "/big.txt", headers={"Accept-Encoding": "gzip", "Range": "bytes=10-109"})
    assert status == 206 and "content-encoding" not in h and body == TEXT[10:110]
    assert h["content-range"] == "bytes 10-109/%d" % len(TEXT)
    assert_normal(srv.port)


def test_a_304_or_206_says_what_its_200_says(site, krait_server):
    # A file too large to gzip is sent as it is, with no Vary; its 304 must not name a gzip representation
    # (caches update their stored headers from a 304, RFC 9110 section 15.4.5).
    srv = krait_server(site)
    status, h, body = get(srv.port, "/huge.txt", headers=GZ)
    assert status == 200 and "content-encoding" not in h and "vary" not in h and len(body) == len(TEXT * 70)
    status, h304, _ = get(srv.port, "/huge.txt", headers={**GZ, "If-None-Match": h["etag"]})
    assert status == 304 and h304["etag"] == h["etag"] and "vary" not in h304
    # A script's 206 whose complete length is unknown ("*", RFC 9110 section 14.4) is sent as it is.
    status, h, body = get(srv.port, "/part.py", headers=GZ)
    assert status == 206 and h["content-range"] == "bytes 0-1999/*" and body == b"p" * 2000
    assert_normal(srv.port)


def test_gzip_etag_revalidates(site, krait_server):
    # A cache holding the gzip representation revalidates with its ETag (RFC 9110 13.1.2): expect 304.
    srv = krait_server(site)
    tag = get(srv.port, "/big.txt", headers=GZ)[1]["etag"]
    status, h, body = get(srv.port, "/big.txt", headers={**GZ, "If-None-Match": tag})
    assert status == 304 and body == b"" and h["etag"] == tag
    assert_normal(srv.port)


def test_a_request_answered_from_a_kept_reply_is_logged_like_the_first(site, krait_server, tmp_path):
    # The second request is answered from the reply kept for the first (krait/server/replies.py).
    log = tmp_path / "access.log"
    srv = krait_server(site, "--access-log", str(log))
    headers = {"User-Agent": "probe/2.0", "X-Forwarded-For": "198.51.100.8"}
    for _ in range(2):
        assert get(srv.port, "/hello.txt?kept", headers=headers)[0] == 200
    lines = _wait_lines(log, 2)
    fields = [CLF.match(line).groupdict() for line in lines]
    for f in fields:
        f.pop("time")
        f.pop("ms")
    assert fields[0] == fields[1]
    assert (fields[0]["host"], fields[0]["line"], fields[0]["size"], fields[0]["agent"]) == \
        ("198.51.100.8", "GET /hello.txt?kept HTTP/1.1", "6", "probe/2.0")
