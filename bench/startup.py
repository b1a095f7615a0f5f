"""Start-up cost of the worker start methods: forkserver (POSIX) against spawn (portable paths, Windows).

Strategy: for each --workers count, start `python -m krait bench/sites/krait --workers N` round after
round, alternating plain and KRAIT_PORTABLE=1 (which takes the paths of Windows, spawn among them), and
time the launch until the ready line, which comes once the N script workers and the first WebSocket
worker have run init.py. Then sum the proportional set size (PSS, from /proc/PID/smaps_rollup) of the
server and every process below it: what the whole server costs in memory, shared pages split fairly.
Last, the stop: from SIGTERM until the server has exited (an idle server: no request to finish).
Medians over the rounds. Linux only (/proc). Run it on an idle machine; it starts about
2 * rounds * len(workers) servers.

    python bench/startup.py [--workers 1 4 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench_setup import BENCH, REPO, Process, use_bench_venv
from cpu_per_request import descendants

SITE = os.path.join(BENCH, "sites", "krait")
MODES = (("forkserver", {}), ("spawn (KRAIT_PORTABLE=1)", {"KRAIT_PORTABLE": "1"}))


def pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return total / 1024


def one_start(workers: int, extra_env: dict) -> tuple[float, float, int, float]:
    """(seconds to the ready line, MiB of PSS, processes, seconds to stop) of one server start."""
    env = {name: value for name, value in os.environ.items() if name != "KRAIT_PORTABLE"}
    env.update(PYTHONPATH=REPO, **extra_env)
    started = time.monotonic()
    proc = Process([sys.executable, "-m", "krait", SITE, "--port", "0", "--workers", str(workers)], env, REPO)
    try:
        proc.wait_ready(0, True, 120)
        ready = time.monotonic() - started
        time.sleep(0.5)  # let the processes settle before their memory is read
        pids = descendants(proc.popen.pid)
        pss = pss_mib(pids)
        stopping = time.monotonic()
        proc.stop()
        return ready, pss, len(pids), time.monotonic() - stopping
    finally:
        proc.stop()  # when something failed: stop() does nothing for a process that has ended


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    use_bench_venv()
    print("%-8s %-26s %12s %10s %10s %10s" % ("workers", "start method", "ready (s)", "PSS (MiB)", "processes",
                                              "stop (s)"))
    for workers in args.workers:
        results: dict[str, list[tuple[float, float, int, float]]] = {name: [] for name, _ in MODES}
        for round_no in range(args.rounds):
            for name, extra_env in (MODES if round_no % 2 == 0 else MODES[::-1]):
                results[name].append(one_start(workers, extra_env))
        for name, _ in MODES:
            rows = results[name]
            print("%-8d %-26s %12.2f %10.0f %10d %10.2f" % (
                workers, name, statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
                rows[0][2], statistics.median(r[3] for r in rows)))


if __name__ == "__main__":
    main()
