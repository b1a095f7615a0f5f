# Readers: bytes in the ReceiveBuffer -> request events.
#
# Strategy:
# - A request head is parsed only once it is complete (ReceiveBuffer.find_block_end). It is
#   decoded from Latin-1 once; one fullmatch checks the request line, one `findall` over the
#   field lines extracts every (name, value) pair, and the head is valid only if the number of
#   matches equals the number of lines (each match is anchored at a line start and ends at its
#   CR LF, so no line can be skipped or matched twice). Only when that check fails does a slow
#   path walk the lines to say which rule was broken.
# - CRLF only (RFC 9112 s2.2 allows a recipient to accept a bare LF; Krait does not, since a
#   front end that ends lines differently could be smuggled a request past it): a bare LF in
#   the request line, a field line, the empty line ending a head or trailer section, an
#   empty line before a request line, a chunk-size line or the CRLF after chunk data is a
#   400 (RFC 9112 s7.1 writes CRLF there too). The patterns demand the CR, so this costs
#   nothing on the fast path: a bare LF fails a match (the count check above), and the empty
#   line is checked with one index.
# - While a head is incomplete, the running line statistics of the buffer enforce the limits
#   (414, 431) as the bytes arrive, so nothing is buffered beyond them.
# - Body readers (Content-Length, chunked) return Data with whatever body bytes are buffered,
#   then EndOfMessage; None means "need more bytes".
# - Every problem raises krait.errors.ProtocolError(message, status_hint); the Connection
#   makes it final. Status hints: 400 syntax/framing, 413 body too large, 414 request line too
#   long, 417 unknown expectation, 431 header fields too large, 501 unsupported transfer
#   coding, 505 unsupported HTTP version.
#
# Decisions documented here:
# - HTTP/1.2 ... HTTP/1.9 are accepted and treated as HTTP/1.1: RFC 9110 s2.5 "A recipient that
#   receives a message with a major version number that it implements and a minor version
#   number higher than what it implements SHOULD process the message as if it were in the
#   highest minor version within that major version". Other well-formed versions -> 505.
# - Line lengths are counted without their CR LF (or bare LF, for the limits only: such a
#   line is a 400 anyway). The header block size counts the field lines with their
#   terminators, without the request line and the final empty line.
# - Up to MAX_EMPTY_LINES empty lines (CRLF) before a request line are skipped (RFC 9112 s2.2).
# - An Expect other than 100-continue is a 417 on any version; 100-continue on HTTP/1.0 is
#   ignored (RFC 9110 s10.1.1).
# - A request target that is not origin-form (and not asterisk- or authority-form) must be an
#   absolute-form "scheme://host[:port]" followed by nothing, a path or a query: the host is
#   an RFC 3986 s3.2.2 IP-literal or reg-name and must not be empty, a userinfo is refused
#   (abnf.ABSOLUTE_FORM says why). Anything else is a 400 before the request reaches the
#   application. The Host field value is checked against the same host syntax. An absolute-form
#   target's authority then replaces the Host value in `headers` (`raw_headers` keeps what was sent).
# - The request-target's characters are only checked to be visible ASCII: '"', '<', '{', '|' and the
#   like, which RFC 3986 does not allow unencoded, are accepted as most servers do (clients send them),
#   and reach site code percent-decoded like any other path.

from __future__ import annotations

import re

from krait.errors import ProtocolError

from . import abnf
from .buffer import ReceiveBuffer
from .events import Data, EndOfMessage, Request

__all__ = ["MAX_EMPTY_LINES", "ChunkedReader", "ContentLengthReader", "RequestReader"]

#: Empty lines tolerated before a request line (RFC 9112 s2.2: "SHOULD ignore at least one").
MAX_EMPTY_LINES = 8

_REQUEST_LINE = re.compile(abnf.REQUEST_LINE)
_FIELD_LINE = re.compile(abnf.FIELD_LINE, re.MULTILINE)
_FIELD_LINE_1 = re.compile(abnf.FIELD_LINE)
_TOKEN = re.compile(abnf.TOKEN)
_HOST = re.compile(abnf.HOST)
_AUTHORITY_FORM = re.compile(abnf.AUTHORITY_FORM)
_ABSOLUTE_FORM = re.compile(abnf.ABSOLUTE_FORM)
_SCHEME_PREFIX = re.compile(abnf.SCHEME_PREFIX)
_CHUNK_LINE = re.compile(abnf.CHUNK_LINE)
_LOOSE_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]\r?")


def _fail(message: str, status: int = 400) -> ProtocolError:
    return ProtocolError(message, status)


def _diagnose_fields(text: str, start: int, end: int) -> ProtocolError:
    """Slow path: name the first field line of `text[start:end]` that broke RFC 9112 s5."""
    for line in text[start:end].split("\n")[:-1]:
        if _FIELD_LINE_1.fullmatch(line + "\n"):
            continue
        if line[-1:] != "\r":
            return _fail("bare LF ending a field line (RFC 9112 s2.2)")
        if line[:1] in (" ", "\t"):
            return _fail("obs-fold line in the header block (RFC 9112 s5.2)")
        name, colon, _ = line.partition(":")
        if not colon:
            return _fail("header line without a colon (RFC 9112 s5)")
        if name.rstrip(" \t") != name:
            return _fail("whitespace between field name and colon (RFC 9112 s5.1)")
        if not _TOKEN.fullmatch(name):
            return _fail("field name is not a token (RFC 9110 s5.1)")
        return _fail("invalid character in a field value (RFC 9110 s5.5)")
    return _fail("invalid header block")  # pragma: no cover - the fast path found a bad line


def _diagnose_target(target: str) -> ProtocolError:
    """Slow path: say why a target is neither origin-form nor a usable absolute-form."""
    scheme = _SCHEME_PREFIX.match(target)
    if scheme is None:
        return _fail("invalid request target form (RFC 9112 s3.2)")
    if not target.startswith("//", scheme.end()):
        return _fail("absolute-form target without an authority (RFC 9110 s4.2.1)")
    return _fail("invalid host in an absolute-form target (RFC 9112 s3.2.2, RFC 3986 s3.2.2)")


def _diagnose_request_line(line: str) -> ProtocolError:
    """Slow path: say why a request line does not match RFC 9112 s3."""
    if line[-1:] != "\r":
        return _fail("bare LF ending the request line (RFC 9112 s2.2)")
    parts = line.split(" ")
    if "\r" in line.rstrip("\r") or line.endswith("\r\r"):
        return _fail("bare CR in the request line (RFC 9112 s2.2)")
    if len(parts) != 3 or not all(parts):
        return _fail("request line is not 'method SP target SP version' (RFC 9112 s3)")
    method, _target, version = parts
    if not _LOOSE_VERSION.fullmatch(version):
        return _fail("malformed HTTP version (RFC 9112 s2.3)")
    if not _TOKEN.fullmatch(method):
        return _fail("method is not a token (RFC 9112 s3.1)")
    return _fail("invalid character in the request target (RFC 9112 s3.2)")


class RequestReader:
    """Parses request heads and makes body readers, under the limits given by the caller."""

    __slots__ = (
        "_empty_lines",
        "max_body_size",
        "max_chunk_line",
        "max_header_block",
        "max_header_count",
        "max_header_line",
        "max_request_line",
    )

    def __init__(self, max_request_line: int, max_header_line: int, max_header_block: int,
                 max_header_count: int, max_body_size: int, max_chunk_line: int) -> None:
        self.max_request_line = max_request_line
        self.max_header_line = max_header_line
        self.max_header_block = max_header_block
        self.max_header_count = max_header_count
        self.max_body_size = max_body_size
        self.max_chunk_line = max_chunk_line
        self._empty_lines = 0

    # -- limits while a block is incomplete -----------------------------------------------

    def check_partial_block(self, buf: ReceiveBuffer, start_line: bool) -> None:
        """Raise 414/431 if the incomplete block in `buf` already breaks a limit."""
        buf.scan_lines()
        size = len(buf)
        first = buf.first_line_end
        if start_line:
            if first < 0:
                if size > self.max_request_line + 1:  # + 1: the CR may already be here
                    raise _fail("request line too long", 414)
                return
            if first > self.max_request_line + 1:
                raise _fail("request line too long", 414)
            fields = buf.lines - 1
            block = size - first - 1
        else:
            if first > self.max_header_line + 1:
                raise _fail("header line too long", 431)
            fields = buf.lines
            block = size
        if buf.longest_line > self.max_header_line or \
                size - buf.last_line_end - 1 > self.max_header_line + 1:
            raise _fail("header line too long", 431)
        if block > self.max_header_block + 1:  # + 1: the CR of the empty line may be here
            raise _fail("header block too large", 431)
        if fields > self.max_header_count:
            raise _fail("too many header fields", 431)

    def parse_fields(self, text: str, start: int, end: int) -> list[tuple[str, str]]:
        """Check and split the field lines of `text[start:end]` (each ending with LF); the
        empty line that ends the section starts at `end` and must be CRLF."""
        fields = _FIELD_LINE.findall(text, start, end)
        lines = text.count("\n", start, end)
        if lines > self.max_header_count:
            raise _fail("too many header fields", 431)
        size = end - start
        if size > self.max_header_block:
            raise _fail("header block too large", 431)
        if size > self.max_header_line:  # else no line can be too long
            limit = self.max_header_line
            for line in text[start:end].split("\n"):
                if len(line) - line.endswith("\r") > limit:
                    raise _fail("header line too long", 431)
        if len(fields) != lines:
            raise _diagnose_fields(text, start, end)
        if text[end] != "\r":
            raise _fail("bare LF as the empty line ending the fields (RFC 9112 s2.2)")
        return fields

    # -- request head ---------------------------------------------------------------------

    def read_head(self, buf: ReceiveBuffer) -> Request | None:
        """Parse one request head from `buf`; None if it is not complete yet."""
        if not buf:
            return None
        while buf.starts_with_line_end():  # RFC 9112 s2.2: skip empty lines before a request
            if buf.startswith(b"\r\n"):
                self._empty_lines += 1
                if self._empty_lines > MAX_EMPTY_LINES:
                    raise _fail("too many empty lines before the request line")
                buf.take(2)
            elif buf.startswith(b"\n"):
                raise _fail("bare LF before the request line (RFC 9112 s2.2)")
            elif len(buf) == 1:
                return None
            else:
                raise _fail("bare CR before the request line (RFC 9112 s2.2)")
        lf = buf.find_block_end()
        if lf < 0:
            if buf:
                self.check_partial_block(buf, True)
            return None
        self._empty_lines = 0
        text = buf.take_block(lf).decode("latin-1")
        eol = text.index("\n")
        if eol - (text[eol - 1] == "\r") > self.max_request_line:
            raise _fail("request line too long", 414)
        m = _REQUEST_LINE.fullmatch(text, 0, eol)
        if m is None:
            raise _diagnose_request_line(text[:eol])
        method, target, major, minor = m.groups()
        if major != "1":
            raise _fail(f"HTTP version {major}.{minor} not supported", 505)
        http10 = minor == "0"

        # RFC 9112 s3.2: origin-form, absolute-form, authority-form (CONNECT), asterisk-form
        # (OPTIONS). "A server MUST respond with a 400 to any HTTP/1.1 request message that
        # lacks a Host header field and to any request message that contains more than one
        # Host header field line or a Host header field with an invalid field value."
        authority = None
        if target[0] != "/":
            if target == "*":
                if method != "OPTIONS":
                    raise _fail("asterisk-form target is only for OPTIONS (RFC 9112 s3.2.4)")
            elif method == "CONNECT":
                if not _AUTHORITY_FORM.fullmatch(target):
                    raise _fail("CONNECT needs an authority-form target (RFC 9112 s3.2.3)")
            else:
                absolute = _ABSOLUTE_FORM.match(target)
                if absolute is None:
                    raise _diagnose_target(target)
                authority = absolute.group(1)
        elif method == "CONNECT":
            raise _fail("CONNECT needs an authority-form target (RFC 9112 s3.2.3)")

        fields = self.parse_fields(text, eol + 1, lf + 1)
        raw = tuple([(name.lower(), value.rstrip(" \t")) for name, value in fields])
        headers = dict(raw)
        if len(headers) != len(raw):
            headers = {}
            for name, value in raw:
                if name in headers:
                    if name == "host" or name == "content-length":
                        raise _fail(f"more than one {name} field (RFC 9112 s3.2, s6.3)")
                    # RFC 9110 s5.3 joins repeated list fields with commas; Cookie is not one and
                    # joins with "; " (RFC 6265 s5.4, RFC 9113 s8.2.3).
                    headers[name] += ("; " if name == "cookie" else ", ") + value
                else:
                    headers[name] = value
        get = headers.get

        host = get("host")
        if host is None:
            if not http10:
                raise _fail("HTTP/1.1 request without Host (RFC 9112 s3.2)")
        elif not _HOST.fullmatch(host):
            raise _fail("invalid Host value (RFC 9112 s3.2)")
        if authority is not None:
            # RFC 9112 s3.2.2: the origin server "MUST ignore the received Host header field (if any)
            # and instead use the host information of the request-target".
            headers["host"] = authority

        # RFC 9112 s6.1 - s6.3: message body framing
        content_length = None
        chunked = False
        te = get("transfer-encoding")
        cl = get("content-length")
        if te is not None:
            if cl is not None:
                # s6.3 p3: "a server MAY reject a request that contains both Content-Length
                # and Transfer-Encoding" - we always do (request smuggling).
                raise _fail("both Transfer-Encoding and Content-Length (RFC 9112 s6.3)")
            if http10:
                raise _fail("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 s6.1)")
            codings = [c.strip(" \t").lower() for c in te.split(",")]
            codings = [c for c in codings if c]
            if codings.count("chunked") != 1 or codings[-1] != "chunked":
                # s6.3 p4: final coding not chunked -> "MUST respond with 400"
                raise _fail("Transfer-Encoding must end with a single chunked (RFC 9112 s6.3)")
            if len(codings) > 1:
                raise _fail("unsupported transfer coding (RFC 9112 s6.1)", 501)
            chunked = True
        elif cl is not None:
            # s6.3 p5: an invalid Content-Length is "an unrecoverable error" -> 400.
            if not (cl.isdigit() and cl.isascii()):
                raise _fail("invalid Content-Length (RFC 9110 s8.6)")
            if len(cl.lstrip("0")) > 18:
                raise _fail("request body too large", 413)
            content_length = int(cl)
            if content_length > self.max_body_size:
                raise _fail("request body too large", 413)

        expect_continue = False
        expect = get("expect")
        if expect is not None:
            wanted = {e.strip(" \t").lower() for e in expect.split(",")} - {""}
            if wanted - {"100-continue"}:
                raise _fail("unsupported expectation (RFC 9110 s10.1.1)", 417)
            # s10.1.1: no 100 is owed when the framing says there is no content (and an HTTP/1.0
            # client's expectation is ignored).
            expect_continue = bool(wanted) and not http10 and (chunked or bool(content_length))

        # RFC 9112 s9.3: persistence
        connection = get("connection")
        if connection is None:
            keep_alive = not http10
        else:
            tokens = {t.strip(" \t").lower() for t in connection.split(",")}
            keep_alive = "close" not in tokens and (not http10 or "keep-alive" in tokens)

        return Request(method, target, "1.0" if http10 else "1.1", headers, raw, keep_alive,
                       expect_continue, content_length, chunked)

    def body_reader(self, request: Request) -> ContentLengthReader | ChunkedReader:
        """The reader for the body of `request`."""
        if request.chunked:
            return ChunkedReader(self)
        return ContentLengthReader(request.content_length or 0)


class ContentLengthReader:
    """A body of exactly `remaining` bytes (RFC 9112 s6.2)."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: ReceiveBuffer) -> Data | EndOfMessage | None:
        """The next body event from `buf`, or None if more bytes are needed."""
        if not self.remaining:
            return EndOfMessage()
        if not buf:
            return None
        data = buf.take(self.remaining)
        self.remaining -= len(data)
        return Data(data)


_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)


class ChunkedReader:
    """A chunked body with optional trailer fields (RFC 9112 s7.1)."""

    __slots__ = ("_limits", "_remaining", "_state", "_total")

    def __init__(self, limits: RequestReader) -> None:
        self._limits = limits
        self._state = _SIZE
        self._remaining = 0
        self._total = 0

    def read(self, buf: ReceiveBuffer) -> Data | EndOfMessage | None:
        """The next body event from `buf`, or None if more bytes are needed. The data of every chunk that
        `buf` holds comes as one Data: a body of tiny chunks costs one event per read, not per chunk."""
        limits = self._limits
        parts: list[bytes] = []
        while True:
            state = self._state
            if state == _DATA:
                if not buf:
                    break
                data = buf.take(self._remaining)
                parts.append(data)
                self._remaining -= len(data)
                if self._remaining:
                    break
                self._state = _DATA_END
            elif state == _SIZE:
                max_line = limits.max_chunk_line
                lf = buf.find(b"\n", max_line + 2)
                if lf < 0:
                    if len(buf) >= max_line + 2:
                        raise _fail("chunk-size line too long")
                    break
                line = buf.take(lf + 1).decode("latin-1")
                if len(line) - 1 - line.endswith("\r\n") > max_line:
                    raise _fail("chunk-size line too long")
                m = _CHUNK_LINE.fullmatch(line)
                if m is None:
                    if line[-2:] != "\r\n":
                        raise _fail("bare LF ending a chunk-size line (RFC 9112 s7.1)")
                    raise _fail("invalid chunk-size line (RFC 9112 s7.1)")
                size = int(m.group(1), 16)
                if not size:
                    self._state = _TRAILERS
                    if parts:
                        break
                    continue
                # The framing counts too (the size line, any extensions, the CRLF after the data), so that
                # a body of tiny chunks or long extensions cannot keep one request going past the limit.
                self._total += size + len(line) + 2
                if self._total > limits.max_body_size:
                    raise _fail("request body too large (with its chunk framing)", 413)
                self._remaining = size
                self._state = _DATA
            elif state == _DATA_END:
                # s7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
                if buf.startswith(b"\r\n"):
                    buf.take(2)
                    self._state = _SIZE
                elif len(buf) == 1 and buf.startswith(b"\r") or not buf:
                    break
                else:
                    raise _fail("chunk data not followed by CRLF (RFC 9112 s7.1)")
            else:
                return self._read_trailers(buf)
        if not parts:
            return None
        return Data(parts[0] if len(parts) == 1 else b"".join(parts))

    def _read_trailers(self, buf: ReceiveBuffer) -> EndOfMessage | None:
        # s7.1.2: trailer-section = *( field-line CRLF ), then the final CRLF.
        if buf.startswith(b"\r\n"):
            buf.take(2)
            return EndOfMessage()
        if buf.startswith(b"\n"):
            raise _fail("bare LF ending the chunked body (RFC 9112 s7.1)")
        if not buf or len(buf) == 1 and buf.startswith(b"\r"):
            return None
        lf = buf.find_block_end()
        if lf < 0:
            self._limits.check_partial_block(buf, False)
            return None
        text = buf.take_block(lf).decode("latin-1")
        trailers: dict[str, str] = {}
        for name, value in self._limits.parse_fields(text, 0, lf + 1):
            name = name.lower()
            value = value.rstrip(" \t")
            trailers[name] = trailers[name] + ", " + value if name in trailers else value
        return EndOfMessage(trailers)
