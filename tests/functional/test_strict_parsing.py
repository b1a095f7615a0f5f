"""Strict framing against the real server over raw sockets (RFC 9112 s2.2, s3.2.2, s7.1).

A bare LF inside a CRLF head can frame a second request for a lenient server while a front end
sees one; an invalid absolute-form host must not reach the site. Each case gets exactly one 400
with Connection: close, and the bytes after it are never answered.
"""

from __future__ import annotations

import re
import time

from tests.helpers import read_all

STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")
SECOND = b"GET /secret.txt HTTP/1.1\r\nHost: a\r\n\r\n"
SMUGGLE = b"GET /ok.txt HTTP/1.1\r\nHost: a\r\nDummy: x\nContent-Length: 23\r\n\r\n" + SECOND
FILES = {"ok.txt": "OK-FILE", "secret.txt": "SECRET-FILE"}
ECHO = {  # a POST route whose script needs the whole body, so body framing errors come first
    ".py/init.py": "import krait\nkrait.config.routes = [krait.config.Route('POST', url='/echo'),"
                   " krait.config.Route()]\n",
    "echo.py": "krait.response = krait.Response('HTTP/1.1', 200, [], repr(krait.request.body))\n",
}


def assert_one_400(raw: bytes) -> None:
    assert [int(s) for s in STATUS_LINE.findall(raw)] == [400], raw[:400]
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    fields = {k.strip().lower(): v.strip().lower() for k, v in fields.items()}
    assert fields[b"connection"] == b"close", raw[:400]
    assert int(fields[b"content-length"]) == len(body)
    assert b"OK-FILE" not in raw and b"SECRET-FILE" not in raw


def test_bare_lf_smuggling_gets_one_400(krait_server, make_site):
    server = krait_server(make_site(FILES))
    assert_one_400(server.raw(SMUGGLE))
    # Sent slowly, in pieces split around the bare LF, the outcome is the same.
    with server.connect() as s:
        for piece in (SMUGGLE[:30], SMUGGLE[30:36], SMUGGLE[36:70], SMUGGLE[70:]):
            s.sendall(piece)
            time.sleep(0.05)
        assert_one_400(read_all(s))
    # The server keeps serving well-formed requests on new connections.
    ok = server.raw(b"GET /ok.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"OK-FILE"), ok[:200]


def test_other_strict_framing_cases_get_one_400(krait_server, make_site):
    server = krait_server(make_site(dict(FILES, **ECHO)))
    chunked = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    for raw in (
        b"PUT s://]ufd/: HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET http://[zz]/ok.txt HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\nHost: a\n\n",
        chunked + b"5\nhello\r\n0\r\n\r\n",
        chunked + b"5\r\nhello\r\n0\r\nT: v\n\r\n",
        chunked + b"5\r\nhello\r\n0\r\n\n",
    ):
        assert_one_400(server.raw(raw + SECOND))
    # The well-formed forms of the same requests are served.
    ok = server.raw(b"GET http://a/ok.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"OK-FILE"), ok[:200]
    ok = server.raw(chunked.replace(b"Host: a", b"Host: a\r\nConnection: close")
                    + b"5\r\nhello\r\n0\r\nT: v\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"b'hello'"), ok[:300]


def test_an_absolute_form_target_names_the_host_scripts_see(krait_server, make_site):
    # RFC 9112 s3.2.2: the target's authority, not the Host field, is the request's host.
    server = krait_server(make_site({"host.py": "krait.response = krait.Response('HTTP/1.1', 200, [],"
                                                " krait.request.headers['host'])\n"}))
    raw = server.raw(b"GET http://site.example:8080/host.py HTTP/1.1\r\nHost: other.example\r\n"
                     b"Connection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\nsite.example:8080"), raw[:300]
