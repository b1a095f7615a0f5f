"""Paired A/B of HTTP throughput: two servers run side by side and wrk alternates between them.

Strategy: as bench/ws_paired.py does for WebSocket echo. The machine's speed drifts by up to 2x within
an hour, so two runs made minutes apart can differ more than the change being measured. Both servers
are started at once, pinned to CPU 0 (the idle one costs nothing), and `wrk -t1 -c50` (pinned to
CPU 1) loads them in turn for a few seconds each, in the order A B, B A, A B... Each round gives one
ratio B/A from two runs made seconds apart; the median of those ratios is the figure. Each side is a
Krait checkout (the directory to run `python -m krait` from, e.g. a git worktree of an older commit)
or the word `waitress` for the WSGI peer of bench/run.py (bench/peers/wsgi_apps.py under waitress, in
bench/.venv, made when missing, as in bench/ws_paired.py; it serves /hello, /static-1k.bin,
/page-1k.html, /static-1m.bin and /table as Krait's site does). Both run at their defaults, as in
bench/run.py (Krait one worker per CPU, waitress 4 threads); `--krait-args` and `--peer-args` change
that. `stdlib` instead of `waitress` names bench/run.py's tuned stdlib server (the static files only).
`--b-env NAME=VALUE` sets an environment variable for side B only (e.g. KRAIT_PORTABLE=1).
Each side's median p99 is printed too.
Linux only (taskset, wrk).

    python bench/http_paired.py A B [--path /hello] [--rounds 10] [--seconds 3] [--krait-args "--workers 1"]
    python bench/http_paired.py /tmp/old-krait .          # a change, measured
    python bench/http_paired.py waitress .                # Krait against the peer
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys

from bench_setup import BENCH_VENV, ensure_static_files, ensure_venv, ensure_wrk, use_bench_venv
from ws_paired import HERE, SITE, add_env_option, free_port, report, run_rounds, side_envs, start

PEERS = os.path.join(HERE, "peers")
PEER_NAMES = ("waitress", "stdlib")


def peer(name: str, extra: list[str]) -> tuple:
    """The peer side named `name` (waitress or stdlib), as bench/run.py starts it, plus `extra`."""
    if name == "stdlib":
        return ("stdlib", lambda port: [sys.executable, os.path.join(PEERS, "stdlib_static.py"), "--site", SITE,
                                        "--port", str(port), *extra], PEERS)
    return ("waitress", lambda port: [os.path.join(BENCH_VENV, "bin", "waitress-serve"), "--listen=127.0.0.1:%d" % port,
                                      *extra, "wsgi_apps:app"], PEERS)


def measure(port: int, path: str, seconds: int, connections: int, p99s: dict | None = None) -> float:
    """req/s of one wrk run; its p99 (ms) is appended to p99s[port] when given."""
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency",
                          "http://127.0.0.1:%d%s" % (port, path)], capture_output=True, text=True).stdout
    if re.search(r"Non-2xx", out):
        raise SystemExit("port %d answered %s with errors:\n%s" % (port, path, out))
    if p99s is not None:
        value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M).groups()
        p99s.setdefault(port, []).append(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit])
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="a Krait checkout directory, or 'waitress' or 'stdlib'")
    ap.add_argument("b", help="the same, for the other side")
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=3, help="per wrk run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--krait-args", default="", help="options for the Krait sides (default: none)")
    ap.add_argument("--peer-args", default="", help="options for the peer (default: none)")
    add_env_option(ap)
    args = ap.parse_args()
    sides = [s if s in PEER_NAMES else os.path.abspath(s) for s in (args.a, args.b)]
    use_bench_venv()
    wrk_error = ensure_wrk()
    if wrk_error:
        sys.exit(wrk_error)
    ensure_venv(BENCH_VENV)
    ensure_static_files()
    other = peer(next((s for s in sides if s in PEER_NAMES), "waitress"), shlex.split(args.peer_args))
    ports = [free_port(), free_port()]
    servers = [start(side, port, other, tuple(shlex.split(args.krait_args)), env)
               for side, port, env in zip(sides, ports, side_envs(args.b_env))]
    p99s: dict[int, list[float]] = {}
    rates = run_rounds(servers, ports, args.rounds,
                       lambda port: measure(port, args.path, args.seconds, args.connections, p99s),
                       # warm-up: caches, compiled scripts, the pool's timing of the file
                       warm_up=lambda port: measure(port, args.path, 1, args.connections))
    report(sides, rates, "req/s")
    for name, port in zip("AB", ports):
        print("%s p99 median %.2f ms   %s" % (name, statistics.median(p99s[port]),
                                             " ".join("%.1f" % p for p in p99s[port])))


if __name__ == "__main__":
    main()
