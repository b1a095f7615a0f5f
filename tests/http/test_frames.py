"""RFC 6455 section 5 framing: krait.http.frames (no sockets)."""

import os
import struct

import pytest

from krait.errors import LocalProtocolError, WebSocketError
from krait.http.frames import (
    CONTROL_OPCODES,
    MAX_CLOSE_REASON,
    CloseCode,
    Frame,
    FrameParser,
    Opcode,
    apply_mask,
    close_payload,
    is_valid_close_code,
    parse_close,
    serialize,
)
from tests import helpers

MASK = b"\x37\xfa\x21\x3d"


def naive_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def run_parser(chunks, **kw):
    """Feed chunks; return (frames, error close code or None)."""
    parser = FrameParser(**kw)
    frames = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (frame := parser.next_frame()) is not None:
                frames.append(frame)
    except WebSocketError as exc:
        return frames, exc.close_code
    return frames, None


def three_ways(data: bytes, **kw):
    # the trailing byte is the first byte of a next frame: no frame, no error from it
    return helpers.three_ways(lambda chunks: run_parser(chunks, **kw), data, b"\x82")


# --- constants and enums -------------------------------------------------------------------


def test_opcode_values():
    assert [int(op) for op in Opcode] == [0, 1, 2, 8, 9, 10]
    assert CONTROL_OPCODES == {Opcode.CLOSE, Opcode.PING, Opcode.PONG}


def test_close_code_values():
    assert CloseCode.NORMAL == 1000 and CloseCode.GOING_AWAY == 1001
    assert CloseCode.PROTOCOL_ERROR == 1002 and CloseCode.UNSUPPORTED_DATA == 1003
    assert CloseCode.NO_STATUS == 1005 and CloseCode.ABNORMAL == 1006
    assert CloseCode.INVALID_DATA == 1007 and CloseCode.POLICY_VIOLATION == 1008
    assert CloseCode.MESSAGE_TOO_BIG == 1009 and CloseCode.MANDATORY_EXTENSION == 1010
    assert CloseCode.INTERNAL_ERROR == 1011 and CloseCode.TLS == 1015
    names = [CloseCode(c).name for c in (1012, 1013, 1014)]
    assert names == ["SERVICE_RESTART", "TRY_AGAIN_LATER", "BAD_GATEWAY"]


def test_frame_defaults():
    frame = Frame(True, Opcode.TEXT, b"x")
    assert frame.rsv == 0
    with pytest.raises(AttributeError):
        frame.fin = False


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 125, 126, 511, 512, 513, 1000, 16383, 16384, 16385,
                               32768, 65537])
def test_apply_mask_matches_definition(n):
    data = os.urandom(n)
    masked = apply_mask(data, MASK)
    assert masked == naive_mask(data, MASK)
    assert apply_mask(masked, MASK) == data
    assert isinstance(masked, bytes)


@pytest.mark.parametrize("key", [b"\x00\x11\x00\x22", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"])
def test_apply_mask_on_long_payloads_with_zero_or_repeated_key_bytes(key):
    data = os.urandom(4099)  # long enough for the lane-wise path, not a multiple of 4
    assert apply_mask(data, key) == naive_mask(data, key)


def test_apply_mask_keeps_leading_and_trailing_zero_bytes():
    data = b"\x00" * 10
    assert apply_mask(data, b"\x00\x00\x00\x00") == data
    assert apply_mask(b"\x37\xfa", MASK) == b"\x00\x00"


# --- serialize -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, header",
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f" + struct.pack("!Q", 65536)),
        (1024 * 1024, b"\x82\x7f" + struct.pack("!Q", 1024 * 1024)),
    ],
)
def test_serialize_length_encodings(n, header):
    payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
    data = serialize(Opcode.BINARY, payload)
    assert data[: len(header)] == header
    assert data[len(header) :] == payload
    # and the same with a mask: mask bit set, key after the length, payload masked
    masked = serialize(Opcode.BINARY, payload, mask_key=MASK)
    assert masked[0] == header[0] and masked[1] == header[1] | 0x80
    assert masked[len(header) : len(header) + 4] == MASK
    assert masked[len(header) + 4 :] == apply_mask(payload, MASK)
    frames, err = run_parser([masked], max_payload=n)
    assert err is None and frames == [Frame(True, Opcode.BINARY, payload)]
    frames, err = run_parser([data], max_payload=n, require_mask=False)
    assert err is None and frames == [Frame(True, Opcode.BINARY, payload)]


def test_serialize_fin_and_opcodes():
    assert serialize(Opcode.TEXT, b"hi") == b"\x81\x02hi"
    assert serialize(Opcode.TEXT, b"hi", fin=False) == b"\x01\x02hi"
    assert serialize(Opcode.CONTINUATION, b"", fin=True) == b"\x80\x00"
    assert serialize(Opcode.PING, b"p") == b"\x89\x01p"
    assert serialize(Opcode.PONG, b"") == b"\x8a\x00"
    assert serialize(Opcode.CLOSE, b"\x03\xe8") == b"\x88\x02\x03\xe8"


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((Opcode.PING, b"x" * 126), {}),
        ((Opcode.CLOSE, b"x" * 200), {}),
        ((Opcode.PONG, b""), {"fin": False}),
        ((0x3, b""), {}),
        ((0xB, b""), {}),
        ((0x10, b""), {}),
        ((Opcode.TEXT, b"x"), {"mask_key": b"abc"}),
    ],
)
def test_serialize_refuses_invalid_frames(args, kwargs):
    with pytest.raises(LocalProtocolError):
        serialize(*args, **kwargs)


def test_serialize_control_frame_of_125_bytes_is_fine():
    assert serialize(Opcode.PING, b"x" * 125)[:2] == b"\x89\x7d"


# --- parser: valid input -------------------------------------------------------------------


def test_parse_masked_text_frame_three_ways():
    data = serialize(Opcode.TEXT, "héllo".encode(), mask_key=MASK)
    assert three_ways(data) == ([Frame(True, Opcode.TEXT, "héllo".encode())], None)


def test_parse_several_frames_three_ways():
    data = b"".join(
        [
            serialize(Opcode.TEXT, b"ab", fin=False, mask_key=MASK),
            serialize(Opcode.PING, b"ping", mask_key=MASK),
            serialize(Opcode.CONTINUATION, b"cd", mask_key=MASK),
            serialize(Opcode.BINARY, b"\x00" * 300, mask_key=MASK),
            serialize(Opcode.CLOSE, b"", mask_key=MASK),
        ]
    )
    frames, err = three_ways(data)
    assert err is None
    assert [(f.fin, f.opcode, f.payload) for f in frames] == [
        (False, Opcode.TEXT, b"ab"),
        (True, Opcode.PING, b"ping"),
        (True, Opcode.CONTINUATION, b"cd"),
        (True, Opcode.BINARY, b"\x00" * 300),
        (True, Opcode.CLOSE, b""),
    ]


def test_parse_unmasked_in_client_mode_three_ways():
    data = serialize(Opcode.BINARY, b"x" * 70000) + serialize(Opcode.PONG, b"")
    frames, err = run_parser([data], require_mask=False)
    assert err is None and [f.opcode for f in frames] == [Opcode.BINARY, Opcode.PONG]
    small = serialize(Opcode.BINARY, b"x" * 200)
    assert three_ways(small, require_mask=False) == ([Frame(True, Opcode.BINARY, b"x" * 200)], None)


def test_large_masked_frames_inside_and_at_the_end_of_the_buffer():
    # A payload of _LANES_FROM (512) bytes or more is unmasked where it lies: cut off a buffer that
    # holds more, or, when it ends the buffer, in the buffer itself, which the parser then replaces.
    payloads = [os.urandom(n) for n in (512, 3000, 70000, 513)]
    keys = [os.urandom(4) for _ in payloads]
    wire = [serialize(Opcode.BINARY, p, mask_key=k) for p, k in zip(payloads, keys)]
    assert [naive_mask(w[-len(p):], k) for w, p, k in zip(wire, payloads, keys)] == payloads
    parser = FrameParser()
    parser.feed(wire[0] + wire[1])
    assert parser.next_parts() == (True, Opcode.BINARY, payloads[0])  # cut off the front
    assert parser.next_parts() == (True, Opcode.BINARY, payloads[1])  # ends the buffer
    parser.feed(wire[2][:100])
    assert parser.next_parts() is None  # incomplete, in the new buffer
    parser.feed(wire[2][100:] + wire[3][:1])
    assert parser.next_parts() == (True, Opcode.BINARY, payloads[2])  # followed by one byte
    parser.feed(wire[3][1:])
    assert parser.next_parts() == (True, Opcode.BINARY, payloads[3])  # ends the buffer
    assert parser.buffered() == 0 and parser.next_parts() is None
    parser.feed(wire[1])  # the parser goes on with its new buffer
    assert parser.next_parts() == (True, Opcode.BINARY, payloads[1])
    assert three_ways(wire[1] + wire[0]) == ([Frame(True, Opcode.BINARY, payloads[1]),
                                              Frame(True, Opcode.BINARY, payloads[0])], None)


def test_parser_returns_none_until_complete():
    data = serialize(Opcode.BINARY, b"y" * 1000, mask_key=MASK)
    parser = FrameParser()
    for i in range(len(data) - 1):
        parser.feed(data[i : i + 1])
        assert parser.next_frame() is None
    parser.feed(data[-1:])
    assert parser.next_frame() == Frame(True, Opcode.BINARY, b"y" * 1000)
    assert parser.next_frame() is None


def test_parser_clear_drops_buffer():
    data = serialize(Opcode.BINARY, b"y" * 10, mask_key=MASK)
    parser = FrameParser()
    parser.feed(data[:5])
    assert parser.next_frame() is None
    parser.clear()
    parser.feed(data)
    assert parser.next_frame() == Frame(True, Opcode.BINARY, b"y" * 10)


def test_max_payload_exactly_reached_is_accepted():
    data = serialize(Opcode.BINARY, b"z" * 100, mask_key=MASK)
    assert three_ways(data, max_payload=100) == ([Frame(True, Opcode.BINARY, b"z" * 100)], None)


def test_max_payload_does_not_apply_to_control_frames():
    data = serialize(Opcode.PING, b"z" * 100, mask_key=MASK)
    assert three_ways(data, max_payload=10) == ([Frame(True, Opcode.PING, b"z" * 100)], None)


# --- parser: violations --------------------------------------------------------------------


def raw(b0: int, b1: int, rest: bytes = b"") -> bytes:
    return bytes((b0, b1)) + rest


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
def test_rsv_bits_fail_1002(rsv):
    data = raw(0x81 | rsv, 0x80 | 2, MASK + apply_mask(b"hi", MASK))
    assert three_ways(data) == ([], 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcodes_fail_1002(opcode):
    data = raw(0x80 | opcode, 0x80, MASK)
    assert three_ways(data) == ([], 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_control_frame_over_125_fails_1002(opcode):
    data = raw(0x80 | opcode, 0x80 | 126, struct.pack("!H", 126) + MASK + b"x" * 126)
    assert three_ways(data) == ([], 1002)
    data = raw(0x80 | opcode, 0x80 | 127, struct.pack("!Q", 70000))
    assert three_ways(data) == ([], 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_fragmented_control_frame_fails_1002(opcode):
    data = raw(opcode, 0x80 | 1, MASK + b"x")
    assert three_ways(data) == ([], 1002)


def test_unmasked_client_frame_fails_1002():
    assert three_ways(serialize(Opcode.TEXT, b"hello")) == ([], 1002)


def test_masked_server_frame_fails_1002_in_client_mode():
    assert three_ways(serialize(Opcode.TEXT, b"hello", mask_key=MASK), require_mask=False) == ([], 1002)


def test_non_minimal_16_bit_length_fails_1002():
    data = raw(0x82, 0x80 | 126, struct.pack("!H", 125) + MASK + b"x" * 125)
    assert three_ways(data) == ([], 1002)


def test_non_minimal_64_bit_length_fails_1002():
    data = raw(0x82, 0x80 | 127, struct.pack("!Q", 65535) + MASK + b"x" * 65535)
    assert run_parser([data]) == ([], 1002)
    assert three_ways(data[:20]) == ([], 1002)


def test_64_bit_length_with_top_bit_fails_1002():
    data = raw(0x82, 0x80 | 127, struct.pack("!Q", 1 << 63) + MASK)
    assert three_ways(data, max_payload=1 << 64) == ([], 1002)


@pytest.mark.parametrize("n", [101, 126, 65536, 1 << 40])
def test_too_big_fails_1009_before_payload(n):
    # only the header is fed: the error must come before any payload byte is buffered
    if n <= 125:
        header = raw(0x82, 0x80 | n)
    elif n <= 0xFFFF:
        header = raw(0x82, 0x80 | 126, struct.pack("!H", n))
    else:
        header = raw(0x82, 0x80 | 127, struct.pack("!Q", n))
    assert three_ways(header, max_payload=100) == ([], 1009)


def test_error_after_good_frames_keeps_them():
    data = serialize(Opcode.TEXT, b"ok", mask_key=MASK) + raw(0x83, 0x80, MASK)
    assert three_ways(data) == ([Frame(True, Opcode.TEXT, b"ok")], 1002)


# --- close bodies (sections 5.5.1, 7.4) ----------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999])
def test_valid_close_codes(code):
    assert is_valid_close_code(code)
    assert parse_close(struct.pack("!H", code) + "fin ✓".encode()) == (code, "fin ✓")
    assert close_payload(code, "r") == struct.pack("!H", code) + b"r"


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_codes(code):
    assert not is_valid_close_code(code)
    with pytest.raises(WebSocketError) as info:
        parse_close(struct.pack("!H", code))
    assert info.value.close_code == 1002
    with pytest.raises(LocalProtocolError):
        close_payload(code)


def test_parse_close_edge_cases():
    assert parse_close(b"") == (None, "")
    with pytest.raises(WebSocketError) as info:
        parse_close(b"\x03")
    assert info.value.close_code == 1002
    with pytest.raises(WebSocketError) as info:
        parse_close(b"\x03\xe8\xff\xfe")
    assert info.value.close_code == 1007


def test_close_payload_edge_cases():
    assert close_payload(None) == b""
    with pytest.raises(LocalProtocolError):
        close_payload(None, "reason without code")
    assert len(close_payload(1000, "x" * MAX_CLOSE_REASON)) == 125
    with pytest.raises(LocalProtocolError):
        close_payload(1000, "x" * (MAX_CLOSE_REASON + 1))
    with pytest.raises(LocalProtocolError):
        close_payload(1000, "é" * 62)  # 124 bytes in UTF-8


def test_no_io_imports():
    import krait.http.frames as mod

    with open(mod.__file__, encoding="utf-8") as f:
        source = f.read()
    for name in ("socket", "selectors", "threading", "multiprocessing", "time"):
        assert f"import {name}" not in source
