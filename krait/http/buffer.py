# ReceiveBuffer: the bytes received but not yet turned into events.
#
# Strategy (O(n) overall, no quadratic rescans):
# - One bytearray; consumed bytes are removed from the front with `del`, which is cheap for the
#   small heads we parse and leaves pipelined bytes in place.
# - The end of a header block (an empty line) is found with one precompiled regex search that
#   starts where the previous search stopped (minus the 2 bytes a split terminator may
#   straddle), so a head arriving byte by byte is scanned once. Only CRLF is a valid line end
#   (RFC 9112 s2.2, Krait's policy: no bare LF), but the search also stops at an empty line
#   made of a bare LF, so the reader can reject such a head with a 400 at once instead of
#   waiting for a CRLF CRLF that may never come. take_block() returns the empty line with the
#   block, so the reader can check that it is CRLF.
# - While a block is still incomplete, `scan_lines()` keeps running line statistics (first line
#   end, longest line, line count) from where it stopped, so the readers can enforce the size
#   limits (414/431) before the block is complete, without buffering unbounded input and
#   without rescanning.
# - The common case, a whole small request in one receive, costs one regex search and one
#   slice: `scan_lines()` is never called then.

from __future__ import annotations

import re

__all__ = ["ReceiveBuffer"]

# An empty line: the LF ending the previous line, an optional CR, and the LF ending the empty
# line. The CR is optional here only so that a bare-LF head ends (and is rejected) promptly.
_BLANK_LINE = re.compile(rb"\n\r?\n")


class ReceiveBuffer:
    """Bytes received from the peer and not consumed yet."""

    __slots__ = (
        "_data",
        "_scanned",
        "_searched",
        "first_line_end",
        "last_line_end",
        "lines",
        "longest_line",
    )

    def __init__(self) -> None:
        self._data = bytearray()
        self._searched = 0
        self._reset_scan()

    def _reset_scan(self) -> None:
        self._scanned = 0
        #: complete lines seen by scan_lines() (the LF count)
        self.lines = 0
        #: offset of the LF ending the first line, -1 before it arrived
        self.first_line_end = -1
        #: offset of the last LF seen, -1 before any
        self.last_line_end = -1
        #: length of the longest complete line after the first one (CR LF / LF excluded)
        self.longest_line = 0

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def append(self, data: bytes) -> None:
        """Add received bytes at the end."""
        self._data += data

    def clear(self) -> None:
        """Forget everything (after a protocol error nothing more is parsed)."""
        self._data = bytearray()
        self._searched = 0
        self._reset_scan()

    def startswith(self, prefix: bytes) -> bool:
        """True if the unconsumed bytes start with `prefix`."""
        return self._data.startswith(prefix)

    def holds_more_than_line_ends(self) -> bool:
        """True if some buffered byte is neither CR nor LF."""
        data = self._data
        return bool(data) and bool(data.strip(b"\r\n"))

    def starts_with_line_end(self) -> bool:
        """True if the first buffered byte is CR or LF."""
        return bool(self._data) and self._data[0] in b"\r\n"

    def take(self, n: int) -> bytes:
        """Remove and return the first `n` bytes (fewer if fewer are buffered)."""
        data = self._data
        if n >= len(data):
            out = bytes(data)
            self._data = bytearray()
        else:
            out = bytes(data[:n])
            del data[:n]
        self._searched = 0
        if self._scanned:
            self._reset_scan()
        return out

    def take_all(self) -> bytes:
        """Remove and return every buffered byte."""
        return self.take(len(self._data))

    def find(self, sub: bytes, end: int) -> int:
        """Offset of `sub` within the first `end` bytes, or -1."""
        return self._data.find(sub, 0, end)

    def find_block_end(self) -> int:
        """Find the empty line that ends a header or trailer block.

        Returns the offset of the LF that ends the block's last line (the block is
        `[0, offset]`, the empty line follows), or -1 if no empty line has arrived yet. The
        block must not itself start with an empty line (callers check that first).
        """
        data = self._data
        m = _BLANK_LINE.search(data, self._searched)
        if m is None:
            n = len(data) - 2
            self._searched = max(self._searched, n)
            return -1
        return m.start()

    def take_block(self, lf: int) -> bytes:
        """Remove and return the block ending with the LF at `lf` plus the empty line after it
        (CRLF or a bare LF, which the caller must check: the block is `[0, lf]`, the empty line
        starts at `lf + 1`)."""
        return self.take(lf + 3 if self._data[lf + 1] == 13 else lf + 2)

    def scan_lines(self) -> None:
        """Update the running line statistics with the bytes that arrived since the last call."""
        data = self._data
        pos = self._scanned
        find = data.find
        i = find(b"\n", pos)
        while i >= 0:
            if self.first_line_end < 0:
                self.first_line_end = i
            else:
                n = i - self.last_line_end - 1 - (data[i - 1] == 13)  # without CR LF
                self.longest_line = max(self.longest_line, n)
            self.last_line_end = i
            self.lines += 1
            i = find(b"\n", i + 1)
        self._scanned = len(data)
