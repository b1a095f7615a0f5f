# Writers: response events -> bytes.
#
# Strategy:
# - A response head is built as one list of str parts and joined once: a precomputed status
#   line ("HTTP/1.1 200 OK\r\n"), the caller's fields, then the fields we own (Content-Length,
#   Transfer-Encoding: chunked, Connection), then the empty line; encoded to Latin-1 in one go.
# - Validation is cheap: field names are checked against the token grammar once and memoised
#   (responses reuse a handful of names); values are checked in bulk on the joined head: it
#   must contain exactly one CR and one LF per line and no NUL, so any CR, LF or NUL smuggled
#   into a value or reason phrase is caught by three C-level scans. Anything invalid raises
#   krait.errors.LocalProtocolError and nothing is emitted.
# - Framing (RFC 9112 s6.3): a caller-given Content-Length wins; else chunked for an HTTP/1.1
#   peer; else (HTTP/1.0) the body is delimited by closing the connection. No body, and no
#   framing fields added, for 1xx, 204, 304 and responses to HEAD (RFC 9110 s6.4.1).
# - RFC 9110 s8.6: "A server MUST NOT send a Content-Length header field in any response with a
#   status code of 1xx (Informational) or 204 (No Content)."

from __future__ import annotations

import re
from http import HTTPStatus

from krait.errors import LocalProtocolError

from . import abnf

__all__ = [
    "CHUNKED",
    "CONTENT_LENGTH",
    "DISCARD",
    "NO_BODY",
    "UNTIL_CLOSE",
    "BodyWriter",
    "build_head",
]

_TOKEN = re.compile(abnf.TOKEN)
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
_NAMES: dict[str, str] = {}  # memo: validated field name -> its lower-case form
_MAX_MEMO = 512

# Fields whose meaning we own (framing and persistence).
_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION = "content-length", "transfer-encoding", "connection"
_OWNED = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION))
_PLAIN_CONNECTION_TOKENS = frozenset(("close", "keep-alive", ""))

#: Body framing modes returned by build_head: no body allowed (1xx, 204, 304); body bytes
#: dropped (HEAD); Content-Length; chunked; delimited by closing the connection (HTTP/1.0).
NO_BODY, DISCARD, CONTENT_LENGTH, CHUNKED, UNTIL_CLOSE = range(5)


def _lower_name(name: str) -> str:
    low = _NAMES.get(name)
    if low is None:
        if type(name) is not str or not _TOKEN.fullmatch(name):
            raise LocalProtocolError(f"invalid header name {name!r}")
        low = name.lower()
        if len(_NAMES) < _MAX_MEMO:
            _NAMES[name] = low
    return low


def build_head(status: int, headers, reason: str | None, body_length: int | None, *,
               http10: bool, head_request: bool, keep_alive: bool) -> tuple[bytes, int, int, bool]:
    """Serialize a response head.

    Args:
        status: the status code (100-999).
        headers: (name, value) str pairs, sent in order.
        reason: the reason phrase, or None for the standard one.
        body_length: the whole body's length for send_full, None for a streamed body.
        http10: the peer spoke HTTP/1.0 (no chunked framing, explicit keep-alive).
        head_request: the request was HEAD (no body, lengths kept).
        keep_alive: whether the connection may stay open after this response.

    Returns:
        (head bytes, framing mode, Content-Length or -1, keep_alive after this response).

    Raises:
        LocalProtocolError: invalid status, name, value or framing fields.
    """
    if type(status) is not int or not 100 <= status <= 999:
        raise LocalProtocolError(f"invalid status code {status!r}")
    if reason is None:
        line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n"
    else:
        line = f"HTTP/1.1 {status} {reason}\r\n"
    parts = [line]
    append = parts.append
    length = transfer = None
    names = _NAMES
    for name, value in headers:
        low = names.get(name) or _lower_name(name)  # a name seen before costs no call
        if low in _OWNED:
            if low == _CONTENT_LENGTH:
                if length is not None or not (type(value) is str and value.isdigit()
                                              and value.isascii()):
                    raise LocalProtocolError(f"invalid Content-Length {value!r}")
                length = int(value)
            elif low == _TRANSFER_ENCODING:
                if transfer is not None or type(value) is not str \
                        or value.strip(" \t").lower() != "chunked":
                    raise LocalProtocolError(f"unsupported Transfer-Encoding {value!r}")
                transfer = value
            else:
                tokens = {t.strip(" \t").lower() for t in str(value).split(",")}
                if "close" in tokens:
                    keep_alive = False
                if tokens <= _PLAIN_CONNECTION_TOKENS and status != 101:
                    continue  # replaced by the Connection field we add below
        append(f"{name}: {value}\r\n")

    if status < 200 or status == 204 or status == 304:
        if status != 304 and (length is not None or transfer is not None):
            raise LocalProtocolError(f"a {status} response has no body framing (RFC 9110 s8.6)")
        if body_length:
            raise LocalProtocolError(f"a {status} response has no body")
        mode = NO_BODY
    elif body_length is not None:  # send_full: the whole body is known
        if transfer is not None:
            raise LocalProtocolError("Transfer-Encoding with a complete body")
        if length is None:
            length = body_length
            append(f"Content-Length: {body_length}\r\n")
        elif length != body_length and not head_request:
            raise LocalProtocolError("Content-Length does not match the body")
        mode = DISCARD if head_request else CONTENT_LENGTH
    elif head_request:
        mode = DISCARD
    elif length is not None:
        mode = CONTENT_LENGTH
    elif transfer is not None:
        if http10:
            raise LocalProtocolError("chunked framing for an HTTP/1.0 peer")
        mode = CHUNKED
    elif http10:
        mode = UNTIL_CLOSE
        keep_alive = False
    else:
        mode = CHUNKED
        append("Transfer-Encoding: chunked\r\n")

    if status != 101:
        if not keep_alive:
            append("Connection: close\r\n")
        elif http10:
            append("Connection: keep-alive\r\n")
    append("\r\n")
    text = "".join(parts)
    lines = len(parts)
    if text.count("\n") != lines or text.count("\r") != lines or "\x00" in text:
        raise LocalProtocolError("CR, LF or NUL in a header value or reason phrase")
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("header text is not Latin-1") from None
    return head, mode, -1 if length is None else length, keep_alive


class BodyWriter:
    """Frames the Data of a streamed response body (RFC 9112 s6, s7.1)."""

    __slots__ = ("length", "mode", "remaining")

    def __init__(self, mode: int, length: int) -> None:
        self.mode = mode
        self.length = self.remaining = length

    def data(self, data: bytes) -> bytes:
        """The bytes to send for one Data event."""
        mode = self.mode
        if mode == CHUNKED:
            if not data:
                return b""  # an empty chunk would end the body
            return b"%x\r\n%b\r\n" % (len(data), data)
        if mode == CONTENT_LENGTH:
            self.remaining -= len(data)
            if self.remaining < 0:
                raise LocalProtocolError("more body bytes than Content-Length")
            return bytes(data)
        if mode == DISCARD:  # response to HEAD: the body is dropped
            return b""
        if mode == NO_BODY:
            if data:
                raise LocalProtocolError("this response has no body (1xx, 204, 304)")
            return b""
        return bytes(data)

    def end(self) -> bytes:
        """The bytes that end the body."""
        if self.mode == CHUNKED:
            return b"0\r\n\r\n"
        # With no Data at all the caller sent the body itself (socket.sendfile of a static file
        # between Response and EndOfMessage): we cannot count it, so we trust it.
        if self.mode == CONTENT_LENGTH and self.remaining and self.remaining != self.length:
            raise LocalProtocolError("fewer body bytes than Content-Length")
        return b""
