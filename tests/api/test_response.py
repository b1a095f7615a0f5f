"""krait.Response, its subclasses and response_parts()."""

import pytest

import krait
from krait._response import reason_phrase, response_parts


def test_response_basics():
    r = krait.Response("HTTP/1.1", 201, [("X-A", "1")], "h\u00e9")
    assert (r.http_version, r.status_code, r.headers, r.body) == ("HTTP/1.1", 201, [("X-A", "1")], "h\u00e9")
    assert str(r) == "HTTP/1.1 201 Created\r\nX-A: 1\r\n\r\nh\u00e9"
    assert response_parts(r) == (201, "Created", [("X-A", "1")], "h\u00e9".encode())
    assert "201" in repr(r)


def test_response_json_encodes_utf8_with_its_content_type():
    r = krait.ResponseJSON({"name": "J\u00fcrgen", "tags": ["a"], "n": None})
    assert isinstance(r, krait.Response)
    assert (r.status_code, r.data) == (200, {"name": "J\u00fcrgen", "tags": ["a"], "n": None})
    assert r.headers == [("Content-Type", "application/json; charset=utf-8")]
    assert r.body == '{"name": "J\u00fcrgen", "tags": ["a"], "n": null}'.encode()
    assert response_parts(r)[:3] == (200, "OK", [("Content-Type", "application/json; charset=utf-8")])
    created = krait.ResponseJSON([1], 201, [("Location", "/items/1")])
    assert created.status_code == 201
    assert created.headers == [("Location", "/items/1"), ("Content-Type", "application/json; charset=utf-8")]
    problem = krait.ResponseJSON({}, 422, [("content-type", "application/problem+json")])
    assert problem.headers == [("content-type", "application/problem+json")]
    with pytest.raises(TypeError):
        krait.ResponseJSON({"when": object()})
    with pytest.raises(ValueError, match="not JSON compliant"):  # RFC 8259 section 6: no NaN, no infinity
        krait.ResponseJSON({"mean": float("nan")})
    # A lone surrogate (os.listdir() of a name that is not UTF-8) goes out as its escape, not as a 500.
    assert krait.ResponseJSON(["caf\u00e9", "\udcff"]).body == b'["caf\\u00e9", "\\udcff"]'
    with pytest.raises(ValueError):
        krait.ResponseJSON([], 99)


def test_response_defaults_and_versions():
    r = krait.Response("HTTP/1.0", 204, None, None)
    assert r.headers == [] and r.body == b""
    assert str(r) == "HTTP/1.0 204 No Content\r\n\r\n"
    assert response_parts(krait.Response("HTTP/1.1", 200, [], b"\x00\xff")) == (200, "OK", [], b"\x00\xff")
    assert response_parts(krait.Response("HTTP/1.1", 200, [], bytearray(b"x")))[3] == b"x"
    assert response_parts(krait.Response("HTTP/1.1", 200, [], 42))[3] == b"42"
    assert str(krait.Response("HTTP/1.1", 200, [], b"caf\xc3\xa9")).endswith("caf\u00e9")


@pytest.mark.parametrize("version, code", [("HTTP/2", 200), ("http/1.1", 200), ("HTTP/1.1", 99),
                                           ("HTTP/1.1", 600), ("HTTP/1.1", "200"), ("HTTP/1.1", True)])
def test_response_rejects(version, code):
    with pytest.raises(ValueError):
        krait.Response(version, code, [], "")


def test_reason_phrase():
    assert reason_phrase(404) == "Not Found"
    assert reason_phrase(299) == ""
    assert response_parts(krait.Response("HTTP/1.1", 299, [], ""))[1] == ""


def test_not_found():
    r = krait.ResponseNotFound([("X-A", "1")])
    assert r.status_code == 404
    assert len(r.body.encode()) == 89
    assert r.body == "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"
    assert r.headers == [("X-A", "1"), ("Content-Type", "text/html; charset=utf-8")]
    assert krait.ResponseNotFound([("content-type", "text/plain")]).headers == [("content-type", "text/plain")]


def test_bad_request_says_400():
    r = krait.ResponseBadRequest()
    assert r.status_code == 400
    assert "<h1>400 Bad Request</h1>" in r.body and "404" not in r.body
    assert response_parts(r)[:2] == (400, "Bad Request")


def test_redirect_location_verbatim():
    r = krait.ResponseRedirect("/db?x=a b&y=/z", [("X-A", "1")])
    assert r.status_code == 302 and r.body == b""
    assert r.headers == [("X-A", "1"), ("Location", "/db?x=a b&y=/z")]
    assert str(r) == "HTTP/1.1 302 Found\r\nX-A: 1\r\nLocation: /db?x=a b&y=/z\r\n\r\n"
    assert krait.ResponseRedirect("/a").headers == [("Location", "/a")]


class RawText:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


@pytest.mark.parametrize("text, expected", [
    ("HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B:2 \r\n\r\nbody\r\n\r\nmore",
     (200, "OK", [("X-A", "1"), ("X-B", "2")], b"body\r\n\r\nmore")),
    ("HTTP/1.1 404 Gone Away\r\n\r\nno headers", (404, "Gone Away", [], b"no headers")),
    ("HTTP/1.0 302\r\nLocation: /x\r\n\r\n", (302, "Found", [("Location", "/x")], b"")),
    ("HTTP/1.1 204 No Content\r\n", (204, "No Content", [], b"")),
    ("HTTP/1.1 200 OK\r\n\r\ncaf\u00e9", (200, "OK", [], "caf\u00e9".encode())),
])
def test_parts_from_raw_text(text, expected):
    assert response_parts(RawText(text)) == expected
    assert response_parts(text) == expected


def test_parts_from_a_subclass_str_roundtrip():
    r = krait.Response("HTTP/1.1", 418, [("X-T", "v")], "tea")
    assert response_parts(RawText(str(r))) == response_parts(r)


@pytest.mark.parametrize("text", [
    "", "garbage", "HTTP/1.1 200 OK", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/9 200 OK\r\n\r\n",
    "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 200 OK\r\n: v\r\n\r\n",
])
def test_parts_invalid_text(text):
    with pytest.raises(ValueError):
        response_parts(RawText(text))
