# Code-free templates, served by the server process like static files (docs/pympl.md).
#
# Design: the server never compiles a template (it imports neither ply nor the worker side). A worker that
# renders a template whose code only writes constant text says so in its Result, with the stamp() of the
# file version it rendered (krait/worker/run.py). The server keeps that output here, keyed by the
# file's path, as a FileVersion of its own (krait/server/static.py), and answers GET and HEAD for the file
# from it: every request stat()s the file, and while its stamp() still matches the version rendered,
# the kept output is served through the static files' reply (ETag, Last-Modified, 304, single ranges; gzip
# is the dispatcher's). A changed file misses and its entry is dropped: the request goes to a worker, whose
# Result stores the new version's output, or, when the edit added code, says nothing and nothing is kept.
# The worker's first answer is built from the same FileVersion, so a page is byte-identical whichever
# process served it. Bounded: a page larger than STATIC_CACHE_FILE_SIZE is never kept (a worker renders
# it every time), and past CODE_FREE_CACHE_BYTES in all the cache starts over, as the static one does.

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from krait import limits
from krait.server.static import FileVersion, file_version, stamp


class CodeFreePages:
    def __init__(self, cache_control: Callable[[str], str], max_page_size: int = limits.STATIC_CACHE_FILE_SIZE,
                 max_bytes: int = limits.CODE_FREE_CACHE_BYTES) -> None:
        self._cache_control = cache_control  # rel_path -> Cache-Control value
        self._max_page = max_page_size
        self._max_bytes = max_bytes
        self._entries: dict[str, FileVersion] = {}  # path -> its output
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str) -> FileVersion | None:
        """The kept output of the template at `path`, if the file is still the version it came from."""
        page = self._entries.get(path)
        if page is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and stamp(st) == page.stamp:
            return page
        self.forget(path)
        return None

    def store(self, path: str, rel_path: str, source: tuple[int, int, int, int],
              content_headers: list[tuple[str, str]], body: bytes) -> FileVersion:
        """The FileVersion of a worker's output for the version of the file whose stamp() is `source`,
        kept for the next requests when it fits. `content_headers` are the worker's (Content-Type and any
        others)."""
        page = file_version(path, source, len(body), body, tuple(content_headers), self._cache_control(rel_path))
        if len(body) > self._max_page:
            self.forget(path)
            return page
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= old.size
            if self._bytes + len(body) > self._max_bytes:
                self._entries.clear()
                self._bytes = 0
            self._bytes += len(body)
            self._entries[path] = page
        return page

    def forget(self, path: str) -> None:
        """Drop the kept output of `path` (its file changed, or now has code)."""
        if path not in self._entries:
            return
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= old.size
