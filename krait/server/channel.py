# One client connection: recv -> krait.http.Connection -> route -> reply or job -> send.
#
# Design: this module and krait/server/websocket.py are the only ones that call recv/send on a client
# socket. A Channel runs in the connection's own thread, feeds bytes to the sans-IO core and writes back
# what the core returns. For each request it builds one Incoming record, takes the server's current App
# (a reload replaces it), routes the request once (App.route), and gets either a Reply or a Pending job
# (App.dispatch); the job runs on the worker pool and its outcome gives the Reply or the next Pending (the
# site's error page). A job refused as Reloaded never ran: the request is routed again with the new App.
# Timeouts live here, not in the core:
#   - between requests, the idle keep-alive timeout (silent close);
#   - once a request's first byte arrived, one total deadline for the whole header block (408);
#   - while a body arrives, --min-body-rate as a quota per window (krait/server/pace.py; 408), also for a
#     body the core skips after an early answer;
#   - while a response goes out, --send-timeout for a send, and once the response does not fit the
#     socket's buffer at once, --min-send-rate as a quota per window (the connection is dropped).
# A body a script or template gets is collected in a Body (krait/server/bodies.py: in memory when small,
# in a spooled file when large), which is closed once the request is answered. A body a worker streams
# (Reply.stream) is sent piece by piece as the worker produces it, outside the gate; if the client or the
# worker fails mid-way, the connection ends (the response is incomplete) and the stream is given up.
# Where connection threads cannot be SCHED_BATCH (krait/portable.py: not on Linux, or on portable paths),
# the FairGate (krait/server/gate.py) bounds how many of them work on requests at once; a request leaves
# it while it waits for a worker (also for an error page) and before any byte of its response is sent (a
# client that does not read must not hold a slot), and never takes one for a WebSocket.
# A ProtocolError from the core gets a minimal error response with Connection: close and the connection
# ends: nothing after a rejected request is parsed. A WebSocket upgrade waits for its route script
# outside the gate; once accepted, the socket belongs to the WebSocket hub (krait/server/hub.py) and
# this thread ends.

from __future__ import annotations

import logging
import os
import select
import socket
import time
from typing import Any, BinaryIO

from krait import __version__, limits, sockopt
from krait.errors import HttpError, LocalProtocolError, ProtocolError, Reloaded
from krait.http import NEED_DATA, Connection, Data, EndOfMessage, InformationalResponse, Request, Response, handshake
from krait.pool import jobs
from krait.server import forwarded
from krait.server.bodies import Body
from krait.server.dispatch import App, error_page
from krait.server.pace import Pace
from krait.server.records import Incoming, Pending, Reply
from krait.server.routing import SCRIPT, STATIC, Target
from krait.timefmt import http_date
from krait.urls import origin_path, split_target

log = logging.getLogger("krait")

SERVER_HEADER = ("Server", "Krait/" + __version__)
_RECV_SIZE = 65536
_CLOSE = ("Connection", "close")


class _Timeout(Exception):
    pass


class Channel:
    def __init__(self, server: Any, sock: socket.socket, addr: Any, address: str | None = None) -> None:
        self.server = server
        self.settings = server.settings
        self.sock = sock
        self.addr = addr if isinstance(addr, tuple) else ("", 0)
        # What the connection limits count it under (the listener's, when it counted it already).
        self.address = forwarded.counted_under(str(self.addr[0])) if address is None else address
        self.peer, self.via_proxy = forwarded.peer_and_trust(self.addr, server.trusted_proxies)
        self.closing = False  # set by the server on graceful shutdown
        self.busy = False  # a request has begun and is not answered yet (a graceful stop waits for these)
        # Waiting for the client to begin or finish a request head (or a TLS handshake), or for it to close
        # after its last response: a full server may close it to make room (krait/server/listener.py), and
        # then sets `evicted`.
        self.waiting = True
        self.evicted = False
        self.handed_off = False  # the socket now belongs to the WebSocket hub
        self.in_gate = False  # holds a slot of the server's FairGate
        self.kernel_timeouts = not server.tls  # see the I/O helpers below
        self._rcv_timeout: float | None = None  # the SO_RCVTIMEO last set
        self._snd_timeout = self.settings.send_timeout  # the SO_SNDTIMEO last set
        self.pace: Pace | None = None  # the response's: from the head of a file or stream, or a partial send
        if self.kernel_timeouts:
            sock.settimeout(None)
            sockopt.set_send_timeout(sock, self._snd_timeout)

    # --- I/O helpers --------------------------------------------------------------------
    #
    # A Python socket with a timeout polls before every recv and send, and settimeout() is a system call
    # of its own: three calls where one would do. So a plain TCP connection stays in blocking mode and
    # its deadlines are the kernel's SO_RCVTIMEO / SO_SNDTIMEO, set only when they change (a timed-out
    # call fails with EAGAIN). TLS sockets keep Python's timeouts: OpenSSL needs them.

    def recv(self, timeout: float | None) -> bytes:
        if timeout is not None and timeout <= 0:
            raise _Timeout()
        if self.kernel_timeouts:
            if timeout != self._rcv_timeout:
                sockopt.set_recv_timeout(self.sock, timeout)
                self._rcv_timeout = timeout
            try:
                return self.sock.recv(_RECV_SIZE)
            except (BlockingIOError, TimeoutError):  # TimeoutError: Windows (krait/sockopt.py)
                raise _Timeout() from None
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise _Timeout() from None

    def sendall(self, data: bytes | memoryview) -> None:
        """Send all of `data`. A send that the client's window takes whole (the usual case) is one system
        call; the rest of a partial one goes at the response's pace (--min-send-rate)."""
        if self.pace is None:
            if self._snd_timeout != self.settings.send_timeout or not self.kernel_timeouts:
                self._set_send_timeout(self.settings.send_timeout)
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, TimeoutError):  # TimeoutError: a kernel timeout on Windows
                raise TimeoutError("the client did not read the response in time") from None
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
            self.pace = Pace(self.settings.min_send_rate, self.settings.send_timeout)
        view = memoryview(data)
        while view:
            sent = self._paced(lambda size, view=view: self.sock.send(view[:size]))
            view = view[sent:]

    def _paced(self, send: Any) -> int:
        """One `send(size)` within the pace's window: at most the bytes that meet the window's quota, so a
        send never runs on into the next window unseen; returns (and counts) what it sent."""
        pace = self.pace
        assert pace is not None
        while True:
            left = pace.left()
            if left <= 0:
                raise TimeoutError("the client took the response more slowly than --min-send-rate")
            if not left - 1.0 <= self._snd_timeout <= left:  # one system call less per send, most of the time
                self._set_send_timeout(left)
            try:
                sent = send(pace.wanted())
            except (BlockingIOError, TimeoutError):  # up to 1 s before the window ends: look again
                continue
            pace.count(sent)
            return sent

    def _set_send_timeout(self, seconds: float) -> None:
        if self.kernel_timeouts:
            if seconds != self._snd_timeout:
                sockopt.set_send_timeout(self.sock, seconds)
        else:
            self.sock.settimeout(seconds)
        self._snd_timeout = seconds

    def body_pace(self) -> Pace:
        """The pace a request body must keep: --min-body-rate per window, after a grace period."""
        window = limits.BODY_RATE_WINDOW
        return Pace(self.settings.min_body_rate, window, window + self.settings.body_rate_grace)

    # --- the request loop -----------------------------------------------------------------

    def run(self) -> None:
        if self.serve() and not self.handed_off:
            self.close_in_stages()

    def serve(self) -> bool:
        """Serve the connection's requests; True when it ends right after a response of Krait's choosing
        to close (the client may still be sending), False when the client ended it or went quiet."""
        conn = Connection(**self.settings.http_limits())
        fresh = True  # waiting for the first byte of a new request
        header_deadline = 0.0
        discard: Pace | None = None  # while the core skips a body we answered without reading
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                self.send_error(conn, exc.status_hint, str(exc))
                return True
            if event is NEED_DATA:
                if conn.their_state == "BODY":  # still skipping an unread body: the minimum rate applies
                    if discard is None:
                        discard = self.body_pace()
                    try:
                        data = self.recv(discard.left())
                    except (_Timeout, OSError):
                        return False
                    discard.count(len(data))
                    conn.receive_data(data)
                    continue
                discard = None
                if self.closing and fresh:
                    return False
                if fresh and conn.head_begun:  # it came in with the last request (pipelining): its
                    header_deadline = time.monotonic() + self.settings.header_timeout  # header time runs now
                    fresh = False
                    self.busy = True
                try:
                    if fresh:
                        data = self.recv(self.settings.keepalive_timeout)
                        header_deadline = time.monotonic() + self.settings.header_timeout
                        fresh = False
                        self.busy = True  # a request has begun: a graceful stop waits for it
                    else:
                        data = self.recv(header_deadline - time.monotonic())
                except _Timeout:
                    if not fresh:
                        self.send_error(conn, 408, "the request header was not received in time")
                    return not fresh
                except OSError:
                    return False
                if not data and self.evicted:  # closed to make room (over TLS, both ways: no answer)
                    if not conn.head_begun or self.server.tls is not None:
                        return False
                    self.send_error(conn, 503, "the server is full", (("Retry-After", str(limits.RETRY_AFTER)),))
                    return True
                conn.receive_data(data)
                continue
            if type(event) is Request:
                self.busy = True
                self.waiting = False
                try:
                    if not self.handle(conn, event):
                        return True
                finally:
                    self.busy = False
                self.waiting = fresh = True
                if self.closing:
                    return True
                continue
            return False  # ConnectionClosed, or PAUSED after a response that switched protocols

    def close_in_stages(self) -> None:
        """Shut the sending side, then read and drop what the client still sends until it closes or
        LINGER_TIMEOUT passes (RFC 9112 section 9.6), so its last response is not lost to a reset. The raw
        socket's calls serve a TLS one too: the bytes read are dropped unread."""
        sock = self.sock
        deadline = time.monotonic() + limits.LINGER_TIMEOUT
        self.waiting = True  # answered: a full server may close it at once to make room
        try:
            socket.socket.shutdown(sock, socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                if not socket.socket.recv(sock, _RECV_SIZE):
                    break
        except OSError:  # a reset, or the deadline (TimeoutError)
            pass

    def read_body(self, conn: Connection, body: Body) -> bool:
        """Read the whole request body into `body` at the body pace; False when the client failed."""
        if conn.waiting_for_100_continue:
            self.sendall(conn.send(InformationalResponse(100, ())))
        pace = self.body_pace()
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                self.send_error(conn, exc.status_hint, str(exc))
                return False
            if type(event) is Data:
                body.write(event.data)
                continue
            if type(event) is EndOfMessage:
                return True
            if event is NEED_DATA:
                try:
                    data = self.recv(pace.left())
                except _Timeout:
                    self.send_error(conn, 408, "the request body arrived too slowly")
                    return False
                pace.count(len(data))
                conn.receive_data(data)
                continue
            return False  # ConnectionClosed mid-body: the core raises first, so this is defensive

    def incoming(self, head: Request) -> Incoming:
        """The request record of a parsed head: target split once, client seen through trusted proxies."""
        if self.via_proxy:
            remote, scheme = forwarded.proxied_view(self.peer, self.server.scheme, head.headers)
        else:
            remote, scheme = self.peer, self.server.scheme
        url, query = split_target(head.target)
        return Incoming(head.method, head.target, url, origin_path(url), query, head.http_version, head.headers,
                        b"", remote, scheme)

    def handle(self, conn: Connection, head: Request) -> bool:
        """Answer one request; returns whether the connection may carry another."""
        started = time.monotonic()
        app: App = self.server.app
        if not (head.chunked or head.content_length):
            kept = app.plain_reply(head.method, head.target, head.headers)  # asked for just so before
            if kept is not None:  # a 200 held in memory: of the request, only the access log needs more
                self.enter_gate()
                try:
                    self.respond(conn, self.incoming(head) if self.server.logs_access() else None, kept, started)
                finally:
                    self.leave_gate()
                return conn.keep_alive
        req = self.incoming(head)
        if handshake.is_upgrade_request(head.headers):
            return self.handle_upgrade(conn, req, started)  # never in the gate: it may wait for a worker
        body: Body | None = None
        if head.chunked or (head.content_length or 0) > 0:
            # Routed before the body is read, outside the gate: a slow upload holds no slot, a 404 never
            # waits for an upload, and static files and errors are answered without reading the body
            # (the core skips it); only site code receives it.
            routed = app.route(req)
            if type(routed) is Target and routed.kind != STATIC:
                body = self.server.bodies.body(head.content_length)
                try:
                    if not self.read_body(conn, body):
                        body.close()  # its spool file and its share of the memory budget
                        return False
                    data, path = body.finish()  # may fail too (a full disk)
                except BaseException:
                    body.close()
                    raise
                req = req._replace(body=data, body_file=path)
            self.enter_gate()
        else:
            self.enter_gate()
            routed = None
        try:
            if routed is None:
                routed = app.route(req)  # inside the try: an error here must still leave the gate
            answer = app.dispatch(req, routed)
            while type(answer) is Pending:
                self.leave_gate()  # waiting for a worker must not block static files
                outcome = self.run_job(answer)
                if outcome is None:  # routed by workers that a reload replaced: route it again
                    app = self.server.app
                    answer = app.dispatch(req, app.route(req))
                else:
                    answer = answer.finish(outcome)
            self.respond(conn, req, answer, started)  # type: ignore[arg-type]
        finally:
            self.leave_gate()
            if body is not None:
                body.close()
        return conn.keep_alive

    def run_job(self, pending: Pending) -> jobs.Result | HttpError | None:
        """The job's Result, the pool's HttpError (503, 504 or 500), or None when it was Reloaded."""
        try:
            return self.server.pool.run(pending.job, self.settings.timeout, pending.generation)
        except Reloaded:
            return None
        except HttpError as exc:
            return exc

    def enter_gate(self) -> None:
        gate = self.server.gate
        if gate is not None:  # None: the threads are SCHED_BATCH (krait/portable.py)
            gate.enter()
            self.in_gate = True

    def leave_gate(self) -> None:
        if self.in_gate:
            self.in_gate = False
            self.server.gate.leave()

    def respond(self, conn: Connection, req: Incoming | None, reply: Reply, started: float) -> None:
        # Logged before sending, so the log is never behind the client; a 501 (a method Krait does not
        # know) is the client's doing, as a 4xx is: only the access log has it.
        if reply.error and reply.status >= 500 and reply.status != 501:
            log.error("%s %s -> %d: %s", req.method if req else "-", req.target if req else "-", reply.status,
                      reply.error)
        headers = [("Date", http_date()), SERVER_HEADER, *reply.headers]
        if self.closing and reply.status != 101:  # a graceful stop: tell the client not to send more here
            headers.append(_CLOSE)
        self.pace = None
        self.leave_gate()  # a client that does not read blocks only its own thread, never the gate's slots
        try:
            if reply.file_range is None and reply.stream is None:
                data = conn.send_full(reply.status, headers, reply.body, reply.reason)
                self.sendall(data)
            else:
                self.pace = Pace(self.settings.min_send_rate, self.settings.send_timeout)
                try:
                    self.sendall(conn.send(Response(reply.status, headers, reply.reason)))
                    if reply.stream is not None:
                        self.send_stream(conn, reply.stream)
                    elif req is not None and req.method != "HEAD":
                        self.send_file(*reply.file_range)  # type: ignore[misc]
                    self.sendall(conn.send(EndOfMessage()))
                finally:
                    if reply.stream is not None:
                        reply.stream.close()  # given up before its end (the client failed): the worker stops
                    else:
                        reply.file_range[0].close()  # type: ignore[index]
        except LocalProtocolError as exc:
            log.error("refused to send the response to %s %s: %s", req.method if req else "-",
                      req.target if req else "-", exc)
            reply = Reply(500, [("Content-Type", "text/html; charset=utf-8")],
                          error_page(500, str(exc), None, self.settings.debug), None, None, str(exc))
            self.sendall(conn.send_full(500, [("Date", http_date()), SERVER_HEADER, _CLOSE, *reply.headers],
                                        reply.body))
        finally:
            self.pace = None  # the next thing sent (a 100 Continue, an error) starts its own deadline
        self.server.log_access(req.remote_addr if req and req.remote_addr else self.addr, req, reply, started)

    def send_stream(self, conn: Connection, stream: Any) -> None:
        """Send a worker's streamed body as it comes; a failure of the worker ends the connection. The time
        the worker takes for a piece is --timeout's, and does not count against the client's pace."""
        pace, pieces = self.pace, iter(stream)
        assert pace is not None  # respond() starts the response's pace before its head
        try:
            while True:
                asked = time.monotonic()
                piece = next(pieces, None)
                if piece is None:
                    return
                pace.hold(time.monotonic() - asked)
                self.sendall(conn.send(Data(piece)))
        except HttpError as exc:  # the worker failed or stalled mid-way: the response cannot be completed
            log.error("response cut: %s", exc)
            raise ConnectionAbortedError(str(exc)) from None

    def send_file(self, f: BinaryIO, offset: int, length: int) -> None:
        """Send a range of an open file: with sendfile(2) at the response's pace, or in pieces over TLS."""
        end = offset + length
        if self.kernel_timeouts and hasattr(os, "sendfile"):
            # Non-blocking, waiting for room with poll() until the pace's deadline: a blocking sendfile(2)
            # is not bounded by SO_SNDTIMEO (the kernel starts its wait again whenever a few bytes get in),
            # so a client that never read held its thread three send timeouts, not one.
            out, source, pace = self.sock.fileno(), f.fileno(), self.pace
            assert pace is not None  # respond() starts the response's pace before its head
            room = select.poll()
            room.register(out, select.POLLOUT)

            def send(size: int, at: int) -> int:
                try:
                    return os.sendfile(out, source, at, min(size, end - at))
                except BlockingIOError:  # the socket's buffer is full: wait for room, at most until the deadline
                    if not room.poll(max(pace.left(), 0.0) * 1000):
                        raise  # _paced() finds the deadline passed
                    return os.sendfile(out, source, at, min(size, end - at))

            self.sock.setblocking(False)
            try:
                while offset < end:
                    sent = self._paced(lambda size, at=offset: send(size, at))
                    if not sent:
                        break
                    offset += sent
            finally:
                self.sock.setblocking(True)  # blocking again, under its kernel timeouts
        else:
            f.seek(offset)
            while offset < end:
                block = f.read(min(limits.STREAM_CHUNK, end - offset))
                if not block:
                    break
                self.sendall(block)
                offset += len(block)
        if offset != end:  # the file shrank under us (written in place): the framing is broken, so the
            log.error("file %s shrank while being sent; connection closed", f.name)  # connection must end
            raise ConnectionAbortedError("file changed while being sent")

    def send_error(self, conn: Connection, status: int, detail: str, extra: tuple = ()) -> None:
        headers = [("Date", http_date()), SERVER_HEADER, _CLOSE, ("Content-Type", "text/html; charset=utf-8"),
                   *extra]
        body = error_page(status, detail, None, self.settings.debug)
        try:
            data = conn.send_full(status, headers, body)
        except LocalProtocolError:  # the request was answered already (early, before its body ended)
            log.info("%s: connection closed: %s", self.addr[0], detail)
            return
        try:
            self.sendall(data)
        except OSError:
            pass
        log.info("%s: %d %s", self.addr[0], status, detail)
        self.server.log_access(self.addr, None, Reply(status, headers, body), time.monotonic())

    # --- WebSockets -----------------------------------------------------------------------

    def handle_upgrade(self, conn: Connection, req: Incoming, started: float) -> bool:
        """Run the upgrade's route script in a WebSocket worker; on 101, hand the socket to the hub.
        Returns False: the connection never carries another HTTP request."""
        app: App = self.server.app
        hub = self.server.hub
        try:
            hs = handshake.validate_request(req.method, req.http_version, req.headers)
        except ProtocolError as exc:
            reply = app.error_reply(exc.status_hint, str(exc), list(exc.headers) + [_CLOSE], req)
            self.respond(conn, req, reply, started)
            return False
        if req.headers.get("transfer-encoding") or req.headers.get("content-length", "0") != "0":
            # An upgrade carries no body (RFC 6455 section 4.1: a GET); after the 101 it would be read
            # as frames.
            self.respond(conn, req, app.error_reply(400, "a WebSocket upgrade has no body", [_CLOSE], req),
                         started)
            return False
        routed = app.route(req, websocket=True)
        if type(routed) is Reply:
            self.respond(conn, req, routed._replace(headers=routed.headers + [_CLOSE]), started)
            return False
        target: Target = routed  # type: ignore[assignment]
        if target.kind != SCRIPT:
            reply = app.error_reply(400, "WebSocket route targets must be .py scripts", [_CLOSE], req)
            self.respond(conn, req, reply, started)
            return False
        try:
            result, session = hub.open(app.job(req, target, jobs.WEBSOCKET), self.settings.timeout)
        except HttpError as exc:
            reply = app.error_reply(exc.status, str(exc), list(exc.headers) + [_CLOSE], req)
            self.respond(conn, req, reply, started)
            return False
        if result.status != 101:
            if 200 <= result.status < 300:  # neither accepted nor refused: answered 400 (docs/websockets.md)
                result = result._replace(status=400, reason="Bad Request", body=b"", headers=())
            reply = app.result_reply(result, target.rel_path, req)
            self.respond(conn, req, reply._replace(headers=reply.headers + [_CLOSE]), started)
            return False
        try:
            headers = handshake.response_headers(hs, result.ws_protocol)
        except LocalProtocolError as exc:
            hub.release(session)
            self.respond(conn, req, app.error_reply(500, str(exc), [_CLOSE], req), started)
            return False
        try:
            self.respond(conn, req, Reply(101, list(headers)), started)
            leftover = conn.switch_protocol()
        except BaseException:
            hub.release(session)
            raise
        hub.attach(session, self.sock, leftover, self.server.websocket_closed_callback(self.address))
        self.handed_off = True
        return False
