# gzip content coding for replies held in memory (RFC 9110 section 8.4.1.3).
#
# Rules:
# - A 200 whose type is compressible (krait/mime.py) and whose body is GZIP_MIN_SIZE to GZIP_MAX_SIZE
#   bytes is sent gzipped when the client accepts gzip (section 12.5.3: "gzip" or "*" with a non-zero q), and
#   carries `Vary: Accept-Encoding` either way (section 12.5.5). A 206 of such a file, sent uncompressed,
#   carries the same Vary as its 200 (section 15.3.7).
# - The gzip representation is a different representation, so it gets a different entity tag: the
#   file's tag with "-gz" before its closing quote (section 8.8.3). A 304 names the representation the
#   client would get, so it carries the same tag and Vary.
# - Bodies with an entity tag (static files, code-free templates) are compressed once per tag, content
#   type and body; dynamic bodies every time. A script's reply that carries its own ETag is not gzipped
#   (dispatch.py): the script compares If-None-Match with the tag it made, and a "-gz" tag would never
#   match it.

from __future__ import annotations

import gzip

from krait import limits, mime
from krait.server.records import Reply

_CACHE_MAX = 256  # gzipped bodies kept


class Gzip:
    def __init__(self) -> None:
        # (entity tag, type, body): two files can share a tag (same mtime and size, as after unpacking an
        # archive), so the body is part of the key; a cached file's bytes hash once and compare by identity.
        self._cache: dict[tuple[str, str, bytes], bytes] = {}

    def reply(self, reply: Reply, accept_encoding: str) -> Reply:
        """`reply` (a 200 held in memory) gzipped when that is worth it and accepted."""
        ctype = ""
        for name, value in reply.headers:
            lname = name.lower()
            if lname == "content-encoding":
                return reply
            if lname == "content-type":
                ctype = value
        if not _worth_it(ctype, len(reply.body)):
            return reply
        if not accepts_gzip(accept_encoding):
            return reply._replace(headers=reply.headers + [("Vary", "Accept-Encoding")])
        etag = next((v for n, v in reply.headers if n == "ETag"), None)
        key = (etag, ctype, reply.body) if etag else None
        body = self._cache.get(key) if key else None
        if body is None:
            body = gzip.compress(reply.body, limits.GZIP_LEVEL, mtime=0)
            if key:
                if len(self._cache) > _CACHE_MAX:
                    self._cache.clear()
                self._cache[key] = body
        headers = []
        for name, value in reply.headers:
            if name == "Content-Length":
                continue
            if name == "ETag":
                value = gz_tag(value)
            headers.append((name, value))
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        return reply._replace(headers=headers, body=body)

    @staticmethod
    def not_modified(reply: Reply, accept_encoding: str) -> Reply:
        """A 304 names the representation the client would get: the gzip one carries the -gz tag."""
        ctype = next((v for n, v in reply.headers if n == "Content-Type"), "")
        size = _size(next((v for n, v in reply.headers if n == "Content-Length"), ""))
        if not _worth_it(ctype, size):
            return reply
        headers = [(n, v) for n, v in reply.headers if n != "Content-Length"] + [("Vary", "Accept-Encoding")]
        if accepts_gzip(accept_encoding):
            headers = [(n, gz_tag(v) if n == "ETag" else v) for n, v in headers]
        return reply._replace(headers=headers)


    @staticmethod
    def partial(reply: Reply) -> Reply:
        """A 206 of a file carries the Vary its 200 carries (RFC 9110 section 15.3.7)."""
        ctype = next((v for n, v in reply.headers if n == "Content-Type"), "")
        size = _size(next((v for n, v in reply.headers if n == "Content-Range"), "").rpartition("/")[2])
        if not _worth_it(ctype, size):
            return reply
        return reply._replace(headers=reply.headers + [("Vary", "Accept-Encoding")])


def _worth_it(ctype: str, size: int) -> bool:
    """Whether a body of this type and size is gzipped for clients that accept it."""
    return limits.GZIP_MIN_SIZE <= size <= limits.GZIP_MAX_SIZE and mime.is_compressible(ctype)


def _size(value: str) -> int:
    """A length from a header a script may have set (a 304's Content-Length, a 206's complete length, which
    may be "*"): 0 when it is not a plain number, which nothing is gzipped for."""
    return int(value) if value.isdigit() and value.isascii() and len(value) <= 18 else 0


def gz_tag(etag: str) -> str:
    """The entity tag of the gzip representation of the representation tagged `etag`."""
    return etag[:-1] + '-gz"'


def accepts_gzip(accept: str) -> bool:
    """Whether an Accept-Encoding value accepts gzip with a non-zero q (RFC 9110 section 12.5.3): by name
    ("gzip" or "x-gzip"), or else through "*", which stands for every coding not listed by name."""
    wildcard = None
    for item in accept.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if coding != "*":
            return q > 0
        wildcard = q > 0
    return bool(wildcard)
