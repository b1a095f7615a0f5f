# The set-up half of bench/run.py, shared with the other tools here: the venv of the peers and of
# Krait's own requirements, wrk, and the processes a tool starts.
#
# Strategy: one venv holds the peers (waitress, gunicorn, Jinja2, websockets) and what pyproject.toml
# says Krait needs (its dependencies, and its speedups extra when it has one); Krait itself always runs
# from a checkout, never installed. use_bench_venv() lets a tool that imports or starts Krait run on a
# fresh clone's system python: without Krait's requirements it re-runs itself in bench/.venv. A started
# server is a Process: its output drained into a short tail, stopped by PID, then its process group.
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections import deque

from bench_results import clip

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
PYPROJECT = os.path.join(REPO, "pyproject.toml")
BENCH_VENV = os.path.join(BENCH, ".venv")
PEER_PACKAGES = ["waitress", "gunicorn", "jinja2", "websockets"]
SITE = os.path.join(BENCH, "sites", "krait")
STATIC_FILES = {"static-1k.bin": 1024, "static-1m.bin": 1024 * 1024}
READY_LINE = re.compile(r"Krait (\S+) serving (.+) at http://([^/\s]+):(\d+)/")


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
        return clip(lines[-1]) if lines else "no output"

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu, argv, ctx):
    return ["taskset", "-c", str(cpu)] + argv if ctx["taskset"] else argv


# --- setup --------------------------------------------------------------------------------


def ensure_static_files():
    """Create the bench site's static test files if absent (deterministic bytes; the 1 MiB one is not
    committed)."""
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


def krait_requirements(pyproject=PYPROJECT):
    """What Krait needs to run, from pyproject.toml: its dependencies and its speedups extra (if any)."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    return project.get("dependencies", []) + project.get("optional-dependencies", {}).get("speedups", [])


def requirement_name(requirement):
    """The distribution name of a requirement string ("ply>=3.11" -> "ply")."""
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)


def ensure_venv(path):
    """Create the venv at `path` if needed and install the peers and Krait's requirements into it;
    return {distribution: version} of what was asked for."""
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", path], check=True, capture_output=True)
    packages = PEER_PACKAGES + krait_requirements()
    names = [requirement_name(p) for p in packages]
    versions = [python, "-c", "import importlib.metadata as m, json; "
                "print(json.dumps({p: m.version(p) for p in %r}))" % names]
    out = subprocess.run(versions, capture_output=True, text=True)
    if out.returncode != 0:  # one of them is missing
        print(f"installing {' '.join(packages)} into {path} ...", flush=True)
        done = subprocess.run([python, "-m", "pip", "install", "-q", *packages],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(clip("pip install failed: " + last))
        out = subprocess.run(versions, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


BENCH_VENV = os.path.join(BENCH, ".venv")


def use_bench_venv():
    """For the tools that import or start Krait from this checkout: go on under bench/.venv's python
    (made when missing) unless this python already has Krait's requirements (a fresh clone's system
    python has no ply)."""
    import importlib.metadata

    try:
        for requirement in krait_requirements():
            importlib.metadata.version(requirement_name(requirement))
    except importlib.metadata.PackageNotFoundError:
        ensure_venv(BENCH_VENV)
        python = os.path.join(BENCH_VENV, "bin", "python")
        os.execv(python, [python, *sys.argv])
