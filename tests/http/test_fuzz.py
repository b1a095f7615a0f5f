"""Property tests: garbage in gives events or ProtocolError, never another exception."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from krait.errors import LocalProtocolError, ProtocolError
from krait.http import (
    NEED_DATA,
    PAUSED,
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
)

EVENTS = (Request, Data, EndOfMessage, ConnectionClosed)
# database=None: leave no .hypothesis/ files behind in the checkout
SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Pieces of request-ish text, so the fuzzer reaches deep into heads, bodies and chunks.
ATOMS = [b"GET", b"POST", b"HEAD", b" ", b"/", b"*", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0",
         b"\r\n", b"\n", b"\r", b":", b"Host: h", b"Content-Length: ", b"3", b"0", b"abc",
         b"Transfer-Encoding: chunked", b"Expect: 100-continue", b"Connection: close",
         b";", b"=", b"\"", b"\x00", b"\t", b"\x80", b"a" * 40, b",", b"ffff", b"\r\n\r\n"]
requestish = st.lists(st.sampled_from(ATOMS), max_size=40).map(b"".join)
small = {"max_request_line": 64, "max_header_line": 48, "max_header_block": 160,
         "max_header_count": 6, "max_body_size": 100, "max_chunk_line": 16}


def run(data, split, eof, respond, **limits):
    conn = Connection(**limits)
    pieces = [data[i:i + split] for i in range(0, len(data), split)] or [b""]
    try:
        for piece in pieces:
            if piece:
                conn.receive_data(piece)
            for _ in range(100):
                ev = conn.next_event()
                if ev is NEED_DATA:
                    break
                assert ev is PAUSED or type(ev) in EVENTS, ev
                if ev is PAUSED and respond:
                    conn.send_full(200, [], b"ok")
                if type(ev) is ConnectionClosed or ev is PAUSED and not respond:
                    break
        if eof:
            conn.receive_data(b"")
            ev = conn.next_event()
            assert ev is PAUSED or type(ev) in EVENTS
    except ProtocolError as exc:
        assert exc.status_hint in (400, 413, 414, 417, 431, 501, 505)
        try:
            conn.next_event()
        except ProtocolError as again:
            assert again is exc
        else:  # pragma: no cover
            raise AssertionError("error not final")


@SETTINGS
@given(st.binary(max_size=300), st.integers(1, 50), st.booleans(), st.booleans())
def test_random_bytes(data, split, eof, respond):
    run(data, split, eof, respond)


@SETTINGS
@given(requestish, st.integers(1, 50), st.booleans(), st.booleans())
def test_requestish_bytes(data, split, eof, respond):
    run(data, split, eof, respond)
    run(data, split, eof, respond, **small)


header_text = st.text(st.characters(max_codepoint=0x2FF), max_size=12)


@SETTINGS
@given(st.lists(st.tuples(header_text, header_text), max_size=5), header_text,
       st.integers(0, 1100), st.sampled_from([b"GET", b"HEAD"]), st.booleans())
def test_send_random_header_text(headers, reason, status, method, streamed):
    conn = Connection()
    conn.receive_data(method + b" / HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.next_event()
    try:
        if streamed:
            out = conn.send(Response(status, headers, reason or None))
        elif 100 <= status < 200 and status != 101:
            out = conn.send(InformationalResponse(status, headers))
        else:
            out = conn.send_full(status, headers, b"", reason or None)
    except LocalProtocolError:
        return
    head = out.split(b"\r\n\r\n")[0]
    assert b"\x00" not in head and b"\r" not in head.replace(b"\r\n", b"")
    assert b"\n" not in head.replace(b"\r\n", b"")
