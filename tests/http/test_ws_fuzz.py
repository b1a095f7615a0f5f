"""Property tests: garbage into the WebSocket core yields only documented results.

A server-mode WebSocketConnection fed anything, in any chunking, never raises and only produces
the documented events, with ProtocolFailure codes in {1002, 1007, 1009}. The FrameParser on its
own raises nothing but WebSocketError.
"""

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from krait.errors import WebSocketError
from krait.http.frames import FrameParser, apply_mask
from krait.http.websocket import (
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    Ping,
    Pong,
    ProtocolFailure,
    TextMessage,
    WebSocketConnection,
)

EVENT_TYPES = (TextMessage, BinaryMessage, Ping, Pong, CloseReceived, ProtocolFailure, ConnectionLost)
FAILURE_CODES = {1002, 1007, 1009}

# database=None: leave no .hypothesis/ files behind in the checkout
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def check_session(chunks: list[bytes], eof: bool, max_size: int = 1000) -> None:
    ws = WebSocketConnection(max_message_size=max_size)
    events = []
    for chunk in chunks:
        ws.receive_data(chunk)
        events += ws.events()
        ws.data_to_send()
    if eof:
        ws.receive_data(b"")
        events += ws.events()
    ended = False
    for event in events:
        assert isinstance(event, EVENT_TYPES)
        assert not ended, "no event may follow the end of the session"
        if isinstance(event, ProtocolFailure):
            assert event.code in FAILURE_CODES
        if isinstance(event, (ProtocolFailure, CloseReceived, ConnectionLost)):
            ended = True
            assert ws.state == "CLOSED"
    assert ws.state in ("OPEN", "CLOSED")
    assert ended == (ws.state == "CLOSED")


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=6), st.booleans())
def test_random_bytes_into_server(data, cuts, eof):
    check_session(chunked(data, cuts), eof)


# Structured garbage: plausible frames with random flags, so the deeper rules are reached too.
frame_st = st.builds(
    lambda op, fin, rsv, masked, payload, key: _frame(op, fin, rsv, masked, payload, key),
    st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11]),
    st.booleans(),
    st.sampled_from([0, 0, 0, 0x40]),
    st.sampled_from([True, True, True, False]),
    st.one_of(
        st.binary(max_size=130),
        st.sampled_from([b"\xce", b"\xed\xa0", b"\xe2\x82\xac", b"\x03\xe8ok", b"\x03\xe8\xff", b"\x03"]),
    ),
    st.binary(min_size=4, max_size=4),
)


def _frame(op, fin, rsv, masked, payload, key):
    n = len(payload)
    head = bytes((0x80 * fin | rsv | op, 0x80 * masked | min(n, 126)))
    if n >= 126:
        head += n.to_bytes(2, "big")
    if masked:
        return head + key + apply_mask(payload, key)
    return head + payload


@FUZZ
@given(st.lists(frame_st, max_size=8), st.lists(st.integers(min_value=0), max_size=4), st.booleans())
def test_random_frames_into_server(frames, cuts, eof):
    check_session(chunked(b"".join(frames), cuts), eof, max_size=200)


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_frame_parser_raises_only_websocket_error(data, require_mask):
    parser = FrameParser(max_payload=100, require_mask=require_mask)
    parser.feed(data)
    try:
        while parser.next_frame() is not None:
            pass
    except WebSocketError as exc:
        assert exc.close_code in {1002, 1009}


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=50), st.binary(max_size=50)), max_size=6))
def test_valid_client_messages_round_trip(messages):
    server = WebSocketConnection()
    client = WebSocketConnection(client=True)
    wire = b"".join(client.send_text(m) if isinstance(m, str) else client.send_binary(m) for m in messages)
    if wire:  # b"" would mean EOF
        server.receive_data(wire)
    got = [e.data for e in server.events()]
    assert got == messages
