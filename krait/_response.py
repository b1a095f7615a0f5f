# krait.Response and friends: what site code assigns to `krait.response` to replace the response.
#
# Strategy: a Response is plain data (version, status, header list, body). The worker turns
# whatever was assigned into (status, reason, headers, body) with response_parts(); a Response
# instance is read directly, while any other object is rendered with str() and parsed as raw HTTP
# response text, as 0.5.2 did for every object. A body may also be an iterable of str or bytes pieces
# (a generator, say), which the worker streams as it produces them, and a ResponseFile names a file
# the server sends itself (docs/scripts.md).
#
# Rules (0.5.2 quirks fixed, docs/migrating.md):
# - ResponseRedirect sends Location exactly as given (0.5.2 percent-encoded "/").
# - ResponseBadRequest's page says 400 (0.5.2 said 404).
# - Raw response text without header lines parses correctly (0.5.2 read the body as a header).
# - Reason phrases are the protocol core's (krait.http.reason_phrase): an unregistered code gets an
#   empty one, which RFC 9112 section 4 allows.
# - Header names and values are not checked here: the HTTP writer refuses CR, LF and NUL.

from __future__ import annotations

import json
import os

import krait
from krait import mime
from krait.http.events import reason_phrase

_VERSIONS = ("HTTP/1.1", "HTTP/1.0")
_HTML = ("Content-Type", "text/html; charset=utf-8")
_JSON = ("Content-Type", "application/json; charset=utf-8")

NOT_FOUND_BODY = (
    "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"
)
BAD_REQUEST_BODY = (
    "<html><head><title>400 Bad Request</title></head><body><h1>400 Bad Request</h1></body></html>"
)


class Response:
    """An HTTP response that replaces the one Krait would build (set `krait.response` to it).

    Args:
        http_version: "HTTP/1.1" (or "HTTP/1.0").
        status_code: the status, 100-599.
        headers: list of (name, value) pairs, or None for none.
        body: str (sent as UTF-8), bytes, None for an empty body, or an iterable (a generator, a
            list) of str and bytes pieces, sent as they come (docs/scripts.md).

    Raises:
        ValueError: an unsupported HTTP version or a status code outside 100-599.
    """

    def __init__(self, http_version, status_code, headers, body):
        if http_version not in _VERSIONS:
            raise ValueError(f"unsupported HTTP version {http_version!r}: use 'HTTP/1.1'")
        if isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 599:
            raise ValueError(f"invalid HTTP status code {status_code!r}: must be an int in 100-599")
        self.http_version = http_version
        self.status_code = status_code
        self.headers = [] if headers is None else headers
        self.body = b"" if body is None else body

    def __str__(self) -> str:
        body = self.body
        if isinstance(body, (bytes, bytearray, memoryview)):
            body = bytes(body).decode("utf-8", "replace")
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        reason = reason_phrase(self.status_code)
        return f"{self.http_version} {self.status_code} {reason}\r\n{head}\r\n{body}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code} headers={self.headers!r}>"


def _with_type(headers, content_type=_HTML):
    headers = [] if headers is None else list(headers)
    if not any(str(name).lower() == "content-type" for name, _ in headers):
        headers.append(content_type)
    return headers


class ResponseNotFound(Response):
    """A 404 Not Found response with a small HTML page.

    Args:
        headers: extra (name, value) headers to send with it.
    """

    def __init__(self, headers=None):
        super().__init__("HTTP/1.1", 404, _with_type(headers), NOT_FOUND_BODY)


class ResponseBadRequest(Response):
    """A 400 Bad Request response with a small HTML page.

    Args:
        headers: extra (name, value) headers to send with it.
    """

    def __init__(self, headers=None):
        super().__init__("HTTP/1.1", 400, _with_type(headers), BAD_REQUEST_BODY)


class ResponseRedirect(Response):
    """A 302 Found redirect; `Location` is sent exactly as given (no quoting).

    Args:
        destination: the URL to send the client to (absolute or relative, RFC 9110 10.2.2).
        headers: extra (name, value) headers to send with it.
    """

    def __init__(self, destination, headers=None):
        headers = [] if headers is None else list(headers)
        headers.append(("Location", str(destination)))
        super().__init__("HTTP/1.1", 302, headers, b"")
        self.destination = destination


class ResponseJSON(Response):
    """A response whose body is `data` encoded as JSON in UTF-8, with
    `Content-Type: application/json; charset=utf-8`.

    Args:
        data: anything json.dumps() encodes (dicts, lists, str, numbers, True/False/None).
        status_code: the status, 200 by default.
        headers: extra (name, value) headers; a Content-Type among them replaces the JSON one.

    Raises:
        TypeError: `data` holds something JSON cannot encode.
        ValueError: `data` holds NaN or an infinity (RFC 8259 section 6 has no such numbers) or refers to
            itself; or a status code outside 100-599.
    """

    def __init__(self, data, status_code=200, headers=None):
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (say, from os.listdir): sent as its \u escape
            body = json.dumps(data, allow_nan=False).encode("ascii")
        super().__init__("HTTP/1.1", status_code, _with_type(headers, _JSON), body)
        self.data = data


class ResponseFile(Response):
    """A response whose body is a file, which the server sends itself (with sendfile): the worker is
    free again at once and the file is never read into memory. The file is sent as it is when the
    response goes out; the script must not delete or change it before then.

    Args:
        path: the file; a relative path is taken from the site root.
        headers: extra (name, value) headers; a Content-Type among them wins.
        content_type: the Content-Type; by default the one of the file's extension.
        status_code: the status, 200 by default.

    Raises:
        FileNotFoundError: `path` does not exist; IsADirectoryError: it is not a regular file.
    """

    def __init__(self, path, headers=None, content_type=None, status_code=200):
        full = os.path.join(krait.site_root or "", os.fspath(path))
        if not os.path.isfile(full):
            if not os.path.exists(full):
                raise FileNotFoundError("ResponseFile: no such file: %s" % full)
            raise IsADirectoryError("ResponseFile: not a regular file: %s" % full)
        ctype = ("Content-Type", content_type or mime.for_path(full))
        super().__init__("HTTP/1.1", status_code, _with_type(headers, ctype), b"")
        self.path = os.path.abspath(full)


def _body(body):
    """The body as bytes, or as the iterable of pieces it is."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if hasattr(body, "__iter__") and not isinstance(body, dict):
        return body
    return str(body).encode("utf-8")


def response_parts(obj) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """Turn what site code put in `krait.response` into (status, reason, headers, body).

    A Response is read directly (str body encoded as UTF-8; an iterable body is returned as it is).
    Any other object is rendered with str() and parsed as a raw HTTP/1.x response: status line,
    header lines up to the first empty line, body after it.

    Raises:
        ValueError: the text is not a response (bad status line, header line without ":").
    """
    if isinstance(obj, Response):
        headers = [(str(name), str(value)) for name, value in obj.headers]
        status = obj.status_code
        return status, reason_phrase(status), headers, _body(obj.body)
    return _parse_raw(str(obj))


def _parse_raw(text: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        if not text.endswith("\r\n"):
            raise ValueError("krait.response text has no empty line ending its header block")
        head, body = text[:-2], ""
    lines = head.split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in _VERSIONS or len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
        raise ValueError(f"krait.response text has an invalid status line: {lines[0][:80]!r}")
    status = int(code)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name:
            raise ValueError(f"krait.response text has a header line without a name: {line[:80]!r}")
        headers.append((name, value.strip()))
    return status, reason.strip() or reason_phrase(status), headers, body.encode("utf-8")
