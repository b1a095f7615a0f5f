# The server-process side of the worker pool.
#
# Strategy: N worker processes are started (through a forkserver, so replacements forked later never
# inherit the server's threads or locks) before the server accepts anything. Each worker owns one end of
# a duplex pipe; an idle worker sits in `_idle`. A request thread takes an idle worker (waiting in line if
# all are busy, refused with 503 once `max_queued` threads already wait), sends one Job, and polls the pipe
# for the Result until the deadline. Faults stay with the request that caused them:
#   - no answer before the deadline -> the worker is killed and replaced, the caller gets GatewayTimeout;
#   - the pipe hits EOF (os._exit, segfault, OOM kill) -> the worker is replaced, the caller gets
#     InternalError;
#   - a worker that served `max_requests` jobs is retired and replaced after its answer.
# Replacements start in a background thread, so no request waits for init.py. reload() (SIGHUP, or an
# edit under SITE/.py with --debug) starts a fresh generation and retires the old one as each old worker
# becomes idle: no request in flight is cut.

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import deque
from typing import Any

from krait import jobs
from krait.pipe import MessagePipe
from krait.errors import ConfigError, GatewayTimeout, InternalError, ServiceUnavailable
from krait.settings import Settings

log = logging.getLogger("krait.pool")

_START_TIMEOUT = 120.0  # seconds a worker may take to import and run init.py
_CONTEXT = None


def context() -> Any:
    """The forkserver multiprocessing context, created once per process (before any thread starts)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["krait.worker"])
    return _CONTEXT


class Worker:
    """One worker process and the server's end of its pipe."""

    __slots__ = ("process", "conn", "pid", "served", "generation")

    def __init__(self, process: Any, conn: Any, generation: int) -> None:
        self.process = process
        self.conn = conn
        self.pid = process.pid
        self.served = 0
        self.generation = generation

    def kill(self) -> None:
        try:
            self.process.kill()
        except Exception:  # already gone
            pass
        self.process.join(2)
        self.conn.close()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to exit after its current job; kill it if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()


class Pool:
    """A fixed-size set of worker processes (kind "http"), or a growable one up to `size` ("ws")."""

    def __init__(self, settings: Settings, size: int, kind: str = "http", spares: int = 0) -> None:
        self.settings = settings
        self.size = size
        self.kind = kind
        self.spares = spares  # "ws": idle workers kept pre-started
        self.max_queued = settings.max_queued_jobs
        self.config: Any = None
        self._lock = threading.Condition(threading.Lock())  # never re-entered: a plain lock is cheaper
        self._idle: deque[Worker] = deque()
        self._alive = 0  # workers started and not retired (busy + idle + starting)
        self._waiting = 0
        self._generation = 0
        self._closed = False

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the first workers and wait until init.py ran in each; raise ConfigError on failure."""
        count = self.size if self.kind == "http" else min(self.spares, self.size)
        starting = [self._spawn() for _ in range(count)]
        try:
            for worker in starting:
                ready = self._wait_ready(worker)
                self.config = self.config or ready.config
                with self._lock:
                    self._idle.append(worker)
                    self._alive += 1
        except Exception:
            for worker in starting:
                worker.kill()
            raise
        log.debug("%s pool started: %d workers", self.kind, count)

    def _spawn(self) -> Worker:
        from krait import worker as worker_module

        ctx = context()
        parent, child = MessagePipe.pair()
        process = ctx.Process(target=worker_module.main, args=(child, self.settings, self.kind), daemon=True)
        process.start()
        child.close()
        return Worker(process, parent, self._generation)

    def _wait_ready(self, worker: Worker) -> jobs.WorkerReady:
        try:
            ready = worker.conn.recv(_START_TIMEOUT)
        except TimeoutError:
            worker.kill()
            raise ConfigError("a worker process did not finish starting (init.py) within %ds" % _START_TIMEOUT) from None
        except (EOFError, OSError):
            worker.kill()
            raise ConfigError("a worker process died while starting (see the log above)") from None
        if ready.error is not None:
            worker.kill()
            raise ConfigError(_describe_init_error(ready.error))
        return ready

    def _replace_later(self) -> None:
        """Start one replacement worker in the background (the caller already counted the loss)."""
        threading.Thread(target=self._replace, name="krait-replace", daemon=True).start()

    def _replace(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._alive += 1
        try:
            worker = self._spawn()
            self._wait_ready(worker)
        except Exception as exc:
            log.error("could not start a replacement worker: %s", exc)
            with self._lock:
                self._alive -= 1
                self._lock.notify_all()
            return
        self._put_idle(worker)

    def _put_idle(self, worker: Worker) -> None:
        with self._lock:
            if self._closed:
                self._alive -= 1
                stop = True
            elif worker.generation != self._generation:
                self._alive -= 1
                stop = True
            else:
                self._idle.append(worker)
                self._lock.notify()
                stop = False
        if stop:
            worker.stop()

    def reload(self) -> None:
        """Start a new generation of workers (re-running init.py); retire the old ones when idle."""
        with self._lock:
            if self._closed:
                return
            self._generation += 1
            old = list(self._idle)
            self._idle.clear()
            self._alive -= len(old)
        for worker in old:
            threading.Thread(target=worker.stop, daemon=True).start()
        count = self.size if self.kind == "http" else min(self.spares, self.size)
        for _ in range(count):
            self._replace_later()
        log.info("%s workers reloading (generation %d)", self.kind, self._generation)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._lock.notify_all()
        for worker in idle:
            worker.stop(1.0)

    # --- running jobs ---------------------------------------------------------------------

    def acquire(self, wait: float) -> Worker:
        """Take an idle worker, waiting up to `wait` seconds; ServiceUnavailable when overloaded."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._closed:
                raise ServiceUnavailable("the server is shutting down")
            if self.kind != "http" and self._alive < self.size:
                self._alive += 1
                grow = True
            else:
                grow = False
                if self._waiting >= self.max_queued:
                    raise ServiceUnavailable("all %d workers are busy and %d requests wait" % (self._alive, self._waiting))
                self._waiting += 1
                log.debug("%s queue depth %d", self.kind, self._waiting)
        if grow:
            try:
                worker = self._spawn()
                self._wait_ready(worker)
            except Exception:
                with self._lock:
                    self._alive -= 1
                raise
            return worker
        deadline = time.monotonic() + wait
        try:
            with self._lock:
                while not self._idle:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        raise ServiceUnavailable("no worker became free within %.0fs" % wait)
                    self._lock.wait(remaining)
                return self._idle.pop()
        finally:
            with self._lock:
                self._waiting -= 1

    def release(self, worker: Worker, healthy: bool = True) -> None:
        """Give a worker back; an unhealthy one is killed and replaced."""
        worker.served += 1
        limit = self.settings.max_requests
        if not healthy or (limit and worker.served >= limit and self.kind == "http"):
            with self._lock:
                self._alive -= 1
            if healthy:
                threading.Thread(target=worker.stop, daemon=True).start()
            else:
                worker.kill()
            if self.kind == "http" or self._want_spare():
                self._replace_later()
            return
        if self.kind != "http" and not self._want_spare(extra=1):
            with self._lock:
                self._alive -= 1
            threading.Thread(target=worker.stop, daemon=True).start()
            return
        self._put_idle(worker)

    def _want_spare(self, extra: int = 0) -> bool:
        with self._lock:
            return len(self._idle) + extra <= self.spares

    def run(self, job: jobs.Job, timeout: float) -> jobs.Result:
        """Run one job on a free worker and return its Result (see the module comment for faults)."""
        worker = self.acquire(timeout)
        try:
            worker.conn.send(tuple(job))
            result = jobs.result_from_wire(worker.conn.recv(timeout))
        except TimeoutError:
            log.error("script %s exceeded the %.0fs timeout; worker %d killed", job.rel_path, timeout, worker.pid)
            self.release(worker, healthy=False)
            raise GatewayTimeout("the script did not finish within %.0f seconds" % timeout) from None
        except (EOFError, OSError):
            code = worker.process.exitcode
            self.release(worker, healthy=False)
            log.error("worker %d died while running %s (exit code %s); replaced", worker.pid, job.rel_path, code)
            raise InternalError("the worker process running the script died") from None
        self.release(worker)
        return result



def _describe_init_error(report: jobs.ErrorReport) -> str:
    where = f" at {report.where}" if report.where else ""
    return f"init.py failed{where}: {report.type_name}: {report.message}\n{report.traceback}".rstrip()
