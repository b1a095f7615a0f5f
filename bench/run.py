#!/usr/bin/env python3
# Krait's benchmark: `python bench/run.py` measures Krait against its peers in one run and
# writes bench/RESULTS.md.
#
# Strategy:
# - Every server runs at its own defaults, as a user would start it: Krait as
#   `python -m krait SITE --port P` (one worker per CPU it may use), `waitress-serve` (4 threads), `gunicorn`
#   (one sync worker), the stdlib server, the websockets sync server. The table says so in its
#   settings column. Tuned variants (Krait --workers 1, waitress --threads=8, gunicorn gthread) are
#   extra rows, measured only when named in --servers.
# - One venv (a throwaway one, or a kept one with --venv) holds the peers (waitress, gunicorn,
#   Jinja2, websockets) and Krait's own dependencies from pyproject.toml (ply, and the speedups
#   extra when pyproject.toml has one), so a fresh clone runs with the system python. Krait runs
#   from this checkout with that venv's python and is ready when it prints
#   `Krait <version> serving <SITE> at http://HOST:PORT/`. Peers are ready when their port accepts.
# - Each server is started once, pinned to one CPU with `taskset` on the launcher (worker
#   processes inherit the mask), runs every test it takes part in, and is stopped. The load
#   generator (wrk, or bench/peers/ws_client.py for WebSocket echo) is pinned to another CPU.
# - Per HTTP row: one checked GET (status 200, body), an unmeasured warm-up, then
#   `wrk -t1 -c50 -dNs --latency`; req/s, p50 and p99 are parsed from its output.
# - The machine's speed drifts (a shared VM: up to 2x within an hour), so the whole set runs
#   --rounds times, the server order reversed every other round, and each cell of the table is the
#   median round (its req/s, p50 and p99); the notes give the spread of req/s over the rounds
#   (bench/bench_results.py). The venv and the processes are bench/bench_setup.py's.
# - A failing server or row becomes "failed: reason" and the run goes on. Every process started
#   here is stopped by PID (then its own process group) in a finally block.
import argparse
import dataclasses
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

from bench_results import Row, clip, judge, load_average, median_rows, print_table, table, targets_text, write_results
from bench_setup import (
    BENCH,
    REPO,
    SITE,
    BenchError,
    Process,
    ensure_static_files,
    ensure_venv,
    ensure_wrk,
    free_port,
    pinned,
)

PEERS = os.path.join(BENCH, "peers")

# (id, label, path, kind) in table order.
TESTS = [
    ("static-1k", "static 1 KiB .bin", "/static-1k.bin", "http"),
    ("html-1k", "static 1 KiB .html", "/page-1k.html", "http"),
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
    ("html-1k", "waitress"): (1.5, True),
    ("static-1k", "stdlib"): (1.0, True),
    ("html-1k", "stdlib"): (1.0, True),
    ("hello", "waitress"): (1.2, False),
    ("table", "waitress"): (1.5, False),
    ("ws-small", "websockets"): (1.0, False),
    ("ws-1m", "websockets"): (1.0, False),
}


@dataclasses.dataclass
class Server:
    """One server under test: how to start it, how it is set up, and the row label of each test."""

    key: str
    labels: dict  # test id -> label shown in the "server" column
    command: object  # callable(port, ctx) -> argv (without taskset)
    settings: str  # shown in the "settings" column
    needs_venv: bool = True
    ready_line: bool = False  # wait for Krait's ready line instead of polling the port
    extra: bool = False  # a tuned variant: measured only when named in --servers


def _venv_bin(ctx, name):
    return os.path.join(ctx["venv"], "bin", name)


def _krait(port, ctx, *args):
    return ctx["krait_cmd"] + [SITE, "--port", str(port), *args] + ctx["krait_args"]


def _waitress(port, ctx, *args):
    return [_venv_bin(ctx, "waitress-serve"), f"--listen=127.0.0.1:{port}", *args, "wsgi_apps:app"]


def _gunicorn(port, ctx, *args):
    return [_venv_bin(ctx, "gunicorn"), "-b", f"127.0.0.1:{port}", "--log-level", "warning", *args,
            "wsgi_apps:app"]


def _labels(name, tests):
    """{test: "name (what it serves)"} for the tests a server takes part in."""
    return {test: f"{name} ({what})" if what else name for test, what in tests.items()}


_KRAIT_TESTS = {"static-1k": "", "html-1k": "code-free template", "static-1m": "", "hello": "hello.py",
                "table": "Pympl", "ws-small": "", "ws-1m": ""}
_WSGI_TESTS = {"static-1k": "WSGI, from memory", "html-1k": "WSGI, file read per request",
               "static-1m": "file_wrapper", "hello": "WSGI hello", "table": "Jinja2"}
_STDLIB_TESTS = {"static-1k": "", "html-1k": "", "static-1m": ""}

SERVERS = [
    Server("krait", _labels("Krait", _KRAIT_TESTS), _krait,
           "defaults: one worker per CPU it may use (1 when pinned)", ready_line=True),
    Server("waitress", _labels("waitress", _WSGI_TESTS), _waitress, "defaults: 4 threads"),
    Server("gunicorn", _labels("gunicorn", _WSGI_TESTS), _gunicorn, "defaults: 1 sync worker"),
    Server("stdlib", _labels("stdlib ThreadingHTTPServer", _STDLIB_TESTS),
           lambda port, ctx: [sys.executable, os.path.join(PEERS, "stdlib_static.py"), "--site",
                              SITE, "--port", str(port)],
           "tuned handler, from memory", needs_venv=False),
    Server("websockets", {"ws-small": "websockets sync server", "ws-1m": "websockets sync server"},
           lambda port, ctx: [_venv_bin(ctx, "python"), os.path.join(PEERS, "ws_echo.py"), "--port",
                              str(port)],
           "compression off"),
    Server("krait-w1", _labels("Krait", _KRAIT_TESTS), lambda port, ctx: _krait(port, ctx, "--workers", "1"),
           "--workers 1", ready_line=True, extra=True),
    Server("waitress-t8", _labels("waitress", _WSGI_TESTS),
           lambda port, ctx: _waitress(port, ctx, "--threads=8"), "--threads=8", extra=True),
    Server("gunicorn-gthread", _labels("gunicorn", _WSGI_TESTS),
           lambda port, ctx: _gunicorn(port, ctx, "-k", "gthread", "--threads", "8"),
           "-k gthread --threads 8", extra=True),
]
SERVER_KEYS = [s.key for s in SERVERS]


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
        raise BenchError(clip(f"GET {path} gave {response.status}: {preview}"))
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
    pending = [Row(t, server.key, server.labels[t], settings=ctx["settings"][server.key]) for t in tests]
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
                rows.append(Row(t, server.key, server.labels[t], error=wrk_error,
                                settings=ctx["settings"][server.key]))
            mine = [t for t in mine if kinds[t] != "http"]
        if mine:
            run_server(server, mine, ctx, rows)


# --- main ---------------------------------------------------------------------------------

FOOTER = ("Krait ratio = Krait req/s / this row's req/s for the same test. Targets: "
          + targets_text(TARGETS, {t[0]: t[1] for t in TESTS},
                         {"waitress": "waitress", "stdlib": "the tuned stdlib server",
                          "websockets": "the websockets sync server"})
          + ". What each server serves and how: bench/README.md.")


def server_settings(krait_cmd, krait_args):
    """{server: its settings column}: Krait's says what --krait-cmd and --krait-args changed."""
    settings = {s.key: s.settings for s in SERVERS}
    for server in SERVERS:
        if server.ready_line:
            settings[server.key] = "; ".join(x for x in (settings[server.key], krait_args,
                                                         krait_cmd and "run as " + krait_cmd) if x)
    return settings



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
    p.add_argument("--servers", default=",".join(s.key for s in SERVERS if not s.extra),
                   help="comma list of: " + ",".join(SERVER_KEYS) + " (default: all but the tuned "
                   "variants " + ",".join(s.key for s in SERVERS if s.extra) + ")")
    p.add_argument("--venv", help="keep and reuse the venv of the peers and Krait's requirements here "
                   "(e.g. bench/.venv); default: a throwaway venv in a temp dir")
    p.add_argument("--krait-cmd", help="command that starts Krait; SITE --port P are appended "
                   "(default: the venv's python -m krait, from this checkout)")
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
    for name, given, known in (("test", args.tests, TEST_IDS), ("server", args.servers, SERVER_KEYS)):
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
               rounds=args.rounds, krait_args=shlex.split(args.krait_args),
               server_cpu=args.server_cpu, client_cpu=args.client_cpu, ws_small=args.ws_small,
               ws_big=args.ws_big, taskset=bool(shutil.which("taskset")), start_timeout=30,
               versions={}, venv_error=None, load_before=load_average(),
               settings=server_settings(args.krait_cmd, args.krait_args))
    if len(cpus) < 2 or not {args.server_cpu, args.client_cpu} <= set(cpus):
        print(f"warning: CPUs {args.server_cpu}/{args.client_cpu} not both available ({cpus}); "
              "server and client share a CPU", file=sys.stderr)
        ctx["server_cpu"] = ctx["client_cpu"] = cpus[0]
    if ctx["taskset"]:  # keep this process's own threads off the server's CPU
        os.sched_setaffinity(0, {ctx["client_cpu"]})
    tests = args.tests.split(",")
    wanted = set(args.servers.split(",")) - ({"krait"} if args.only_peers else set())
    servers = [s if args.krait_cmd is None or not s.ready_line else dataclasses.replace(s, needs_venv=False)
               for s in SERVERS]
    ensure_static_files()
    ctx["expected"] = {"hello": b"Hello, world!\n"}
    for test, name in (("static-1k", "static-1k.bin"), ("html-1k", "page-1k.html"),
                       ("static-1m", "static-1m.bin")):
        with open(os.path.join(SITE, name), "rb") as f:
            ctx["expected"][test] = f.read()
    wrk_error = ensure_wrk() if any(t[3] == "http" for t in TESTS if t[0] in tests) else None
    tmp = None if args.venv else tempfile.mkdtemp(prefix="krait-bench-venv-")
    rows = []
    try:
        ctx["venv"] = os.path.abspath(args.venv) if args.venv else tmp
        ctx["krait_cmd"] = shlex.split(args.krait_cmd or shlex.join([_venv_bin(ctx, "python"), "-m", "krait"]))
        if any(s.needs_venv for s in servers if s.key in wanted):
            try:
                ctx["versions"] = ensure_venv(ctx["venv"])
            except (BenchError, OSError, subprocess.CalledProcessError) as exc:
                ctx["venv_error"] = f"venv: {exc}"
        for round_no in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {round_no + 1} of {args.rounds}", flush=True)
            order = servers if round_no % 2 == 0 else servers[::-1]
            run_round([s for s in order if s.key in wanted], tests, wrk_error, ctx, rows)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = median_rows(rows)
    ratios = judge(rows, TARGETS)
    header, lines = table(rows, ratios, TESTS, SERVER_KEYS)
    print()
    print_table(header, lines)
    if args.output != "-":
        write_results(args.output, header, lines, ctx, argv, FOOTER)
        print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
