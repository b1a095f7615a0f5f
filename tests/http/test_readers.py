"""Request parsing rules (RFC 9112), each input fed whole, byte by byte and pipelined."""

import pytest

from krait.http import NEED_DATA, PAUSED, Connection, ConnectionClosed, Data, EndOfMessage

from .http_helpers import EOM, error_three_ways, req, three_ways

H = b"Host: h\r\n"


def get(target=b"/", extra=b"", version=b"HTTP/1.1", method=b"GET"):
    return method + b" " + target + b" " + version + b"\r\n" + H + extra + b"\r\n"


# -- request line ------------------------------------------------------------------------

def test_simple_get():
    conn = three_ways(get(b"/a/b?c=d"), [req("/a/b?c=d"), EOM, PAUSED])
    assert conn.their_http_version == "1.1"
    assert conn.keep_alive


def test_fields_joined_stripped_and_raw_kept_in_order():
    data = (b"GET / HTTP/1.1\r\nHost: h\r\nX-A:  one two \t\r\nAccept: */*\r\n"
            b"x-a: three\r\nEmpty:\r\nSpaces:   \r\nLatin: caf\xe9\r\n\r\n")
    headers = {"host": "h", "x-a": "one two, three", "accept": "*/*", "empty": "",
               "spaces": "", "latin": "caf\u00e9"}
    raw = (("host", "h"), ("x-a", "one two"), ("accept", "*/*"), ("x-a", "three"),
           ("empty", ""), ("spaces", ""), ("latin", "caf\u00e9"))
    three_ways(data, [req(headers=headers, raw=raw), EOM, PAUSED])


def test_cookie_fields_join_with_semicolons():
    # Cookie is no list field: two lines (an HTTP/2 front end splits them, RFC 9113 s8.2.3) join as one
    # cookie-string would, not with a comma that would glue two cookies together.
    data = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
    raw = (("host", "h"), ("cookie", "a=1"), ("cookie", "b=2"))
    three_ways(data, [req(headers={"host": "h", "cookie": "a=1; b=2"}, raw=raw), EOM, PAUSED])


def test_bare_lf_line_ends_rejected():
    # RFC 9112 s2.2 lets a recipient accept a bare LF; Krait accepts CRLF only (smuggling).
    error_three_ways(b"GET / HTTP/1.1\nHost: h\n\n", 400)
    error_three_ways(b"GET / HTTP/1.1\r\nHost: h\n\r\n", 400)
    error_three_ways(b"GET / HTTP/1.1\nHost: h\r\n\n", 400)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\rHost: h\r\n\r\n",
    b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\r\n\r\n",
    b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
])
def test_bare_cr_rejected(data):
    error_three_ways(data, 400)


def test_leading_empty_lines_skipped():
    three_ways(b"\r\n\r\n\r\n" + get(), [req(), EOM, PAUSED])
    error_three_ways(b"\r\n\n\r\n" + get(), 400)  # a bare LF is no empty line
    three_ways(b"\r\n" * 8 + get(), [req(), EOM, PAUSED])
    error_three_ways(b"\r\n" * 9 + get(), 400)


@pytest.mark.parametrize("method", ["OPTIONS", "get", "PATCH", "M-SEARCH", "X!#$%&'*+.^_`|~9"])
def test_any_token_method_accepted(method):
    data = method.encode() + b" / HTTP/1.1\r\nHost: h\r\n\r\n"
    three_ways(data, [req(method=method), EOM, PAUSED])


@pytest.mark.parametrize("line", [
    b"GET  / HTTP/1.1", b"GET /  HTTP/1.1", b" GET / HTTP/1.1", b"GET / HTTP/1.1 ",
    b"GET\t/ HTTP/1.1", b"GET /", b"GET / ", b"GET", b"G(T / HTTP/1.1", b"G@T / HTTP/1.1",
    b"GET /a\x80 HTTP/1.1", b"GET /a\x00b HTTP/1.1", b"GET /a\x7f HTTP/1.1",
    b"GET /a\x01 HTTP/1.1", b"GET /a b HTTP/1.1", b"\x00GET / HTTP/1.1",
])
def test_bad_request_line(line):
    error_three_ways(line + b"\r\nHost: h\r\n\r\n", 400)


@pytest.mark.parametrize("version", [b"HTTP/1", b"http/1.1", b"HTTP/1.10", b"HTTP/11",
                                     b"HTTP/1.1a", b"HTTPS/1.1", b"HTTP/a.b", b"HTTP/1.", b""])
def test_malformed_version_400(version):
    error_three_ways(b"GET / " + version + b"\r\nHost: h\r\n\r\n", 400)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0", b"HTTP/9.9"])
def test_unsupported_version_505(version):
    error_three_ways(get(version=version), 505)


def test_http10_and_higher_minor():
    conn = three_ways(b"GET / HTTP/1.0\r\n\r\n", [req(version="1.0", headers={}), EOM, PAUSED])
    assert conn.their_http_version == "1.0" and not conn.keep_alive
    # RFC 9110 s2.5: a higher minor version is processed as the highest we implement.
    three_ways(get(version=b"HTTP/1.2"), [req(), EOM, PAUSED])


@pytest.mark.parametrize("method,target", [
    ("OPTIONS", "*"), ("CONNECT", "example.com:443"), ("CONNECT", "[::1]:8080"), ("GET", "/%7euser;p?q=/?#"),
    ("GET", "/a\"b<c>{d}|e^`"),
])
def test_target_forms(method, target):
    data = f"{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
    three_ways(data, [req(target, method), EOM, PAUSED])


@pytest.mark.parametrize("target,authority", [
    ("http://example.com/x?y", "example.com"), ("https://[::1]:8443?q", "[::1]:8443"),
    ("http://a.example:", "a.example:"), ("HTTP://H", "H"),
])
def test_absolute_form_authority_replaces_host(target, authority):
    # RFC 9112 s3.2.2: the server uses the target's host, not the Host field (raw_headers keep it).
    data = f"GET {target} HTTP/1.1\r\nHost: other\r\n\r\n".encode()
    three_ways(data, [req(target, headers={"host": authority}, raw=(("host", "other"),)), EOM, PAUSED])
    data = f"GET {target} HTTP/1.0\r\n\r\n".encode()
    three_ways(data, [req(target, version="1.0", headers={"host": authority}, raw=()), EOM, PAUSED])


@pytest.mark.parametrize("method,target", [
    ("GET", "*"), ("CONNECT", "/"), ("CONNECT", "example.com"), ("CONNECT", "http://a/"),
    ("GET", "example"), ("GET", "1http://x/"), ("GET", "?x"),
])
def test_bad_target_forms(method, target):
    error_three_ways(f"{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), 400)


def test_request_line_limit_414():
    ok = b"GET /" + b"a" * 86 + b" HTTP/1.1"  # 100 bytes
    three_ways(ok + b"\r\nHost: h\r\n\r\n", [req("/" + "a" * 86), EOM, PAUSED],
               max_request_line=100)
    error_three_ways(ok + b"\nHost: h\n\n", 400, max_request_line=100)  # bare LF, not 414
    error_three_ways(b"GET /a" + ok[5:] + b"\r\nHost: h\r\n\r\n", 414, max_request_line=100)


def test_request_line_limit_detected_before_line_end():
    from krait.errors import ProtocolError
    from krait.http import Connection

    from .http_helpers import feed
    conn = Connection(max_request_line=100)
    conn.receive_data(b"GET /" + b"a" * 96)  # 101 bytes, could still end with CR LF
    assert conn.next_event() is not None
    conn.receive_data(b"a")
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 414
    with pytest.raises(ProtocolError):
        feed(b"GET /" + b"a" * 200, max_request_line=100)
    with pytest.raises(ProtocolError) as info:  # line complete, head not yet
        feed(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n", max_request_line=100)
    assert info.value.status_hint == 414


# -- header fields -----------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    b" folded", b"\tfolded",              # obs-fold (RFC 9112 s5.2)
    b"Name : v", b"Name\t: v",            # whitespace before colon (s5.1)
    b"NoColon", b": v", b"Na(me: v", b"Na me: v", b"N\xe9: v",
    b"X: a\x00b", b"X: a\x01b", b"X: a\x7fb", b"X: a\x1fb", b"X: \x0b",
])
def test_bad_field_lines(line):
    error_three_ways(b"GET / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\n\r\n", 400)


def test_obs_fold_after_first_field():
    error_three_ways(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400)


def test_tab_and_obs_text_inside_values():
    data = b"GET / HTTP/1.1\r\nHost: h\r\nX: a\tb \x80\xff c\r\n\r\n"
    headers = {"host": "h", "x": "a\tb \x80\xff c"}
    three_ways(data, [req(headers=headers), EOM, PAUSED])


def test_header_line_limit_431():
    line = b"X: " + b"v" * 47  # 50 bytes
    three_ways(get(extra=line + b"\r\n"),
               [req(headers={"host": "h", "x": "v" * 47}), EOM, PAUSED], max_header_line=50)
    error_three_ways(get(extra=line + b"v\r\n"), 431, max_header_line=50)
    error_three_ways(get(extra=b"X: " + b"v" * 500), 431, max_header_line=50)  # incomplete


def test_header_block_limit_431():
    extra = b"".join(b"X%d: %s\r\n" % (i, b"v" * 40) for i in range(10))
    headers = {"host": "h", **{f"x{i}": "v" * 40 for i in range(10)}}
    three_ways(get(extra=extra), [req(headers=headers), EOM, PAUSED],
               max_header_block=len(H) + len(extra))
    error_three_ways(get(extra=extra), 431, max_header_block=len(H) + len(extra) - 1)
    error_three_ways(get(extra=extra * 100)[:-2], 431, max_header_block=1000)  # incomplete


def test_header_count_limit_431():
    extra = b"".join(b"X%d: v\r\n" % i for i in range(9))
    three_ways(get(extra=extra),
               [req(headers={"host": "h", **{f"x{i}": "v" for i in range(9)}}), EOM, PAUSED],
               max_header_count=10)
    error_three_ways(get(extra=extra + b"Y: v\r\n"), 431, max_header_count=10)
    error_three_ways(get(extra=extra * 5)[:-2], 431, max_header_count=10)  # incomplete


# -- Host --------------------------------------------------------------------------------

def test_host_rules():
    error_three_ways(b"GET / HTTP/1.1\r\n\r\n", 400)
    error_three_ways(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400)
    error_three_ways(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400)
    for bad in (b"a b", b"a/b", b"a@b", b"a:b:c", b"[::1", b"a\"b"):
        error_three_ways(b"GET / HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n", 400)
    for good in ("", "example.com", "example.com:8080", "[::1]:80", "127.0.0.1", "a-b.c_d~"):
        data = f"GET / HTTP/1.1\r\nHost: {good}\r\n\r\n".encode()
        three_ways(data, [req(headers={"host": good}), EOM, PAUSED])


# -- Content-Length ----------------------------------------------------------------------

def test_content_length_body():
    data = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    three_ways(data, [req("/p", "POST", headers={"host": "h", "content-length": "5"},
                          content_length=5), Data(b"hello"), EOM, PAUSED])
    data = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\nhello!!"
    three_ways(data, [req("/p", "POST", headers={"host": "h", "content-length": "007"},
                          content_length=7), Data(b"hello!!"), EOM, PAUSED])
    data = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    three_ways(data, [req("/p", "POST", headers={"host": "h", "content-length": "0"},
                          content_length=0), EOM, PAUSED])


@pytest.mark.parametrize("value", [b"0, 0", b"+5", b"-1", b"5 5", b"0x10", b"", b"1.0",
                                   b"\xb2", b"5,", b"abc"])
def test_bad_content_length(value):
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + value + b"\r\n\r\n",
                     400)


def test_two_content_lengths_even_equal():
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                     b"Content-Length: 1\r\n\r\nx", 400)


def test_content_length_over_limit_413_before_body():
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", 413,
                     max_body_size=100)
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"9" * 5000
                     + b"\r\n\r\n", 413)
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 101\r\n\r\n", 413, max_body_size=100)


# -- Transfer-Encoding -------------------------------------------------------------------

def chunked_req(extra=b""):
    return b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + extra + b"\r\n"


CHUNKED = req("/", "POST", headers={"host": "h", "transfer-encoding": "chunked"}, chunked=True)


def test_transfer_encoding_rules():
    error_three_ways(chunked_req(b"Content-Length: 3\r\n") + b"0\r\n\r\n", 400)
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n", 400)
    for bad in (b"gzip", b"chunked, chunked", b"chunked, gzip", b"chunked;x=1", b"",
                b"chunked\r\nTransfer-Encoding: chunked"):
        error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + bad
                         + b"\r\n\r\n", 400)
    error_three_ways(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                     501)
    error_three_ways(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
    data = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"
    three_ways(data, [req("/", "POST", headers={"host": "h", "transfer-encoding": "Chunked"},
                          chunked=True), EOM, PAUSED])


def test_chunked_body():
    body = b"5\r\nhello\r\n1A;name=val;q=\"a \\\" b\" ; x\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n"
    three_ways(chunked_req() + body, [CHUNKED, Data(b"hello" + b"z" * 26), EOM, PAUSED])
    body = b"5\r\nhello\r\n000\r\n\r\n"
    three_ways(chunked_req() + body, [CHUNKED, Data(b"hello"), EOM, PAUSED])
    error_three_ways(chunked_req() + b"5\nhello\r\n000\n\n", 400)  # CRLF only (s7.1)
    body = b"a\r\n0123456789\r\n0000000000000000\r\n\r\n"
    three_ways(chunked_req() + body, [CHUNKED, Data(b"0123456789"), EOM, PAUSED])


def test_the_chunks_of_one_read_come_as_one_data_event():
    # A body of 1-byte chunks cost one event (and all the work above the parser) per byte.
    conn = Connection()
    conn.receive_data(chunked_req() + b"1\r\nx\r\n" * 1000 + b"2\r\nyz\r\n0\r\n\r\n")
    assert conn.next_event() == CHUNKED
    assert conn.next_event() == Data(b"x" * 1000 + b"yz")
    assert conn.next_event() == EOM
    conn = Connection()  # a chunk cut by the end of a read: what is there comes, the rest follows
    conn.receive_data(chunked_req() + b"1\r\nx\r\n4\r\nab")
    assert [conn.next_event(), conn.next_event(), conn.next_event()] == [CHUNKED, Data(b"xab"), NEED_DATA]
    conn.receive_data(b"cd\r\n0\r\n\r\n")
    assert [conn.next_event(), conn.next_event()] == [Data(b"cd"), EOM]


def test_chunked_trailers():
    body = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nx-sum: 2\r\nOther:  v \r\n\r\n"
    three_ways(chunked_req() + body,
               [CHUNKED, Data(b"abc"), EndOfMessage({"x-sum": "1, 2", "other": "v"}), PAUSED])
    body = b"0\r\nT: v\r\n\r\n"
    three_ways(chunked_req() + body, [CHUNKED, EndOfMessage({"t": "v"}), PAUSED])
    error_three_ways(chunked_req() + b"0\r\nT: v\n\r\n", 400)  # CRLF only (RFC 9112 s2.2)


@pytest.mark.parametrize("body", [
    b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b" 5\r\nhello\r\n0\r\n\r\n",
    b"5 \r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n", b"\r\n", b"g\r\n",
    b"5\r\nhelloXY0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n", b"5\r\nhello\r0\r\n\r\n",
    b"5;\r\nhello\r\n0\r\n\r\n", b"5;a=\x01\r\nhello\r\n0\r\n\r\n", b"5;a=\"x\r\nhello\r\n",
    b"5\rhello\r\n0\r\n\r\n", b"1" * 17 + b"\r\n", b"0\r\nBad Name: v\r\n\r\n",
    b"0\r\n folded\r\n\r\n", b"0\r\nX: \x00\r\n\r\n", b"0\r\n\rX\r\n\r\n",
])
def test_bad_chunked(body):
    error_three_ways(chunked_req() + body, 400)


def test_chunked_limits():
    error_three_ways(chunked_req() + b"65\r\n" + b"x" * 101 + b"\r\n0\r\n\r\n", 413,
                     max_body_size=100)
    error_three_ways(chunked_req() + b"32\r\n" + b"x" * 50 + b"\r\n33\r\n", 413,
                     max_body_size=100)
    error_three_ways(chunked_req() + b"FFFFFFFFFFFFFFFF\r\n", 413)
    # The framing counts: 30 chunks of one byte are 180 bytes on the wire, past a limit of 100.
    error_three_ways(chunked_req() + b"1\r\nx\r\n" * 30 + b"0\r\n\r\n", 413, max_body_size=100)
    three_ways(chunked_req() + b"1\r\nx\r\n" * 15 + b"0\r\n\r\n", [CHUNKED, Data(b"x" * 15), EOM, PAUSED],
               max_body_size=100)
    ext = b"5;" + b"a" * 20
    three_ways(chunked_req() + ext + b"\r\nhello\r\n0\r\n\r\n", [CHUNKED, Data(b"hello"), EOM,
               PAUSED], max_chunk_line=22)
    error_three_ways(chunked_req() + ext + b"a\r\nhello\r\n0\r\n\r\n", 400, max_chunk_line=22)
    error_three_ways(chunked_req() + ext + b"a\nhello\r\n0\r\n\r\n", 400, max_chunk_line=22)
    error_three_ways(chunked_req() + ext * 10, 400, max_chunk_line=22)  # no line end yet
    error_three_ways(chunked_req() + b"0\r\nX: " + b"v" * 100 + b"\r\n\r\n", 431,
                     max_header_line=50)
    error_three_ways(chunked_req() + b"0\r\nX: " + b"v" * 100, 431, max_header_line=50)
    error_three_ways(chunked_req() + b"0\r\nX: " + b"v" * 100 + b"\r\nY", 431,
                     max_header_line=50, pipelined=False)
    error_three_ways(chunked_req() + b"0\r\n" + b"X: v\r\n" * 11, 431, max_header_count=10,
                     pipelined=False)
    error_three_ways(chunked_req() + b"0\r\n" + b"X: v\r\n" * 30, 431, max_header_block=100,
                     pipelined=False)


# -- Expect ------------------------------------------------------------------------------

def test_expect():
    data = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n"
    headers = {"host": "h", "expect": "100-Continue", "content-length": "0"}
    three_ways(data, [req("/", "POST", headers=headers, content_length=0), EOM, PAUSED])  # no content: no 100
    data = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"
    headers = {"host": "h", "expect": "100-Continue", "content-length": "1"}
    three_ways(data, [req("/", "POST", headers=headers, expect_continue=True, content_length=1), Data(b"x"),
                      EOM, PAUSED])
    data = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"
    three_ways(data, [req("/", "POST", "1.0", headers={"expect": "100-continue"}), EOM, PAUSED])
    error_three_ways(get(extra=b"Expect: 200-ok\r\n"), 417)
    error_three_ways(get(extra=b"Expect: 100-continue, x\r\n"), 417)
    error_three_ways(b"GET / HTTP/1.0\r\nExpect: foo\r\n\r\n", 417)


# -- keep-alive (RFC 9112 s9.3) ---------------------------------------------------------

@pytest.mark.parametrize("version,connection,keep", [
    (b"HTTP/1.1", None, True), (b"HTTP/1.1", b"close", False), (b"HTTP/1.1", b"Close", False),
    (b"HTTP/1.1", b"keep-alive", True), (b"HTTP/1.1", b"upgrade, CLOSE", False),
    (b"HTTP/1.0", None, False), (b"HTTP/1.0", b"Keep-Alive", True),
    (b"HTTP/1.0", b"foo ,keep-alive", True), (b"HTTP/1.0", b"keep-alive, close", False),
    (b"HTTP/1.1", b"closed", True),
])
def test_keep_alive(version, connection, keep):
    extra = b"" if connection is None else b"Connection: " + connection + b"\r\n"
    conn = three_ways(b"GET / " + version + b"\r\nHost: h\r\n" + extra + b"\r\n",
                      [req(version=version[5:].decode(), keep_alive=keep,
                           headers={"host": "h", **({} if connection is None else
                                                    {"connection": connection.decode()})}),
                       EOM, PAUSED])
    assert conn.keep_alive is keep


# -- EOF ---------------------------------------------------------------------------------

def test_eof_between_requests():
    three_ways(b"", [ConnectionClosed()], eof=True)
    conn = three_ways(get(), [req(), EOM, PAUSED])
    conn.receive_data(b"")
    assert conn.next_event() is PAUSED
    conn.send_full(200, [], b"")
    assert type(conn.next_event()) is ConnectionClosed
    assert type(conn.next_event()) is ConnectionClosed
    three_ways(b"\r\n\r\n", [ConnectionClosed()], eof=True)


@pytest.mark.parametrize("data", [
    b"G", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: h\r\n", b"\r",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
    chunked_req(), chunked_req(b"") + b"5\r\nhel", chunked_req() + b"5\r\nhello\r\n",
    chunked_req() + b"0\r\n", chunked_req() + b"0\r\nX: y\r\n",
])
def test_eof_mid_request_400(data):
    error_three_ways(data, 400, eof=True)
