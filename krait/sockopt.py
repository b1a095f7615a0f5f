# Kernel socket timeouts (SO_RCVTIMEO and SO_SNDTIMEO), and connected socket pairs.
#
# Why: a Python socket with a timeout polls before every recv and send (and settimeout() is itself a
# system call). A blocking socket with kernel timeouts needs one call per recv or send; when the
# deadline passes, the call fails with EAGAIN, which Python raises as BlockingIOError (on Windows with
# WSAETIMEDOUT, raised as TimeoutError: callers catch both). Used by client connections
# (krait/server/channel.py) and script workers' pipes on POSIX (krait/pool/pipe.py). The option's value is
# a struct timeval on Linux, macOS and the BSDs, and a DWORD of milliseconds on Windows.
# socketpair(): AF_UNIX where there is one; Windows builds the pair over loopback TCP, where Nagle's
# algorithm would hold a small write back until the previous one is acknowledged, so it is turned off.
# send_queued(): one write of queued output (a client's frames, a pipe's records) that keeps its order.
# kernel_unsent(): bytes a socket's kernel still holds for the peer (sent but not yet acknowledged, or
# not sent), Linux's SIOCOUTQ ioctl; 0 where the kernel cannot say.

from __future__ import annotations

import itertools
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

try:  # SIOCOUTQ (Linux): termios has its number as TIOCOUTQ, the same request for sockets
    import fcntl
    import termios
    _OUTQ: int | None = termios.TIOCOUTQ if sys.platform.startswith("linux") else None
except ImportError:  # Windows
    _OUTQ = None

_TIMEVAL = struct.Struct("@ll")  # struct timeval on Linux and the BSDs
_DWORD_MAX = 0xFFFFFFFF
_IOV_MAX = 64  # buffers handed to one sendmsg()


def _timeval(seconds: float | None) -> bytes:
    if not seconds:  # None: no limit (the kernel reads a zero timeval as "wait forever")
        return _TIMEVAL.pack(0, 0)
    seconds = max(seconds, 0.001)  # a tiny positive deadline must not become "no limit"
    return _TIMEVAL.pack(int(seconds), int((seconds % 1) * 1e6))


def _milliseconds(seconds: float | None) -> int:
    if not seconds:  # None: no limit (Windows reads 0 as "wait forever")
        return 0
    return min(max(round(seconds * 1000), 1), _DWORD_MAX)  # at least 1: 0 would be "no limit"


_value: Callable[[float | None], int | bytes] = _milliseconds if sys.platform == "win32" else _timeval


def set_recv_timeout(sock: socket.socket, seconds: float | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _value(seconds))


def set_send_timeout(sock: socket.socket, seconds: float | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _value(seconds))


def kernel_unsent(sock: Any) -> int:
    """Bytes the kernel holds for the peer of `sock`, unsent or unacknowledged (0: none, or unknown)."""
    if _OUTQ is None:
        return 0
    try:
        return struct.unpack("@i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def socketpair() -> tuple[socket.socket, socket.socket]:
    """Two connected stream sockets (see the module comment)."""
    pair = socket.socketpair()
    if pair[0].family in (socket.AF_INET, socket.AF_INET6):
        for end in pair:
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return pair


def send_queued(end: Any, parts: deque, gather: bool, flags: int = 0) -> int:
    """Write the front of `parts` (bytes and memoryviews, in order) with one call, without waiting if `end`
    is non-blocking (or `flags` has MSG_DONTWAIT, for a socket): with `gather`, sendmsg() of up to
    _IOV_MAX of them, else send() of the first. What went out leaves `parts` (a part sent in part is
    replaced by the view of its rest). Returns the bytes sent; the call's exceptions (BlockingIOError...)
    pass through."""
    if gather:
        buffers = list(itertools.islice(parts, _IOV_MAX))
        sent = end.sendmsg(buffers, (), flags) if flags else end.sendmsg(buffers)
    else:
        sent = end.send(parts[0], flags) if flags else end.send(parts[0])
    left = sent
    while left:
        first = parts[0]
        if left >= len(first):
            left -= len(first)
            parts.popleft()
        else:
            parts[0] = memoryview(first)[left:]
            left = 0
    return sent
