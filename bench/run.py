#!/usr/bin/env python3
# Krait's benchmark: `python bench/run.py` measures Krait against its peers in one run and
# writes bench/RESULTS.md.
#
# Strategy:
# - Peers (waitress, gunicorn gthread, Jinja2, websockets) go into a throwaway venv (or a kept
#   one with --venv); Krait runs from this checkout with the system python
#   (`python -m krait SITE --port P --workers 1`) and is ready when it prints
#   `Krait <version> serving <SITE> at http://HOST:PORT/`. Peers are ready when their port accepts.
# - Each server is started once, pinned to one CPU with `taskset` on the launcher (worker
#   processes inherit the mask), runs every test it takes part in, and is stopped. The load
#   generator (wrk, or bench/peers/ws_client.py for WebSocket echo) is pinned to another CPU.
# - Per HTTP row: one checked GET (status 200, body), an unmeasured warm-up, then
#   `wrk -t1 -c50 -dNs --latency`; req/s, p50 and p99 are parsed from its output.
# - The machine's speed drifts (a shared VM: up to 2x within an hour), so the whole set runs
#   --rounds times, the server order reversed every other round, and each cell of the table is the
#   median round (its req/s, p50 and p99); the notes give the spread of req/s over the rounds.
# - A failing server or row becomes "failed: reason" and the run goes on. Every process started
#   here is stopped by PID (then its own process group) in a finally block.
import argparse
import dataclasses
import datetime
import http.client
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
SITE = os.path.join(BENCH, "sites", "krait")
PEERS = os.path.join(BENCH, "peers")
PEER_PACKAGES = ["waitress", "gunicorn", "jinja2", "websockets"]
STATIC_FILES = {"static-1k.bin": 1024, "static-1m.bin": 1024 * 1024}
READY_LINE = re.compile(r"Krait (\S+) serving (.+) at http://([^/\s]+):(\d+)/")

# (id, label, path, kind) in table order.
TESTS = [
    ("static-1k", "static 1 KiB", "/static-1k.bin", "http"),
    ("static-1m", "static 1 MiB", "/static-1m.bin", "http"),
    ("hello", "dynamic hello", "/hello", "http"),
    ("table", "100-row table", "/table", "http"),
    ("ws-small", "WS echo 32 B", "/echo", "ws"),
    ("ws-1m", "WS echo 1 MiB", "/echo", "ws"),
]
TEST_IDS = [t[0] for t in TESTS]

# Krait's targets: (test, peer) -> (minimum req/s ratio, Krait's p99 must be lower).
TARGETS = {
    ("static-1k", "waitress"): (1.5, True),
    ("hello", "waitress"): (1.0, False),
    ("table", "waitress"): (1.5, False),
    ("ws-small", "websockets"): (1.0, False),
    ("ws-1m", "websockets"): (1.0, False),
}


@dataclasses.dataclass
class Server:
    """One server under test: how to start it and the row label of each test it serves."""

    key: str
    labels: dict  # test id -> label shown in the "server" column
    command: object  # callable(port, ctx) -> argv (without taskset)
    needs_venv: bool = True
    ready_line: bool = False  # wait for Krait's ready line instead of polling the port


def _venv_bin(ctx, name):
    return os.path.join(ctx["venv"], "bin", name)


SERVERS = [
    Server(
        "krait",
        {"static-1k": "Krait", "static-1m": "Krait", "hello": "Krait (hello.py)",
         "table": "Krait (Pympl)", "ws-small": "Krait", "ws-1m": "Krait"},
        lambda port, ctx: ctx["krait_cmd"] + [SITE, "--port", str(port), "--workers", "1"]
        + ctx["krait_args"],
        needs_venv=False,
        ready_line=True,
    ),
    Server(
        "waitress",
        {"static-1k": "waitress (WSGI, from memory)", "static-1m": "waitress (file_wrapper)",
         "hello": "waitress (WSGI hello)", "table": "waitress + Jinja2"},
        lambda port, ctx: [_venv_bin(ctx, "waitress-serve"), f"--listen=127.0.0.1:{port}",
                           "--threads=8", "wsgi_apps:app"],
    ),
    Server(
        "gunicorn",
        {"static-1k": "gunicorn gthread (WSGI, from memory)",
         "static-1m": "gunicorn gthread (file_wrapper)", "hello": "gunicorn gthread (WSGI hello)",
         "table": "gunicorn gthread + Jinja2"},
        lambda port, ctx: [_venv_bin(ctx, "gunicorn"), "-k", "gthread", "--threads", "8", "-w",
                           "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                           "wsgi_apps:app"],
    ),
    Server(
        "stdlib",
        {"static-1k": "stdlib ThreadingHTTPServer (tuned)",
         "static-1m": "stdlib ThreadingHTTPServer (tuned)"},
        lambda port, ctx: [sys.executable, os.path.join(PEERS, "stdlib_static.py"), "--site",
                           SITE, "--port", str(port)],
        needs_venv=False,
    ),
    Server(
        "websockets",
        {"ws-small": "websockets sync server", "ws-1m": "websockets sync server"},
        lambda port, ctx: [_venv_bin(ctx, "python"), os.path.join(PEERS, "ws_echo.py"), "--port",
                           str(port)],
    ),
]


@dataclasses.dataclass
class Row:
    test: str
    server: str
    label: str
    rps: float = None
    p50: float = None  # milliseconds
    p99: float = None
    error: str = None
    notes: list = dataclasses.field(default_factory=list)


class BenchError(Exception):
    """A setup or measurement step failed; the message goes into the row."""


# --- processes ----------------------------------------------------------------------------


class Process:
    """A started server: output drained into a short tail; stop() ends it and its group."""

    def __init__(self, argv, env, cwd):
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.tail = deque(maxlen=30)
        self.ready = threading.Event()
        self.match = None
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            if self.match is None:
                m = READY_LINE.search(line)
                if m:
                    self.match = m
                    self.ready.set()

    def why(self):
        """The last output line (usually the exception), clipped for a table cell."""
        lines = [line.strip() for line in self.tail if line.strip()]
        return _clip(lines[-1]) if lines else "no output"

    def wait_ready(self, port, by_line, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                time.sleep(0.1)  # let the reader pick up the last lines
                raise BenchError(f"exited with status {self.popen.returncode}: {self.why()}")
            if by_line:
                if self.ready.wait(0.1):
                    return int(self.match.group(4))
            else:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    return port
                except OSError:
                    time.sleep(0.1)
        raise BenchError(f"not ready after {timeout:.0f}s: {self.why()}")

    def stop(self):
        pid = self.popen.pid
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                _kill_group(pid)
                self.popen.wait(5)
        _kill_group(pid)  # leftover children (worker processes) of our session
        self._reader.join(2)


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _clip(text, width=110):
    return text if len(text) <= width else text[: width - 3] + "..."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu, argv, ctx):
    return ["taskset", "-c", str(cpu)] + argv if ctx["taskset"] else argv


# --- setup --------------------------------------------------------------------------------


def ensure_static_files():
    """Create the static test files if absent (deterministic bytes, never committed)."""
    for name, size in STATIC_FILES.items():
        path = os.path.join(SITE, name)
        if not (os.path.isfile(path) and os.path.getsize(path) == size):
            with open(path, "wb") as f:
                f.write(random.Random(size).randbytes(size))


def ensure_wrk():
    if shutil.which("wrk"):
        return None
    install = ["apt-get", "install", "-y", "wrk"]
    try:
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True)
            subprocess.run(install, capture_output=True)
    except OSError:
        pass
    return None if shutil.which("wrk") else "wrk is not installed (apt-get install -y wrk failed)"


def ensure_venv(path):
    """Create the venv at `path` if needed and install the peers; return their versions."""
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", path], check=True, capture_output=True)
    probe = "import waitress, gunicorn, jinja2, websockets"
    if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
        print(f"installing {' '.join(PEER_PACKAGES)} into {path} ...", flush=True)
        done = subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(_clip("pip install failed: " + last))
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            + repr(PEER_PACKAGES) + "}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# --- measuring ----------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(output):
    """Return (req/s, p50 ms, p99 ms, notes) from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and p50 and p99):
        raise BenchError("unreadable wrk output: " + " ".join(output.split())[-160:])
    notes = []
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    if errors and any(int(n) for n in errors.groups()):
        notes.append("socket errors c/r/w/t " + "/".join(errors.groups()))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = re.search(r"(\d+) requests in", output)
    if bad:
        if total and int(bad.group(1)) * 100 > int(total.group(1)):
            raise BenchError(f"{bad.group(1)} of {total.group(1)} responses were not 2xx")
        notes.append(f"{bad.group(1)} non-2xx responses")
    return float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), notes


def fetch(port, path):
    """One GET; returns the body of a 200 response, else raises BenchError."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise BenchError(f"GET {path}: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        preview = " ".join(body[:200].decode("latin-1").split())
        raise BenchError(_clip(f"GET {path} gave {response.status}: {preview}"))
    return body


def run_wrk(port, path, seconds, ctx):
    url = f"http://127.0.0.1:{port}{path}"
    argv = ["wrk", "-t1", f"-c{ctx['connections']}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(pinned(ctx["client_cpu"], argv, ctx), capture_output=True, text=True,
                          timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr.strip()[-160:]}")
    return parse_wrk(done.stdout)


def run_http(row, port, path, ctx):
    body = fetch(port, path)
    expected = ctx["expected"].get(row.test)
    if expected is not None and body != expected:
        row.notes.append(f"unexpected body ({len(body)} bytes)")
    if row.test == "table":
        if row.server == "krait":
            ctx["krait_table"] = body
        elif ctx.get("krait_table") not in (None, body):
            row.notes.append(f"page differs from Krait's ({len(body)} vs "
                             f"{len(ctx['krait_table'])} bytes)")
    if ctx["warmup"]:
        run_wrk(port, path, ctx["warmup"], ctx)
    row.rps, row.p50, row.p99, notes = run_wrk(port, path, ctx["duration"], ctx)
    row.notes.extend(notes)


def run_ws(row, port, path, ctx):
    small, big = (ctx["ws_small"], 0) if row.test == "ws-small" else (0, ctx["ws_big"])
    argv = [sys.executable, os.path.join(PEERS, "ws_client.py"), f"ws://127.0.0.1:{port}{path}",
            "--small", str(small), "--big", str(big)]
    done = subprocess.run(pinned(ctx["client_cpu"], argv, ctx), capture_output=True, text=True,
                          timeout=600)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise BenchError(f"ws client: {done.stderr.strip()[-160:] or 'no output'}") from None
    phase = result.get("small" if small else "big")
    if phase is None:
        raise BenchError(result.get("error", "no result"))
    row.rps, row.p50, row.p99 = phase["rate"], phase["p50_ms"], phase["p99_ms"]


def run_server(server, tests, ctx, rows):
    """Start one server, run its tests (one Row each), always stop it."""
    pending = [Row(t, server.key, server.labels[t]) for t in tests]
    rows.extend(pending)
    if server.needs_venv and ctx["venv_error"]:
        for row in pending:
            row.error = ctx["venv_error"]
        return
    port = free_port()
    env = dict(os.environ, BENCH_SITE=SITE, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (PEERS, REPO, os.environ.get("PYTHONPATH"))
                                          if p))
    argv = pinned(ctx["server_cpu"], server.command(port, ctx), ctx)
    print(f"== {server.key}: {shlex.join(argv)}", flush=True)
    proc = None
    try:
        proc = Process(argv, env, PEERS if not server.ready_line else REPO)
        port = proc.wait_ready(port, server.ready_line, ctx["start_timeout"])
        if server.ready_line:
            ctx["krait_version"] = proc.match.group(1)
        for row in pending:
            path, kind = next((t[2], t[3]) for t in TESTS if t[0] == row.test)
            print(f"   {row.test:<10} {row.label} ...", end=" ", flush=True)
            try:
                (run_http if kind == "http" else run_ws)(row, port, path, ctx)
                print(f"{row.rps:,.0f}/s  p50 {row.p50:.2f} ms  p99 {row.p99:.2f} ms", flush=True)
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                row.error = str(exc)
                print("failed:", row.error, flush=True)
                if proc.popen.poll() is not None:
                    raise BenchError(f"server died: {proc.why()}") from None
    except (BenchError, OSError) as exc:
        print(f"   {server.key} failed: {exc}", flush=True)
        if proc is not None and proc.tail:
            print("   last output:\n      " + "\n      ".join(list(proc.tail)[-10:]), flush=True)
        for row in pending:
            if row.rps is None and row.error is None:
                row.error = str(exc)
    finally:
        if proc is not None:
            proc.stop()


def run_round(servers, tests, wrk_error, ctx, rows):
    """Every server in turn runs its tests once (HTTP rows fail at once when wrk is missing)."""
    kinds = dict((t[0], t[3]) for t in TESTS)
    for server in servers:
        mine = [t for t in tests if t in server.labels]
        if wrk_error:
            for t in [t for t in mine if kinds[t] == "http"]:
                rows.append(Row(t, server.key, server.labels[t], error=wrk_error))
            mine = [t for t in mine if kinds[t] != "http"]
        if mine:
            run_server(server, mine, ctx, rows)


# --- reporting ----------------------------------------------------------------------------


def median_rows(rows):
    """One Row per (test, server): the median of its rounds by req/s (the lower middle one for an
    even count), noting the spread; a cell that failed in every round keeps its first error."""
    merged = {}
    for row in rows:
        merged.setdefault((row.test, row.server), []).append(row)
    out = []
    for runs in merged.values():
        good = sorted((r for r in runs if r.error is None), key=lambda r: r.rps)
        if not good:
            out.append(runs[0])
            continue
        row = good[(len(good) - 1) // 2]
        if len(runs) > 1:
            failed = len(runs) - len(good)
            row.notes.append(f"median of {len(good)}: {good[0].rps:,.0f}-{good[-1].rps:,.0f}/s"
                             + (f", {failed} failed" if failed else ""))
        out.append(row)
    return out


def judge(rows):
    """Fill in Krait ratios and target verdicts; return {(test, server): ratio}."""
    krait = {r.test: r for r in rows if r.server == "krait"}
    ratios = {}
    for row in rows:
        k = krait.get(row.test)
        if row.server == "krait" or k is None or k.rps is None or row.rps is None:
            continue
        ratio = ratios[row.test, row.server] = k.rps / row.rps
        target = TARGETS.get((row.test, row.server))
        if target:
            ok = ratio >= target[0] and (not target[1] or k.p99 < row.p99)
            want = f">= {target[0]}x" + (" and lower p99" if target[1] else "")
            row.notes.insert(0, f"target {want}: {'met' if ok else 'MISSED'}")
    return ratios


def table(rows, ratios):
    header = ["test", "server", "req/s", "p50", "p99", "Krait ratio", "notes"]
    labels = dict((t[0], t[1]) for t in TESTS)
    lines = []
    for row in sorted(rows, key=lambda r: (TEST_IDS.index(r.test), r.server != "krait")):
        ratio = ratios.get((row.test, row.server))
        notes = list(row.notes)
        if row.error:
            cells = ["-", "-", "-", "-"]
            notes.insert(0, "failed: " + _clip(row.error))
        else:
            cells = [f"{row.rps:,.0f}", f"{row.p50:.2f} ms", f"{row.p99:.2f} ms",
                     f"{ratio:.2f}x" if ratio else "-"]
        lines.append([labels[row.test], row.label] + cells + ["; ".join(notes)])
    return header, lines


def print_table(header, lines):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    for cells in [header] + lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def machine_info():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPUs (nproc), {model}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def write_results(path, header, lines, ctx, argv):
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()
    versions = ", ".join(f"{k} {v}" for k, v in ctx["versions"].items())
    out = [
        "# Krait benchmark results", "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{shlex.join(['python', 'bench/run.py'] + argv)}`",
        f"- Machine: {machine_info()}",
        f"- Pinning: servers on CPU {ctx['server_cpu']}, load generator on CPU "
        f"{ctx['client_cpu']}" + ("" if ctx["taskset"] else " (taskset missing: NOT pinned)"),
        f"- HTTP load: wrk {wrk[1] if len(wrk) > 1 else '?'}, 1 thread, {ctx['connections']} "
        f"connections, {ctx['duration']} s per row after a {ctx['warmup']} s warm-up",
        f"- Rounds: {ctx['rounds']} (server order reversed every other round); each row is the "
        "median round, the notes give the range of req/s",
        f"- WebSocket load: 1 connection, sequential round trips: {ctx['ws_small']} x 32-byte "
        f"text, {ctx['ws_big']} x 1 MiB binary (req/s = messages/s)",
        f"- Versions: Krait {ctx.get('krait_version', 'not run')}; "
        f"{versions or 'peers not installed'}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
            for cells in lines]
    out += ["", "Krait ratio = Krait req/s / peer req/s for the same test. Targets: static 1 KiB "
            ">= 1.5x waitress with a lower p99; hello >= 1.0x waitress; Pympl table >= 1.5x "
            "Jinja2 under waitress; WebSocket echo >= 1.0x the websockets sync server. "
            "What each peer serves and how: bench/README.md.", ""]
    with open(path, "w") as f:
        f.write("\n".join(out))


# --- main ---------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark Krait against waitress, gunicorn, the "
                                "stdlib server, Jinja2 and websockets; writes bench/RESULTS.md.")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk row (default 10)")
    p.add_argument("--quick", action="store_true", help="3 s rows, one round (--duration 3 --rounds 1)")
    p.add_argument("--rounds", type=int, default=3,
                   help="times every row is measured; the table shows the median (3)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured wrk seconds per row (1)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    p.add_argument("--only-peers", action="store_true", help="skip Krait, measure the peers")
    p.add_argument("--tests", default=",".join(TEST_IDS),
                   help="comma list of: " + ",".join(TEST_IDS))
    p.add_argument("--servers", default=",".join(s.key for s in SERVERS),
                   help="comma list of: " + ",".join(s.key for s in SERVERS))
    p.add_argument("--venv", help="keep and reuse the peers' venv here (e.g. bench/.venv); "
                   "default: a throwaway venv in a temp dir")
    p.add_argument("--krait-cmd", default=f"{shlex.quote(sys.executable)} -m krait",
                   help="command that starts Krait; SITE --port P --workers 1 are appended")
    p.add_argument("--krait-args", default="", help="extra arguments for Krait")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--ws-small", type=int, default=1000, help="32-byte WS round trips (1000)")
    p.add_argument("--ws-big", type=int, default=20, help="1 MiB WS round trips (20)")
    p.add_argument("--output", default=os.path.join(BENCH, "RESULTS.md"),
                   help="results file (default bench/RESULTS.md); '-' writes none")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3
        args.rounds = 1
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    for name, given, known in (("test", args.tests, TEST_IDS),
                               ("server", args.servers, [s.key for s in SERVERS])):
        unknown = set(given.split(",")) - set(known)
        if unknown:
            p.error(f"unknown {name}(s): {', '.join(sorted(unknown))}")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    cpus = sorted(os.sched_getaffinity(0))
    ctx = dict(duration=args.duration, warmup=args.warmup, connections=args.connections,
               rounds=args.rounds,
               krait_cmd=shlex.split(args.krait_cmd), krait_args=shlex.split(args.krait_args),
               server_cpu=args.server_cpu, client_cpu=args.client_cpu, ws_small=args.ws_small,
               ws_big=args.ws_big, taskset=bool(shutil.which("taskset")), start_timeout=30,
               versions={}, venv_error=None)
    if len(cpus) < 2 or not {args.server_cpu, args.client_cpu} <= set(cpus):
        print(f"warning: CPUs {args.server_cpu}/{args.client_cpu} not both available ({cpus}); "
              "server and client share a CPU", file=sys.stderr)
        ctx["server_cpu"] = ctx["client_cpu"] = cpus[0]
    if ctx["taskset"]:  # keep this process's own threads off the server's CPU
        os.sched_setaffinity(0, {ctx["client_cpu"]})
    tests = args.tests.split(",")
    wanted = set(args.servers.split(",")) - ({"krait"} if args.only_peers else set())
    ensure_static_files()
    ctx["expected"] = {"hello": b"Hello, world!\n"}
    for test, name in (("static-1k", "static-1k.bin"), ("static-1m", "static-1m.bin")):
        with open(os.path.join(SITE, name), "rb") as f:
            ctx["expected"][test] = f.read()
    wrk_error = ensure_wrk() if any(t[3] == "http" for t in TESTS if t[0] in tests) else None
    tmp = None if args.venv else tempfile.mkdtemp(prefix="krait-bench-venv-")
    rows = []
    try:
        ctx["venv"] = os.path.abspath(args.venv) if args.venv else tmp
        if any(s.needs_venv for s in SERVERS if s.key in wanted):
            try:
                ctx["versions"] = ensure_venv(ctx["venv"])
            except (BenchError, OSError, subprocess.CalledProcessError) as exc:
                ctx["venv_error"] = f"venv: {exc}"
        for round_no in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {round_no + 1} of {args.rounds}", flush=True)
            order = SERVERS if round_no % 2 == 0 else SERVERS[::-1]
            run_round([s for s in order if s.key in wanted], tests, wrk_error, ctx, rows)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = median_rows(rows)
    ratios = judge(rows)
    header, lines = table(rows, ratios)
    print()
    print_table(header, lines)
    if args.output != "-":
        write_results(args.output, header, lines, ctx, argv)
        print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
