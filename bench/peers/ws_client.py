# WebSocket echo load client of bench/run.py (the part wrk cannot do). Stdlib only.
#
# Strategy: one connection, strictly sequential round trips, so the figure is per-message
# latency through the server (msg/s = messages / wall time). Phase "small": N text messages of
# 32 bytes; phase "big": M binary messages of 1 MiB. A few unmeasured warm-up round trips come
# first in each phase, and every echo is checked byte for byte.
# Client side of RFC 6455: section 4.1 handshake (Sec-WebSocket-Accept checked), section 5.3 a
# fresh random 4-byte mask per frame, masked with one big-int XOR (no per-byte Python loop);
# server frames must be unmasked (section 5.1), fragments are joined (section 5.4), a ping gets a
# pong (section 5.5.2), and the session ends with a close handshake (section 5.5.1).
# Prints one JSON object: {"small": {...}, "big": {...}} or {"error": "..."}.
# Usage: python ws_client.py ws://127.0.0.1:PORT/echo [--small N] [--big M]
import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class WsError(Exception):
    pass


def _mask(data, key):
    n = len(data)
    if not n:
        return data
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


class Client:
    """A minimal blocking WebSocket client: connect, send(), recv(), close()."""

    def __init__(self, url, timeout=30.0):
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb", buffering=256 * 1024)
        key = base64.b64encode(os.urandom(16))
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode("ascii"))
        status = self.rfile.readline()
        headers = {}
        while True:
            line = self.rfile.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if status.split(b" ", 2)[1:2] != [b"101"]:
            raise WsError(f"handshake refused: {status.decode('latin-1').strip()}")
        expected = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if headers.get(b"sec-websocket-accept") != expected:
            raise WsError("bad Sec-WebSocket-Accept")

    def send(self, opcode, payload):
        """Send one final, masked frame."""
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        self.sock.sendall(head + key + _mask(payload, key))

    def _frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            raise WsError("connection closed by server")
        if head[1] & 0x80:
            raise WsError("server frame is masked")
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.rfile.read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.rfile.read(8))[0]
        payload = self.rfile.read(n)
        if len(payload) < n:
            raise WsError("connection closed mid-frame")
        return head[0] & 0x80, head[0] & 0x0F, payload

    def recv(self):
        """Return (opcode, payload) of the next data message."""
        parts, opcode = [], None
        while True:
            fin, op, payload = self._frame()
            if op == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise WsError(f"server closed the connection (code {code})")
            if op != OP_CONT:
                opcode = op
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    def close(self):
        try:
            self.send(OP_CLOSE, struct.pack("!H", 1000))
            self.sock.settimeout(2.0)
            while self._frame()[1] != OP_CLOSE:
                pass
        except (OSError, WsError):
            pass
        finally:
            self.rfile.close()
            self.sock.close()


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def run_phase(client, opcode, payload, count, warmup):
    for _ in range(warmup):
        client.send(opcode, payload)
        client.recv()
    latencies = []
    clock = time.perf_counter
    start = clock()
    for _ in range(count):
        t0 = clock()
        client.send(opcode, payload)
        got_op, got = client.recv()
        latencies.append(clock() - t0)
        if got_op != opcode or got != payload:
            raise WsError(f"echo mismatch (opcode {got_op}, {len(got)} bytes)")
    elapsed = clock() - start
    latencies.sort()
    return {
        "count": count,
        "seconds": round(elapsed, 4),
        "rate": count / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--small", type=int, default=1000, help="32-byte text round trips")
    parser.add_argument("--big", type=int, default=20, help="1 MiB binary round trips")
    args = parser.parse_args(argv)
    result = {}
    try:
        client = Client(args.url)
        try:
            if args.small:
                result["small"] = run_phase(client, OP_TEXT, b"x" * 32, args.small, 50)
            if args.big:
                result["big"] = run_phase(client, OP_BINARY, os.urandom(1 << 20), args.big, 2)
        finally:
            client.close()
    except (OSError, WsError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    json.dump(result, sys.stdout)
    print()
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
