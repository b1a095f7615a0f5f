# Kernel socket timeouts: SO_RCVTIMEO and SO_SNDTIMEO, which take a struct timeval.
#
# Why: a Python socket with a timeout polls before every recv and send (and settimeout() is itself a
# system call). A blocking socket with kernel timeouts needs one call per recv or send; when the
# deadline passes, the call fails with EAGAIN, which Python raises as BlockingIOError. Used by client
# connections (krait/server/channel.py), WebSocket sessions and the worker pipes (krait/pool/pipe.py).

from __future__ import annotations

import socket
import struct

_TIMEVAL = struct.Struct("@ll")  # struct timeval on Linux and the BSDs


def _timeval(seconds: float | None) -> bytes:
    if not seconds:  # None: no limit (the kernel reads a zero timeval as "wait forever")
        return _TIMEVAL.pack(0, 0)
    seconds = max(seconds, 0.001)  # a tiny positive deadline must not become "no limit"
    return _TIMEVAL.pack(int(seconds), int((seconds % 1) * 1e6))


def set_recv_timeout(sock: socket.socket, seconds: float | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))


def set_send_timeout(sock: socket.socket, seconds: float | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(seconds))
