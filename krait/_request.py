# krait.Request: the HTTP request as site code sees it (krait.request).
#
# Strategy: the worker builds one Request per job from already-parsed, already-validated parts, so
# the constructor only normalises types (lower-case str header names, bytes body) and does no
# parsing it can defer. `query` is parsed on first use and cached; `get_post_form()` and
# `get_multipart_form()` parse the body on demand, every call.
# A large body arrives as a file the server spooled it to (krait/server/bodies.py): `body` reads it
# once, on first use; `body_file` opens it for reading in pieces; get_multipart_form() parses a memory
# map of it, so only the parts' own bytes are copied into memory (docs/scripts.md).
#
# Rules:
# - Query strings and urlencoded bodies follow urllib.parse.parse_qsl (WHATWG urlencoded: split on
#   "&", the first "=" splits name from value, "+" is a space, %XX decoded as UTF-8 with
#   replacement); a field without "=" has the value ""; in `query` and get_post_form() later duplicates
#   win (0.5.2 kept the last), while `query_all` and get_post_form_all() keep every value in order.
# - get_json() parses the body as UTF-8 JSON (RFC 8259) whatever its Content-Type; a body that is not
#   (NaN, Infinity and lone surrogate escapes included) raises InvalidJSON, a BadRequest the worker answers
#   with 400 and the message (docs/scripts.md).
# - multipart/form-data follows RFC 7578 on top of RFC 2046 section 5.1.1: the body is a preamble,
#   then parts each introduced by "--boundary" at the start of a line, closed by "--boundary--".
#   The CRLF before a delimiter belongs to the delimiter, never to the part's data, so uploaded
#   bytes come back exactly. Parts need `Content-Disposition: form-data` (RFC 7578 section 4.2).
#   Anything malformed gives None (0.5.2 printed to stdout; we print nothing).
# - The path is percent-decoded once as UTF-8; invalid UTF-8 is a 400 (krait/urls.py).

from __future__ import annotations

import io
import json
import mmap
import re
from collections import namedtuple
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from krait import limits
from krait.errors import InvalidForm, InvalidJSON
from krait.urls import decode_path

MultipartFormData = namedtuple("MultipartFormData", ["data", "name", "filename", "content_type"])
MultipartFormData.__doc__ = "One part of a multipart/form-data body: data (bytes), name, filename, content_type."

# RFC 9110 section 5.6.2: token = 1*tchar; section 5.6.4: quoted-string with quoted-pairs.
_PARAM_RE = re.compile(
    r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*', re.S
)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
# RFC 2046 section 5.1.1: boundary := 0*69<bchars> bcharsnospace (1 to 70 characters).
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")
_DEFAULT_PART_TYPE = "text/plain"  # RFC 7578 section 4.4
# The charsets of an RFC 8187 ext-value (filename*) that recipients must support (section 3.2.1); an
# empty one is taken as UTF-8, as before.
_EXT_CHARSETS = {"utf-8": "utf-8", "iso-8859-1": "latin-1", "": "utf-8"}


def parse_header_params(value: str, quoted_pairs: bool = True) -> tuple[str, dict[str, str]]:
    """Split a header value like `form-data; name="a"` into ("form-data", {"name": "a"}).

    The main value is lower-cased, parameter names too; quoted values are unquoted (a backslash
    escapes the next character, RFC 9110 section 5.6.4; with `quoted_pairs` False only an escaped
    quote is taken as one, and other backslashes stay). Returns ("", {}) for an empty value.
    """
    main, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    if sep:
        rest = ";" + rest
        pos = 0
        while pos < len(rest):
            m = _PARAM_RE.match(rest, pos)
            if m is None:  # junk between parameters: skip to the next ";"
                nxt = rest.find(";", pos + 1)
                if nxt < 0:
                    break
                pos = nxt
                continue
            name, val = m.group(1).lower(), m.group(2)
            if val[:1] == '"':
                val = _QUOTED_PAIR_RE.sub(r"\1", val[1:-1]) if quoted_pairs else val[1:-1].replace('\\"', '"')
            params.setdefault(name, val)
            pos = m.end()
    return main.strip().lower(), params


_Part = MultipartFormData  # the class attribute Request.MultipartFormData hides the name inside the class


class Request:
    """An HTTP request, as handed to site code in `krait.request`.

    Args:
        http_method: "GET", "HEAD", "POST"... (WebSocket upgrades are "GET").
        url: the raw path, without the query, not percent-decoded.
        query_string: the raw query (after "?"), "" when absent.
        http_version: "HTTP/1.1" or "HTTP/1.0".
        headers: a dict or an iterable of (name, value) pairs; names are lower-cased, bytes are
            decoded as Latin-1, duplicate names joined with ", ".
        body: the request body (bytes; str is encoded as UTF-8; None is b"").
        remote_addr: the client's (ip, port), or None.
        scheme: "http" or "https".
        path: the percent-decoded path; decoded from `url` when None.

    Raises:
        BadRequest: `path` was None and `url` does not decode to valid UTF-8.
    """

    MultipartFormData = MultipartFormData

    def __init__(self, http_method, url, query_string, http_version, headers, body, *,
                 remote_addr=None, scheme="http", path=None):
        self.http_method = http_method
        self.url = url
        self.query_string = query_string or ""
        self.http_version = http_version
        self.headers = _normalise_headers(headers)
        self._body: bytes | None = None
        self.body = body
        self._body_path = ""  # set by the worker for a spooled body: `body` is read from it on first use
        self.remote_addr = remote_addr
        self.scheme = scheme
        self.path = decode_path(url) if path is None else path

    @property
    def body(self) -> bytes:
        """The request body as bytes (b"" when there is none)."""
        if self._body is None:
            with open(self._body_path, "rb") as f:
                self._body = f.read()
        return self._body

    @body.setter
    def body(self, value) -> None:
        if value is None:
            value = b""
        elif isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, bytes):
            value = bytes(value)
        self._body = value

    def _spooled(self, path: str) -> None:
        """The body is the file at `path` (the worker, for a body the server spooled)."""
        self._body, self._body_path = None, path

    @property
    def body_file(self) -> io.BufferedIOBase:
        """A new binary file object reading the body from its start: read a large upload in pieces
        (`shutil.copyfileobj(krait.request.body_file, out)`) instead of holding it whole in `body`."""
        if self._body is None:
            return open(self._body_path, "rb")
        return io.BytesIO(self._body)

    @property
    def client_address(self):
        """Alias of `remote_addr`: the client's (ip, port), or None."""
        return self.remote_addr

    @cached_property
    def query(self) -> dict[str, str]:
        """The query string parsed into a dict of str; a repeated key keeps its last value (parsed once,
        on first use)."""
        return dict(_urlencoded_pairs(self.query_string))

    @cached_property
    def query_all(self) -> dict[str, list[str]]:
        """The query string parsed into a dict of lists: every value of each key, in the order sent."""
        return _grouped(_urlencoded_pairs(self.query_string))

    def get_post_form(self) -> dict[str, str]:
        """Parse the body as application/x-www-form-urlencoded (UTF-8, "+" is a space); a repeated
        field keeps its last value.

        No Content-Type check is made (as in 0.5.2). Returns {} for an empty body.
        """
        return dict(_urlencoded_pairs(self.body))

    def get_post_form_all(self) -> dict[str, list[str]]:
        """Like get_post_form(), with every value of each field, in the order sent (checkbox groups,
        multiple selects)."""
        return _grouped(_urlencoded_pairs(self.body))

    def get_json(self) -> Any:
        """The body parsed as JSON (UTF-8), whatever its Content-Type.

        Raises:
            InvalidJSON: the body is empty, not UTF-8, or not JSON; a BadRequest and a ValueError.
                Uncaught, the client gets 400 with this message.
        """
        if not self.body:
            raise InvalidJSON("the request body is empty, not JSON")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON("the request body is not UTF-8: %s" % exc) from None
        try:
            data = json.loads(text, parse_constant=_not_json)
        except ValueError as exc:  # JSONDecodeError, and an integer past sys.get_int_max_str_digits()
            raise InvalidJSON("the request body is not valid JSON: %s" % exc) from None
        except RecursionError:
            raise InvalidJSON("the request body's JSON is nested too deeply") from None
        if "\\u" in text:  # only an escape can spell a lone surrogate, which no UTF-8 text holds
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidJSON("the request body's JSON holds a lone surrogate escape (\\ud800-\\udfff), "
                                  "which is no Unicode character (RFC 8259 section 8.2)") from None
        return data

    def get_multipart_form(self) -> list[_Part] | None:
        """Parse a multipart/form-data body (RFC 7578) into a list of MultipartFormData.

        `data` is the part's exact bytes; `name` and `filename` come from its
        Content-Disposition (filename None when absent); `content_type` defaults to
        "text/plain". Returns None when the request is not multipart/form-data or the body
        is malformed.
        """
        ctype = self.headers.get("content-type")
        if not ctype:
            return None
        mtype, params = parse_header_params(ctype)
        boundary = params.get("boundary")
        if mtype != "multipart/form-data" or not boundary or not _BOUNDARY_RE.fullmatch(boundary):
            return None
        if self._body is not None:
            return _parse_multipart(self._body, boundary.encode("latin-1"))
        with open(self._body_path, "rb") as f:
            if not f.seek(0, io.SEEK_END):
                return None  # an empty body (mmap refuses empty files)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return _parse_multipart(view, boundary.encode("latin-1"))

    def __str__(self) -> str:
        target = self.url + "?" + self.query_string if self.query_string else self.url
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return f"{self.http_method} {target} {self.http_version}\r\n{head}\r\n" + self.body.decode(
            "utf-8", "replace"
        )

    def __repr__(self) -> str:
        target = self.url + "?" + self.query_string if self.query_string else self.url
        return f"<krait.Request {self.http_method} {target!r} {self.http_version}>"


def _not_json(name: str) -> Any:
    raise ValueError("%s is no JSON number (RFC 8259 section 6)" % name)


def _urlencoded_pairs(data: str | bytes) -> list[tuple[str, str]]:
    if not data:
        return []
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    try:
        return parse_qsl(data, keep_blank_values=True, encoding="utf-8", errors="replace",
                         max_num_fields=limits.MAX_FORM_FIELDS)
    except ValueError:  # more fields than that: refused before any is parsed
        raise InvalidForm("the form has more than %d fields" % limits.MAX_FORM_FIELDS) from None


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _normalise_headers(headers) -> dict[str, str]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, dict) else headers
    out: dict[str, str] = {}
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        name = name.lower()
        if name in out:  # RFC 9110 section 5.3: combine field lines with ", "
            out[name] = out[name] + ", " + value
        else:
            out[name] = value
    return out


def _parse_multipart(body: bytes | mmap.mmap, boundary: bytes) -> list[MultipartFormData] | None:
    # `body` may be a memory map (a spooled body): only find() and slicing, which both have, are used.
    dash = b"--" + boundary
    delim = b"\r\n" + dash
    # The first delimiter may open the body or follow a preamble (RFC 2046 section 5.1.1).
    if body[:len(dash)] == dash:
        pos = len(dash)
    else:
        pos = body.find(delim)
        if pos < 0:
            return None
        pos += len(delim)
    parts: list[MultipartFormData] = []
    while True:
        # After a delimiter: "--" closes the body; otherwise transport padding (LWSP) then CRLF.
        if body[pos:pos + 2] == b"--":
            return parts
        eol = body.find(b"\r\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            return None
        start = eol + 2
        end = body.find(delim, start)
        if end < 0:
            return None  # no closing delimiter: truncated upload
        part = _parse_part(body, start, end)
        if part is None:
            return None
        parts.append(part)
        pos = end + len(delim)


def _parse_part(body: bytes | mmap.mmap, start: int, end: int) -> MultipartFormData | None:
    if body[start:start + 2] == b"\r\n":  # no header fields at all
        return None  # RFC 7578 section 4.2: Content-Disposition is required
    hend = body.find(b"\r\n\r\n", start, end)
    if hend < 0:
        return None
    disposition = None
    ctype = _DEFAULT_PART_TYPE
    for line in body[start:hend].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None
        lname = name.lower()
        if lname == b"content-disposition":
            # Browsers send file names as raw UTF-8 (WHATWG HTML "multipart/form-data encoding").
            disposition = value.decode("utf-8", "replace").strip()
        elif lname == b"content-type":
            ctype = value.decode("latin-1").strip() or _DEFAULT_PART_TYPE
    if disposition is None:
        return None
    # Browsers send a backslash in a file name as it is (WHATWG HTML escapes only '"', CR and LF, as %22,
    # %0D, %0A): C:\dir\a.txt keeps its backslashes; an escaped quote (older curl) is still a quote.
    kind, params = parse_header_params(disposition, quoted_pairs=False)
    if kind != "form-data" or "name" not in params:
        return None
    filename = params.get("filename")
    ext = params.get("filename*")  # RFC 8187 ext-value, e.g. UTF-8''na%C3%AFve.txt
    if ext is not None:
        charset, _, rest = ext.partition("'")
        _, _, encoded = rest.partition("'")
        codec = _EXT_CHARSETS.get(charset.lower())  # a client's name is never handed to codecs.lookup()
        if codec is not None:
            try:
                filename = unquote_to_bytes(encoded).decode(codec)
            except UnicodeDecodeError:
                pass
    return MultipartFormData(body[hend + 4:end], params["name"], filename, ctype)
