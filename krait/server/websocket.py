# One accepted WebSocket connection: frames between the client socket and the worker's controller.
#
# Design: after the 101, the connection's own thread reads the socket, feeds the sans-IO
# krait.http.websocket core and forwards each message to the worker holding the controller, through the
# pool's WorkerSession; a pump thread receives the controller's messages and writes them as frames.
# Pings, close echoes and protocol-error closes come from the core's data_to_send(). Whatever ends the
# session (close handshake from either side, a protocol error, EOF, a graceful stop's 1001), the worker
# is told, the socket is shut and the worker is given back (or replaced if it died or would not stop).

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Any

from krait import limits, sockopt
from krait.http.websocket import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Ping,
    ProtocolFailure,
    TextMessage,
    WebSocketConnection,
)
from krait.pool.sessions import BINARY, CLOSE, DONE, TEXT, WorkerSession

# WebSocket messages may be large: fewer recv calls per MiB. Plain sockets read into one buffer kept for
# the session: a fresh 256 KiB bytes object per recv is above malloc's mmap threshold, so every message
# would cost an mmap and an munmap (bench/README.md, "WebSockets").
_WS_RECV_SIZE = 262144


class WebSocketSession:
    """Pumps frames between the client socket and the worker holding the controller."""

    def __init__(self, channel: Any, worker: WorkerSession, leftover: bytes) -> None:
        self.channel = channel
        self.sock = channel.sock
        self.worker = worker
        self.ws = WebSocketConnection(max_message_size=channel.settings.max_ws_message)
        self.lock = threading.Lock()  # guards self.ws and socket writes
        self.leftover = leftover
        self.worker_done = threading.Event()
        self.worker_dead = False
        # OpenSSL forbids using one SSL object from two threads at once, so over TLS every read and
        # write takes io_lock, on a non-blocking socket, and waits for readiness with select() outside it.
        self.tls = isinstance(self.sock, ssl.SSLSocket)
        self.io_lock = threading.Lock()
        self._rbuf = memoryview(bytearray(0 if self.tls else _WS_RECV_SIZE))
        self._last = b""  # see forward()

    def write(self, data: bytes) -> None:
        # Two threads use this socket, so its Python-level timeout is set once in run() and never
        # touched again (settimeout is not thread-safe); the send deadline is the kernel's SO_SNDTIMEO.
        if not data:
            return
        if self.tls:
            self._tls_write(data)
            return
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _tls_write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self.channel.settings.send_timeout
        while view:
            with self.io_lock:
                try:
                    view = view[self.sock.send(view):]
                    continue
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
                except OSError:
                    return
            if time.monotonic() > deadline:
                self._force_close()
                return
            select.select([], [self.sock], [], 0.5)

    def tls_read(self) -> bytes:
        """The next bytes from a TLS client (b"" at EOF). run() reads plain sockets itself."""
        while True:
            with self.io_lock:
                try:
                    return self.sock.recv(_WS_RECV_SIZE)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
            select.select([self.sock], [], [], 0.5)

    def forward(self, text: bool, payload: bytes) -> None:
        # A client's message to the controller, text as its UTF-8 bytes.
        if text:
            self.worker.send_text(payload)
        else:
            self.worker.send_binary(payload)
        # Kept until the next message is forwarded: freed at once, a large message leaves so much free
        # memory at the top of this thread's malloc arena that glibc gives it back to the kernel after
        # every message, and the next one page-faults it all in again (bench/README.md, "WebSockets").
        self._last = payload

    def from_worker(self) -> None:
        receive = self.worker.receive
        try:
            while True:
                item = receive()
                tag = item[0]
                with self.lock:
                    if tag == DONE:
                        break
                    if self.ws.state != "OPEN":
                        continue
                    if tag == TEXT:
                        self.write(self.ws.send_text(item[1]))
                    elif tag == BINARY:
                        self.write(self.ws.send_binary(item[1]))
                    elif tag == CLOSE:
                        self.write(self.ws.send_close(item[1], item[2]))
                        timer = threading.Timer(limits.WS_CLOSE_TIMEOUT, self._force_close)
                        timer.daemon = True
                        timer.start()
        except (EOFError, OSError):
            self.worker_dead = True
            self._force_close()
        finally:
            self.worker_done.set()

    def _dispatch(self, events: list) -> bool:
        """Forward what the sans-IO core parsed to the worker; True once the session is over."""
        finished = False
        for event in events:
            kind = type(event)
            if kind is TextMessage:
                self.forward(True, event.data.encode("utf-8"))
            elif kind is BinaryMessage:
                self.forward(False, event.data)
            elif kind is CloseReceived:
                self.worker.close(event.code or 1005, event.reason)
                finished = True
            elif kind is ProtocolFailure:
                self.worker.close(event.code, event.reason)
                finished = True
            elif kind is ConnectionLost:
                self.worker.close(1006)
                finished = True
            elif kind is Ping:
                pass  # the pong is already in data_to_send
        return finished

    def go_away(self) -> None:
        """Graceful shutdown: start the closing handshake with 1001 Going Away (RFC 6455 7.4.1)."""
        with self.lock:
            if self.ws.state == "OPEN":
                self.write(self.ws.send_close(1001, "server shutting down"))
        timer = threading.Timer(limits.WS_CLOSE_TIMEOUT, self._force_close)
        timer.daemon = True
        timer.start()

    def _force_close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self) -> None:
        self.sock.settimeout(0.0 if self.tls else None)
        try:
            sockopt.set_send_timeout(self.sock, self.channel.settings.send_timeout)
            # The HTTP part of the connection may have left a receive deadline: a session has none.
            sockopt.set_recv_timeout(self.sock, None)
        except (OSError, AttributeError):  # TLS sockets delegate; the send then simply blocks
            pass
        pump = threading.Thread(target=self.from_worker, name="krait-ws-pump", daemon=True)
        pump.start()
        data = self.leftover
        first = True
        ws = self.ws
        # Plain sockets are read right here, into the session's buffer; TLS ones with tls_read().
        recv_into = None if self.tls else self.sock.recv_into
        rbuf = self._rbuf
        try:
            while True:
                # A read holding one whole small message (nearly every read) goes straight to the worker,
                # without the session's events (bench/README.md, "WebSockets"). receive_single() changes
                # nothing, and the pump thread only ever moves the state from OPEN to CLOSING, so it
                # needs no lock.
                single = ws.receive_single(data) if data else None
                if single is not None:
                    self.forward(single[0], single[1])
                    finished = False
                else:
                    with self.lock:
                        if data or not first:  # b"" means EOF, except for the empty leftover of the handshake
                            ws.receive_data(data)
                        events = ws.events()
                        out = ws.data_to_send()
                        if out:
                            self.write(out)
                    finished = self._dispatch(events)
                first = False
                if finished or self.worker_dead:
                    break
                try:
                    data = rbuf[:recv_into(rbuf)] if recv_into else self.tls_read()  # type: ignore[assignment]
                except OSError:
                    data = b""
        finally:
            self.worker.close(1006)  # if nothing told the controller yet: the connection is lost
            self._force_close()  # the client is done with us: do not keep its socket while the worker ends
            done = self.worker_done.wait(self.channel.settings.timeout)
            self.worker.release(healthy=done and not self.worker_dead)
