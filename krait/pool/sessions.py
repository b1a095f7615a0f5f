# SessionPool: the WebSocket workers, and WorkerSession, the server's handle on one accepted session.
#
# Design: a session owns one worker for as long as it lasts, so this is a plain take/give-back pool that
# grows up to its size and keeps one spare started. The channel calls open(job) with the upgrade's Job:
# the route script runs in a worker, and the answer comes back with a WorkerSession when the script
# accepted (status 101). The WorkerSession carries the session's messages both ways and gives the worker
# back when the session ends; the server never sees the records of krait/pool/jobs.py.

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from krait.errors import ConfigError, GatewayTimeout, InternalError, ServiceUnavailable
from krait.pool import jobs
from krait.pool.process import WorkerProcess, start_all
from krait.settings import Settings

log = logging.getLogger("krait.pool")

# What WorkerSession.receive() returns: (TEXT, bytes), (BINARY, bytes), (CLOSE, code, reason) or (DONE,).
TEXT, BINARY, CLOSE, DONE = jobs.WS_TEXT, jobs.WS_BINARY, jobs.WS_CLOSE, jobs.WS_DONE


class WorkerSession:
    """The server's side of one accepted WebSocket session: messages to and from its controller.

    Rules: one thread sends (the connection's) while another receives (its pump); close() is sent once.
    """

    __slots__ = ("_pool", "_worker", "_pipe", "_closed")

    def __init__(self, pool: SessionPool, worker: WorkerProcess) -> None:
        self._pool = pool
        self._worker = worker
        self._pipe = worker.pipe
        self._closed = False

    def send_text(self, payload: bytes) -> None:
        """A text message from the client, as its (already checked) UTF-8 bytes."""
        self._send_message(TEXT, payload)

    def send_binary(self, payload: bytes) -> None:
        self._send_message(BINARY, payload)

    def _send_message(self, kind: str, payload: bytes) -> None:
        try:
            self._pipe.send_message(kind, payload)
        except (OSError, ValueError):
            pass  # the worker is gone: receive() reports it

    def close(self, code: int, reason: str = "") -> None:
        """Tell the controller the connection is closing (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._pipe.send((CLOSE, code, reason))
        except (OSError, ValueError):
            pass

    def receive(self, timeout: float | None = None) -> tuple:
        """The controller's next message: (TEXT, bytes), (BINARY, bytes), (CLOSE, code, reason), or
        (DONE,) once the worker finished the session.

        Raises:
            EOFError: the worker died.
            TimeoutError: nothing came within `timeout` seconds.
        """
        try:
            return self._pipe.recv(timeout)
        except OSError:
            raise EOFError("worker pipe closed") from None

    def end(self, code: int, timeout: float) -> None:
        """Close the session from the server's side and give the worker back once it finished."""
        self.close(code)
        try:
            while self.receive(timeout)[0] != DONE:
                pass
        except (EOFError, TimeoutError):
            self.release(healthy=False)
            return
        self.release()

    def release(self, healthy: bool = True) -> None:
        """Give the worker back to the pool (an unhealthy one is killed and replaced)."""
        self._pool.release(self._worker, healthy)


class SessionPool:
    """WebSocket workers: a session takes one for its whole life; grows to `size`, keeps one spare."""

    def __init__(self, settings: Settings, size: int, spares: int = 1) -> None:
        self.settings = settings
        self.size = size
        self.spares = spares
        self.max_queued = settings.max_queued_jobs
        self._lock = threading.Condition()
        self._idle: deque[WorkerProcess] = deque()
        self._busy: set[WorkerProcess] = set()
        self._starting: set[object] = set()  # workers being started (one token each)
        self._waiting: set[object] = set()  # callers waiting for a worker (one token each)
        self._generation = 0
        self._closed = False

    def _alive(self) -> int:
        return len(self._idle) + len(self._busy) + len(self._starting)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        for worker, _ in start_all(self.settings, min(self.spares, self.size), self._generation, pipes=True):
            self._idle.append(worker)

    def reload(self) -> None:
        """Start a new generation (re-running init.py); sessions in progress keep their old worker."""
        with self._lock:
            if self._closed:
                return
            self._generation += 1
            old = list(self._idle)
            self._idle.clear()
        for worker in old:
            threading.Thread(target=worker.stop, daemon=True).start()
        for _ in range(min(self.spares, self.size)):
            self._start_spare()
        log.info("ws workers reloading (generation %d)", self._generation)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._lock.notify_all()
        for worker in idle:
            worker.stop(1.0)

    def _start_spare(self) -> None:
        token = object()
        with self._lock:
            if self._closed:
                return
            self._starting.add(token)
        threading.Thread(target=self._spare, args=(token,), name="krait-replace", daemon=True).start()

    def _spare(self, token: object) -> None:
        try:
            worker = self._start_one()
        except Exception as exc:
            log.error("could not start a replacement worker: %s", exc)
            with self._lock:
                self._starting.discard(token)
                self._lock.notify_all()
            return
        with self._lock:
            self._starting.discard(token)
            stale = self._closed or worker.generation != self._generation
            if not stale:
                self._idle.append(worker)
                self._lock.notify()
        if stale:
            worker.stop()

    def _start_one(self) -> WorkerProcess:
        worker = WorkerProcess.start(self.settings, self._generation, pipes=True)
        worker.wait_ready()
        return worker

    # --- sessions -------------------------------------------------------------------------

    def open(self, job: jobs.Job, timeout: float) -> tuple[jobs.Result, WorkerSession | None]:
        """Run an upgrade's route script in a worker: its Result, and the session when it accepted.

        Raises:
            ServiceUnavailable: every worker is busy and none freed up in time.
            GatewayTimeout: the route script ran past `timeout`.
            InternalError: the worker died.
        """
        worker = self._acquire(timeout)
        try:
            worker.pipe.send(jobs.job_to_wire(job))
            result = jobs.result_from_wire(worker.pipe.recv(timeout))
        except TimeoutError:
            self.release(worker, healthy=False)
            raise GatewayTimeout("the WebSocket script timed out") from None
        except (EOFError, OSError):
            self.release(worker, healthy=False)
            raise InternalError("the worker died") from None
        if result.status != 101:
            self.release(worker)
            return result, None
        return result, WorkerSession(self, worker)

    def _acquire(self, wait: float) -> WorkerProcess:
        """Take an idle worker, waiting up to `wait` seconds; ServiceUnavailable when overloaded."""
        token = object()
        with self._lock:
            if self._idle:
                return self._take()
            if self._closed:
                raise ServiceUnavailable("the server is shutting down")
            grow = self._alive() < self.size
            if grow:
                self._starting.add(token)
            elif len(self._waiting) >= self.max_queued:
                raise ServiceUnavailable("all %d workers are busy and %d requests wait"
                                         % (self._alive(), len(self._waiting)))
            else:
                self._waiting.add(token)
        if grow:
            try:
                worker = self._start_one()
            except ConfigError as exc:
                raise InternalError("could not start a WebSocket worker: %s" % exc) from None
            finally:
                with self._lock:
                    self._starting.discard(token)
            with self._lock:
                self._busy.add(worker)
            return worker
        deadline = time.monotonic() + wait
        try:
            with self._lock:
                while not self._idle:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        raise ServiceUnavailable("no worker became free within %.0fs" % wait)
                    self._lock.wait(remaining)
                return self._take()
        finally:
            with self._lock:
                self._waiting.discard(token)

    def _take(self) -> WorkerProcess:
        worker = self._idle.pop()  # caller holds the lock
        self._busy.add(worker)
        return worker

    def release(self, worker: WorkerProcess, healthy: bool = True) -> None:
        """Give a worker back; an unhealthy one is killed, and a spare is kept started."""
        with self._lock:
            self._busy.discard(worker)
            keep = (healthy and not self._closed and worker.generation == self._generation
                    and (len(self._idle) < self.spares or bool(self._waiting)))
            if keep:
                self._idle.append(worker)
                self._lock.notify()
            want_spare = not healthy and len(self._idle) + len(self._starting) < self.spares
        if keep:
            return
        if not healthy:
            worker.kill()
            if want_spare:
                self._start_spare()
            return
        threading.Thread(target=worker.stop, daemon=True).start()
