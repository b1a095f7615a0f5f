# The finished replies of plain requests for static files and code-free pages, kept to answer the same
# request again without routing it or building its reply.
#
# Design: a plain request is a GET or HEAD with no Upgrade and no conditional or Range field
# (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, Range); the channel asks only for
# requests without a body. Its reply depends on nothing but its method, its target, its Accept-Encoding
# (gzip, krait/server/compress.py) and the version of the file. So dispatch (krait/server/dispatch.py)
# keeps the 200 it built for one under (method, target, Accept-Encoding), with the FileVersion it came
# from and the lookup that gives the file's current version (StaticFiles.version, CodeFreePages.get: one
# stat()). A kept reply answers while that lookup still gives the same version, and for RESOLVE_TTL at
# most: routing keeps what it found that long (krait/server/routing.py), so a new file that takes the
# target over, or an edit that gives a page code, is seen within twice that time, and a changed file at
# once.
# Bounded: PLAIN_REPLY_BYTES of what the entries hold in all (then the whole table is dropped): the body,
# the FileVersion's content where it is not the body (a gzipped reply, a HEAD's empty one: an old version
# lives on in its entry after the file changes), and the key, whose target and Accept-Encoding are the
# client's, up to the header limits. Off in --debug, where routing keeps nothing either.

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from krait import limits
from krait.server.records import Reply
from krait.server.routing import RESOLVE_TTL
from krait.server.static import FileVersion

_ENTRY_COST = 512  # bytes counted per entry besides its body and its key's strings: the headers, the tuples
_NOT_PLAIN = ("range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "upgrade")


def plain_key(method: str, target: str, headers: dict[str, str]) -> tuple | None:
    """The key of a plain request (see the module comment), or None."""
    if method != "GET" and method != "HEAD":
        return None
    for name in _NOT_PLAIN:
        if name in headers:
            return None
    return method, target, headers.get("accept-encoding")


class PlainReplies:
    def __init__(self, max_bytes: int = limits.PLAIN_REPLY_BYTES) -> None:
        self._max = max_bytes
        self._entries: dict[tuple, tuple[float, Callable[[], Any], FileVersion, Reply, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Reply | None:
        """The kept reply for `key` if its file is still the version it came from."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, current, version, reply, _ = entry
        if time.monotonic() < expires:
            try:
                if current() is version:
                    return reply
            except OSError:  # gone: routing will say what now
                pass
        self._drop(key)
        return None

    def put(self, key: tuple, current: Callable[[], Any], version: FileVersion, reply: Reply) -> None:
        """Keep `reply`, built from `version`, which `current()` gives while the file is unchanged."""
        size = len(reply.body) + len(key[1]) + len(key[2] or "") + _ENTRY_COST  # the client chose the key
        if version.data is not None and version.data is not reply.body:
            size += len(version.data)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[4]
            if self._bytes + size > self._max:
                self._entries.clear()
                self._bytes = 0
            self._entries[key] = (time.monotonic() + RESOLVE_TTL, current, version, reply, size)
            self._bytes += size

    def _drop(self, key: tuple) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[4]
