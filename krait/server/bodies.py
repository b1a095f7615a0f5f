# Request bodies on their way to a worker: in memory when small, in a temporary file when large.
#
# Design: a Body collects what the channel reads. Its bytes stay in memory while the body is at most
# SPOOL_THRESHOLD and the server's memory budget for bodies (BODY_MEMORY, shared by every connection of
# this process) has room; otherwise they go to a temporary file in the process's spool folder, and a body
# whose Content-Length already says it is large goes there from its first byte. A spooled body never
# crosses the worker pipe: the job names the file and the worker opens it (krait.request.body_file, or
# .body read once on first use; docs/scripts.md). So however many clients upload at once, the server holds
# at most BODY_MEMORY of their bodies, and an upload costs about one receive buffer of memory.
# The channel closes every Body once its request is answered, which gives back its share of the budget
# and deletes its file; the folder itself goes when the server process stops.

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import BinaryIO

from krait import limits


class BodySpool:
    """The spool folder and the memory budget of one server process."""

    def __init__(self, memory: int = limits.BODY_MEMORY, threshold: int = limits.SPOOL_THRESHOLD) -> None:
        self.folder = tempfile.mkdtemp(prefix="krait-bodies-")
        self.memory = memory
        self.threshold = threshold
        self.held = 0  # bytes of bodies in memory now
        self._lock = threading.Lock()

    def body(self, length: int | None) -> Body:
        """A Body for a request whose Content-Length is `length` (None: chunked)."""
        body = Body(self)
        if length is not None and length > self.threshold:
            body.spool()
        return body

    def take(self, size: int) -> bool:
        """Reserve `size` bytes of the memory budget; False when it has no room."""
        with self._lock:
            if self.held + size > self.memory:
                return False
            self.held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Body:
    """One request body being received (see the module comment)."""

    __slots__ = ("owner", "data", "held", "file", "path")

    def __init__(self, owner: BodySpool) -> None:
        self.owner = owner
        # One buffer, not a list of pieces: a chunked body of 2-byte chunks would otherwise cost an object
        # per chunk, many times the bytes that the budget counts.
        self.data = bytearray()
        self.held = 0  # bytes in `data`, reserved from the owner's budget
        self.file: BinaryIO | None = None
        self.path = ""  # the spool file, once there is one

    def write(self, data: bytes) -> None:
        if self.file is None:
            if self.held + len(data) <= self.owner.threshold and self.owner.take(len(data)):
                self.data += data
                self.held += len(data)
                return
            self.spool()
        self.file.write(data)  # type: ignore[union-attr]

    def spool(self) -> None:
        """Move to a file in the spool folder (what was held in memory first)."""
        fd, self.path = tempfile.mkstemp(suffix=".body", dir=self.owner.folder)
        self.file = open(fd, "wb")  # noqa: SIM115 (closed by finish() or close())
        self.file.write(self.data)
        self.data = bytearray()
        self._give_back()

    def finish(self) -> tuple[bytes, str]:
        """The whole body as (bytes, "") when in memory, or (b"", path of its file) when spooled."""
        if self.file is None:
            data = bytes(self.data)
            self.data = bytearray()  # its reservation stays until close()
            return data, ""
        self.file.close()
        return b"", self.path

    def close(self) -> None:
        """The request is answered: free the memory and delete the file."""
        self.data = bytearray()
        self._give_back()
        if self.file is not None:
            self.file.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _give_back(self) -> None:
        if self.held:
            self.owner.give(self.held)
            self.held = 0
