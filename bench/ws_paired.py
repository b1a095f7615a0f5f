"""Paired A/B of WebSocket echo: two servers run side by side and the client alternates between them.

Strategy: the machine's speed drifts by up to 2x within an hour, so two runs made minutes apart can
differ more than the change being measured. Here both servers are started at once, pinned to CPU 0,
and bench/peers/ws_client.py (pinned to CPU 1) measures them in turn, round after round, in the order
A B, B A, A B... Each round gives one ratio B/A from two runs made seconds apart; the median of those
ratios is the figure, and the list shows how steady it was. Each side is a Krait checkout (the
directory to run `python -m krait` from, e.g. a git worktree of an older commit) or the word
`websockets` for the websockets sync server (bench/peers/ws_echo.py in bench/.venv); `--b-env NAME=VALUE`
sets an environment variable for side B only, so one checkout can be measured against itself, e.g. on
its portable code paths (KRAIT_PORTABLE=1, docs/deployment.md "Windows and macOS"). bench/.venv, with
the peers and Krait's requirements, is made when missing, and a python without Krait's requirements
(a fresh clone's system python) runs this tool in it. Linux only (taskset).

    python bench/ws_paired.py A B [--rounds 10] [--messages 4000] [--big]
    python bench/ws_paired.py /tmp/old-krait .          # a change, measured
    python bench/ws_paired.py websockets .              # Krait against the peer
    python bench/ws_paired.py . . --b-env KRAIT_PORTABLE=1  # the paths of Windows against Linux's
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

from bench_setup import BENCH_VENV, ensure_venv, use_bench_venv

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "sites", "krait")
CLIENT = os.path.join(HERE, "peers", "ws_client.py")
VENV_PYTHON = os.path.join(HERE, ".venv", "bin", "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The peer a side may name instead of a Krait checkout: (name, its command line for a port, its cwd).
WEBSOCKETS = ("websockets", lambda port: [VENV_PYTHON, os.path.join(HERE, "peers", "ws_echo.py"), "--port",
                                          str(port)], HERE)


def start(side: str, port: int, peer: tuple = WEBSOCKETS, krait_args: tuple = ("--workers", "1"),
          env: dict | None = None) -> subprocess.Popen:
    """Start `side` on `port`, pinned to CPU 0: the peer when it is named, else a Krait checkout with
    `krait_args`, with `env` added to the environment. Shared with bench/http_paired.py."""
    name, peer_argv, peer_cwd = peer
    if side == name:
        argv, cwd = peer_argv(port), peer_cwd
    else:
        argv = [sys.executable, "-m", "krait", SITE, "--port", str(port), *krait_args]
        cwd = side
    return subprocess.Popen(["taskset", "-c", "0"] + argv, cwd=cwd, env=dict(os.environ, **(env or {})),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def add_env_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for side B only (repeatable)")


def side_envs(b_env: list[str]) -> list[dict]:
    """The environments --b-env adds to sides A and B."""
    return [{}, dict(item.split("=", 1) for item in b_env)]


def wait_listening(port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("no server on port %d" % port) from None
            time.sleep(0.1)


def measure(port: int, messages: int, big: bool) -> float:
    counts = ["--small", "0", "--big", str(messages)] if big else ["--small", str(messages), "--big", "0"]
    out = subprocess.run(["taskset", "-c", "1", sys.executable, CLIENT, "ws://127.0.0.1:%d/echo" % port] + counts,
                         capture_output=True, text=True, timeout=600).stdout
    result = json.loads(out)
    if "error" in result:
        raise SystemExit("client error on port %d: %s" % (port, result["error"]))
    return result["big" if big else "small"]["rate"]


def run_rounds(servers: list, ports: list[int], rounds: int, measure_one, warm_up=None) -> list[list[float]]:
    """Measure both servers in turn (A B, B A, ...) once they listen; stop them at the end. Returns
    each side's rates, round by round. Shared with bench/http_paired.py."""
    rates: list[list[float]] = [[], []]
    try:
        for port in ports:
            wait_listening(port, time.monotonic() + 30)
        time.sleep(1)  # Krait's workers finish starting
        if warm_up is not None:
            for port in ports:
                warm_up(port)
        for round_no in range(rounds):
            for i in ((0, 1) if round_no % 2 == 0 else (1, 0)):
                rates[i].append(measure_one(ports[i]))
    finally:
        for server in servers:
            server.send_signal(signal.SIGINT)
        for server in servers:
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    return rates


def report(sides: list[str], rates: list[list[float]], unit: str) -> None:
    for name, side, side_rates in zip("AB", sides, rates):
        print("%s %-40s median %8.1f %s   %s" % (name, side[-40:], statistics.median(side_rates), unit,
                                                 " ".join("%.0f" % r for r in side_rates)))
    ratios = [b / a for a, b in zip(*rates)]
    print("B/A per round: median %.3f   %s" % (statistics.median(ratios), " ".join("%.3f" % r for r in ratios)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="a Krait checkout directory, or 'websockets'")
    ap.add_argument("b", help="the same, for the other side")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--messages", type=int, default=None, help="per run (default 4000, or 40 with --big)")
    ap.add_argument("--big", action="store_true", help="1 MiB binary messages instead of 32-byte text")
    add_env_option(ap)
    args = ap.parse_args()
    messages = args.messages or (40 if args.big else 4000)
    sides = [os.path.abspath(s) if s != "websockets" else s for s in (args.a, args.b)]
    use_bench_venv()
    ensure_venv(BENCH_VENV)
    ports = [free_port(), free_port()]
    servers = [start(side, port, env=env) for side, port, env in zip(sides, ports, side_envs(args.b_env))]
    rates = run_rounds(servers, ports, args.rounds, lambda port: measure(port, messages, args.big))
    report(sides, rates, "msg/s")


if __name__ == "__main__":
    main()
