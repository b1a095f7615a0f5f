# A WebSocket session (RFC 6455 sections 5.4-5.8 and 7), sans-IO: bytes in, events and bytes out.
#
# Rules:
#   1. Every state change goes through _TRANSITIONS below; nothing else assigns self.state.
#      OPEN --send_close--> CLOSING --peer close--> CLOSED; OPEN --peer close--> CLOSED (echoed);
#      a protocol failure or transport EOF -> CLOSED from OPEN or CLOSING.
#   2. receive_data() parses eagerly and queues events; events() and data_to_send() drain.
#      Bytes the protocol itself must send (pongs, the echo of a Close, the Close that reports a
#      failure) go to data_to_send(); bytes the application asks for are returned by send_*().
#   3. A violation never raises out of receive_data(): frames.WebSocketError and bad UTF-8 become a
#      ProtocolFailure event plus our Close frame with the code (1002, 1007 or 1009, section 7.4.1),
#      and parsing stops ("_Fail the WebSocket Connection_", section 7.1.7). Any other exception
#      is a bug.
#   4. Once CLOSED nothing more is parsed: bytes after a Close frame are dropped (section 5.5.1,
#      "the endpoint ... MUST NOT send any more data frames" - so nothing valid can follow).
#   5. Fragments are joined per message (section 5.4). Text is decoded as it arrives with an
#      incremental UTF-8 decoder so invalid text fails on the fragment that makes it invalid
#      (section 8.1); the message size cap is enforced from each frame header, before its
#      payload is buffered, by lowering the parser's max_payload to what is left of the cap.

import codecs
import os
from dataclasses import dataclass

from krait import limits
from krait.errors import LocalProtocolError, WebSocketError
from krait.http.frames import (
    FIN_BIT,
    MASK_BIT,
    MASK_KEY_SIZE,
    MAX_CLOSE_REASON,
    MAX_LENGTH_7,
    CloseCode,
    FrameParser,
    Opcode,
    apply_mask,
    close_payload,
    parse_close,
    serialize,
)

OPEN = "OPEN"
CLOSING = "CLOSING"
CLOSED = "CLOSED"

# (state, trigger) -> next state; a missing pair is not allowed in that state.
_TRANSITIONS = {
    (OPEN, "send_close"): CLOSING,
    (OPEN, "receive_close"): CLOSED,
    (CLOSING, "receive_close"): CLOSED,
    (OPEN, "fail"): CLOSED,
    (CLOSING, "fail"): CLOSED,
    (OPEN, "eof"): CLOSED,
    (CLOSING, "eof"): CLOSED,
}
# Section 5.5.1: "After sending a Close frame, the application MUST NOT send any more data
# frames"; control frames (ping, pong) stay allowed until the session is closed.
_MAY_SEND_DATA = frozenset((OPEN,))
_MAY_SEND_CONTROL = frozenset((OPEN, CLOSING))

_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# byte 0 of a frame holding a whole text / binary message (receive_single())
_WHOLE_TEXT = FIN_BIT | Opcode.TEXT
_WHOLE_BINARY = FIN_BIT | Opcode.BINARY
# _SHORT_TEXT_HEADS / _SHORT_BINARY_HEADS: the 2-byte headers serialize() writes for a server's
# unfragmented text / binary message of 0-125 bytes, by length. send_text()/send_binary() use them for
# short messages; with the pipe's copy-once payloads (krait/pool/pipe.py) this made 32-byte echo +3.3%
# messages/s (median of 20 paired rounds; either change alone was within the noise, as the three
# stages share one core's caches: bench/README.md).
_SHORT_TEXT_HEADS = tuple(serialize(Opcode.TEXT, b"\0" * n)[:2] for n in range(MAX_LENGTH_7 + 1))
_SHORT_BINARY_HEADS = tuple(serialize(Opcode.BINARY, b"\0" * n)[:2] for n in range(MAX_LENGTH_7 + 1))


def message_frame(text: bool, payload: bytes) -> bytes:
    """A server's frame for one whole message, the same bytes for every client (servers never mask):
    what a message sent to many connections is built as once. Check that each one is OPEN."""
    if len(payload) <= MAX_LENGTH_7:
        return (_SHORT_TEXT_HEADS if text else _SHORT_BINARY_HEADS)[len(payload)] + payload
    return serialize(Opcode.TEXT if text else Opcode.BINARY, payload)


# --- events ----------------------------------------------------------------------------------
# Not frozen, like the HTTP events (krait/http/events.py): one is built per message, and a frozen
# slots dataclass costs about 200 ns more per field to construct. Treat them as read-only.


@dataclass(slots=True)
class TextMessage:
    """A complete text message (all fragments joined, UTF-8 checked)."""

    data: str


@dataclass(slots=True)
class BinaryMessage:
    """A complete binary message (all fragments joined)."""

    data: bytes


@dataclass(slots=True)
class Ping:
    """The peer pinged; the Pong is already queued in data_to_send()."""

    payload: bytes


@dataclass(slots=True)
class Pong:
    """The peer sent a Pong."""

    payload: bytes


@dataclass(slots=True)
class CloseReceived:
    """The peer's Close frame (code None when its body was empty). The echo, if one was due, is
    already queued in data_to_send() and the session is CLOSED."""

    code: int | None
    reason: str


@dataclass(slots=True)
class ProtocolFailure:
    """We detected a violation: our Close frame with ``code`` is queued (unless we had already
    sent one) and the session is CLOSED."""

    code: int
    reason: str


@dataclass(slots=True)
class ConnectionLost:
    """The transport reached EOF before the closing handshake completed."""


Event = TextMessage | BinaryMessage | Ping | Pong | CloseReceived | ProtocolFailure | ConnectionLost


class WebSocketConnection:
    """One WebSocket session after the handshake.

    Args:
        max_message_size: largest message (after joining fragments); above it -> close 1009.
        max_fragments: most frames one message may come in; above it -> close 1009.
        max_control_frames: most control frames one receive_data() may bring; above it -> close 1008.
        client: False (server) sends unmasked frames and requires masked ones; True (client, used
            by tests as the peer) masks with random keys and requires unmasked frames.

    Attributes:
        state: "OPEN", "CLOSING" (we sent a Close, waiting for the peer's) or "CLOSED".
        close_code, close_reason: what ended the session: the peer's close code (1005 when its
            Close had no body), our failure code, or 1006 on EOF; None / "" while open.
    """

    def __init__(self, max_message_size: int = limits.MAX_WS_MESSAGE, client: bool = False,
                 max_fragments: int = limits.MAX_WS_FRAGMENTS,
                 max_control_frames: int = limits.MAX_WS_CONTROL_FRAMES) -> None:
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.max_control_frames = max_control_frames
        self.client = client
        self.state = OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self._parser = FrameParser(max_message_size, require_mask=not client)
        self._events: list[Event] = []
        self._out: list[bytes] = []
        # the fragmented message being received: its opcode (None when none), parts, size so far
        self._msg_opcode: Opcode | None = None
        # The payload of a fragmented message so far: one buffer, so a flood of empty or tiny fragments
        # costs no more memory than its bytes (a list of parts cost an object each).
        self._msg_buf = bytearray()
        self._msg_frames = 0  # frames of that message so far
        self._decoder: codecs.IncrementalDecoder | None = None

    # --- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the transport (copied at once: a reused buffer is fine); ``b""`` means
        EOF. Never raises for bad input."""
        if self.state == CLOSED:
            return
        if not data:
            self._transition("eof")
            self._set_closed(CloseCode.ABNORMAL, "connection lost")
            self._events.append(ConnectionLost())
            return
        parser = self._parser
        parser.feed(data)
        controls = 0  # control frames of this read (max_control_frames)
        try:
            while self.state != CLOSED:
                parser.max_payload = self.max_message_size - len(self._msg_buf)
                parts = parser.next_parts()
                if parts is None:
                    break
                fin, opcode, payload = parts
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    self._on_message_start(fin, opcode, payload)
                elif opcode is Opcode.CONTINUATION:
                    self._on_continuation(fin, payload)
                elif (controls := controls + 1) > self.max_control_frames:
                    raise WebSocketError("more than %d control frames in one read" % self.max_control_frames,
                                         CloseCode.POLICY_VIOLATION)
                elif opcode is Opcode.PING:
                    self._events.append(Ping(payload))
                    # Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
                    # frame in response, unless it already received a Close frame."
                    self._out.append(serialize(Opcode.PONG, payload, mask_key=self._mask_key()))
                elif opcode is Opcode.PONG:
                    self._events.append(Pong(payload))
                else:
                    self._on_close(payload)
        except WebSocketError as exc:
            self._fail(exc.close_code, str(exc))
        except UnicodeDecodeError:
            self._fail(CloseCode.INVALID_DATA, "text message is not valid UTF-8")

    def receive_single(self, data: bytes | bytearray | memoryview) -> tuple[bool, bytes] | None:
        """The short way for what nearly every read of small messages holds: exactly one whole
        client frame carrying a whole text or binary message (FIN set, no RSV bits, masked, 7-bit
        length within the message size cap), with nothing buffered or half-received before it.
        Returns (is_text, payload), the payload unmasked and, for text, checked as UTF-8 but not
        decoded; no event is queued and nothing changes. Returns None for anything else, and then
        nothing was consumed: feed the same bytes to receive_data(), which also reports every
        violation. A server only (clients may not mask, section 5.1)."""
        size = len(data) - 2 - MASK_KEY_SIZE  # the payload length such a frame must announce
        if (size < 0 or size > MAX_LENGTH_7 or size > self.max_message_size or self.client
                or self.state == CLOSED or self._msg_opcode is not None or self._parser.buffered()):
            return None
        b0 = data[0]
        if (b0 != _WHOLE_TEXT and b0 != _WHOLE_BINARY) or data[1] != MASK_BIT | size:
            return None
        payload = apply_mask(data[6:], bytes(data[2:6]))
        if b0 == _WHOLE_BINARY:
            return False, payload
        try:
            payload.decode("utf-8")  # section 8.1: only checked here; the caller forwards the bytes
        except UnicodeDecodeError:
            return None  # receive_data() fails the connection with 1007
        return True, payload

    def buffered_input(self) -> int:
        """Bytes received and held for a frame or message that is not complete yet."""
        return self._parser.buffered() + len(self._msg_buf)

    def abort(self, code: int, reason: str) -> None:
        """Fail the session for a reason of the application's (a resource limit), as a protocol error
        does: our Close frame with `code` is queued, a ProtocolFailure event follows, nothing more is
        parsed. Nothing happens once the session is closed."""
        if self.state != CLOSED:
            self._fail(code, reason)

    def _on_message_start(self, fin: bool, opcode: Opcode, payload: bytes) -> None:
        # Section 5.4: the fragments of one message are not interleaved with another message's.
        if self._msg_opcode is not None:
            raise WebSocketError("new data frame while a fragmented message is open", 1002)
        if fin:  # the common case: the whole message in one frame
            if opcode is Opcode.TEXT:
                self._events.append(TextMessage(payload.decode("utf-8")))
            else:
                self._events.append(BinaryMessage(payload))
            return
        self._msg_opcode = opcode
        self._msg_buf = bytearray(payload)
        self._msg_frames = 1
        if opcode is Opcode.TEXT:
            self._decoder = _utf8_decoder()
            self._check_utf8(payload, False)

    def _on_continuation(self, fin: bool, payload: bytes) -> None:
        opcode = self._msg_opcode
        if opcode is None:
            raise WebSocketError("continuation frame without a message to continue", 1002)
        self._msg_frames += 1
        if self._msg_frames > self.max_fragments:
            raise WebSocketError("message in more than %d frames" % self.max_fragments, CloseCode.MESSAGE_TOO_BIG)
        self._msg_buf += payload
        if opcode is Opcode.TEXT:
            self._check_utf8(payload, fin)
        if fin:
            whole = self._msg_buf
            self._events.append(TextMessage(whole.decode("utf-8")) if opcode is Opcode.TEXT
                                else BinaryMessage(bytes(whole)))
            self._msg_opcode = self._decoder = None
            self._msg_buf = bytearray()

    def _check_utf8(self, payload: bytes, final: bool) -> None:
        # Section 8.1 wants invalid text failed as soon as it is seen. CPython's incremental
        # decoder already fails at the first impossible byte, except that it keeps b"\xed" +
        # 0xA0..0xBF (the start of a UTF-16 surrogate, never valid) pending: check that here.
        decoder = self._decoder
        assert decoder is not None  # set while a text message is being received
        decoder.decode(payload, final)  # raises UnicodeDecodeError; the text is decoded whole at the end
        if not final:
            pending = decoder.getstate()[0]
            if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise WebSocketError("text message is not valid UTF-8 (surrogate)", 1007)

    def _on_close(self, payload: bytes) -> None:
        code, reason = parse_close(payload)
        if self.state == OPEN:
            # Section 5.5.1: "If an endpoint receives a Close frame and did not previously send a
            # Close frame, the endpoint MUST send a Close frame in response ... typically echoing
            # the status code it received."
            self._out.append(serialize(Opcode.CLOSE, close_payload(code), mask_key=self._mask_key()))
        self._transition("receive_close")
        # Section 7.1.5: a Close without a body gives the connection close code 1005.
        self._set_closed(CloseCode.NO_STATUS if code is None else code, reason)
        self._events.append(CloseReceived(code, reason))

    def _fail(self, code: int, reason: str) -> None:
        if self.state == OPEN:
            body = close_payload(code, reason.encode("utf-8")[:MAX_CLOSE_REASON].decode("utf-8", "ignore"))
            self._out.append(serialize(Opcode.CLOSE, body, mask_key=self._mask_key()))
        self._transition("fail")
        self._set_closed(code, reason)
        self._events.append(ProtocolFailure(code, reason))

    def _set_closed(self, code: int, reason: str) -> None:
        self.close_code = int(code)
        self.close_reason = reason
        self._parser.clear()
        self._msg_buf = bytearray()
        self._decoder = None

    def _transition(self, trigger: str) -> None:
        self.state = _TRANSITIONS[(self.state, trigger)]

    # --- draining --------------------------------------------------------------------------

    def events(self) -> list[Event]:
        """Return and forget the events parsed so far, oldest first."""
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes the protocol itself wants sent (pongs, close frames)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out = []
        return out

    # --- sending ---------------------------------------------------------------------------

    def send_text(self, s: str | bytes) -> bytes:
        """Encode a text message as one frame: a str, or bytes already encoded as UTF-8 (not checked
        again: the caller encoded them itself). Raises LocalProtocolError unless OPEN."""
        data = s if isinstance(s, bytes) else s.encode("utf-8")
        if len(data) <= MAX_LENGTH_7 and self.state == OPEN and not self.client:  # see _SHORT_TEXT_HEADS
            return _SHORT_TEXT_HEADS[len(data)] + data
        self._check(_MAY_SEND_DATA)
        return serialize(Opcode.TEXT, data, mask_key=self._mask_key())

    def send_binary(self, b: bytes) -> bytes:
        """Encode a binary message as one frame. Raises LocalProtocolError unless OPEN."""
        data = bytes(b)
        if len(data) <= MAX_LENGTH_7 and self.state == OPEN and not self.client:  # see _SHORT_BINARY_HEADS
            return _SHORT_BINARY_HEADS[len(data)] + data
        self._check(_MAY_SEND_DATA)
        return serialize(Opcode.BINARY, data, mask_key=self._mask_key())

    def send_ping(self, b: bytes = b"") -> bytes:
        """Encode a Ping (at most 125 bytes). Raises LocalProtocolError when CLOSED or too long."""
        self._check(_MAY_SEND_CONTROL)
        return serialize(Opcode.PING, bytes(b), mask_key=self._mask_key())

    def send_close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bytes:
        """Start the closing handshake (section 7.1.2); the state becomes CLOSING.

        Raises:
            LocalProtocolError: not OPEN, a code that may not be sent, or a reason over 123 bytes.
        """
        if (self.state, "send_close") not in _TRANSITIONS:
            raise LocalProtocolError(f"cannot start a closing handshake in state {self.state}")
        data = serialize(Opcode.CLOSE, close_payload(code, reason), mask_key=self._mask_key())
        self._transition("send_close")
        self.close_code = int(code)
        self.close_reason = reason
        return data

    def _check(self, allowed: frozenset) -> None:
        if self.state not in allowed:
            raise LocalProtocolError(f"cannot send in state {self.state}")

    def _mask_key(self) -> bytes | None:
        # Section 5.3: clients mask every frame with "a fresh masking key ... unpredictable".
        return os.urandom(4) if self.client else None
