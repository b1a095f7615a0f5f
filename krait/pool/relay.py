# Publishing across server processes (--processes N): the parent relays PUBLISH records between them.
#
# Design: before it forks the servers, the parent makes one socketpair per server. Each server's
# WebSocket hub (krait/server/hub.py) writes a PUBLISH record to its end when a message was published in
# that process, and reads the records the others published. The relay thread in the parent reads every
# server's end and writes each record to every other server: one publish crosses each process boundary
# once, and the records of one publisher keep their order. The records are krait/pool/jobs.py's,
# framed as on a worker's pipe. Either side handles its ends as RelayEnds in a selector loop: nothing
# blocks, and an end is watched for writing only while output waits in it.

from __future__ import annotations

import selectors
import socket
import threading

from krait.pool.pipe import PipeReader, PipeWriter


def socketpairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    """One (parent end, server end) pair per server process."""
    return [socket.socketpair() for _ in range(count)]


class RelayEnd:
    """One end of a relay socketpair, registered in a selector loop under `data`."""

    __slots__ = ("sock", "reader", "writer", "data", "_selector", "_events")

    def __init__(self, sock: socket.socket, selector: selectors.BaseSelector, data: object) -> None:
        self.sock = sock
        self.reader = PipeReader(sock)
        self.writer = PipeWriter(sock)
        self.data = data
        self._selector = selector
        self._events = selectors.EVENT_READ
        selector.register(sock, self._events, data)

    def send(self, record: tuple) -> None:
        """Queue a record (written at once as far as the socket takes it); nothing once the peer is gone."""
        self.writer.send(record)
        self._watch()

    def ready(self, mask: int) -> list | None:
        """The selector said the end is ready (`mask`): write what waits, and return the records read;
        None when the peer is gone (the end is then out of the selector)."""
        if mask & selectors.EVENT_WRITE:
            self.writer.flush()
            self._watch()
        if not mask & selectors.EVENT_READ:
            return []
        try:
            return self.reader.read()
        except EOFError:
            self._selector.unregister(self.sock)
            self._events = 0
            return None

    def _watch(self) -> None:
        events = selectors.EVENT_READ | selectors.EVENT_WRITE if self.writer.pending else selectors.EVENT_READ
        if events != self._events and self._events:
            self._selector.modify(self.sock, events, self.data)
            self._events = events


class Relay:
    """The parent's relay thread (see the module comment)."""

    def __init__(self, ends: list[socket.socket]) -> None:
        self._selector = selectors.DefaultSelector()
        self._ends = [RelayEnd(end, self._selector, index) for index, end in enumerate(ends)]
        self._thread = threading.Thread(target=self._loop, name="krait-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        live = len(self._ends)
        while live:
            for key, mask in self._selector.select():
                records = self._ends[key.data].ready(mask)
                if records is None:  # that server stopped
                    live -= 1
                    continue
                for record in records:
                    self._forward(key.data, record)

    def _forward(self, source: int, record: tuple) -> None:
        for index, end in enumerate(self._ends):
            if index != source:
                end.send(record)  # nothing, once that server is gone
