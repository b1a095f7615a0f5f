"""krait/server/listener.py in process: the connection counts (--max-connections, --max-connections-per-ip)
when a connection cannot be given its thread."""

import math
import socket
import ssl
import threading
import time

import pytest

from krait.server.listener import Server
from krait.settings import Settings


def test_a_connection_no_thread_can_be_started_for_is_refused_and_its_place_given_back(tmp_path, monkeypatch):
    server = Server(Settings(site_root=str(tmp_path), port=0, max_connections_per_ip=5))
    ours, theirs = socket.socketpair()
    try:
        def no_thread(self):
            raise RuntimeError("can't start new thread")  # what a thread or memory limit gives

        monkeypatch.setattr(threading.Thread, "start", no_thread)
        server.process_request(theirs, ("127.0.0.1", 40000))
        monkeypatch.undo()
        assert server.open_count == 0 and server.per_address == {}
        ours.settimeout(5)
        assert ours.recv(4096).startswith(b"HTTP/1.1 503 ")
    finally:
        ours.close()
        server.bodies.close()
        server.server_close()


def test_where_the_kernel_refuses_sched_batch_the_request_gate_stands_in(tmp_path, monkeypatch):
    # A sandbox may refuse SCHED_BATCH (krait/portable.py): connection threads then keep the normal
    # policy, and the FairGate keeps the tail latency low instead.
    import os

    from krait import portable
    from krait.server.gate import FairGate

    def refused(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refused, raising=False)
    portable.batch_threads.cache_clear()
    try:
        server = Server(Settings(site_root=str(tmp_path), port=0))
        try:
            assert isinstance(server.gate, FairGate)
        finally:
            server.bodies.close()
            server.server_close()
    finally:
        monkeypatch.undo()
        portable.batch_threads.cache_clear()


# --- the TLS handshake's one deadline ------------------------------------------------------------
#
# The server runs in this process, with limits.TLS_HANDSHAKE_TIMEOUT shortened. Its context has no
# certificate: the handshake never gets far enough to need one (the client never finishes its hello).

HANDSHAKE = 1.5  # seconds, the shortened TLS_HANDSHAKE_TIMEOUT


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    from krait import limits

    monkeypatch.setattr(limits, "TLS_HANDSHAKE_TIMEOUT", HANDSHAKE)
    server = Server(Settings(site_root=str(tmp_path), port=0))
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.activate(None, None, None)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _client_hello() -> bytes:
    """A real ClientHello, as a TLS client would send it first."""
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


def _talk(port: int, first: bytes, rest: bytes, wait: float) -> tuple[bytes, float, float]:
    """Connect, wait `wait` seconds, send `first`, then trickle `rest` a byte every 0.1 s. Returns what the
    server sent, the seconds from connect until it ended its side (EOF or reset), and until a send failed
    (the server no longer reads: it closed the connection), or inf."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=4 * HANDSHAKE)
    opened = time.monotonic()
    refused = [math.inf]

    def trickle() -> None:
        time.sleep(wait)
        try:
            sock.sendall(first)
            for i in range(len(rest)):
                time.sleep(0.1)
                sock.sendall(rest[i:i + 1])
        except OSError:  # reset by the server, or closed by the test
            refused[0] = time.monotonic() - opened

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    received = b""
    try:
        while True:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        ended = time.monotonic() - opened
        sender.join(4 * HANDSHAKE)
        return received, ended, refused[0]
    finally:
        sock.close()
        sender.join(5)


def test_the_tls_handshake_has_one_deadline_however_late_the_first_byte(tls_server):
    # The first byte comes late, the rest of the hello a byte at a time: the handshake still ends
    # TLS_HANDSHAKE_TIMEOUT after accept (it took that long again once the first byte was in).
    hello = _client_hello()
    received, ended, _ = _talk(tls_server.port, hello[:1], hello[1:], wait=0.8 * HANDSHAKE)
    assert received == b"" and 0.9 * HANDSHAKE <= ended < HANDSHAKE + 0.5, ended


def test_plain_http_on_the_tls_port_is_drained_within_the_same_deadline(tls_server):
    # A request line sent late gets its 400 at once; the rest of the head is read only until the deadline.
    received, _, refused = _talk(tls_server.port, b"GET / HTTP/1.1\r\n", b"Host: x\r\n" * 40,
                                 wait=0.8 * HANDSHAKE)
    assert received.startswith(b"HTTP/1.1 400 ")
    assert 0.9 * HANDSHAKE <= refused < HANDSHAKE + 0.5, refused
