"""Stdlib helpers for attacking a server with idle connections and measuring its memory.

Shared by the hardening tests (tests/functional/test_hardening.py) and the hand-run measurement
(bench/hardening.py), so both open idle connections the same way.
"""

from __future__ import annotations

import socket


def open_idle(port: int, count: int) -> list[socket.socket]:
    """`count` keep-alive connections, each after one answered request (sent all at once, then read).

    The server must serve `/hello.txt` with a body ending in "hello\\n"."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        data = b""
        while not data.endswith(b"hello\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("an idle-to-be connection was closed early")
            data += chunk
    return socks


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LookupError("no VmRSS for %d" % pid)
