# WebSocket echo latency and throughput of Krait, over one connection.
#
# Strategy: write a tiny echo site into a temp dir (WEBSOCKET route /echo, event-model controller:
# use_in_message_queue=False and on_in_message pushes the message straight back, so nothing polls),
# start `python -m krait SITE --port 0`, wait for its ready line, then time strictly sequential round
# trips on one connection: phase "small" sends N 32-byte text messages, phase "big" M 1 MiB binary
# messages (the default --max-ws-message, so the largest message Krait accepts). Each phase starts
# with a few unmeasured warm-up round trips; every echo is compared byte for byte. The figures are
# p50/p99 round-trip latency (nearest rank) and messages/s = count / wall time of the phase.
# The client is stdlib only: RFC 6455 section 4.1 handshake with the Sec-WebSocket-Accept check,
# section 5.3 masking with a fresh os.urandom key per frame (one big-int XOR, no per-byte loop),
# minimal length encoding (section 5.2), and a closing handshake at the end (section 5.5.1).
#
# Usage: python bench/ws_latency.py [--small 1000] [--big 20] [--json]

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"Krait \S+ serving .* at http://([^/]+):(\d+)/")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA

SITE = {
    ".py/init.py": 'import krait\nfrom krait.config import Route\n'
                   'krait.config.routes = [Route("WEBSOCKET", url="/echo"), Route()]\n',
    ".py/echoctrl.py": "from krait.websockets import WebsocketsCtrlBase\n\n\n"
                       "class Echo(WebsocketsCtrlBase):\n"
                       "    def __init__(self):\n"
                       "        super().__init__(use_in_message_queue=False)\n\n"
                       "    def on_in_message(self, message):\n"
                       "        self.push_out_message(message)\n",
    "echo.py": "import krait\nfrom echoctrl import Echo\n"
               "if krait.websockets.request is None:\n"
               "    krait.response = krait.ResponseBadRequest()\n"
               "else:\n"
               "    krait.websockets.response = krait.websockets.WebsocketsResponse(Echo())\n",
}


class EchoClient:
    """One blocking client connection: send(opcode, payload), recv() -> (opcode, payload)."""

    def __init__(self, port: int, path: str = "/echo") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb", buffering=1 << 18)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), port, key))
        status = self.reader.readline()
        headers = {}
        for line in iter(self.reader.readline, b"\r\n"):
            if not line:
                raise ConnectionError("connection closed during the handshake")
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if status.split()[1:2] != [b"101"]:
            raise ConnectionError("handshake refused: %r" % status)
        if headers.get(b"sec-websocket-accept") != base64.b64encode(hashlib.sha1(key + GUID).digest()):
            raise ConnectionError("wrong Sec-WebSocket-Accept")

    def send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n <= 125:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n <= 0xFFFF:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.sock.sendall(head + key + masked)

    def _exact(self, n: int) -> bytes:
        data = self.reader.read(n)
        if len(data) != n:
            raise ConnectionError("connection closed mid-frame")
        return data

    def recv(self) -> tuple[int, bytes]:
        parts: list[bytes] = []
        opcode = 0
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            op = b0 & 0x0F
            if op == PING:
                self.send(PONG, payload)
                continue
            if op == CLOSE:
                raise ConnectionError("server closed: %r" % payload)
            if op == PONG:
                continue
            opcode = opcode or op
            parts.append(payload)
            if b0 & 0x80:
                return opcode, b"".join(parts)

    def close(self) -> None:
        try:
            self.send(CLOSE, struct.pack("!H", 1000))
            while True:
                b0, b1 = self._exact(2)
                self._exact(b1 & 0x7F)
                if b0 & 0x0F == CLOSE:
                    break
        except (OSError, ConnectionError):
            pass
        self.reader.close()
        self.sock.close()


def percentile(ordered: list[float], q: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))]


def phase(client: EchoClient, opcode: int, payload: bytes, count: int, warmup: int) -> dict:
    for _ in range(warmup):
        client.send(opcode, payload)
        client.recv()
    clock = time.perf_counter
    latencies = []
    start = clock()
    for _ in range(count):
        t0 = clock()
        client.send(opcode, payload)
        got = client.recv()
        latencies.append(clock() - t0)
        if got != (opcode, payload):
            raise AssertionError("echo mismatch")
    wall = clock() - start
    latencies.sort()
    return {"count": count, "bytes": len(payload), "seconds": round(wall, 3), "msg_per_s": round(count / wall, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 3),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 3)}


def start_server(site: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "krait", str(site), "--port", "0", "--workers", "1",
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = READY.search(line or "")
        if m:
            return proc, int(m.group(2))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("krait did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Krait WebSocket echo latency (one connection).")
    parser.add_argument("--small", type=int, default=1000, help="32-byte text round trips (default 1000)")
    parser.add_argument("--big", type=int, default=20, help="1 MiB binary round trips (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="krait-wsbench-") as tmp:
        site = Path(tmp) / "site"
        for rel, text in SITE.items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(text)
        proc, port = start_server(site)
        try:
            client = EchoClient(port)
            try:
                results = {"small": phase(client, TEXT, b"x" * 32, args.small, 50),
                           "big": phase(client, BINARY, os.urandom(1 << 20), args.big, 2)}
            finally:
                client.close()
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    if args.json:
        print(json.dumps(results))
        return 0
    print("Krait WebSocket echo, one connection, event-model controller")
    print("%-22s %8s %10s %10s %10s" % ("phase", "count", "msg/s", "p50 ms", "p99 ms"))
    for name, label in (("small", "32 B text"), ("big", "1 MiB binary")):
        r = results[name]
        print("%-22s %8d %10.1f %10.3f %10.3f" % (label, r["count"], r["msg_per_s"], r["p50_ms"], r["p99_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
