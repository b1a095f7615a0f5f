"""The WebSocket hub's own work per echo, without the selector wait, the worker or the scheduler.

Strategy: a real WebSocketHub (krait/server/hub.py) holds one client on a socketpair and one
WebSocket worker whose pipes are real os.pipe()s but whose process is this one. Each round trip
writes a masked 32-byte text frame to the client socket, times the hub's _client_readable() (read,
unmask, check, forward to the worker's pipe), answers as the worker would (one raw message record
written to the pipe), and times _worker_readable() (read the record, frame it, send it to the
client). Prints microseconds per echo for each half, the best of --rounds runs. A warm loop on one
core: under load, with the worker's process and the client taking turns on the caches, the same
code costs several times more (bench/README.md, "The hub").

    python bench/hub_cost.py [--rounds 5] [--messages 20000] [--krait-dir CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--krait-dir", default=os.path.dirname(HERE), help="the checkout to measure")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.krait_dir))
    from krait.pool.pipe import MessagePipe
    from krait.pool.sessions import WsWorker
    from krait.server.hub import WebSocketHub
    from krait.server.websocket import WsClient
    from krait.settings import Settings

    hub = WebSocketHub(Settings(site_root=HERE))  # not started: its methods run on this thread
    server_end, worker_ends = MessagePipe.pair(pipes=True)
    worker_pipe = MessagePipe(*worker_ends)
    worker = WsWorker(types.SimpleNamespace(pipe=server_end, generation=0))  # no process: this loop
    client = WsClient(1, worker, 1 << 20, None)
    mine, peer = socket.socketpair()
    client.attach(mine)
    hub.clients[1] = client

    key = b"abcd"
    frame = bytes([0x81, 0x80 | 32]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(b"x" * 32))
    record = (4 + 32).to_bytes(4, "big") + b"t" + (1).to_bytes(4, "big") + b"x" * 32  # pool/pipe.py
    worker_in, worker_out = worker_pipe.sock.fd, worker_pipe.out.fd

    best = (float("inf"), 0.0, 0.0)
    for _ in range(args.rounds):
        inward = outward = 0.0
        for _ in range(args.messages):
            peer.send(frame)
            t0 = time.perf_counter()
            hub._client_readable(client)
            t1 = time.perf_counter()
            os.read(worker_in, 65536)
            os.write(worker_out, record)
            t2 = time.perf_counter()
            hub._worker_readable(worker)
            t3 = time.perf_counter()
            peer.recv(65536)
            inward += t1 - t0
            outward += t3 - t2
        if inward + outward < best[0]:
            best = (inward + outward, inward, outward)
    n = args.messages / 1e6
    print("hub work per 32-byte echo: %.1f us (client -> worker %.1f us, worker -> client %.1f us)"
          % (best[0] / n, best[1] / n, best[2] / n))


if __name__ == "__main__":
    main()
