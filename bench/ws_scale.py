"""WebSockets at scale: memory per idle connection, time to open them, and fan-out latency of a publish.

Krait (`python -m krait bench/sites/krait`, at its defaults) and the websockets library's asyncio and
sync servers (bench/peers/ws_rooms.py, at theirs) run one after the other, each pinned to CPU 0; the
client (this script, stdlib only, one selector loop for every socket) runs on CPU 1. For each server:

- open 1,000 connections, timed; then more, up to 5,000 and 10,000 (--steps); after each step, the
  PSS of the server's whole process tree (its workers too) from /proc/PID/smaps_rollup, minus the PSS
  before the first connection, per connection;
- with the first 1,000 connections open, --publishes times one member sends "pub <stamp>", which the
  server delivers to every member of the room (Krait: krait.websockets.publish(); websockets:
  broadcast() or a loop of send()); the latency of each delivery is its arrival time minus the
  stamp: p50 and p99 over all deliveries.

    python bench/ws_scale.py [--steps 1000,5000,10000] [--publishes 20] [--servers krait,asyncio,sync]
                             [--venv bench/.venv] [--krait-cmd "python -m krait"]

Everything runs with the python of --venv (default bench/.venv, made when missing with the peers and
Krait's requirements, as bench/run.py --venv makes one): a fresh clone's system python has no ply.
Linux only (taskset, /proc). Opening 10,000 connections needs a soft open-file limit above 10,000 for
this process (raised to the hard limit here) and for the server (Krait raises its own).
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import selectors
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import time

from bench_setup import ensure_venv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SITE = os.path.join(HERE, "sites", "krait")
PEER = os.path.join(HERE, "peers", "ws_rooms.py")
IN_FLIGHT = 200  # handshakes under way at once


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree(pid: int) -> list[int]:
    found = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        found += tree(int(child))
    return found


def pss_kib(pid: int) -> int:
    """PSS of a process and all its descendants, in KiB."""
    total = 0
    for one in tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % one) as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total


def masked(opcode: int, payload: bytes) -> bytes:
    """A client's frame (RFC 6455 section 5.2), masked as clients must; payloads up to 125 bytes."""
    key = os.urandom(4)
    assert len(payload) <= 125
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(payload))


class Clients:
    """Many idle WebSocket clients in one selector loop; they answer the server's pings."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.socks: list[socket.socket] = []
        self.bufs: dict[socket.socket, bytes] = {}
        self.selector = selectors.DefaultSelector()

    def open(self, count: int) -> float:
        """Open `count` more connections (IN_FLIGHT handshakes at a time); seconds it took."""
        started = time.monotonic()
        pending: dict[socket.socket, bytes] = {}
        todo = count
        sel = selectors.DefaultSelector()
        while todo or pending:
            while todo and len(pending) < IN_FLIGHT:
                sock = socket.create_connection(("127.0.0.1", self.port))
                key = base64.b64encode(os.urandom(16)).decode()
                sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (self.path, key)).encode())
                sock.setblocking(False)
                pending[sock] = b""
                sel.register(sock, selectors.EVENT_READ)
                todo -= 1
            for key, _ in sel.select(30):
                sock = key.fileobj  # type: ignore[assignment]
                data = sock.recv(4096)
                if not data:
                    raise SystemExit("the server closed a connection during its handshake")
                head = pending[sock] + data
                pending[sock] = head
                if b"\r\n\r\n" in head:
                    if not head.startswith(b"HTTP/1.1 101"):
                        raise SystemExit("handshake refused: %r" % head[:80])
                    sel.unregister(sock)
                    del pending[sock]
                    self.socks.append(sock)
                    self.bufs[sock] = head[head.index(b"\r\n\r\n") + 4:]
                    self.selector.register(sock, selectors.EVENT_READ)
            self.pump(0)
        sel.close()
        return time.monotonic() - started

    def pump(self, timeout: float) -> list[tuple[socket.socket, float, bytes]]:
        """Read what has arrived (waiting up to `timeout`), answer pings; the text frames read."""
        texts = []
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj  # type: ignore[assignment]
            now = time.time()
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("the server closed a connection")
            buf = self.bufs[sock] + data
            while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
                opcode, size = buf[0] & 0x0F, buf[1] & 0x7F
                payload, buf = buf[2:2 + size], buf[2 + size:]
                if opcode == 9:  # ping: pong it back
                    sock.sendall(masked(10, payload))
                elif opcode == 1:
                    texts.append((sock, now, payload))
                elif opcode == 8:
                    raise SystemExit("the server closed a connection: %r" % payload)
            self.bufs[sock] = buf
        return texts

    def idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(max(deadline - time.monotonic(), 0))

    def fan_out(self, members: int, publishes: int) -> list[float]:
        """Latency (seconds) of every delivery of `publishes` publishes to the first `members`."""
        sample = set(self.socks[:members])
        latencies: list[float] = []
        for i in range(publishes):
            stamp = time.time()
            self.socks[i % members].send(masked(1, b"pub %.6f %d" % (stamp, i)))
            arrived = 0
            deadline = time.monotonic() + 30
            while arrived < members and time.monotonic() < deadline:
                for sock, now, payload in self.pump(1):
                    if sock in sample and payload.split()[2] == b"%d" % i:
                        latencies.append(now - float(payload.split()[1]))
                        arrived += 1
            if arrived < members:
                raise SystemExit("publish %d reached %d of %d members" % (i, arrived, members))
            self.idle(0.05)
        return latencies

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.selector.close()


def start(kind: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    if kind == "krait":
        cmd = shlex.split(args.krait_cmd) + [SITE, "--port", str(port), "--log-level", "warning"]
    else:
        python = os.path.join(args.venv, "bin", "python")
        cmd = [python, PEER, "--port", str(port), "--mode", kind]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(["taskset", "-c", str(args.server_cpu)] + cmd, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(1.0)  # let it settle (Krait: its first WebSocket worker is up before it listens)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("%s exited with %s" % (kind, proc.returncode)) from None
            time.sleep(0.2)
    raise SystemExit("%s did not start" % kind)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def measure(kind: str, args: argparse.Namespace) -> dict:
    port = free_port()
    proc = start(kind, port, args)
    row: dict = {"server": kind}
    clients = Clients(port, "/room" if kind == "krait" else "/")
    try:
        base = pss_kib(proc.pid)
        opened = 0
        for step in args.steps:
            took = clients.open(step - opened)
            opened = step
            clients.idle(1.0)  # every connection settled and idle
            per = (pss_kib(proc.pid) - base) * 1024 / step
            row[step] = (per, took)
            print("  %-8s %6d connections: %5.1f kB PSS each, opened in %.2f s" % (kind, step, per / 1000, took),
                  flush=True)
            if step == args.steps[0]:
                latencies = sorted(clients.fan_out(step, args.publishes))
                row["p50"] = statistics.median(latencies)
                row["p99"] = latencies[int(0.99 * (len(latencies) - 1))]
                print("  %-8s publish to %d members: p50 %.1f ms, p99 %.1f ms" % (
                    kind, step, row["p50"] * 1000, row["p99"] * 1000), flush=True)
    except (SystemExit, OSError) as exc:
        row["error"] = str(exc)
        print("  %-8s failed: %s" % (kind, exc), flush=True)
    finally:
        clients.close()
        stop(proc)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="1000,5000,10000")
    ap.add_argument("--publishes", type=int, default=20)
    ap.add_argument("--servers", default="krait,asyncio,sync")
    ap.add_argument("--venv", default=os.path.join(HERE, ".venv"))
    ap.add_argument("--krait-cmd", help="what starts Krait (default: the venv's python -m krait)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    args = ap.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    ensure_venv(args.venv)
    if args.krait_cmd is None:
        args.krait_cmd = "%s -m krait" % shlex.quote(os.path.join(args.venv, "bin", "python"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.sched_setaffinity(0, {args.client_cpu})
    rows = [measure(kind, args) for kind in args.servers.split(",")]
    print("\n| server | " + " | ".join("PSS/conn at %d" % s for s in args.steps) + " | open %d | publish p50 / p99 |"
          % args.steps[0])
    print("|---" * (len(args.steps) + 3) + "|")
    for row in rows:
        cells = ["%.1f kB" % (row[s][0] / 1000) if s in row else "-" for s in args.steps]
        opened = "%.2f s" % row[args.steps[0]][1] if args.steps[0] in row else "-"
        fan = "%.1f / %.1f ms" % (row["p50"] * 1000, row["p99"] * 1000) if "p50" in row else "-"
        name = {"krait": "Krait", "asyncio": "websockets asyncio", "sync": "websockets sync"}[row["server"]]
        if "error" in row:
            fan += " (failed: %s)" % row["error"][:60]
        print("| %s | %s | %s | %s |" % (name, " | ".join(cells), opened, fan))


if __name__ == "__main__":
    main()
