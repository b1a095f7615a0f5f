# One accepted WebSocket connection: frames between the client socket and the worker's controller.
#
# Strategy: after the 101, the connection's own thread reads the socket, feeds the sans-IO
# krait.http.websocket core and forwards each message to the worker holding the controller as a small
# tuple (krait/jobs.py); a pump thread reads the worker's messages and writes them as frames. Pings,
# close echoes and protocol-error closes come from the core's data_to_send(). Whatever ends the session
# (close handshake from either side, a protocol error, EOF, a graceful stop's 1001), the worker is told,
# the socket is shut and the worker is given back (or replaced if it died or would not stop).

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Any

from krait import jobs, limits, sockopt
from krait.http.websocket import (BinaryMessage, CloseReceived, ConnectionLost, Ping, ProtocolFailure,
                                  TextMessage, WebSocketConnection)

# WebSocket messages may be large: fewer recv calls per MiB. Plain sockets read into one buffer kept for
# the session, because a fresh 256 KiB bytes object per recv is above malloc's mmap threshold: every
# message, however small, cost an mmap, an mremap and an munmap (seen with strace -c); without them the
# server's CPU per 32-byte echo fell from 91-95 us to 75-78 us (bench/cpu_per_request.py --ws small).
_WS_RECV_SIZE = 262144


class WebSocketSession:
    """Pumps frames between the client socket and the worker holding the controller."""

    def __init__(self, channel: Any, worker: Any, leftover: bytes) -> None:
        self.channel = channel
        self.sock = channel.sock
        self.worker = worker
        self.ws = WebSocketConnection(max_message_size=channel.settings.max_ws_message)
        self.lock = threading.Lock()  # guards self.ws and socket writes
        self.leftover = leftover
        self.worker_done = threading.Event()
        self.worker_dead = False
        self.told_worker = False
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

    def tell_worker(self, item: tuple) -> None:
        if item[0] == jobs.WS_CLOSE:
            if self.told_worker:
                return
            self.told_worker = True
        try:
            self.worker.conn.send(item)
        except (OSError, ValueError):
            pass

    def forward(self, kind: str, payload: bytes) -> None:
        # A client's message to the controller: a raw record (krait/pipe.py), text as its UTF-8 bytes.
        try:
            self.worker.conn.send_message(kind, payload)
        except (OSError, ValueError):
            pass
        # Kept until the next message is forwarded. Freed at once, a large message leaves so much free
        # memory at the top of this thread's malloc arena that glibc gives it back to the kernel
        # (madvise) after every message, and the next message page-faults it all in again: 1 MiB echo
        # was 20% slower (strace -c: one madvise per message; bench/ws_paired.py --big).
        self._last = payload

    def from_worker(self) -> None:
        conn = self.worker.conn
        try:
            while True:
                item = conn.recv(None)
                tag = item[0]
                with self.lock:
                    if tag == jobs.WS_DONE:
                        break
                    if self.ws.state != "OPEN":
                        continue
                    if tag == jobs.WS_TEXT:
                        self.write(self.ws.send_text(item[1]))
                    elif tag == jobs.WS_BINARY:
                        self.write(self.ws.send_binary(item[1]))
                    elif tag == jobs.WS_CLOSE:
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
                self.forward(jobs.WS_TEXT, event.data.encode("utf-8"))
            elif kind is BinaryMessage:
                self.forward(jobs.WS_BINARY, event.data)
            elif kind is CloseReceived:
                self.tell_worker((jobs.WS_CLOSE, event.code or 1005, event.reason))
                finished = True
            elif kind is ProtocolFailure:
                self.tell_worker((jobs.WS_CLOSE, event.code, event.reason))
                finished = True
            elif kind is ConnectionLost:
                self.tell_worker((jobs.WS_CLOSE, 1006, ""))
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
        recv_into, rbuf = (None, None) if self.tls else (self.sock.recv_into, self._rbuf)
        try:
            while True:
                # A read holding one whole small message (nearly every read) goes straight to the worker,
                # without the session's events: +6.9% messages/s on 32-byte echo (paired A/B, median of
                # 20 rounds of bench/ws_paired.py). receive_single() changes nothing, and the pump thread
                # only ever moves the state from OPEN to CLOSING, so it needs no lock.
                single = ws.receive_single(data) if data else None
                if single is not None:
                    self.forward(jobs.WS_TEXT if single[0] else jobs.WS_BINARY, single[1])
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
                    data = rbuf[:recv_into(rbuf)] if recv_into else self.tls_read()
                except OSError:
                    data = b""
        finally:
            self.tell_worker((jobs.WS_CLOSE, 1006, ""))
            self._force_close()  # the client is done with us: do not keep its socket while the worker ends
            done = self.worker_done.wait(self.channel.settings.timeout)
            if done and not self.worker_dead:
                self.channel.app.ws_pool.release(self.worker)
            else:
                self.channel.app.ws_pool.release(self.worker, healthy=False)
