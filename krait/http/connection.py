# Connection: the sans-IO facade of the server side of one HTTP/1.1 connection.
#
# Rules:
# - No I/O, no clocks, no settings: the caller passes bytes in (receive_data), pulls events out
#   (next_event), and writes out whatever bytes send()/send_full() return. Limits come in
#   through the constructor (defaults from krait.limits).
# - Transitions follow the tables and diagram in state.py.
# - A ProtocolError is final: it is stored, the buffer is dropped, and every later
#   next_event() raises the same error; no byte received after it is ever parsed (request
#   smuggling defence, RFC 9112 section 11.2). One error response may still be sent; it always
#   carries Connection: close.
# - Pipelining (RFC 9112 s9.3.2): bytes after a request stay buffered and are parsed only
#   after our response to that request is complete; until then next_event() returns PAUSED.
#   The caller should stop reading from the socket while it gets PAUSED (backpressure).
# - Expect: 100-continue (RFC 9110 s10.1.1): waiting_for_100_continue is True from the
#   Request until we send a 100 or a final response, or body bytes arrive. A final response
#   sent while still waiting makes the connection non-persistent: we cannot know whether the
#   client will send the body or not.
# - Once our final response is complete and the connection is not persistent, next_event()
#   returns ConnectionClosed(): nothing more will be read; the caller closes.

from __future__ import annotations

from krait import limits
from krait.errors import LocalProtocolError, ProtocolError

from . import state
from .buffer import ReceiveBuffer
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
)
from .readers import ChunkedReader, ContentLengthReader, RequestReader
from .state import BODY, CLOSED, DONE, IDLE, SWITCHED
from .writers import CONTENT_LENGTH, BodyWriter, build_head

__all__ = ["Connection"]

_SEND = state.SEND


class Connection:
    """The server side of one HTTP/1.1 connection, without any I/O."""

    __slots__ = (
        "_body",
        "_buf",
        "_eof",
        "_error",
        "_keep_alive",
        "_our",
        "_reader",
        "_request",
        "_their",
        "_waiting_100",
        "_writer",
        "their_http_version",
    )

    def __init__(self, max_request_line: int = limits.MAX_REQUEST_LINE,
                 max_header_line: int = limits.MAX_HEADER_LINE,
                 max_header_block: int = limits.MAX_HEADER_BLOCK,
                 max_header_count: int = limits.MAX_HEADER_COUNT,
                 max_body_size: int = limits.MAX_BODY_SIZE,
                 max_chunk_line: int = limits.MAX_CHUNK_LINE) -> None:
        self._reader = RequestReader(max_request_line, max_header_line, max_header_block,
                                     max_header_count, max_body_size, max_chunk_line)
        self._buf = ReceiveBuffer()
        self._eof = False
        self._their = IDLE
        self._our = IDLE
        self._body: ContentLengthReader | ChunkedReader | None = None
        self._request: Request | None = None
        self._error: ProtocolError | None = None
        self._keep_alive = True
        self._waiting_100 = False
        self._writer: BodyWriter | None = None
        #: "1.0" or "1.1" once a request head was parsed, else None.
        self.their_http_version: str | None = None

    # -- state -------------------------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        """False once either side asked to close, after an error, or for HTTP/1.0 without
        keep-alive."""
        return self._keep_alive

    @property
    def waiting_for_100_continue(self) -> bool:
        """True while the client waits for 100 Continue before sending its body."""
        return self._waiting_100

    @property
    def their_state(self) -> str:
        """The receive side's state name (see state.py); for logs and tests."""
        return "ERROR" if self._error is not None else self._their

    @property
    def head_begun(self) -> bool:
        """True while the next request's head has begun to arrive (pipelined behind the last one): its
        bytes wait in the buffer. Empty lines before a request line (RFC 9112 s2.2) are no head yet,
        nor is an unread body that is being skipped."""
        return self._their is not BODY and self._buf.holds_more_than_line_ends()

    @property
    def our_state(self) -> str:
        """The send side's state name: "IDLE" means a response may be started."""
        return self._our

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer; b"" means the peer closed its side (EOF).

        Raises:
            LocalProtocolError: bytes after EOF or after switch_protocol().
        """
        if not data:
            self._eof = True
        elif self._error is None:
            if self._eof or self._their is SWITCHED:
                raise LocalProtocolError("data received after EOF or protocol switch")
            self._buf.append(data)

    def next_event(self):
        """The next event: Request, Data, EndOfMessage, ConnectionClosed, NEED_DATA or PAUSED.

        Raises:
            ProtocolError: the peer broke the protocol (status_hint says how to answer). It
                is final: raised again by every later call. Any other exception is a bug.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._step()
        except ProtocolError as exc:
            self._error = exc
            self._keep_alive = False
            self._waiting_100 = False
            self._buf.clear()
            raise

    def _step(self):
        while True:
            their = self._their
            if their is BODY:
                if self._our is DONE and not self._keep_alive:
                    return ConnectionClosed()
                buf = self._buf
                if self._waiting_100 and buf:
                    self._waiting_100 = False
                assert self._body is not None  # set with the BODY state
                event = self._body.read(buf)
                if event is None:
                    if self._eof:
                        raise ProtocolError("connection closed in the middle of a request body")
                    return NEED_DATA
                if type(event) is not Data:
                    self._their = DONE
                if self._our is DONE:
                    continue  # our response is complete: skip the rest of the body
                return event
            if their is DONE:
                if self._our is not DONE:
                    return PAUSED
                if not self._keep_alive:
                    return ConnectionClosed()
                # RFC 9112 s9.3: persistent connection, next request
                self._their = self._our = IDLE
                self._request = self._body = self._writer = None
                continue
            if their is IDLE:
                if self._our is not IDLE:  # answered (408, 503) without a request
                    return ConnectionClosed()
                request = self._reader.read_head(self._buf)
                if request is None:
                    if not self._eof:
                        return NEED_DATA
                    if self._buf:
                        raise ProtocolError("connection closed in the middle of a request head")
                    self._their = CLOSED
                    return ConnectionClosed()
                self._request = request
                self.their_http_version = request.http_version
                self._keep_alive = request.keep_alive
                self._waiting_100 = request.expect_continue
                self._body = self._reader.body_reader(request)
                self._their = BODY
                return request
            if their is CLOSED:
                return ConnectionClosed()
            return PAUSED  # SWITCHED

    # -- sending -----------------------------------------------------------------------

    def send(self, event) -> bytes:
        """Serialize an InformationalResponse, Response, Data or EndOfMessage.

        Raises:
            LocalProtocolError: the event is not legal now or holds invalid header text.
        """
        kind = type(event)
        if kind is Data:
            self._check(state.DATA)
            assert self._writer is not None  # set with the response head
            return self._writer.data(event.data)
        if kind is EndOfMessage:
            self._check(state.END)
            assert self._writer is not None
            out = self._writer.end()
            self._our = DONE
            return out
        if kind is Response:
            return self._respond(event.status, event.headers, event.reason, None)
        if kind is InformationalResponse:
            if type(event.status) is not int or not 100 <= event.status <= 199:
                raise LocalProtocolError(f"not an informational status: {event.status!r}")
            return self._respond(event.status, event.headers, None, b"")
        raise LocalProtocolError(f"cannot send {kind.__name__}")

    def send_full(self, status: int, headers=(), body: bytes = b"", reason: str | None = None
                  ) -> bytes:
        """A whole response (head and body) in one bytes object; completes our response.

        Content-Length is added when `headers` lack it; for HEAD the body is dropped but the
        length kept. Also usable after a ProtocolError, or before any request was read (e.g.
        408, 503): then the peer is taken as HTTP/1.1 and Connection: close is added.

        Raises:
            LocalProtocolError: a response was already started, or invalid header text.
        """
        return self._respond(status, headers, reason, body)

    def _check(self, kind: int) -> str:
        new = _SEND.get((self._our, kind))
        if new is None:
            raise LocalProtocolError(f"cannot send that while our state is {self._our}")
        return new

    def _respond(self, status, headers, reason, body) -> bytes:
        if type(status) is not int:
            raise LocalProtocolError(f"invalid status code {status!r}")
        request = self._request
        if status < 200:
            if status == 101:
                kind = state.SWITCH
            else:
                kind = state.INFORMATIONAL
                if request is None or request.http_version == "1.0":
                    # RFC 9110 s15.2: "A server MUST NOT send a 1xx response to an HTTP/1.0
                    # client."
                    raise LocalProtocolError("no 1xx response to an HTTP/1.0 or absent request")
            if request is None or self._error is not None:
                raise LocalProtocolError("a 1xx response needs a valid request")
        else:
            kind = state.FULL if body is not None else state.HEAD
        new = self._check(kind)
        keep_alive = self._keep_alive and request is not None and self._error is None
        if status >= 200 and self._waiting_100:
            keep_alive = False
        head, mode, length, keep_alive = build_head(
            status, headers, reason, None if body is None else len(body),
            http10=request is not None and request.http_version == "1.0",
            head_request=request is not None and request.method == "HEAD",
            keep_alive=keep_alive)
        if status < 200:
            if status == 100:
                self._waiting_100 = False
        else:
            self._keep_alive = keep_alive
            self._waiting_100 = False
        self._our = new
        if body is None:
            self._writer = BodyWriter(mode, length)
            return head
        if body and mode == CONTENT_LENGTH:  # not NO_BODY / DISCARD (HEAD)
            return head + body
        return head

    # -- protocol switch ---------------------------------------------------------------

    def switch_protocol(self) -> bytes:
        """Hand the connection over after a 101: the bytes buffered after the request.

        Raises:
            LocalProtocolError: no 101 was sent, or the request body was not read.
        """
        if self._our is not SWITCHED or self._error is not None:
            raise LocalProtocolError("switch_protocol() needs a 101 response first")
        if self._their is BODY:
            body = self._body
            if type(body) is not ContentLengthReader or body.remaining:
                raise LocalProtocolError("the request body was not read before switching")
        self._their = SWITCHED
        return self._buf.take_all()
