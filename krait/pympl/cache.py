# Per-process cache of compiled templates (and, through CodeCache, of any compiled file).
#
# Rules:
# - Keyed by path; every get() os.stat()s the file and recompiles when its stamp() changed (mtime,
#   size, inode or change time: a file renamed over it, or edited with its mtime put back, is seen even
#   when mtime and size match), so an edited template applies on the next request (docs/pympl.md).
# - Bounded: least recently used entries are dropped past max_entries
#   (limits.TEMPLATE_CACHE_SIZE, jinja's cache_size precedent).
# - Files are read as bytes and decoded as UTF-8 (docs/pympl.md); a leading BOM is dropped (as
#   Python's linecache does, so traceback columns agree); invalid UTF-8 is a
#   TemplateSyntaxError at the line and column of the first bad byte.
# - FileNotFoundError (and other OSErrors) propagate unchanged: the caller maps them to 404/500.

from __future__ import annotations

import codecs
import os
import types
from collections import OrderedDict
from collections.abc import Callable

from krait import limits
from krait.errors import TemplateSyntaxError
from krait.pympl.codegen import compile_template


def decode_template(data: bytes, path: str) -> str:
    """UTF-8 text of a template file's bytes (BOM dropped).

    Raises:
        TemplateSyntaxError: at the first byte that is not valid UTF-8.
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.start
        line_start = data.rfind(b"\n", 0, bad) + 1
        line_end = data.find(b"\n", bad)
        line_bytes = data[line_start:] if line_end < 0 else data[line_start:line_end]
        column = len(data[line_start:bad].decode("utf-8", "replace")) + 1
        raise TemplateSyntaxError(
            f"invalid UTF-8 in template: byte 0x{data[bad]:02x}",
            path,
            data.count(b"\n", 0, bad) + 1,
            column,
            line_bytes.decode("utf-8", "replace"),
        ) from None


def stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one version of a file from another. The server computes the same tuple to serve a
    code-free template's output (krait/server/static.py), which it may not import this module for."""
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns


class CodeCache:
    """Code objects compiled from files, by path, checked against the file's stamp() on every get().
    `build(data, path)` compiles a file's bytes; TemplateCache builds Pympl templates, and the worker
    uses one of these for .py scripts."""

    def __init__(self, build: Callable[[bytes, str], types.CodeType],
                 max_entries: int = limits.TEMPLATE_CACHE_SIZE) -> None:
        self.build = build
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[tuple[int, int, int, int], types.CodeType]] = OrderedDict()

    def get(self, path: str) -> types.CodeType:
        """The code object for the file at `path`, compiled now if new or changed.

        Raises:
            FileNotFoundError: the file does not exist (unchanged from os.stat/open).
            Whatever `build` raises (TemplateSyntaxError for templates, SyntaxError for scripts).
        """
        st = os.stat(path)
        entries = self._entries
        entry = entries.get(path)
        if entry is not None and entry[0] == stamp(st):
            entries.move_to_end(path)
            return entry[1]
        entries.pop(path, None)
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
        code = self.build(data, path)
        entries[path] = (stamp(st), code)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        return code

    def version(self, path: str) -> tuple[int, int, int, int] | None:
        """The stamp() of the file whose code get() last returned for `path`."""
        entry = self._entries.get(path)
        return None if entry is None else entry[0]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def clear(self) -> None:
        """Forget every compiled file."""
        self._entries.clear()


def _build_template(data: bytes, path: str) -> types.CodeType:
    return compile_template(decode_template(data, path), path)


class TemplateCache(CodeCache):
    """Compiled templates by path, checked against the file's mtime and size on every get().

    get() raises FileNotFoundError for a missing file, TemplateSyntaxError for a file that is not
    valid UTF-8 or not a valid template.
    """

    def __init__(self, max_entries: int = limits.TEMPLATE_CACHE_SIZE) -> None:
        super().__init__(_build_template, max_entries)
