"""Connection cycles: pipelining, body skipping, 100-continue, errors, protocol switch."""

import pytest

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

from .http_helpers import drain, merge

GET = b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n"


def post(body, extra=b""):
    return (b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n" % len(body) + extra
            + b"\r\n" + body)


def test_pipelined_requests_answered_in_order():
    conn = Connection()
    conn.receive_data(GET % 1 + GET % 2 + (GET % 3)[:10])
    first = conn.next_event()
    assert first.target == "/1"
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED
    assert conn.next_event() is PAUSED
    conn.send(Response(200, [("Content-Length", "2")]))
    assert conn.next_event() is PAUSED  # our response is not complete yet
    conn.send(Data(b"ok"))
    conn.send(EndOfMessage())
    assert conn.next_event().target == "/2"
    assert conn.next_event() == EndOfMessage()
    conn.send_full(204, [])
    assert conn.next_event() is NEED_DATA
    conn.receive_data((GET % 3)[10:])
    assert conn.next_event().target == "/3"


def test_connection_close_stops_after_response():
    conn = Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + GET % 2)
    assert type(conn.next_event()) is Request
    assert conn.next_event() == EndOfMessage()
    out = conn.send_full(200, [], b"x")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    assert conn.keep_alive is False
    assert type(conn.next_event()) is ConnectionClosed
    assert type(conn.next_event()) is ConnectionClosed


def test_unread_body_is_skipped_after_response():
    conn = Connection()
    data = post(b"0123456789") + GET % 2
    conn.receive_data(data[:60])
    assert type(conn.next_event()) is Request
    conn.send_full(404, [], b"")
    events = drain(conn)
    assert events == [NEED_DATA]
    for i in range(60, len(data)):
        conn.receive_data(data[i:i + 1])
        events += drain(conn)
    events = merge(events)
    assert events[0].target == "/2" and events[1] == EndOfMessage()


def test_unread_chunked_body_is_skipped():
    conn = Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n0\r\nT: 1\r\n\r\n" + GET % 2)
    assert type(conn.next_event()) is Request
    conn.send_full(200, [], b"")
    assert conn.next_event().target == "/2"


def test_skipped_body_still_limited():
    conn = Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabcXX")
    conn.next_event()
    conn.send_full(200, [], b"")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_body_not_skipped_when_closing():
    conn = Connection()
    conn.receive_data(b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nab")
    conn.next_event()
    conn.send_full(200, [], b"")
    assert type(conn.next_event()) is ConnectionClosed


def test_data_events_carry_available_bytes():
    conn = Connection()
    conn.receive_data(post(b"x" * 10)[:-6])
    assert type(conn.next_event()) is Request
    assert conn.next_event() == Data(b"xxxx")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"xxxxxx")
    assert conn.next_event() == Data(b"xxxxxx")
    assert conn.next_event() == EndOfMessage()


def test_expect_100_continue_flow():
    conn = Connection()
    conn.receive_data(post(b"", b"Expect: 100-continue\r\n").replace(b"th: 0", b"th: 3"))
    request = conn.next_event()
    assert request.expect_continue and conn.waiting_for_100_continue
    assert conn.next_event() is NEED_DATA
    assert conn.waiting_for_100_continue
    assert conn.send(InformationalResponse(100)) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.waiting_for_100_continue
    conn.receive_data(b"abc")
    assert merge(drain(conn)) == [Data(b"abc"), EndOfMessage(), PAUSED]
    conn.send_full(200, [], b"")
    assert conn.keep_alive


def test_expect_cleared_by_body_bytes():
    conn = Connection()
    conn.receive_data(post(b"abc", b"Expect: 100-continue\r\n"))
    conn.next_event()
    assert conn.waiting_for_100_continue
    assert conn.next_event() == Data(b"abc")
    assert not conn.waiting_for_100_continue


def test_final_response_while_client_waits_closes():
    conn = Connection()
    conn.receive_data(post(b"abc", b"Expect: 100-continue\r\n")[:-3])
    conn.next_event()
    out = conn.send_full(417 - 4, [], b"")
    assert out.endswith(b"Connection: close\r\n\r\n")
    assert not conn.waiting_for_100_continue and not conn.keep_alive
    assert type(conn.next_event()) is ConnectionClosed


def test_an_expectation_without_content_keeps_the_connection():
    # RFC 9110 s10.1.1: with no content there is nothing to wait for, so no 100 and no close.
    conn = Connection()
    conn.receive_data(post(b"", b"Expect: 100-continue\r\n"))
    assert not conn.next_event().expect_continue and not conn.waiting_for_100_continue
    assert merge(drain(conn)) == [EndOfMessage(), PAUSED]
    assert b"Connection: close" not in conn.send_full(200, [], b"ok")
    assert conn.keep_alive


def test_head_begun_says_whether_the_next_request_has_started_to_arrive():
    conn = Connection()
    conn.receive_data(GET % 1 + b"\r\n")  # a stray empty line after it (RFC 9112 s2.2): no head yet
    assert type(conn.next_event()) is Request
    assert merge(drain(conn))[:1] == [EndOfMessage()]
    conn.send_full(200, [], b"")
    assert not conn.head_begun
    conn.receive_data(b"GE")
    assert conn.head_begun
    skipping = Connection()
    skipping.receive_data(post(b"abc")[:-1])  # a body not read yet is no head either
    skipping.next_event()
    assert not skipping.head_begun


def test_eof_after_request_still_lets_us_answer():
    conn = Connection()
    conn.receive_data(GET % 1 + GET % 2)
    conn.receive_data(b"")
    assert [type(e) for e in drain(conn)] == [Request, EndOfMessage, type(PAUSED)]
    conn.send_full(200, [], b"a")
    assert conn.next_event().target == "/2"  # a half-closed pipelining client is answered
    conn.next_event()
    conn.send_full(200, [], b"b")
    assert type(conn.next_event()) is ConnectionClosed
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


def test_error_is_final_and_error_page_allowed():
    conn = Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n" + GET % 2)
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400
    assert not conn.keep_alive and conn.their_state == "ERROR"
    conn.receive_data(GET % 3)  # dropped
    out = conn.send_full(400, [("Content-Type", "text/html")], b"bad")
    assert out == (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
                   b"Content-Length: 3\r\nConnection: close\r\n\r\nbad")
    for _ in range(2):
        with pytest.raises(ProtocolError) as again:
            conn.next_event()
        assert again.value is info.value
    with pytest.raises(LocalProtocolError):
        conn.send_full(400, [], b"")


def test_error_in_body_after_head_of_http10_and_head_request():
    conn = Connection()
    conn.receive_data(b"HEAD / HTTP/1.0\r\nContent-Length: 3\r\n\r\nab")
    conn.next_event()
    conn.next_event()
    conn.receive_data(b"")
    with pytest.raises(ProtocolError):
        conn.next_event()
    out = conn.send_full(400, [], b"bad")
    assert out == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"


def test_response_without_request():
    conn = Connection()
    conn.receive_data(b"GET / HT")
    out = conn.send_full(408, [], b"")
    assert out == (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")
    assert not conn.keep_alive
    assert type(conn.next_event()) is ConnectionClosed
    conn = Connection()
    out = conn.send_full(503, [("Retry-After", "1")], b"busy")
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n")
    assert b"Connection: close\r\n" in out and conn.their_http_version is None


def test_switch_protocol():
    conn = Connection()
    conn.receive_data(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\n\x81\x85frame")
    assert type(conn.next_event()) is Request
    with pytest.raises(LocalProtocolError):
        conn.switch_protocol()
    out = conn.send_full(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    assert out == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\n\r\n")
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED
    assert conn.switch_protocol() == b"\x81\x85frame"
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_switch_protocol_right_after_request_and_with_unread_body():
    conn = Connection()
    conn.receive_data(GET % 1 + b"rest")
    conn.next_event()
    conn.send(InformationalResponse(101, [("Upgrade", "x")]))
    assert conn.our_state == "SWITCHED"
    assert conn.switch_protocol() == b"rest"
    conn = Connection()
    conn.receive_data(post(b"abc"))
    conn.next_event()
    conn.send_full(101, [])
    with pytest.raises(LocalProtocolError):
        conn.switch_protocol()


def test_switch_after_chunked_body_read():
    conn = Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\nnext")
    conn.next_event()
    conn.send_full(101, [])
    with pytest.raises(LocalProtocolError):
        conn.switch_protocol()  # chunked body not read yet
    assert conn.next_event() == EndOfMessage()
    assert conn.switch_protocol() == b"next"


def test_informational_rules():
    conn = Connection()
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))  # no request
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))  # RFC 9110 s15.2: never to HTTP/1.0
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(200))
    conn = Connection()
    conn.receive_data(GET % 1)
    conn.next_event()
    assert conn.send(InformationalResponse(103, [("Link", "</a>")])) == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    assert conn.our_state == "IDLE"
    conn = Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nX\r\n")
    conn.next_event()
    with pytest.raises(ProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))  # after an error


def test_repr_and_properties():
    conn = Connection()
    assert repr(NEED_DATA) == "NEED_DATA" and repr(PAUSED) == "PAUSED"
    assert conn.their_state == "IDLE" and conn.our_state == "IDLE"
    assert conn.keep_alive and not conn.waiting_for_100_continue
    import pickle
    assert pickle.loads(pickle.dumps(PAUSED)) is PAUSED
