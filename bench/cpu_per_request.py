"""CPU time per request of each Krait process (server, workers) under wrk load.

Where bench/run.py says how fast, this says where the time goes: it starts Krait on the benchmark
site pinned to one CPU, warms up, then reads utime+stime and the context switches of the server
process and of every descendant (the forkserver and the workers) from /proc around one wrk run.

    python bench/cpu_per_request.py [/path] [--workers 1] [--seconds 8] [--connections 50]
    python bench/cpu_per_request.py --ws small|big [--messages N]   (WebSocket echo on /echo)

--ws drives bench/peers/ws_client.py (one connection, sequential round trips) instead of wrk, and
reports per message; with --websockets-python PYTHON (e.g. bench/.venv/bin/python, made by
bench/run.py) it measures the websockets peer (bench/peers/ws_echo.py) instead of Krait.
--krait-dir runs another checkout (e.g. a git worktree) for an A/B; --peer waitress|stdlib measures that
peer of bench/run.py instead, at its defaults.
Linux only; needs wrk (HTTP) and taskset. The machine's noise applies: compare runs made back to back.
A python without Krait's requirements (a fresh clone's system python) runs it in bench/.venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

from bench_setup import BENCH_VENV, ensure_static_files, ensure_venv, ensure_wrk, use_bench_venv
from http_paired import PEER_NAMES, peer
from ws_paired import wait_listening

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "sites", "krait")
TICK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    found = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        found += descendants(int(child))
    return found


def sample(pid: int) -> tuple[float, float, int]:
    """(total CPU seconds, user CPU seconds, context switches of all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    user, system = int(fields[11]) / TICK, int(fields[12]) / TICK
    switches = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                switches += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", f.read()))
        except FileNotFoundError:  # a thread that just ended
            pass
    return user + system, user, switches


def main() -> None:
    use_bench_venv()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="/hello")
    ap.add_argument("--workers", default="1")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--port", type=int, default=8137)
    ap.add_argument("--ws", choices=("small", "big"), help="WebSocket echo of 32 B text or 1 MiB binary")
    ap.add_argument("--messages", type=int, help="WebSocket round trips (default 20000 small, 200 big)")
    ap.add_argument("--krait-dir", default=os.path.dirname(HERE))
    ap.add_argument("--websockets-python", help="with --ws: measure the websockets peer run by this Python")
    ap.add_argument("--peer", choices=PEER_NAMES, help="measure this HTTP peer of bench/run.py (at its defaults)")
    args = ap.parse_args()
    wrk_error = None if args.ws else ensure_wrk()
    if wrk_error:
        sys.exit(wrk_error)
    ensure_static_files()
    if args.ws and args.websockets_python:
        argv = [args.websockets_python, os.path.join(HERE, "peers", "ws_echo.py"), "--port", str(args.port)]
    elif args.peer:
        ensure_venv(BENCH_VENV)
        name, command, cwd = peer(args.peer, [])
        argv = command(args.port)
        args.krait_dir = cwd
    else:
        argv = [sys.executable, "-m", "krait", SITE, "--port", str(args.port), "--workers", args.workers]
    # A peer's output is dropped: nobody reads it, and waitress's queue warnings would fill the pipe.
    server = subprocess.Popen(["taskset", "-c", "0"] + argv, cwd=args.krait_dir, text=True,
                              stdout=subprocess.DEVNULL if args.peer else subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if args.peer:
            wait_listening(args.port, time.monotonic() + 30)
        else:
            for line in server.stdout:  # log lines may come first
                if " serving " in line:  # the ready line
                    break
        if args.ws:
            measure_ws(args, server.pid)
            return
        url = "http://127.0.0.1:%d%s" % (args.port, args.path)
        wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c%d" % args.connections]
        subprocess.run(wrk + ["-d2s", url], capture_output=True)
        pids = descendants(server.pid)
        # Sampled while wrk runs (its connection threads stay alive), over `seconds` of steady load.
        load = subprocess.Popen(wrk + ["-d%ds" % (args.seconds + 2), url], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        before = {pid: sample(pid) for pid in pids}
        time.sleep(args.seconds)
        after = {pid: sample(pid) for pid in pids}
        out = load.communicate()[0]
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        requests = rate * args.seconds
        print("%s: %.0f req/s" % (args.path, rate))
        report(pids, server.pid, before, after, requests, "request")
    finally:
        server.terminate()
        server.wait(10)
        time.sleep(0.2)


def measure_ws(args: argparse.Namespace, server_pid: int) -> None:
    """Echo on one WebSocket connection; CPU is sampled around the whole client run."""
    count = args.messages or (20000 if args.ws == "small" else 200)
    client = ["taskset", "-c", "1", sys.executable, os.path.join(HERE, "peers", "ws_client.py"),
              "ws://127.0.0.1:%d/echo" % args.port]
    phase = ["--small", "--big"] if args.ws == "small" else ["--big", "--small"]
    subprocess.run(client + [phase[0], str(max(count // 10, 1)), phase[1], "0"], capture_output=True)
    pids = descendants(server_pid)  # the session worker starts on the first upgrade
    before = {pid: sample(pid) for pid in pids}
    out = subprocess.run(client + [phase[0], str(count), phase[1], "0"], capture_output=True, text=True)
    after = {pid: sample(pid) for pid in pids}
    rate = json.loads(out.stdout)[args.ws]["rate"]
    print("WebSocket echo %s: %.0f msg/s" % (args.ws, rate))
    report(pids, server_pid, before, after, count, "message")


def report(pids: list[int], server_pid: int, before: dict, after: dict, count: float, unit: str) -> None:
    total = 0.0
    for pid in pids:
        cpu = (after[pid][0] - before[pid][0]) / count * 1e6
        if cpu < 0.5:
            continue  # the forkserver, idle workers
        total += cpu
        role = "server" if pid == server_pid else "worker %d" % pid
        print("  %-13s %6.1f us CPU/%s (user %5.1f), %.2f context switches/%s" % (
            role, cpu, unit, (after[pid][1] - before[pid][1]) / count * 1e6,
            (after[pid][2] - before[pid][2]) / count, unit))
    print("  %-13s %6.1f us CPU/%s" % ("all", total, unit))


if __name__ == "__main__":
    main()
