# Helpers shared by the tests: feeding a parser three ways, and starting the real server.
#
# - three_ways(run, data, trailing): the habit of every parser test (krait/http, krait/pympl): the
#   same input fed whole, one byte at a time, and followed by the first bytes of the next message must
#   give the same result.
# - start_krait(site, *args, workdir=...) starts `python -m krait SITE --port 0 ...` in a subprocess
#   (with $XDG_STATE_HOME, where session stores live by default, inside workdir; preexec_fn runs in the
#   child first, e.g. to set an rlimit), waits for its ready line, and returns a KraitProcess with .url,
#   .port, .log() and .stop(); write_site(root, files) writes a small site. tests/conftest.py wraps both
#   as fixtures that stop every server a test started (by PID).
# - needs_sighup and needs_shared_port skip tests that Krait on portable paths (krait/portable.py: Windows,
#   or KRAIT_PORTABLE=1 as in the second pass of scripts/test) cannot pass: it has no SIGHUP (the signal
#   would kill it) and refuses --processes.
# tests/e2e_tools.py drives third-party programs (Chromium, nginx); tests/idle_clients.py opens idle
# connections for the hardening tests and bench/hardening.py.

from __future__ import annotations

import os
import re
import signal as _signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from krait import portable

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"Krait \S+ serving .* at (https?)://([^/]+):(\d+)/")


def run_krait(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m krait ARGS` to its end (a start that fails, --version): its exit code and output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "krait", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)
needs_sighup = pytest.mark.skipif(portable.ACTIVE, reason="no SIGHUP on portable paths (Windows has none)")
needs_shared_port = pytest.mark.skipif(not portable.SHARES_PORT, reason="--processes needs Linux, not portable paths")


def three_ways(run: Callable[[list[bytes]], Any], data: bytes, trailing: bytes | None) -> Any:
    """`run(chunks)` over `data` whole, one byte at a time, and (unless `trailing` is None) followed by
    `trailing`; asserts the three results are equal and returns it."""
    whole = run([data])
    assert run([data[i:i + 1] for i in range(len(data))]) == whole, "fed one byte at a time"
    if trailing is not None:
        assert run([data + trailing]) == whole, "followed by %r" % trailing
    return whole


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.02) -> bool:
    """Whether `predicate()` holds within `timeout` seconds (asked every `step`, and once more at the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (every thread), from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_quiet(pid: int) -> None:
    """The server burns (almost) no CPU over a second in which no client talks to it."""
    before = cpu_seconds(pid)
    time.sleep(1.0)
    assert cpu_seconds(pid) - before < 0.3, "the server spins"


def read_all(s: socket.socket) -> bytes:
    """Everything the peer sends until it closes (or resets, or the socket's timeout passes)."""
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class KraitProcess:
    def __init__(self, proc: subprocess.Popen, out: Path, err: Path, scheme: str, host: str, port: int) -> None:
        self.proc = proc
        self.out_path = out
        self.err_path = err
        self.scheme = scheme
        self.host = host
        self.port = port
        self.url = "%s://%s:%d" % (scheme, host, port)

    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes, half-close, and read everything until the server closes."""
        with self.connect(timeout) as s:
            s.sendall(data)
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return read_all(s)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = _signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_krait(site: os.PathLike | str, *args: str, workdir: Path, timeout: float = 60.0,
                env: dict | None = None, expect_ready: bool = True,
                preexec_fn: Callable[[], Any] | None = None, stdout: int | None = None) -> KraitProcess:
    """Krait on `site`, ready (its port read from the ready line) unless `expect_ready` is False; its
    standard output goes to the descriptor `stdout` when given (then nothing waits for the ready line)."""
    workdir.mkdir(parents=True, exist_ok=True)
    n = len(list(workdir.glob("krait-*.out")))
    out = workdir / ("krait-%d.out" % n)
    err = workdir / ("krait-%d.err" % n)
    cmd = [sys.executable, "-m", "krait", str(site), "--port", "0"]
    if not any(a.startswith("--workers") for a in args):
        cmd += ["--workers", "2"]
    cmd += list(args)
    # Session stores and generated keys go under workdir, never into the real ~/.local/state.
    full_env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    PYTHONUNBUFFERED="1", XDG_STATE_HOME=str(workdir / "state"))
    if env:
        full_env.update(env)
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo if stdout is None else stdout, stderr=fe, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=str(workdir), preexec_fn=preexec_fn)
    if not expect_ready or stdout is not None:
        return KraitProcess(proc, out, err, "http", "127.0.0.1", 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = READY.search(out.read_text(errors="replace"))
        if m:
            return KraitProcess(proc, out, err, m.group(1), m.group(2).strip("[]"), int(m.group(3)))
        if proc.poll() is not None:
            raise RuntimeError("krait exited with %s:\n%s" % (proc.returncode, err.read_text(errors="replace")))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("krait did not become ready:\n" + err.read_text(errors="replace"))


def write_site(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root
