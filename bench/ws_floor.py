"""The floor under Krait's WebSocket echo: the same threads and process hop, with no framing at all.

Strategy: a TCP echo server on CPU 0 in one of two shapes, and a client on CPU 1 doing strictly
sequential 38-byte round trips (the size of a masked 32-byte text frame):
  direct  the connection's thread echoes what it reads (the shape of a one-process server such as
          the websockets sync server, minus its framing);
  hop     the connection's thread writes what it reads to a child process over a socketpair, the child
          writes it back over a second one, and a pump thread writes it to the client (Krait's shape,
          see krait/server/websocket.py and krait/pool/pipe.py, minus framing, marshal and the controller).
Prints microseconds per round trip and the CPU the server side (parent and child) spent per message.
What Krait adds on top of "hop" is its own Python; what "hop" adds on top of "direct" is the price of
running controllers in a worker process (docs/architecture.md). Linux only (sched_setaffinity).

    python bench/ws_floor.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import threading
import time

SIZE = 38


def echo_direct(conn: socket.socket) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def echo_hop(conn: socket.socket) -> None:
    to_child, child_in = socket.socketpair()
    child_out, from_child = socket.socketpair()
    child = os.fork()
    if child == 0:
        for sock in (conn, to_child, from_child):  # or the parent's close would never reach us as EOF
            sock.close()
        while True:
            data = child_in.recv(65536)
            if not data:
                os._exit(0)
            child_out.sendall(data)

    def pump() -> None:
        while True:
            data = from_child.recv(65536)
            if not data:
                return
            conn.sendall(data)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        data = conn.recv(65536)
        if not data:
            break
        to_child.sendall(data)
    to_child.close()
    os.waitpid(child, 0)


def client(port: int, count: int, out: int) -> None:
    os.sched_setaffinity(0, {1})
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * SIZE
    for _ in range(500):  # warm-up
        sock.sendall(message)
        sock.recv(100)
    start = time.perf_counter()
    for _ in range(count):
        sock.sendall(message)
        sock.recv(100)
    os.write(out, b"%.9f" % ((time.perf_counter() - start) / count))
    sock.close()


def measure(shape: str, count: int) -> tuple[float, float]:
    listener = socket.create_server(("127.0.0.1", 0))
    read_end, write_end = os.pipe()
    peer = os.fork()
    if peer == 0:
        client(listener.getsockname()[1], count, write_end)
        os._exit(0)
    conn = listener.accept()[0]
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ours, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    (echo_direct if shape == "direct" else echo_hop)(conn)
    ours2, children2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    os.waitpid(peer, 0)
    per_trip = float(os.read(read_end, 64))
    for closing in (conn, listener):
        closing.close()
    os.close(read_end)
    os.close(write_end)
    cpu = (ours2.ru_utime + ours2.ru_stime - ours.ru_utime - ours.ru_stime
           + children2.ru_utime + children2.ru_stime - children.ru_utime - children.ru_stime)
    return per_trip, cpu / (count + 500)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    for shape in ("direct", "hop", "hop", "direct"):  # ABBA: the machine drifts
        per_trip, cpu = measure(shape, args.messages)
        print("%-6s %6.1f us per round trip (%6.0f msg/s), server side %5.1f us CPU per message"
              % (shape, per_trip * 1e6, 1 / per_trip, cpu * 1e6))


if __name__ == "__main__":
    main()
