"""Shared helpers for the sans-IO HTTP tests (every input fed three ways, tests/helpers.py)."""

import pytest

from krait.errors import ProtocolError
from krait.http import (
    NEED_DATA,
    PAUSED,
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)
from tests import helpers

NEXT = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n"


def drain(conn):
    """Every event available now, up to NEED_DATA / PAUSED / ConnectionClosed (included)."""
    out = []
    while True:
        ev = conn.next_event()
        out.append(ev)
        if ev is NEED_DATA or ev is PAUSED or type(ev) is ConnectionClosed:
            return out


def merge(events):
    """Join consecutive Data events and drop NEED_DATA, so feeding styles compare equal."""
    out = []
    for ev in events:
        if ev is NEED_DATA:
            continue
        if type(ev) is Data and out and type(out[-1]) is Data:
            out[-1] = Data(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out


def feed(data, conn=None, bytewise=False, eof=False, **limits):
    pieces = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    return feed_chunks(pieces, conn, eof, **limits)


def feed_chunks(pieces, conn=None, eof=False, **limits):
    conn = conn or Connection(**limits)
    events = []
    for piece in pieces:
        if not piece:
            continue
        conn.receive_data(piece)
        events += drain(conn)
    if eof:
        conn.receive_data(b"")
        events += drain(conn)
    return conn, merge(events)


def three_ways(data, expected, eof=False, **limits):
    """Feed `data` whole, byte by byte and followed by a pipelined request; all must give
    `expected` (a list of events, NEED_DATA excluded). Returns the connection of the whole run."""
    # The third way (followed by a pipelined request) is checked below: it must also answer that one.
    assert helpers.three_ways(lambda pieces: feed_chunks(pieces, eof=eof, **limits)[1], data, None) == expected
    conn, _ = feed(data, eof=eof, **limits)
    if not eof and expected and expected[-1] is PAUSED:
        conn2, got = feed(data + NEXT, **limits)
        assert got == expected
        conn2.send_full(200, [], b"")
        nxt = merge(drain(conn2))
        if conn2.keep_alive:
            assert type(nxt[0]) is Request and nxt[0].target == "/next", nxt
        else:
            assert type(nxt[0]) is ConnectionClosed
    return conn


def error_three_ways(data, status, eof=False, pipelined=True, **limits):
    """Feeding `data` any of the three ways raises ProtocolError(status_hint=status).
    The pipelined way is skipped with `eof` or `pipelined=False` (incomplete inputs)."""
    ways = ((False, b""), (True, b""), (False, NEXT))
    for bytewise, extra in ways if pipelined and not eof else ways[:2]:
        conn = Connection(**limits)
        with pytest.raises(ProtocolError) as info:
            feed(data + extra, conn=conn, bytewise=bytewise, eof=eof)
        assert info.value.status_hint == status, (bytewise, extra, str(info.value))
        # final: the same error again, nothing more parsed
        conn.receive_data(NEXT)
        with pytest.raises(ProtocolError) as again:
            conn.next_event()
        assert again.value is info.value
        assert conn.keep_alive is False
    return info.value


def req(target="/", method="GET", version="1.1", headers=None, raw=None, keep_alive=None,
        expect_continue=False, content_length=None, chunked=False):
    headers = {"host": "h"} if headers is None else headers
    raw = tuple(headers.items()) if raw is None else raw
    if keep_alive is None:
        keep_alive = version == "1.1"
    return Request(method, target, version, headers, raw, keep_alive, expect_continue,
                   content_length, chunked)


EOM = EndOfMessage()
