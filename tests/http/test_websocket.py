"""The WebSocket session state machine: krait.http.websocket (no sockets).

Every wire case is fed three ways (whole, one byte at a time, followed by trailing bytes) and must
give the same events, the same protocol output and the same final state.
"""

import os
import struct
import tracemalloc

import pytest

from krait import limits
from krait.errors import LocalProtocolError
from krait.http.frames import FrameParser, Opcode, serialize
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
from tests import helpers


def c(opcode, payload=b"", fin=True):
    """One client (masked) frame."""
    return serialize(opcode, payload, fin=fin, mask_key=os.urandom(4))


def close_body(code, reason=b""):
    return struct.pack("!H", code) + reason


def run(chunks, ws=None, **kw):
    ws = ws or WebSocketConnection(**kw)
    for chunk in chunks:
        ws.receive_data(chunk)
    return ws.events(), ws.data_to_send(), ws.state, ws.close_code


def three_ways(data, trailing=b"\x81", **kw):
    """Return (events, output, state, close_code), checking that all three feeds agree."""
    return helpers.three_ways(lambda chunks: run(chunks, **kw), data, trailing)


def assert_failed(result, code):
    events, out, state, close_code = result
    assert isinstance(events[-1], ProtocolFailure) and events[-1].code == code
    assert state == "CLOSED" and close_code == code
    parser = FrameParser(require_mask=False)
    parser.feed(out)
    frame = parser.next_frame()
    while frame.opcode is Opcode.PONG:  # pongs queued before the failure
        frame = parser.next_frame()
    assert frame.opcode is Opcode.CLOSE and frame.payload[:2] == struct.pack("!H", code)
    assert frame.payload[2:].decode("utf-8") == events[-1].reason
    assert parser.next_frame() is None
    return events


# --- messages ------------------------------------------------------------------------------


def test_defaults():
    ws = WebSocketConnection()
    assert ws.max_message_size == limits.MAX_WS_MESSAGE and not ws.client
    assert ws.state == "OPEN" and ws.close_code is None and ws.close_reason == ""
    assert ws.events() == [] and ws.data_to_send() == b""


def test_single_frame_messages():
    data = c(Opcode.TEXT, "héllo ✓".encode()) + c(Opcode.BINARY, b"\x00\xff")
    data += c(Opcode.TEXT) + c(Opcode.BINARY)
    events, out, state, _ = three_ways(data)
    assert events == [
        TextMessage("héllo ✓"),
        BinaryMessage(b"\x00\xff"),
        TextMessage(""),
        BinaryMessage(b""),
    ]
    assert out == b"" and state == "OPEN"


def test_data_fed_from_a_reused_buffer_is_copied():
    # krait/ws_session.py reads every chunk into one buffer and passes a view of it: what the
    # connection keeps must not change when the buffer is overwritten by the next read.
    data = c(Opcode.BINARY, b"first half|second half") + c(Opcode.TEXT, b"next")
    buf = bytearray(len(data))
    view = memoryview(buf)
    ws = WebSocketConnection()
    cut = 12
    for start, end in ((0, cut), (cut, len(data))):
        buf[:] = b"\xaa" * len(buf)  # what the previous read left is overwritten
        buf[: end - start] = data[start:end]
        ws.receive_data(view[: end - start])
    buf[:] = b"\x00" * len(buf)
    assert ws.events() == [BinaryMessage(b"first half|second half"), TextMessage("next")]
    assert ws.state == "OPEN"


# --- receive_single(): the short way for a read holding one whole small message ------------------


@pytest.mark.parametrize("frame, expected", [
    (c(Opcode.TEXT, "h\u00e9".encode()), (True, "h\u00e9".encode())),  # checked as UTF-8, not decoded
    (c(Opcode.BINARY, b"\xff\x00"), (False, b"\xff\x00")),
    (c(Opcode.TEXT), (True, b"")),
    (c(Opcode.BINARY, b"x" * 125), (False, b"x" * 125)),  # the largest 7-bit length
])
def test_receive_single_takes_one_whole_message(frame, expected):
    ws = WebSocketConnection()
    assert ws.receive_single(frame) == expected
    assert ws.receive_single(memoryview(bytearray(frame))) == expected  # a view of a reused buffer
    assert ws.events() == [] and ws.data_to_send() == b"" and ws.state == "OPEN"


def _not_single(frame, ws=None, **kw):
    """receive_single() declines `frame`, and then receive_data() gives the same as on its own."""
    ws = ws or WebSocketConnection(**kw)
    assert ws.receive_single(frame) is None
    ws.receive_data(frame)
    return ws.events(), ws.state, ws.close_code


@pytest.mark.parametrize("frame", [
    c(Opcode.TEXT, b"x" * 126),  # 16-bit length
    c(Opcode.TEXT, b"part", fin=False),
    c(Opcode.PING, b"p"),
    c(Opcode.PONG),
    c(Opcode.CLOSE, close_body(1000)),
    c(Opcode.TEXT, b"one") + c(Opcode.TEXT, b"two"),  # two frames in one read
    c(Opcode.TEXT, b"cut")[:-1],  # not whole
    c(Opcode.TEXT, b"rest") + b"\x81",
])
def test_receive_single_declines_anything_else(frame):
    alone = WebSocketConnection()
    alone.receive_data(frame)
    assert _not_single(frame) == (alone.events(), alone.state, alone.close_code)


@pytest.mark.parametrize("frame, code", [
    (c(Opcode.TEXT, b"\xc3\x28"), 1007),  # bad UTF-8
    (c(Opcode.TEXT, b"x" * 101), 1009),  # over the message size cap
    (serialize(Opcode.TEXT, b"unmasked"), 1002),
    (bytes([0x80 | 0x40 | Opcode.TEXT]) + c(Opcode.TEXT, b"rsv")[1:], 1002),
    (bytes([0x80 | 0x3]) + c(Opcode.TEXT, b"op")[1:], 1002),  # reserved opcode
])
def test_receive_single_leaves_violations_to_receive_data(frame, code):
    events, state, close_code = _not_single(frame, max_message_size=100)
    assert isinstance(events[-1], ProtocolFailure) and (state, close_code) == ("CLOSED", code)


def test_receive_single_declines_in_every_state_it_cannot_judge():
    ws = WebSocketConnection()
    ws.receive_data(c(Opcode.TEXT, b"open", fin=False))  # a fragmented message is open: a new one is an error
    assert ws.receive_single(c(Opcode.TEXT, b"new")) is None
    ws = WebSocketConnection()
    ws.receive_data(c(Opcode.TEXT, b"half")[:3])  # bytes of an unfinished frame are buffered
    assert ws.receive_single(c(Opcode.TEXT, b"next")) is None
    ws = WebSocketConnection()
    ws.receive_data(b"")
    assert ws.state == "CLOSED" and ws.receive_single(c(Opcode.TEXT, b"late")) is None
    ws = WebSocketConnection()
    ws.send_close()  # CLOSING: the peer's messages still count until its Close
    assert ws.receive_single(c(Opcode.TEXT, b"still")) == (True, b"still")
    client = WebSocketConnection(client=True)  # a client takes unmasked frames only: never this way
    assert client.receive_single(c(Opcode.TEXT, b"x")) is None


def test_fragmented_messages_with_interleaved_control_frames():
    text = "κόσμε and more".encode()
    data = (
        c(Opcode.TEXT, text[:1], fin=False)  # splits the 2-byte "κ"
        + c(Opcode.PING, b"p1")
        + c(Opcode.CONTINUATION, text[1:5], fin=False)
        + c(Opcode.PONG, b"p2")
        + c(Opcode.CONTINUATION, b"", fin=False)
        + c(Opcode.CONTINUATION, text[5:])
        + c(Opcode.BINARY, b"ab", fin=False)
        + c(Opcode.CONTINUATION, b"cd")
    )
    events, out, state, _ = three_ways(data)
    assert events == [Ping(b"p1"), Pong(b"p2"), TextMessage(text.decode()), BinaryMessage(b"abcd")]
    assert out == serialize(Opcode.PONG, b"p1") and state == "OPEN"


def test_ping_is_answered_with_same_payload():
    events, out, _, _ = three_ways(c(Opcode.PING, b"x" * 125) + c(Opcode.PING))
    assert events == [Ping(b"x" * 125), Ping(b"")]
    assert out == serialize(Opcode.PONG, b"x" * 125) + serialize(Opcode.PONG, b"")


def test_pong_produces_event_only():
    assert three_ways(c(Opcode.PONG, b"hb")) == ([Pong(b"hb")], b"", "OPEN", None)


# --- framing violations -> 1002 ------------------------------------------------------------


def test_unmasked_client_frame_fails_1002():
    assert_failed(three_ways(serialize(Opcode.TEXT, b"hi")), 1002)


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_rsv_bits_fail_1002(rsv):
    frame = bytearray(c(Opcode.TEXT, b"hi"))
    frame[0] |= rsv
    assert_failed(three_ways(bytes(frame)), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcode_fails_1002(opcode):
    assert_failed(three_ways(bytes((0x80 | opcode, 0x80)) + os.urandom(4)), 1002)


def test_control_frame_too_long_fails_1002():
    frame = bytes((0x89, 0x80 | 126)) + struct.pack("!H", 126) + os.urandom(4) + b"x" * 126
    assert_failed(three_ways(frame), 1002)


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_a_flood_of_empty_fragments_takes_no_memory(opcode):
    # Each fragment adds its bytes to the message and nothing else: 50,000 empty ones (300 kB on the
    # wire, a message of 2 bytes) must not hold an object each while the message is open (with a cap on
    # frames per message above that; the default cap fails such a flood sooner).
    ws = WebSocketConnection(max_fragments=60_000)
    ws.receive_data(c(opcode, b"a", fin=False))
    empty = c(Opcode.CONTINUATION, b"", fin=False) * 1000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            ws.receive_data(empty)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
    ws.receive_data(c(Opcode.CONTINUATION, b"b"))
    assert ws.events() == [TextMessage("ab") if opcode is Opcode.TEXT else BinaryMessage(b"ab")]


def test_fragmented_control_frame_fails_1002():
    frame = bytes((0x09, 0x80)) + os.urandom(4)
    assert_failed(three_ways(frame), 1002)


def test_continuation_without_message_fails_1002():
    assert_failed(three_ways(c(Opcode.CONTINUATION, b"x")), 1002)


@pytest.mark.parametrize("second", [Opcode.TEXT, Opcode.BINARY])
def test_new_message_inside_fragmented_message_fails_1002(second):
    data = c(Opcode.TEXT, b"a", fin=False) + c(second, b"b")
    assert_failed(three_ways(data), 1002)


def test_messages_before_failure_are_kept():
    events = assert_failed(three_ways(c(Opcode.TEXT, b"ok") + serialize(Opcode.TEXT, b"bad")), 1002)
    assert events[0] == TextMessage("ok")


# --- UTF-8 -> 1007 -------------------------------------------------------------------------


def test_invalid_utf8_single_frame_fails_1007():
    assert_failed(three_ways(c(Opcode.TEXT, b"ok \xff")), 1007)


@pytest.mark.parametrize(
    "bad",
    [
        b"\xf4\x90\x80\x80",  # above U+10FFFF: impossible from the 2nd byte
        b"\xc0\xaf",  # overlong
        b"\xed\xa0\x80",  # UTF-16 surrogate: impossible from the 2nd byte
        b"\x80",  # lone continuation byte
    ],
)
def test_invalid_utf8_fails_on_the_fragment_that_breaks_it(bad):
    first = c(Opcode.TEXT, "κόσμε".encode() + bad[:2], fin=False)
    assert_failed(three_ways(first), 1007)


def test_valid_prefix_is_not_failed_early():
    first = c(Opcode.TEXT, b"\xed\x9f", fin=False)  # U+D7FF starts like this: still valid
    events, out, state, _ = three_ways(first)
    assert (events, out, state) == ([], b"", "OPEN")
    events, _, _, _ = run([c(Opcode.CONTINUATION, b"\xbf")], ws=_fed(first))
    assert events == [TextMessage("\ud7ff")]


def _fed(data):
    ws = WebSocketConnection()
    ws.receive_data(data)
    return ws


def test_text_ending_mid_sequence_fails_1007():
    data = c(Opcode.TEXT, b"abc\xe2\x82", fin=False) + c(Opcode.CONTINUATION, b"")
    assert_failed(three_ways(data), 1007)


def test_valid_text_split_everywhere():
    text = "a€𝄞ü".encode()
    data = c(Opcode.TEXT, text[:1], fin=False)
    data += b"".join(c(Opcode.CONTINUATION, text[i : i + 1], fin=False) for i in range(1, len(text)))
    data += c(Opcode.CONTINUATION, b"")
    assert three_ways(data)[0] == [TextMessage("a€𝄞ü")]


# --- size cap -> 1009 ----------------------------------------------------------------------


def test_single_frame_over_cap_fails_1009_from_its_header():
    header = bytes((0x82, 0x80 | 101))
    assert_failed(three_ways(header, max_message_size=100), 1009)
    header = bytes((0x82, 0x80 | 127)) + struct.pack("!Q", 1 << 40)
    assert_failed(three_ways(header), 1009)


def test_fragmented_message_over_cap_fails_1009_on_the_fragment_header():
    data = c(Opcode.BINARY, b"x" * 60, fin=False) + c(Opcode.PING, b"p" * 100)
    data += bytes((0x00, 0x80 | 41))  # header of a 41-byte continuation: 101 > 100
    events = assert_failed(three_ways(data, max_message_size=100), 1009)
    assert events[0] == Ping(b"p" * 100)


def test_message_exactly_at_cap_is_accepted():
    data = c(Opcode.TEXT, b"x" * 60, fin=False) + c(Opcode.CONTINUATION, b"y" * 40)
    assert three_ways(data, max_message_size=100)[0] == [TextMessage("x" * 60 + "y" * 40)]
    # the cap applies per message: the next one starts from zero
    data += c(Opcode.BINARY, b"z" * 100)
    assert three_ways(data, max_message_size=100)[0][-1] == BinaryMessage(b"z" * 100)


def test_a_message_in_more_frames_than_the_cap_fails_1009():
    def fragmented(frames):
        return c(Opcode.TEXT, b"a", fin=False) + c(Opcode.CONTINUATION, b"", fin=False) * (frames - 2) + \
            c(Opcode.CONTINUATION, b"b")

    assert three_ways(fragmented(5), max_fragments=5)[0] == [TextMessage("ab")]
    # the cap applies per message: the next one starts from zero
    assert three_ways(fragmented(5) * 2, max_fragments=5)[0] == [TextMessage("ab")] * 2
    # a flood of empty continuation frames fails as soon as it passes the cap
    events = assert_failed(three_ways(fragmented(7)[:-7], max_fragments=5), 1009)
    assert events[-1].reason == "message in more than 5 frames"
    assert three_ways(fragmented(4096))[0] == [TextMessage("ab")]
    assert_failed(three_ways(fragmented(4097)), 1009)


def test_control_frames_are_capped_per_read():
    pongs = c(Opcode.PONG, b"beat") * 5
    ws = WebSocketConnection(max_control_frames=5)
    ws.receive_data(pongs)
    ws.receive_data(c(Opcode.PING, b"p") + c(Opcode.TEXT, b"t"))  # the count is per read
    assert [type(e) for e in ws.events()] == [Pong] * 5 + [Ping, TextMessage] and ws.state == "OPEN"
    ws.receive_data(pongs + c(Opcode.PONG))
    events = ws.events()
    assert events[-1] == ProtocolFailure(1008, "more than 5 control frames in one read")
    assert ws.state == "CLOSED"


def test_buffered_input_and_abort():
    ws = WebSocketConnection()
    whole = c(Opcode.BINARY, b"x" * 300)
    ws.receive_data(c(Opcode.TEXT, b"ab", fin=False) + whole[:100])
    assert ws.buffered_input() == 2 + 100  # the fragment so far and the frame's first bytes
    ws.abort(1013, "busy")
    events, out = ws.events(), ws.data_to_send()
    assert events == [ProtocolFailure(1013, "busy")] and out == b"\x88\x06" + close_body(1013, b"busy")
    assert ws.state == "CLOSED" and ws.buffered_input() == 0
    ws.receive_data(whole[100:])  # nothing more is parsed, nor aborted twice
    ws.abort(1011, "again")
    assert ws.events() == [] and ws.data_to_send() == b""


# --- closing handshake ---------------------------------------------------------------------


def test_close_with_empty_payload_echoes_empty_close():
    events, out, state, code = three_ways(c(Opcode.CLOSE))
    assert events == [CloseReceived(None, "")] and out == b"\x88\x00"
    assert state == "CLOSED" and code == 1005


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 1014, 3000, 4999])
def test_close_with_valid_code_echoes_the_code(code):
    ws = WebSocketConnection()
    events, out, state, close_code = three_ways(c(Opcode.CLOSE, close_body(code, "bye ✓".encode())))
    assert events == [CloseReceived(code, "bye ✓")]
    assert out == b"\x88\x02" + struct.pack("!H", code)
    assert state == "CLOSED" and close_code == code
    ws.receive_data(c(Opcode.CLOSE, close_body(code, b"why")))
    assert ws.close_reason == "why"


def test_close_with_one_byte_fails_1002():
    assert_failed(three_ways(c(Opcode.CLOSE, b"\x03")), 1002)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_with_invalid_code_fails_1002(code):
    assert_failed(three_ways(c(Opcode.CLOSE, close_body(code))), 1002)


def test_close_with_invalid_utf8_reason_fails_1007():
    assert_failed(three_ways(c(Opcode.CLOSE, close_body(1000, b"\xce"))), 1007)


def test_data_after_close_is_ignored():
    data = c(Opcode.CLOSE, close_body(1000)) + c(Opcode.TEXT, b"late") + serialize(Opcode.TEXT, b"bad")
    events, out, state, _ = three_ways(data)
    assert events == [CloseReceived(1000, "")] and out == b"\x88\x02\x03\xe8" and state == "CLOSED"


def test_nothing_parsed_after_closed():
    ws = WebSocketConnection()
    ws.receive_data(c(Opcode.CLOSE))
    ws.events(), ws.data_to_send()
    ws.receive_data(c(Opcode.PING, b"x"))
    ws.receive_data(b"")
    assert ws.events() == [] and ws.data_to_send() == b"" and ws.state == "CLOSED"


def test_we_close_first_then_peer_completes():
    ws = WebSocketConnection()
    assert ws.send_close(1001, "going") == b"\x88\x07\x03\xe9going"
    assert ws.state == "CLOSING" and ws.close_code == 1001 and ws.close_reason == "going"
    events, out, state, code = run([c(Opcode.TEXT, b"still"), c(Opcode.CLOSE, close_body(1001))], ws=ws)
    assert events == [TextMessage("still"), CloseReceived(1001, "")]
    assert out == b"" and state == "CLOSED" and code == 1001  # no second close


def test_ping_while_closing_is_still_answered():
    ws = WebSocketConnection()
    ws.send_close()
    events, out, state, _ = run([c(Opcode.PING, b"x")], ws=ws)
    assert events == [Ping(b"x")] and out == b"\x8a\x01x" and state == "CLOSING"


def test_failure_while_closing_sends_no_second_close():
    ws = WebSocketConnection()
    ws.send_close()
    events, out, state, code = run([serialize(Opcode.TEXT, b"unmasked")], ws=ws)
    assert isinstance(events[0], ProtocolFailure) and events[0].code == 1002
    assert out == b"" and state == "CLOSED" and code == 1002


def test_eof_before_close_is_connection_lost():
    ws = WebSocketConnection()
    events, out, state, code = run([c(Opcode.TEXT, b"a", fin=False), b""], ws=ws)
    assert events == [ConnectionLost()] and out == b"" and state == "CLOSED" and code == 1006
    ws = WebSocketConnection()
    ws.send_close()
    assert run([b""], ws=ws) == ([ConnectionLost()], b"", "CLOSED", 1006)


def test_events_and_output_drain():
    ws = WebSocketConnection()
    ws.receive_data(c(Opcode.PING, b"1"))
    assert ws.events() == [Ping(b"1")] and ws.events() == []
    assert ws.data_to_send() == b"\x8a\x011" and ws.data_to_send() == b""


# --- sending -------------------------------------------------------------------------------


def test_server_sends_unmasked_frames():
    ws = WebSocketConnection()
    assert ws.send_text("hé") == b"\x81\x03h\xc3\xa9"
    assert ws.send_text("hé".encode()) == b"\x81\x03h\xc3\xa9"  # text already in UTF-8
    assert ws.send_binary(bytearray(b"\x00")) == b"\x82\x01\x00"
    assert ws.send_ping(b"p") == b"\x89\x01p"
    assert ws.send_ping() == b"\x89\x00"


def test_short_messages_are_framed_as_serialize_frames_them():
    ws = WebSocketConnection()
    for n in (0, 1, 32, 125, 126):  # 126 is the first 16-bit length
        assert ws.send_text(b"t" * n) == ws.send_text("t" * n) == serialize(Opcode.TEXT, b"t" * n)
        assert ws.send_binary(b"b" * n) == serialize(Opcode.BINARY, b"b" * n)


def test_send_ping_too_long_raises():
    with pytest.raises(LocalProtocolError):
        WebSocketConnection().send_ping(b"x" * 126)


@pytest.mark.parametrize("code, reason", [(1005, ""), (1006, ""), (999, ""), (1000, "x" * 124)])
def test_send_close_refuses_invalid_close(code, reason):
    ws = WebSocketConnection()
    with pytest.raises(LocalProtocolError):
        ws.send_close(code, reason)
    assert ws.state == "OPEN"


def test_sending_rules_by_state():
    ws = WebSocketConnection()
    ws.send_close()
    with pytest.raises(LocalProtocolError):
        ws.send_text("no data after our close")
    with pytest.raises(LocalProtocolError):
        ws.send_binary(b"")
    with pytest.raises(LocalProtocolError):
        ws.send_close()
    assert ws.send_ping(b"") == b"\x89\x00"
    ws.receive_data(c(Opcode.CLOSE))
    for send in (lambda: ws.send_text("x"), lambda: ws.send_binary(b"x"), ws.send_ping, ws.send_close):
        with pytest.raises(LocalProtocolError):
            send()


# --- round trips with a client-mode peer ---------------------------------------------------


SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024]


@pytest.mark.parametrize("n", SIZES)
def test_round_trip_both_directions(n):
    server, client = WebSocketConnection(), WebSocketConnection(client=True)
    text = ("é" * (n // 2)) + ("x" * (n % 2))  # n UTF-8 bytes
    blob = os.urandom(n)
    wire = client.send_text(text) + client.send_binary(blob)
    for i in range(0, len(wire), 65536):  # arrives in socket-sized pieces
        server.receive_data(wire[i : i + 65536])
    assert server.events() == [TextMessage(text), BinaryMessage(blob)]
    client.receive_data(server.send_text(text) + server.send_binary(blob))
    assert client.events() == [TextMessage(text), BinaryMessage(blob)]


@pytest.mark.parametrize("n", SIZES)
def test_round_trip_fragmented(n):
    server = WebSocketConnection()
    blob = os.urandom(n)
    step = max(n // 3, 1)
    pieces = [blob[i : i + step] for i in range(0, n, step)] or [b""]
    wire = c(Opcode.BINARY, pieces[0], fin=len(pieces) == 1)
    for i, piece in enumerate(pieces[1:], 2):
        wire += c(Opcode.PING, b"i") + c(Opcode.CONTINUATION, piece, fin=i == len(pieces))
    server.receive_data(wire)
    events = server.events()
    assert events[-1] == BinaryMessage(blob)
    assert events[:-1] == [Ping(b"i")] * (len(pieces) - 1)


def test_client_mode_rules_and_full_closing_handshake():
    server, client = WebSocketConnection(), WebSocketConnection(client=True)
    # the client masks: its frames parse in a server
    ping = client.send_ping(b"hi")
    assert ping[1] & 0x80
    server.receive_data(ping)
    assert server.events() == [Ping(b"hi")]
    client.receive_data(server.data_to_send())
    assert client.events() == [Pong(b"hi")]
    client.receive_data(serialize(Opcode.PING, b"s"))
    assert client.events() == [Ping(b"s")]
    server.receive_data(client.data_to_send())  # the client's pong is masked
    assert server.events() == [Pong(b"s")]
    server.receive_data(client.send_close(1000, "done"))
    assert server.events() == [CloseReceived(1000, "done")]
    client.receive_data(server.data_to_send())
    assert client.events() == [CloseReceived(1000, "")]
    assert client.state == server.state == "CLOSED"


def test_client_mode_rejects_masked_frames():
    client = WebSocketConnection(client=True)
    client.receive_data(c(Opcode.TEXT, b"masked"))
    (event,) = client.events()
    assert event.code == 1002
    out = client.data_to_send()
    assert out[0] == 0x88 and out[1] & 0x80  # its close frame is masked
