# Static files: validators, conditional requests, single ranges, and a small in-memory cache.
#
# Strategy: a file is stat()ed on every request (so an edit shows at once; the router's check hands its
# stat over) and its metadata and, when small, its bytes are cached keyed by path and checked against
# the file's stamp(): mtime and size, and the inode and its change time, so that neither a file renamed
# over it (a deploy) nor an edit that puts the mtime back (`rsync --inplace -t`, `touch -r`) is missed
# when size and mtime happen to match (on Windows st_ctime is the creation time, so there only the
# rename is seen). The ETag is made of all four. The header lines that never change
# for a version of a file (Content-Type, ETag, Last-Modified, Accept-Ranges, Cache-Control) are computed
# once per version. Large files are never read into memory: the caller opens one with open_checked()
# before the head is built, and streams that open file with socket.sendfile(), so the body is the
# version the head describes even when the file is replaced meanwhile (a deploy's rename), and the file
# the router checked (no symlink swapped in).
# Last-Modified is never later than when the version was first seen (RFC 9110 section 8.8.2.1).
#
# Rules: RFC 9110 section 13.2.2 order of preconditions: If-Match (strong comparison, lists, "*"), else
# If-Unmodified-Since, failing gives 412; then If-None-Match (weak comparison, lists, "*") wins over
# If-Modified-Since; a match on GET/HEAD gives 304 carrying the validators and the Content-Length of
# the full file (section 8.6), on any other method 412 (section 13.1.2). Every HTTP-date format is UTC
# (section 5.6.7), asctime's too. Section 14: a single "bytes=" range gives 206 with Content-Range; an
# unsatisfiable one gives 416 with "Content-Range: bytes */size"; several ranges, or an If-Range that does
# not match, are answered with the whole file (200), which the RFC allows.

from __future__ import annotations

import datetime
import email.utils
import os
import threading
import time
import zlib
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from krait import limits, mime
from krait.server.compress import gz_tag
from krait.server.records import Reply


def stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one version of a file from another (see the module comment). Workers compute the same
    tuple for the templates they compile (krait/pympl/cache.py), and code-free pages compare the two."""
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns


class FileVersion(NamedTuple):
    path: str
    stamp: tuple[int, int, int, int]  # the file's (for a code-free page: its template's), stamp()
    size: int  # of the content served
    etag: str
    last_modified: str
    mtime_s: int
    headers: tuple[tuple[str, str], ...]  # Content-Type, ETag, Last-Modified, Accept-Ranges, Cache-Control
    data: bytes | None  # whole content when small enough to cache


class StaticFiles:
    def __init__(self, cache_control: Callable[[str], str], max_file_size: int = limits.STATIC_CACHE_FILE_SIZE,
                 max_bytes: int = limits.STATIC_CACHE_BYTES) -> None:
        self._cache_control = cache_control  # rel_path -> Cache-Control value
        self._max_file = max_file_size
        self._max_bytes = max_bytes
        self._entries: dict[str, FileVersion] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def version(self, path: str, rel_path: str, st: os.stat_result | None = None) -> FileVersion:
        """The version of the file at `path` that `st` (else a fresh stat) describes; FileChanged when the
        file read for it is another one."""
        if st is None:
            st = os.stat(path)
        entry = self._entries.get(path)
        now = stamp(st)
        if entry is not None and entry.stamp == now:
            return entry
        data = None
        if st.st_size <= self._max_file:
            with open_checked(path, st) as f:
                data = f.read()
            if len(data) != st.st_size:  # changed while we read: do not cache a torn copy
                data = None
        ctype = mime.for_path(path)
        entry = file_version(path, now, st.st_size, data, (("Content-Type", ctype),),
                             self._cache_control(rel_path))
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None and old.data is not None:
                self._bytes -= len(old.data)
            if data is not None:
                if self._bytes + len(data) > self._max_bytes:
                    self._entries.clear()
                    self._bytes = 0
                self._bytes += len(data)
            self._entries[path] = entry
        return entry

    def reply(self, path: str, rel_path: str, method: str, headers: dict[str, str],
              st: os.stat_result | None = None) -> Reply:
        """The response to a GET/HEAD (or routed other method) for the static file `st` (else a fresh stat)
        describes; FileChanged when the file is replaced meanwhile, OSError when it is gone."""
        if st is None:
            st = os.stat(path)
        version = self.version(path, rel_path, st)
        if version.data is not None:
            return version_reply(version, method, headers)
        return file_reply(version, method, headers, open_checked(path, st))


class FileChanged(OSError):
    """The file at a path is no longer the one that was checked (replaced since)."""


def open_checked(path: str, st: os.stat_result) -> BinaryIO:
    """The file at `path` opened, if it is still the version `st` describes (same device and stamp())."""
    f = open(path, "rb")
    now = os.fstat(f.fileno())
    if now.st_dev != st.st_dev or stamp(now) != stamp(st):
        f.close()
        raise FileChanged("%s was replaced while being answered" % path)
    return f


def file_reply(version: FileVersion, method: str, headers: dict[str, str], opened: BinaryIO) -> Reply:
    """version_reply() for a version sent from `opened`, its file; closed here unless the reply sends it."""
    reply = version_reply(version, method, headers, opened)
    if reply.file_range is None:
        opened.close()
    return reply


def file_version(path: str, file_stamp: tuple[int, int, int, int], size: int, data: bytes | None,
                 content_headers: tuple[tuple[str, str], ...], cache_control: str) -> FileVersion:
    """The FileVersion of the version `file_stamp` of a file, served as `size` bytes of content `data`
    (None: stream the file). `content_headers` go first (Content-Type and any others), then the
    validators and Cache-Control."""
    mtime_ns, _, ino, ctime_ns = file_stamp
    etag = '"%x-%x-%x"' % (mtime_ns, size, zlib.crc32(b"%d.%d" % (ino, ctime_ns)))
    mtime_s = min(mtime_ns // 1_000_000_000, int(time.time()))  # a clock ahead of ours must not stick
    last_modified = email.utils.formatdate(mtime_s, usegmt=True)
    headers = (*content_headers, ("ETag", etag), ("Last-Modified", last_modified), ("Accept-Ranges", "bytes"),
               ("Cache-Control", cache_control))
    return FileVersion(path, file_stamp, size, etag, last_modified, mtime_s, headers, data)


def version_reply(f: FileVersion, method: str, headers: dict[str, str], opened: BinaryIO | None = None) -> Reply:
    """The response to a request for one version of a file: 412, 304, 206, 416 or 200. A version without
    its data in memory is sent from `opened` (that version's file, open_checked()) by a 200 or 206."""
    if not precondition_holds(f, headers):
        return _precondition_failed()
    if method in ("GET", "HEAD"):
        if not_modified(f, headers):
            return Reply(304, [*f.headers, ("Content-Length", str(f.size))], b"", None)
    elif _none_match(f, headers):  # RFC 9110 section 13.1.2: for other methods a match is a failure
        return _precondition_failed()
    rng = headers.get("range")
    if rng is not None and method == "GET" and _if_range_ok(f, headers.get("if-range")):
        span = parse_range(rng, f.size)
        if isinstance(span, str):  # "unsatisfiable"
            return Reply(416, [("Content-Range", "bytes */%d" % f.size),
                               ("Content-Type", "text/plain; charset=utf-8")],
                         b"416 Range Not Satisfiable\n", None)
        if span is not None:
            start, end = span
            length = end - start + 1
            hdrs = [*f.headers, ("Content-Range", "bytes %d-%d/%d" % (start, end, f.size)),
                    ("Content-Length", str(length))]
            if f.data is not None:
                return Reply(206, hdrs, f.data[start:end + 1], None)
            assert opened is not None
            return Reply(206, hdrs, b"", (opened, start, length))
    hdrs = [*f.headers, ("Content-Length", str(f.size))]
    if f.data is not None:
        return Reply(200, hdrs, f.data, None)
    assert opened is not None
    return Reply(200, hdrs, b"", (opened, 0, f.size))


def _precondition_failed() -> Reply:
    return Reply(412, [("Content-Type", "text/plain; charset=utf-8")], b"412 Precondition Failed\n")


def _etag_list(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _weak_equal(a: str, b: str) -> bool:
    # RFC 9110 section 8.8.3.2: weak comparison ignores the W/ prefix.
    return a.removeprefix("W/") == b.removeprefix("W/")


def precondition_holds(f: FileVersion, headers: dict[str, str]) -> bool:
    """False when the request's If-Match or If-Unmodified-Since fails (RFC 9110 sections 13.1.1, 13.1.4)."""
    im = headers.get("if-match")
    if im is not None:
        tags = _etag_list(im)
        return "*" in tags or f.etag in tags or gz_tag(f.etag) in tags  # strong comparison
    ius = headers.get("if-unmodified-since")
    if ius is not None:
        date = _http_date(ius)
        return date is None or f.mtime_s <= date  # an invalid date is ignored (section 13.1.4)
    return True


def not_modified(f: FileVersion, headers: dict[str, str]) -> bool:
    """Whether the request's If-None-Match / If-Modified-Since say the client's copy is current."""
    inm = _none_match(f, headers)
    if inm is not None:
        return inm
    ims = headers.get("if-modified-since")
    if ims is not None:
        date = _http_date(ims)
        return date is not None and f.mtime_s <= date
    return False


def _none_match(f: FileVersion, headers: dict[str, str]) -> bool | None:
    """Whether If-None-Match names this version ("*" included); None without the field."""
    inm = headers.get("if-none-match")
    if inm is None:
        return None
    tags = _etag_list(inm)
    gz = gz_tag(f.etag)  # the client may hold the gzip representation
    return "*" in tags or any(_weak_equal(tag, f.etag) or _weak_equal(tag, gz) for tag in tags)


def _http_date(value: str) -> int | None:
    """An HTTP-date in seconds since the epoch, or None when it is not one we can use. All three formats
    are UTC (RFC 9110 section 5.6.7): asctime's carries no zone, and must not be read as local time. A
    list of dates (an HTTP-date holds at most one comma) is no date: the field is ignored (section 13.1.3)."""
    if value.count(",") > 1:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return int(when.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _if_range_ok(f: FileVersion, if_range: str | None) -> bool:
    # RFC 9110 section 13.1.5: If-Range with an entity tag needs a strong match; with a date, an exact one.
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"'):
        return if_range == f.etag
    if if_range.startswith("W/"):
        return False
    return if_range == f.last_modified


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """Parse a Range header for a file of `size` bytes (RFC 9110 section 14.1.2).

    Returns:
        (first, last) inclusive for one satisfiable range; "unsatisfiable" when no range can be served;
        None when the header is invalid or asks for several ranges (the whole file is then sent).
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    first_s, last_s = first_s.strip(), last_s.strip()
    # ASCII digits only (RFC 9110 section 14.1.2: 1*DIGIT); str.isdigit() also takes "²"
    if not (first_s.isascii() and last_s.isascii()):
        return None
    if not (first_s.isdigit() or first_s == "") or not (last_s.isdigit() or last_s == ""):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = _position(last_s)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = _position(first_s)
    if last_s and _position(last_s) < first:
        return None  # syntactically invalid: the header is ignored (section 14.1.1)
    if first >= size:
        return "unsatisfiable"
    last = _position(last_s) if last_s else size - 1
    return first, min(last, size - 1)


def _position(digits: str) -> int:
    """A byte position of any length: one past every file size when it has more than 18 digits (int()
    refuses strings of over 4,300 digits, and no file is that large)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18
