"""Strict framing found by external corpora: absolute-form authorities (RFC 9112 s3.2.2,
RFC 3986 s3.2.2), bare LF in a request head (RFC 9112 s2.2) and in chunked framing
(RFC 9112 s7.1). Each input is fed whole, byte by byte and followed by a pipelined request."""

import ipaddress
import itertools
import re

import pytest

from krait.http import PAUSED, Data, EndOfMessage, abnf

from .http_helpers import EOM, error_three_ways, req, three_ways

# -- absolute-form: scheme and authority (RFC 9112 s3.2.2, RFC 3986 s3.1, s3.2) ----------

GOOD_ABSOLUTE = [
    "http://example.com:8080/x?y", "https://[::1]/", "http://example.com", "http://a?q=/x",
    "HTTP://EXAMPLE.COM/", "h+t-t.p://a/", "http://127.0.0.1:80/", "http://a:/",
    "http://[2001:db8::7]:8443/p", "http://[::ffff:192.0.2.1]/", "http://[v1.fe:x]/",
    "http://a%41b.c/", "http://a-b_c~d!$&'()*+,;=e/",
]


@pytest.mark.parametrize("target", GOOD_ABSOLUTE)
def test_valid_absolute_form_accepted(target):
    data = f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
    authority = re.split(r"[/?]", target.split("://", 1)[1], maxsplit=1)[0]  # it replaces Host (s3.2.2)
    three_ways(data, [req(target, headers={"host": authority}, raw=(("host", "h"),)), EOM, PAUSED])


BAD_ABSOLUTE = [
    "s://]ufd/:",                 # the corpus case: "]" is no host character
    "http://]/", "http://[/", "http://[::1/", "http://::1/", "http://[::1]x/",
    "http://[1:2:3:4:5:6:7:8:9]/", "http://[1::2::3]/", "http://[12345::]/",
    "http://[::256.1.1.1]/", "http://[fe80::1%25eth0]/", "http://[v1.]/", "http://[zz]/",
    "http://a:b/",                # port = *DIGIT
    "http://a:80:80/", "http://u@a/", "http://u:p@a/",  # userinfo (RFC 9110 s4.2.4)
    "http://a%zz/", "http://a%4/", "http://a\"b/", "http://a<b/", "http://a#f",
    "http:///x", "http://", "http://:80/", "http://?x",  # empty host (RFC 9110 s4.2.1)
]


@pytest.mark.parametrize("target", BAD_ABSOLUTE)
def test_invalid_absolute_form_authority_400(target):
    err = error_three_ways(f"PUT {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), 400)
    assert "absolute-form" in str(err)


@pytest.mark.parametrize("target", ["mailto:x@y", "http:/x", "urn:isbn:1", "http:x"])
def test_absolute_form_without_authority_400(target):
    err = error_three_ways(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), 400)
    assert "without an authority" in str(err)


@pytest.mark.parametrize("target", ["1http://x/", "-a://x/", "+://x/", "://x/", "a_b://x/"])
def test_invalid_scheme_400(target):
    err = error_three_ways(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), 400)
    assert "invalid request target form" in str(err)


def test_corpus_absolute_form_never_reaches_the_application():
    data = b"PUT s://]ufd/: HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    error_three_ways(data, 400)


@pytest.mark.parametrize("host", ["[zz]", "[::1::2]", "[1.2.3.4]", "a%zz", "a%4", "[v1.]"])
def test_host_field_uses_the_same_host_syntax(host):
    # RFC 9112 s3.2: a Host field "with an invalid field value" MUST get a 400.
    error_three_ways(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 400)


@pytest.mark.parametrize("host", ["[::1]", "[::1]:8080", "[v7.a]", "a%20b", "[A:B:C:D:E:F:1.2.3.4]"])
def test_host_field_ip_literals_accepted(host):
    three_ways(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
               [req(headers={"host": host}), EOM, PAUSED])


@pytest.mark.parametrize("target", ["[::1]:443", "[2001:db8::1]:8443", "[v1.x]:1"])
def test_connect_ip_literal(target):
    three_ways(f"CONNECT {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
               [req(target, "CONNECT"), EOM, PAUSED])
    error_three_ways(f"CONNECT {target[1:]} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), 400)


def test_ipv6_pattern_agrees_with_ipaddress():
    literal = re.compile(abnf.URI_HOST)

    def agrees(text: str) -> None:
        try:
            ipaddress.IPv6Address(text)
            valid = True
        except ValueError:
            valid = False
        assert bool(literal.fullmatch("[" + text + "]")) == valid, text

    pieces = ["0", "1", "ff", "FFFF", "abcd", "12345", "g", "1.2.3.4", "255.255.255.255",
              "256.1.1.1", "01.2.3.4", "", ":"]
    seen = 0
    # every join of up to 4 pieces, then some longer forms
    for n in range(1, 5):
        for combo in itertools.product(pieces, repeat=n):
            agrees(":".join(combo))
            seen += 1
    for text in ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
                 "1::8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", ":1:2:3:4:5:6:7", "1::2::3"]:
        agrees(text)
    assert seen > 30000


# -- bare LF in a request head (RFC 9112 s2.2; Krait accepts CRLF only) ------------------

SMUGGLE = (b"GET / HTTP/1.1\r\nHost: a\r\nDummy: x\nContent-Length: 23\r\n\r\n"
           b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n")


def test_bare_lf_smuggling_payload_400_and_final():
    # A front end that ends lines only at CRLF sees one request with a 23-byte body
    # ("GET /admin ..." minus its tail); a lenient server would see Content-Length: 23 too,
    # or two requests if Dummy swallowed it. Either way: one 400 and nothing more parsed.
    err = error_three_ways(SMUGGLE, 400)
    assert "bare LF" in str(err)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: h\r\n\r\n",                   # request line
    b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",           # first field line
    b"GET / HTTP/1.1\r\nHost: h\r\nX: y\nZ: w\r\n\r\n",   # a middle field line
    b"GET / HTTP/1.1\r\nHost: h\r\nX: y\n\r\n",           # the last field line
    b"GET / HTTP/1.1\r\nHost: h\r\n\n",                   # the empty line ending the head
    b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\n",
    b"GET / HTTP/1.1\nHost: h\n\n",                       # a head of bare LFs only
    b"GET / HTTP/1.0\r\n\n",                              # no fields, bare LF empty line
    b"GET / HTTP/1.0\n\r\n",
    b"GET / HTTP/1.0\n\n",
    b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",               # an "empty line" before the request
    b"\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n",     # LF inside what looks like a value
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\n b\r\n\r\n",    # ... or an obs-fold
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\n\r\nabc",
])
def test_bare_lf_anywhere_in_the_head_400(data):
    err = error_three_ways(data, 400)
    assert "bare LF" in str(err), str(err)


def test_bare_lf_in_a_pipelined_second_request():
    from krait.http import Connection, ProtocolError

    conn = Connection()
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" + SMUGGLE)
    assert conn.next_event() == req("/1")
    assert conn.next_event() == EOM
    assert conn.next_event() is PAUSED
    conn.send_full(200, [], b"ok")
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400 and not conn.keep_alive
    # the error response carries Connection: close
    assert b"connection: close" in conn.send_full(400, [], b"").lower()


def test_crlf_heads_unchanged():
    data = b"GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\n\r\n"
    three_ways(data, [req(headers={"host": "h", "x": "a\tb"}), EOM, PAUSED])
    three_ways(b"\r\n" + data, [req(headers={"host": "h", "x": "a\tb"}), EOM, PAUSED])


# -- bare LF in chunked framing (RFC 9112 s7.1: CRLF after the size line and the data) ----

CHUNKED_REQ = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED = req("/", "POST", headers={"host": "h", "transfer-encoding": "chunked"}, chunked=True)


@pytest.mark.parametrize("body,message", [
    (b"5\nhello\r\n0\r\n\r\n", "bare LF ending a chunk-size line"),
    (b"5;a=b\nhello\r\n0\r\n\r\n", "bare LF ending a chunk-size line"),
    (b"5;a=\"x\"\nhello\r\n0\r\n\r\n", "bare LF ending a chunk-size line"),
    (b"5\r\nhello\r\n0\n\r\n", "bare LF ending a chunk-size line"),        # the last chunk
    (b"0\n\n", "bare LF ending a chunk-size line"),
    (b"5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),         # after the data
    (b"5\r\nhello\n\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
    (b"5\r\nhello\r\n0\r\n\n", "bare LF ending the chunked body"),        # empty trailers
    (b"5\r\nhello\r\n0\r\nT: v\n\r\n", "bare LF ending a field line"),     # a trailer line
    (b"5\r\nhello\r\n0\r\nT: v\r\nU: w\n\r\n", "bare LF ending a field line"),
    (b"5\r\nhello\r\n0\r\nT: v\r\n\n", "bare LF as the empty line"),       # trailer section end
])
def test_bare_lf_in_chunked_framing_400(body, message):
    err = error_three_ways(CHUNKED_REQ + body, 400)
    assert message in str(err), str(err)


def test_bare_lf_chunk_line_smuggling():
    # A front end ending the size line only at CRLF would read "5\nhello..." differently.
    err = error_three_ways(CHUNKED_REQ + b"5\nhello\r\n0\r\n\r\n" + b"GET /x HTTP/1.1\r\n"
                           b"Host: h\r\n\r\n", 400)
    assert "chunk-size" in str(err)


def test_crlf_chunked_unchanged():
    body = b"5;x=\"y\"\r\nhello\r\n0\r\nT: v\r\n\r\n"
    three_ways(CHUNKED_REQ + body, [CHUNKED, Data(b"hello"), EndOfMessage({"t": "v"}), PAUSED])
    three_ways(CHUNKED_REQ + b"0\r\n\r\n", [CHUNKED, EOM, PAUSED])
