# A message pipe between the server and one worker process: length-prefixed frames over a socketpair.
#
# Strategy: the job records of krait/jobs.py are tuples of str, bytes, ints and None, which `marshal`
# encodes several times faster than pickle; anything else (the start-up report with krait.config's
# snapshot) falls back to pickle. Each frame is a 5-byte header (4-byte big-endian length, 1 tag byte:
# b"m" marshal or b"p" pickle) and the payload, written with one sendall. Deadlines use the socket's own
# timeout, so waiting for a worker's answer costs one blocking recv and no selector set-up (measured: the
# multiprocessing Connection + poll() hop cost about 2x more per request).
#
# Rules: one thread may send while another receives (WebSocket sessions do); two senders must hold a
# lock. After a timeout the stream may be mid-frame, so the caller must discard the pipe (the pool kills
# the worker). EOF raises EOFError.

from __future__ import annotations

import marshal
import pickle
import socket
import struct
from typing import Any

_HEADER = struct.Struct("!IB")
_MARSHAL, _PICKLE = ord("m"), ord("p")


class MessagePipe:
    __slots__ = ("sock", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timeout: float | None = None
        sock.settimeout(None)

    @classmethod
    def pair(cls) -> tuple[MessagePipe, socket.socket]:
        """A pipe for this process and the raw socket to hand to the worker process."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(ours), theirs

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any) -> None:
        # Uses the timeout of the last recv(): the worker is reading, so a send only stalls when it hangs.
        try:
            data = marshal.dumps(obj)
            tag = _MARSHAL
        except ValueError:  # not plain data: the rare start-up report
            data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
            tag = _PICKLE
        header = _HEADER.pack(len(data), tag)
        if len(data) < 65536:
            self.sock.sendall(header + data)
            return
        # Large payloads (WebSocket messages): gather-write instead of copying them behind the header.
        sent = self.sock.sendmsg([header, data])
        if sent < len(header) + len(data):
            self.sock.sendall(memoryview(header + data)[sent:] if sent < len(header) else memoryview(data)[sent - len(header):])

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; TimeoutError when none arrives in time, EOFError when the peer is gone."""
        self._set_timeout(timeout)
        try:
            header = self._read(5)
            size, tag = _HEADER.unpack(header)
            data = self._read(size)
        except socket.timeout:
            raise TimeoutError("no message within %ss" % timeout) from None
        except (ConnectionResetError, BrokenPipeError):
            raise EOFError("worker pipe closed") from None
        return marshal.loads(data) if tag == _MARSHAL else pickle.loads(data)

    def _read(self, n: int) -> bytes:
        data = self.sock.recv(n)
        if len(data) == n:
            return data
        if not data:
            raise EOFError("worker pipe closed")
        buf = bytearray(n)
        view = memoryview(buf)
        got = len(data)
        view[:got] = data
        while got < n:
            count = self.sock.recv_into(view[got:], n - got)
            if not count:
                raise EOFError("worker pipe closed")
            got += count
        return buf  # marshal and pickle read a bytearray as they read bytes

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
