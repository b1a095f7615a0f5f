"""krait.Request: attributes, query and urlencoded forms (one value or all), JSON bodies,
multipart/form-data, str()."""

import pytest

import krait
from krait._request import parse_header_params
from krait.errors import BadRequest, InvalidJSON


def make(url="/", qs="", headers=(), body=b"", **kw):
    return krait.Request("GET", url, qs, "HTTP/1.1", headers, body, **kw)


# --- attributes ------------------------------------------------------------------------------

def test_attributes_and_header_normalisation():
    r = krait.Request("POST", "/a%20b/%C3%A9", "x=1", "HTTP/1.1",
                      [("Host", "h"), (b"X-Raw", b"caf\xe9"), ("Accept", "a"), ("ACCEPT", "b")], b"data",
                      remote_addr=("127.0.0.1", 5000), scheme="https")
    assert r.http_method == "POST"
    assert r.url == "/a%20b/%C3%A9"
    assert r.path == "/a b/\u00e9"
    assert r.query_string == "x=1"
    assert r.http_version == "HTTP/1.1"
    assert r.headers == {"host": "h", "x-raw": "caf\u00e9", "accept": "a, b"}
    assert r.body == b"data"
    assert r.remote_addr == r.client_address == ("127.0.0.1", 5000)
    assert r.scheme == "https"


def test_defaults_and_body_types():
    r = krait.Request("GET", "/", None, "HTTP/1.1", None, None)
    assert r.headers == {} and r.body == b"" and r.query_string == "" and r.query == {}
    assert r.remote_addr is None and r.scheme == "http" and r.path == "/"
    assert make(body="h\u00e9").body == "h\u00e9".encode()
    assert make(body=bytearray(b"ab")).body == b"ab"
    assert make(headers={"Host": "x"}).headers == {"host": "x"}


def test_path_given_is_kept_and_bad_utf8_is_400():
    assert make("/%41", path="/given").path == "/given"
    with pytest.raises(BadRequest) as exc:
        make("/%ff")
    assert exc.value.status == 400


def test_multipartformdata_exposed():
    assert krait.Request.MultipartFormData is krait.MultipartFormData
    assert krait.Request.MultipartFormData._fields == ("data", "name", "filename", "content_type")


# --- query and forms ---------------------------------------------------------------------------

@pytest.mark.parametrize("qs, expected", [
    ("a=1&b=x+y&c", {"a": "1", "b": "x y", "c": ""}),
    ("name=Jane+Doe&text=Hi%21&flag", {"name": "Jane Doe", "text": "Hi!", "flag": ""}),
    ("a=b=c", {"a": "b=c"}),
    ("a=1&a=2", {"a": "2"}),
    ("a=1&&b=2", {"a": "1", "b": "2"}),
    ("q=%E2%82%AC", {"q": "\u20ac"}),
    ("q=%ff", {"q": "\ufffd"}),
    ("%61=%62", {"a": "b"}),
    ("", {}),
])
def test_query(qs, expected):
    assert make(qs=qs).query == expected


def test_query_is_cached_and_accepts_bytes():
    r = make(qs="a=1")
    assert r.query is r.query
    assert make(qs=b"a=%C3%A9").query == {"a": "\u00e9"}


def test_post_form():
    r = make(body=b"name=J%C3%BCrgen+M&x=a%26b&empty=&flag")
    assert r.get_post_form() == {"name": "J\u00fcrgen M", "x": "a&b", "empty": "", "flag": ""}
    assert make(body="caf\u00e9=cr\u00e8me".encode()).get_post_form() == {"caf\u00e9": "cr\u00e8me"}
    assert make().get_post_form() == {}


def test_repeated_keys_all_values_in_order_while_query_keeps_the_last():
    r = make(qs="tag=b&x=1&tag=a&tag=&tag=b", body=b"news=yes&topic=py&topic=web&topic=py")
    assert r.query_all == {"tag": ["b", "a", "", "b"], "x": ["1"]}
    assert list(r.query_all) == ["tag", "x"]
    assert r.query == {"tag": "b", "x": "1"}  # 0.5.2's meaning is kept
    assert r.query_all is r.query_all
    assert r.get_post_form_all() == {"news": ["yes"], "topic": ["py", "web", "py"]}
    assert r.get_post_form() == {"news": "yes", "topic": "py"}
    assert make(qs=b"k=%C3%A9&k=+").query_all == {"k": ["\u00e9", " "]}
    assert make().query_all == {} and make().get_post_form_all() == {}


# --- JSON bodies -----------------------------------------------------------------------------

def test_get_json_parses_utf8_whatever_the_content_type():
    body = '{"name": "J\u00fcrgen", "tags": ["a", "b"], "n": 1.5, "ok": true, "none": null}'.encode()
    r = make(headers={"content-type": "text/plain"}, body=body)
    assert r.get_json() == {"name": "J\u00fcrgen", "tags": ["a", "b"], "n": 1.5, "ok": True, "none": None}
    assert make(body=b"[1, 2]").get_json() == [1, 2]
    assert make(body=b' "just a string" ').get_json() == "just a string"


@pytest.mark.parametrize("body, says", [
    (b"", "the request body is empty, not JSON"),
    (b'{"a": 1,}', "the request body is not valid JSON: Expecting property name enclosed in double quotes: "
                   "line 1 column 9 (char 8)"),
    (b"name=Ana", "the request body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'"caf\xe9"', "the request body is not UTF-8: 'utf-8' codec can't decode byte 0xe9 in position 4"),
    (b"[" * 100000, "the request body's JSON is nested too deeply"),
    (b"1" * 5000, "the request body is not valid JSON: Exceeds the limit"),  # sys.get_int_max_str_digits()
    (b'[1, -Infinity]', "the request body is not valid JSON: -Infinity is no JSON number (RFC 8259 section 6)"),
    (b'{"\\udc00": 1}', "the request body's JSON holds a lone surrogate escape"),
])
def test_get_json_refuses_what_is_not_json_with_a_400_naming_the_problem(body, says):
    with pytest.raises(InvalidJSON) as info:
        make(body=body).get_json()
    assert str(info.value).startswith(says)
    assert info.value.status == 400
    assert isinstance(info.value, BadRequest) and isinstance(info.value, ValueError)


# --- multipart -------------------------------------------------------------------------------

BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
BINARY = bytes(range(256)) + b"\r\n--not-a-boundary\r\n\x00\r\n\r\n\xff\xfe"


def multipart(parts, boundary=BOUNDARY, preamble=b"", epilogue=b"", close=True):
    b = boundary.encode()
    out = preamble
    for i, (headers, data) in enumerate(parts):
        out += (b"\r\n" if (i or preamble) else b"") + b"--" + b + b"\r\n"
        out += b"".join(h + b"\r\n" for h in headers) + b"\r\n" + data
    if close:
        out += b"\r\n--" + b + b"--\r\n" + epilogue
    return out


def form(body, ctype=f"multipart/form-data; boundary={BOUNDARY}"):
    return make(headers={"Content-Type": ctype}, body=body).get_multipart_form()


def test_multipart_fields_and_binary_file_byte_exact():
    body = multipart([
        ([b'Content-Disposition: form-data; name="title"'], "Cr\u00e8me br\u00fbl\u00e9e".encode()),
        ([b'Content-Disposition: form-data; name="upload"; filename="d\xc3\xa9j\xc3\xa0.bin"',
          b"Content-Type: application/octet-stream"], BINARY),
        ([b'Content-Disposition: form-data; name="empty"'], b""),
    ])
    parts = form(body)
    assert parts == [
        krait.MultipartFormData("Cr\u00e8me br\u00fbl\u00e9e".encode(), "title", None, "text/plain"),
        krait.MultipartFormData(BINARY, "upload", "d\u00e9j\u00e0.bin", "application/octet-stream"),
        krait.MultipartFormData(b"", "empty", None, "text/plain"),
    ]
    assert parts[1].data == BINARY  # byte-exact, NUL, CRLF and non-UTF-8 included


def test_multipart_preamble_epilogue_padding_and_header_case():
    b = BOUNDARY.encode()
    body = (b"preamble text\r\n--" + b + b"  \r\n"
            b'content-disposition: FORM-DATA; NAME=a; filename="x;y \\"q\\".txt"\r\n'
            b"CONTENT-TYPE: text/csv; charset=utf-8\r\n\r\n1,2\r\n--" + b + b"--\r\nepilogue")
    assert form(body) == [krait.MultipartFormData(b"1,2", "a", 'x;y "q".txt', "text/csv; charset=utf-8")]


def test_multipart_file_names_keep_their_backslashes():
    # As browsers send them (WHATWG HTML): only '"' would be escaped, and they send it as %22.
    body = multipart([([b'Content-Disposition: form-data; name=f; filename="C:\\dir\\a\\\\b.txt"'], b"x")])
    assert form(body)[0].filename == "C:\\dir\\a\\\\b.txt"


def test_multipart_content_type_variants():
    body = multipart([([b'Content-Disposition: form-data; name="a"'], b"1")], boundary="xyz")
    expected = [krait.MultipartFormData(b"1", "a", None, "text/plain")]
    assert form(body, 'multipart/form-data; charset=utf-8; boundary="xyz"') == expected
    assert form(body, "Multipart/Form-Data;boundary=xyz") == expected
    assert form(body, "multipart/mixed; boundary=xyz") is None
    assert form(body, "multipart/form-data") is None
    assert form(body, "multipart/form-data; boundary=" + "x" * 71) is None
    assert make(body=body).get_multipart_form() is None


def test_multipart_filename_star():
    body = multipart([([b"Content-Disposition: form-data; name=f; filename*=UTF-8''na%C3%AFve.txt"], b"x")])
    assert form(body)[0].filename == "na\u00efve.txt"
    body = multipart([([b"Content-Disposition: form-data; name=f; filename=plain; filename*=bogus''x%ff",
                        b"X-Extra: ignored"], b"x")])
    assert form(body) == [krait.MultipartFormData(b"x", "f", "plain", "text/plain")]
    body = multipart([([b"Content-Disposition: form-data; name=f; filename*=iso-8859-1''caf%E9"], b"x")])
    assert form(body)[0].filename == "caf\u00e9"
    # A client's charset name never reaches the codec registry: codecs that raise other errors, or run
    # on anything (unicode_escape), leave the plain filename.
    for charset in (b"undefined", b"idna", b"unicode_escape", b"a\x00b"):
        body = multipart([([b"Content-Disposition: form-data; name=f; filename=plain; filename*=" + charset
                            + b"''%80%5Cx41"], b"x")])
        assert form(body)[0].filename == "plain", charset


@pytest.mark.parametrize("body", [
    b"",
    b"no boundary here",
    multipart([([b'Content-Disposition: form-data; name="a"'], b"1")], close=False),
    multipart([([b"Content-Disposition form-data"], b"1")]),
    multipart([([b"Content-Type: text/plain"], b"1")]),
    multipart([([b"Content-Disposition: attachment; name=a"], b"1")]),
    multipart([([b"Content-Disposition: form-data; filename=a"], b"1")]),
    multipart([([], b"1")]),
    multipart([([b" Content-Disposition: form-data; name=a"], b"1")]),
    b"--" + BOUNDARY.encode() + b"junk\r\n",
    b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=a\r\n",
    b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=a\r\n--" + BOUNDARY.encode() + b"--",
])
def test_multipart_malformed_is_none(body, capsys):
    assert form(body) is None
    assert capsys.readouterr() == ("", "")


def test_multipart_no_parts():
    assert form(b"--" + BOUNDARY.encode() + b"--\r\n") == []


def test_parse_header_params():
    assert parse_header_params('Form-Data; Name="a b"; junk; x=1') == ("form-data", {"name": "a b", "x": "1"})
    assert parse_header_params("text/plain") == ("text/plain", {})
    assert parse_header_params("") == ("", {})
    assert parse_header_params("a; =bad") == ("a", {})


# --- str ---------------------------------------------------------------------------------------

def test_str_without_query_has_no_question_mark():
    r = krait.Request("POST", "/p", "", "HTTP/1.1", [("Host", "h")], b"body")
    assert str(r) == "POST /p HTTP/1.1\r\nhost: h\r\n\r\nbody"
    assert str(make("/p", "a=1")) == "GET /p?a=1 HTTP/1.1\r\n\r\n"
    assert "GET" in repr(make())


def test_body_file_reads_the_body_from_its_start():
    request = krait.Request("POST", "/u", "", "HTTP/1.1", {}, "café")
    assert request.body == "café".encode()
    with request.body_file as f:
        assert f.read(3) == b"caf"
    with request.body_file as f:  # a new file object each time
        assert f.read() == "café".encode()
