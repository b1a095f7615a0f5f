"""Response serialization: framing, persistence fields, validation."""

import pytest

from krait.errors import LocalProtocolError
from krait.http import (
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Response,
    reason_phrase,
)


def conn_for(head=b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"):
    conn = Connection()
    conn.receive_data(head)
    conn.next_event()
    conn.next_event()
    return conn


HTTP10 = b"GET / HTTP/1.0\r\n\r\n"
HTTP10_KA = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"


def stream(conn, response, *chunks):
    out = conn.send(response)
    for chunk in chunks:
        out += conn.send(Data(chunk))
    return out + conn.send(EndOfMessage())


def test_send_full_adds_content_length():
    assert conn_for().send_full(200, [("Content-Type", "text/plain")], b"hi") == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")


def test_send_full_keeps_given_length_and_reason():
    out = conn_for().send_full(299, [("content-length", "2")], b"hi", reason="Fine")
    assert out == b"HTTP/1.1 299 Fine\r\ncontent-length: 2\r\n\r\nhi"
    with pytest.raises(LocalProtocolError):
        conn_for().send_full(200, [("Content-Length", "3")], b"hi")
    with pytest.raises(LocalProtocolError):
        conn_for().send_full(200, [("Transfer-Encoding", "chunked")], b"hi")


def test_unknown_status_reason():
    assert conn_for().send_full(599, []) == b"HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n"
    assert reason_phrase(404) == "Not Found" and reason_phrase(599) == ""


def test_head_drops_body_keeps_length():
    assert conn_for(HEAD).send_full(200, [], b"hello") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert conn_for(HEAD).send_full(200, [("Content-Length", "9")], b"") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    # streamed: no chunked framing added, body dropped
    assert stream(conn_for(HEAD), Response(200, []), b"abc") == b"HTTP/1.1 200 OK\r\n\r\n"
    assert stream(conn_for(HEAD), Response(200, [("Transfer-Encoding", "chunked")]), b"x") == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


def test_no_body_statuses():
    assert conn_for().send_full(204, []) == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert conn_for().send_full(304, [("ETag", '"x"')]) == (
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
    assert conn_for().send_full(304, [("Content-Length", "10")]) == (
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
    for status, headers, body in ((204, [("Content-Length", "0")], b""), (204, [], b"x"),
                                  (304, [], b"x"), (100, [], b"x")):
        with pytest.raises(LocalProtocolError):
            conn_for().send_full(status, headers, body)
    conn = conn_for()
    conn.send(Response(204, []))
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"x"))
    assert conn.send(Data(b"")) == b"" and conn.send(EndOfMessage()) == b""
    assert stream(conn_for(), Response(304, [])) == b"HTTP/1.1 304 Not Modified\r\n\r\n"


def test_streamed_chunked_for_http11():
    out = stream(conn_for(), Response(200, [("X", "y")]), b"hello", b"", b"x" * 17)
    assert out == (b"HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n11\r\n" + b"x" * 17 + b"\r\n0\r\n\r\n")
    out = stream(conn_for(), Response(200, [("Transfer-Encoding", "Chunked")]), b"ab")
    assert out == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"


def test_streamed_content_length_is_counted():
    out = stream(conn_for(), Response(200, [("Content-Length", "4")]), b"ab", b"cd")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
    conn = conn_for()
    conn.send(Response(200, [("Content-Length", "4")]))
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"abcde"))
    conn = conn_for()
    conn.send(Response(200, [("Content-Length", "4")]))
    conn.send(Data(b"abc"))
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())


def test_body_sent_out_of_band_is_trusted():
    # channel.py sends static files with socket.sendfile between Response and EndOfMessage
    conn = conn_for()
    assert conn.send(Response(200, [("Content-Length", "4")])) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    assert conn.send(EndOfMessage()) == b""
    assert conn.our_state == "DONE" and conn.keep_alive


def test_http10_close_delimited_and_keep_alive():
    conn = conn_for(HTTP10)
    out = stream(conn, Response(200, []), b"abc")
    assert out == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc"
    assert not conn.keep_alive and type(conn.next_event()) is ConnectionClosed
    conn = conn_for(HTTP10_KA)
    out = stream(conn, Response(200, []), b"abc")
    assert out == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc"  # no length: must close
    conn = conn_for(HTTP10_KA)
    assert conn.send_full(200, [], b"abc") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc")
    assert conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn_for(HTTP10).send(Response(200, [("Transfer-Encoding", "chunked")]))


def test_caller_connection_header():
    conn = conn_for()
    out = conn.send_full(200, [("Connection", "close")], b"")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert not conn.keep_alive
    conn = conn_for(HTTP10)
    out = conn.send_full(200, [("Connection", "keep-alive")], b"")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    conn = conn_for()
    out = conn.send_full(200, [("Connection", "x-custom")], b"")
    assert out == b"HTTP/1.1 200 OK\r\nConnection: x-custom\r\nContent-Length: 0\r\n\r\n"
    assert conn.keep_alive


@pytest.mark.parametrize("headers", [
    [("Bad Name", "v")], [("", "v")], [("X:", "v")], [("X\r\n", "v")], [("Caf\u00e9", "v")],
    [("X", "a\r\nInjected: 1")], [("X", "a\nb")], [("X", "a\rb")], [("X", "a\x00b")],
    [("X", "\u20ac")], [("Content-Length", "-1")], [("Content-Length", "1, 1")],
    [("Content-Length", "1"), ("Content-Length", "1")], [("Transfer-Encoding", "gzip")],
    [(b"X", "v")],
])
def test_invalid_header_text_never_emitted(headers):
    with pytest.raises(LocalProtocolError):
        conn_for().send_full(200, headers, b"")
    with pytest.raises(LocalProtocolError):
        conn_for().send(Response(200, headers))


@pytest.mark.parametrize("status,reason", [(99, None), (1000, None), ("200", None),
                                           (200, "OK\r\nX: y"), (200, "\u20ac")])
def test_invalid_status_line(status, reason):
    with pytest.raises(LocalProtocolError):
        conn_for().send_full(status, [], b"", reason=reason)


def test_send_order_enforced():
    conn = conn_for()
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"x"))
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())
    with pytest.raises(LocalProtocolError):
        conn.send(ConnectionClosed())
    conn.send(Response(200, []))
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, []))
    with pytest.raises(LocalProtocolError):
        conn.send_full(200, [], b"")
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))
    conn.send(EndOfMessage())
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())


def test_name_memo_is_bounded():
    from krait.http import writers
    conn = conn_for()
    conn.send_full(200, [(f"X-{i}", "v") for i in range(writers._MAX_MEMO + 5)], b"")
    assert len(writers._NAMES) <= writers._MAX_MEMO
