# One worker process, seen from the server: start it, wait for its start-up report, stop it, kill it.
#
# Design: this is the mechanism under both pools (krait/pool/scheduler.py for scripts and templates,
# krait/pool/sessions.py for WebSockets); the policy of who gets which worker lives there.
# - Workers are started through a forkserver created before the server starts any thread, so a
#   replacement forked later never inherits the server's threads or locks. Where there is no forkserver
#   (Windows), and on portable paths (krait/portable.py), they are spawned: each one a fresh interpreter,
#   given the server's sys.path by multiprocessing, with the folder holding this krait package put first
#   (below) for the same reason as the forkserver's PYTHONPATH.
# - multiprocessing starts the forkserver as `python -c ...`, which puts the working directory first on
#   sys.path: a folder named krait there (even an empty one, or a clone of this repository) would be
#   imported in place of this Krait. So the forkserver starts with PYTHONSAFEPATH=1 (no working
#   directory) and the folder holding this krait package first on PYTHONPATH, set only while it starts;
#   each worker puts the server's values of both back before it runs any site code.
# - The child runs krait.worker.main, named by a string and imported in the child (and in the
#   forkserver, which preloads it): the server process never imports the worker side, the script API
#   or ply.
# - Each worker owns the other end of one MessagePipe. Its first message is a jobs.WorkerReady: init.py
#   ran, with krait.config's snapshot, or failed, with an error report.

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import threading
import time
from typing import Any

import krait
from krait import portable
from krait.errors import ConfigError
from krait.pool import jobs
from krait.pool.pipe import MessagePipe

WORKER_MAIN = "krait.worker.main"  # the module whose main() a worker process runs
START_TIMEOUT = 120.0  # seconds a worker may take to import and run init.py
EXIT_WAIT = 1.0  # seconds to wait for a dead worker's exit status, for the log (WorkerProcess.ended_how)
_FORKSERVER_ENV = ("PYTHONPATH", "PYTHONSAFEPATH")  # set for the forkserver only (see the module comment)
_CONTEXT: Any = None


def context() -> Any:
    """The multiprocessing context that starts workers, created once per process (before any thread
    starts): a started forkserver, or spawn (see the module comment)."""
    global _CONTEXT
    if _CONTEXT is None:
        home = os.path.dirname(os.path.dirname(os.path.abspath(krait.__file__)))  # holds this krait package
        if portable.ACTIVE or "forkserver" not in multiprocessing.get_all_start_methods():
            if sys.path[:1] != [home]:
                sys.path.insert(0, home)  # each spawned worker starts with this sys.path
            _CONTEXT = multiprocessing.get_context("spawn")
            return _CONTEXT
        from multiprocessing import forkserver  # not on Windows

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([WORKER_MAIN])
        saved = _environment()
        os.environ["PYTHONPATH"] = os.pathsep.join([home] + [p for p in [saved["PYTHONPATH"]] if p])
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            forkserver.ensure_running()
        finally:
            _set_environment(saved)
        _CONTEXT = ctx
    return _CONTEXT


def _environment() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in _FORKSERVER_ENV}


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _child(ends: tuple[Any, Any], settings: Any, kind: str, environ: dict[str, str | None]) -> None:
    _set_environment(environ)  # the server's, not the forkserver's
    importlib.import_module(WORKER_MAIN).main(ends, settings, kind)


class WorkerProcess:
    """A started worker process and the server's end of its pipe."""

    __slots__ = ("process", "pipe", "pid", "generation")

    def __init__(self, process: Any, pipe: MessagePipe, generation: int) -> None:
        self.process = process
        self.pipe = pipe
        self.pid: int = process.pid
        self.generation = generation  # which reload it belongs to (the pools retire older ones)

    @classmethod
    def start(cls, settings: Any, generation: int, kind: str = "http") -> WorkerProcess:
        """Start a script worker ("http", reached over socketpairs) or a WebSocket worker ("ws", over
        os.pipe()s but on portable paths: krait/pool/pipe.py says why)."""
        ours, theirs = MessagePipe.pair(pipes=kind == "ws")
        try:
            process = context().Process(target=_child, args=(theirs, settings, kind, _environment()), daemon=True)
            with portable.normal_scheduling():  # site code runs under the normal policy (krait/portable.py)
                process.start()
        except BaseException:  # no process (fork refused, say): nobody will ever close our end
            ours.close()
            raise
        finally:
            for end in theirs:
                end.close()
        return cls(process, ours, generation)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> jobs.WorkerReady:
        """The worker's start-up report; kills it and raises ConfigError when init.py failed."""
        deadline = time.monotonic() + timeout
        try:
            ready = self.pipe.recv(timeout)
            while not isinstance(ready, jobs.WorkerReady):  # e.g. a publish() from init.py: nobody to hear it
                ready = self.pipe.recv(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            self.kill()
            raise ConfigError("a worker process did not finish starting (init.py) within %ds" % timeout) from None
        except (EOFError, OSError):
            how = self.ended_how()
            self.kill()
            raise ConfigError("a worker process died while starting (%s; see the log above)" % how) from None
        if ready.error is not None:
            self.kill()
            raise ConfigError(describe_init_error(ready.error))
        return ready

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def ended_how(self, wait: float = EXIT_WAIT) -> str:
        """How a worker that died ended, for the log: "exit code 3" or "killed by signal 9". Its pipe's
        EOF can come just before it is reaped, so this waits up to `wait` seconds for that."""
        self.process.join(wait)
        code = self.process.exitcode
        if code is None:
            return "exit status unknown"
        return "killed by signal %d" % -code if code < 0 else "exit code %d" % code

    def kill(self) -> None:
        """Kill the process at once and close the pipe."""
        self.kill_now()
        self.process.join(2)
        self.pipe.close()

    def kill_now(self) -> None:
        """Send SIGKILL, without waiting for the end or closing the pipe (what the worker sent before it
        died can still be read)."""
        try:
            self.process.kill()
        except Exception:  # already gone
            pass

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to exit after its current job; kill it if it has not within `timeout`."""
        try:
            self.pipe.send(None)
        except OSError:
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        else:
            self.pipe.close()


class Starting:
    """Workers that start_all() is starting; another thread may abandon() them (a reload asked for again
    while an init.py still runs, or hangs): they are killed, and start_all() raises ConfigError."""

    def __init__(self) -> None:
        self.workers: list[WorkerProcess] = []
        self.abandoned = False
        self._finished = False
        self._lock = threading.Lock()

    def add(self, worker: WorkerProcess) -> None:
        with self._lock:
            self.workers.append(worker)
            if self.abandoned:
                worker.kill_now()

    def abandon(self) -> None:
        """Kill the workers, unless all of them were ready already (then nothing changes)."""
        with self._lock:
            if self._finished:
                return
            self.abandoned = True
            for worker in self.workers:
                worker.kill_now()  # its pipe's EOF ends wait_ready() in the starting thread

    def finish(self) -> bool:
        """Mark every worker ready; False when they were abandoned first."""
        with self._lock:
            self._finished = not self.abandoned
            return self._finished


def start_all(settings: Any, count: int, generation: int, kind: str = "http",
              starting: Starting | None = None) -> list[tuple[WorkerProcess, Any]]:
    """Start `count` workers at once and wait for each: [(worker, its krait.config snapshot)].

    Raises:
        ConfigError: one failed, or `starting` was abandoned (all of them are killed).
    """
    starting = starting or Starting()
    try:
        for _ in range(count):
            starting.add(WorkerProcess.start(settings, generation, kind))
        ready = [(worker, worker.wait_ready().config) for worker in starting.workers]
        if not starting.finish():
            raise ConfigError("abandoned")
        return ready
    except BaseException:  # a failure, an abandon(), or a stop asked for during start-up
        for worker in starting.workers:
            worker.kill()
        raise


def kill_stragglers(grace: float = 0.0) -> None:
    """Kill every worker still alive `grace` seconds from now, such as one a reload was starting as the
    server stopped: at exit, multiprocessing waits for each, and workers do not heed its SIGTERM
    (krait/worker/main.py)."""
    deadline = time.monotonic() + grace
    for process in multiprocessing.active_children():
        process.join(max(deadline - time.monotonic(), 0))
        process.kill()
        process.join(5)


def describe_init_error(report: jobs.ErrorReport) -> str:
    where = f" at {report.where}" if report.where else ""
    return f"init.py failed{where}: {report.type_name}: {report.message}\n{report.traceback}".rstrip()
