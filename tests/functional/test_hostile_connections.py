"""Connections under hostile clients (issue 20), against the real server: the open-file limit, running out
of file descriptors, the per-address connection limit, Connection: close during a graceful stop, and the
headers a script may send (docs/configuration.md, docs/scripts.md)."""

# Strategy: each test starts its own `python -m krait` (tests/conftest.py), squeezed where needed: under
# a low RLIMIT_NOFILE set before it starts (preexec_fn), or with its limit lowered while it runs
# (resource.prlimit) so that accept() itself fails with EMFILE. Clients are raw sockets; a client that
# gets no answer fails the test on its socket timeout rather than hanging it. "The server does not
# spin" is its CPU time over a quiet second (/proc/PID/stat), a resource check, not a speed one.

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import threading
import time

import pytest

from tests.helpers import assert_quiet, read_all, write_site

SITE = {
    ".py/init.py": "from krait.config import Route\n"
                   "krait.config.routes = [Route('POST', url='/echo.py'), Route()]\n",
    "hello.txt": "hello\n",
    "sleep.py": "import time\ntime.sleep(float(krait.request.query.get('s', '1')))\n"
                "krait.response = krait.Response('HTTP/1.1', 200, [], 'slept')\n",
    "vt.py": "krait.response = krait.Response('HTTP/1.1', 200, [('X-A', 'a\\x0bb')], 'SENT')\n",
    "ff.py": "krait.response = krait.Response('HTTP/1.1', 200, [('X-A', 'a\\x0cb')], 'SENT')\n",
    "nel.py": "krait.response = krait.Response('HTTP/1.1', 200, [('X-A', 'a\\x85b')], 'SENT')\n",
    "huge.py": "krait.response = krait.Response('HTTP/1.1', 200, [('X-Big', 'v' * 1000000)], 'SENT')\n",
    "many.py": "import krait\nfor i in range(500):\n    krait.extra_headers.append(('X-%d' % i, 'v'))\n"
               "krait.response = krait.Response('HTTP/1.1', 200, [], 'SENT')\n",
    "fine.py": "krait.response = krait.Response('HTTP/1.1', 200, [('X-A', ' caf\\xe9\\tok ')], 'fine')\n",
    "ctype.py": "krait.set_content_type(raw='text/plain\\x0bX-A: 1')\n"
                "krait.response = krait.Response('HTTP/1.1', 200, [], 'SENT')\n",
    "reason.py": "krait.response = 'HTTP/1.1 200 O\\x0cK\\r\\nX-A: 1\\r\\n\\r\\nSENT'\n",
    "interim.py": "krait.response = krait.Response('HTTP/1.1', 103, [('X-A', 'early')], 'SENT')\n",
    "nobody.py": "krait.response = krait.Response('HTTP/1.1', 204, [('X-A', '1')], 'SENT')\n",
    "nobodygen.py": "krait.response = krait.Response('HTTP/1.1', 204, [('X-A', '1')], (p for p in ['SENT']))\n",
    "emptylist.py": "krait.response = krait.Response('HTTP/1.1', 204, [('X-A', '1')], [])\n",
    "emptytuple.py": "krait.response = krait.Response('HTTP/1.1', 304, [('X-A', '1')], ())\n",
    "echo.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'got %d' % len(krait.request.body))\n",
    "200k.bin": "x" * 200_000,  # served from the memory cache (under 256 KiB), like most static files
}
REQUEST = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
IN_A_BODY = b"POST /echo.py HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"  # the body is still to come


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", SITE)


def ask(port: int, source: str = "127.0.0.1", request: bytes = REQUEST, timeout: float = 5.0) -> socket.socket:
    """A connection from `source` that has sent one request."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    s.sendall(request)
    return s


def answer(s: socket.socket) -> bytes:
    """The first response on `s` (head and the body's first bytes); raises TimeoutError if none comes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def status(response: bytes) -> int:
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert m, response[:200]
    return int(m.group(1))


def assert_normal(port: int) -> None:
    with ask(port) as s:
        assert answer(s).endswith(b"hello\n")


def answered(port: int, source: str) -> socket.socket:
    """A keep-alive connection from `source`, idle after one answered request."""
    s = ask(port, source)
    assert status(answer(s)) == 200
    return s


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


# --- file descriptors ----------------------------------------------------------------------------


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))


def test_under_a_low_open_file_limit_clients_past_it_get_503(site, krait_server):
    srv = krait_server(site, preexec_fn=_low_nofile)
    m = re.search(r"the open-file limit is 400: --max-connections lowered from 2000 to (\d+)", srv.log())
    assert m, srv.log()
    limit = int(m.group(1))
    held, past = [], []
    try:
        held = [ask(srv.port, request=IN_A_BODY) for _ in range(limit)]  # each in the middle of a request
        time.sleep(0.3)
        past = [ask(srv.port) for _ in range(40)]
        assert [status(answer(s)) for s in past] == [503] * 40
        with ask(srv.port) as late:  # one more: a 503 at once, never a hang
            assert status(answer(late)) == 503
        assert_quiet(srv.proc.pid)
        held[0].sendall(b"x" * 10)  # the held ones were not cut
        assert status(answer(held[0])) == 200
    finally:
        close_all(held + past)
    time.sleep(0.3)
    assert_normal(srv.port)


def test_out_of_file_descriptors_refuses_with_503_and_backs_off(site, krait_server):
    srv = krait_server(site)
    assert_normal(srv.port)
    fds = len(os.listdir("/proc/%d/fd" % srv.proc.pid))
    resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (fds + 10, fds + 10))  # accept() hits EMFILE soon
    socks = []
    try:
        for _ in range(40):
            socks.append(ask(srv.port))
        codes = [status(answer(s)) for s in socks]  # a client the server cannot accept would time out here
        # RLIMIT_NOFILE bounds descriptor numbers, not how many are open: about 10 clients get in.
        assert set(codes) == {200, 503} and codes.count(503) >= 20, codes
        assert_quiet(srv.proc.pid)
        assert "out of file descriptors" in srv.log()
        assert srv.log().count("out of file descriptors") == 1  # warned once, not once per client
    finally:
        close_all(socks)
    time.sleep(0.3)
    assert_normal(srv.port)


# --- per-address limit -----------------------------------------------------------------------------


def test_connections_per_address_are_capped(site, krait_server):
    srv = krait_server(site, "--max-connections-per-ip", "3")
    held = [ask(srv.port) for _ in range(3)]
    try:
        assert [status(answer(s)) for s in held] == [200, 200, 200]
        with ask(srv.port) as fourth:
            reply = read_all(fourth)
        head = reply.partition(b"\r\n\r\n")[0]
        assert status(reply) == 503 and b"\r\nRetry-After: 1" in head and b"\r\nConnection: close" in head
        assert "connection refused: 127.0.0.1 has 3 connections open (limit 3 per address)" in srv.log()
        for _ in range(30):  # a flood of refusals is one log line per 10 s, not one line each
            with ask(srv.port) as more:
                read_all(more)
        assert srv.log().count("connection refused") == 1
        with ask(srv.port, source="127.0.0.2") as other:  # another address is not affected
            assert status(answer(other)) == 200
        held.pop().close()
        time.sleep(0.3)
        assert_normal(srv.port)  # a place freed up
    finally:
        close_all(held)


def test_an_ipv6_client_is_counted_under_its_slash_64(site, krait_server):
    # A host picks the low 64 bits of its IPv6 address itself (RFC 8981), so the per-address bound counts
    # its /64: here ::1's, the only IPv6 address a test can connect from.
    try:
        socket.create_connection(("::1", 9), timeout=1).close()
    except ConnectionRefusedError:
        pass
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = krait_server(site, "--host", "::1", "--max-connections-per-ip", "1")
    with socket.create_connection(("::1", srv.port), timeout=5) as first:
        first.sendall(REQUEST)
        assert status(answer(first)) == 200
        with socket.create_connection(("::1", srv.port), timeout=5) as second:
            second.sendall(REQUEST)
            assert status(read_all(second)) == 503
    assert "connection refused: ::/64 has 1 connections open (limit 1 per address)" in srv.log()


def test_websockets_count_against_the_per_address_limit_until_they_close(tmp_path, krait_server):
    import websocket  # websocket-client

    echo = ("from krait import websockets\n\nclass Echo(websockets.WebsocketsCtrlBase):\n"
            "    def on_in_message(self, message):\n        self.push_out_message(message)\n\n"
            "websockets.response = websockets.WebsocketsResponse(Echo(), None)\n")
    init = ("import krait\nfrom krait.config import Route\n"
            "krait.config.routes = [Route('WEBSOCKET', url='/ws', target='/ws.py'), Route()]\n")
    srv = krait_server(write_site(tmp_path / "site", {**SITE, ".py/init.py": init, "ws.py": echo}),
                       "--max-connections-per-ip", "2")
    url = "ws://127.0.0.1:%d/ws" % srv.port
    held = [websocket.create_connection(url, timeout=10) for _ in range(2)]
    try:
        with pytest.raises(websocket.WebSocketBadStatusException):  # one address cannot take every place
            websocket.create_connection(url, timeout=10)
        with ask(srv.port) as third:
            assert status(read_all(third)) == 503
    finally:
        for ws in held:
            ws.close()
    time.sleep(0.5)
    again = websocket.create_connection(url, timeout=10)  # closed WebSockets gave their places back
    again.send("x")
    assert again.recv() == "x"
    again.close()


def test_a_full_server_closes_a_waiting_connection_of_the_address_holding_the_most(site, krait_server):
    srv = krait_server(site, "--max-connections", "10")
    few = [answered(srv.port, "127.0.0.2") for _ in range(3)]  # the oldest connections, idle now
    many = [answered(srv.port, "127.0.0.1") for _ in range(7)]
    try:
        for n in range(2):  # each newcomer closes the oldest idle connection of 127.0.0.1, which holds most
            few.append(answered(srv.port, "127.0.0.3"))
            many[n].settimeout(5)
            assert many[n].recv(4096) == b""
            time.sleep(0.2)  # its place is given back
        for s in few + many[2:]:  # 127.0.0.2 kept all three, 127.0.0.1 the other five
            s.sendall(REQUEST)
            assert answer(s).endswith(b"hello\n")
    finally:
        close_all(few + many)


def test_a_full_server_answers_a_connection_it_closes_in_the_middle_of_a_head_with_503(site, krait_server):
    srv = krait_server(site, "--max-connections", "5")
    slow = []
    try:
        for _ in range(5):  # heads still arriving, in this order
            slow.append(ask(srv.port, request=b"GET /hello.txt HTTP/1.1\r\nHo"))
            time.sleep(0.1)
        with ask(srv.port, source="127.0.0.2") as newcomer:  # 10 s before the header timeout frees a place
            assert status(answer(newcomer)) == 200
        reply = read_all(slow[0])
        head = reply.partition(b"\r\n\r\n")[0]
        assert status(reply) == 503 and b"\r\nRetry-After: 1" in head and b"\r\nConnection: close" in head
        slow[1].sendall(b"st: x\r\n\r\n")  # the others go on
        assert answer(slow[1]).endswith(b"hello\n")
    finally:
        close_all(slow)


def test_a_full_server_closes_a_connection_lingering_after_its_last_response_to_make_room(site, krait_server):
    srv = krait_server(site, "--max-connections", "3")
    done = [ask(srv.port, request=b"GET /hello.txt HTTP/1.0\r\n\r\n") for _ in range(3)]  # never closed
    try:
        for s in done:
            assert read_all(s).endswith(b"hello\n")  # answered; the server reads on until the client closes
        with ask(srv.port, source="127.0.0.2") as newcomer:  # not a 503 for the 2 s they may linger
            assert status(answer(newcomer)) == 200
    finally:
        close_all(done)


def test_the_per_address_limit_is_off_by_default_and_validated(site, krait_server):
    srv = krait_server(site, "--max-connections", "50")
    socks = [ask(srv.port) for _ in range(20)]
    try:
        assert all(status(answer(s)) == 200 for s in socks)
    finally:
        close_all(socks)
    bad = krait_server(site, "--max-connections-per-ip", "-1", expect_ready=False)
    assert bad.proc.wait(30) == 2
    assert "argument --max-connections-per-ip: expected a whole number of at least 0" in bad.err_path.read_text()


# --- graceful stop ---------------------------------------------------------------------------------


def test_responses_finished_during_a_graceful_stop_say_connection_close(site, krait_server):
    srv = krait_server(site, "--workers", "1")
    with ask(srv.port, request=b"GET /sleep.py?s=1.5 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10) as s:
        time.sleep(0.5)
        srv.signal(signal.SIGTERM)
        reply = read_all(s)
    head = reply.partition(b"\r\n\r\n")[0]
    assert status(reply) == 200 and reply.endswith(b"slept")
    assert b"\r\nConnection: close" in head, head
    assert srv.proc.wait(10) == 0


# --- headers a script sends -------------------------------------------------------------------------


def test_script_headers_outside_rfc_9110_or_too_big_are_a_logged_500(site, krait_server):
    srv = krait_server(site)
    for path in ("/vt.py", "/ff.py", "/nel.py", "/huge.py", "/many.py"):
        with ask(srv.port, request=b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()) as s:
            reply = answer(s)
        assert status(reply) == 500, (path, reply[:300])
        assert b"SENT" not in reply and b"X-A" not in reply and b"X-Big" not in reply and len(reply) < 4096
    log = srv.log()
    for path in ("/vt.py", "/ff.py", "/nel.py"):  # one error line each (and its traceback)
        assert "GET %s -> 500: ValueError: refused to send header 'X-A'" % path in log
    for path in ("/huge.py", "/many.py"):
        assert "GET %s -> 500: ValueError: refused to send the response headers: more than 100 fields" % path in log
    with ask(srv.port, request=b"GET /fine.py HTTP/1.1\r\nHost: x\r\n\r\n") as s:
        reply = answer(s)
    assert status(reply) == 200 and b"\r\nX-A: caf\xe9\tok\r\n" in reply
    assert_normal(srv.port)


def test_a_script_response_that_cannot_be_sent_as_it_is_is_a_logged_500(site, krait_server):
    # A Content-Type or reason phrase with a control character, an interim (1xx) status as the response,
    # a 204 with a body: refused in the worker like a bad header, and the next request on the same
    # connection is answered.
    srv = krait_server(site)
    expected = {
        "/ctype.py": "refused to send Content-Type 'text/plain\\x0bX-A: 1'",
        "/reason.py": "refused to send reason phrase 'O\\x0cK'",
        "/interim.py": "refused to send status 103 as the response",
        "/nobody.py": "refused to send a 204 response with a body",
        "/nobodygen.py": "refused to send a 204 response with a body",
    }
    for path in expected:
        request = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()
        with ask(srv.port, request=request + REQUEST) as s:
            s.shutdown(socket.SHUT_WR)
            reply = read_all(s)
        assert status(reply) == 500, (path, reply[:300])
        assert b"SENT" not in reply and b"X-A" not in reply, path
        assert reply.endswith(b"hello\n"), path  # the pipelined request behind it
    log = srv.log()
    for path, message in expected.items():
        assert "GET %s -> 500: ValueError: %s" % (path, message) in log, path


def test_a_204_or_304_whose_body_is_an_empty_list_or_tuple_is_sent(site, krait_server):
    # Nothing to send, and visibly so without running anything: not the iterable body refused above.
    srv = krait_server(site)
    for path, code in (("/emptylist.py", 204), ("/emptytuple.py", 304)):
        with ask(srv.port, request=b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode() + REQUEST) as s:
            s.shutdown(socket.SHUT_WR)
            reply = read_all(s)
        assert status(reply) == code and b"\r\nX-A: 1\r\n" in reply, (path, reply[:300])
        assert reply.endswith(b"hello\n"), path


def test_one_client_cannot_take_every_slot_with_the_per_address_limit(site, krait_server):
    # Many idle connections from one address, opened at once: past the cap they are refused, the others
    # still get in, and nothing spins.
    srv = krait_server(site, "--max-connections-per-ip", "10")
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def flood() -> None:
        for _ in range(25):
            s = ask(srv.port)
            with lock:
                socks.append(s)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = [status(answer(s)) for s in socks]
        assert codes.count(200) == 10 and codes.count(503) == 90, codes
        with ask(srv.port, source="127.0.0.3") as other:
            assert status(answer(other)) == 200
        assert_quiet(srv.proc.pid)
    finally:
        close_all(socks)


def test_clients_that_do_not_read_their_responses_hold_up_no_one_else(site, krait_server):
    # Two clients pipeline 40 requests for a 200 KB file each and read nothing: their threads block in
    # send() until --send-timeout. With the request gate's two slots held meanwhile, everyone waited.
    srv = krait_server(site, "--send-timeout", "20")
    attackers = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /200k.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 40)
            attackers.append(s)
        time.sleep(1.0)  # both threads are stuck in send() by now
        started = time.monotonic()
        with ask(srv.port, source="127.0.0.2") as other:
            assert status(answer(other)) == 200
        assert time.monotonic() - started < 3.0
    finally:
        close_all(attackers)
