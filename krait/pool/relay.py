# Publishing across server processes (--processes N): the parent relays PUBLISH records between them.
#
# Design: before it forks the servers, the parent makes one socketpair per server. Each server's
# WebSocket hub (krait/server/hub.py) writes a PUBLISH record to its end when a message was published in
# that process, and reads the records the others published. The relay thread in the parent reads every
# server's end and writes each record to every other server: one publish crosses each process boundary
# once, and the records of one publisher keep their order. The records are krait/pool/jobs.py's,
# framed as on a worker's pipe.

from __future__ import annotations

import selectors
import socket
import threading

from krait.pool.pipe import PipeReader, PipeWriter


def socketpairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    """One (parent end, server end) pair per server process."""
    return [socket.socketpair() for _ in range(count)]


class Relay:
    """The parent's relay thread (see the module comment)."""

    def __init__(self, ends: list[socket.socket]) -> None:
        self._ends = [(PipeReader(end), PipeWriter(end)) for end in ends]
        self._selector = selectors.DefaultSelector()
        for index, (reader, _) in enumerate(self._ends):
            self._selector.register(reader.end, selectors.EVENT_READ, index)
        self._thread = threading.Thread(target=self._loop, name="krait-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        live = len(self._ends)
        while live:
            for key, mask in self._selector.select():
                index = key.data
                reader, writer = self._ends[index]
                if mask & selectors.EVENT_WRITE:
                    if writer.flush():
                        self._selector.modify(reader.end, selectors.EVENT_READ, index)
                if not mask & selectors.EVENT_READ:
                    continue
                try:
                    records = reader.read()
                except EOFError:  # that server stopped
                    self._selector.unregister(reader.end)
                    live -= 1
                    continue
                for record in records:
                    self._forward(index, record)

    def _forward(self, source: int, record: tuple) -> None:
        for index, (reader, writer) in enumerate(self._ends):
            if index == source:
                continue
            writer.send(record)  # nothing, once that server is gone
            if writer.pending:
                try:
                    self._selector.modify(reader.end, selectors.EVENT_READ | selectors.EVENT_WRITE, index)
                except KeyError:  # that server stopped
                    pass
