# The server-process side of the worker pools.
#
# Workers are started through a forkserver (so replacements forked later never inherit the server's
# threads or locks) before the server accepts anything, and each owns one end of a MessagePipe.
#
# JobPool runs the scripts and templates of HTTP requests. A request thread hands its Job to the least
# loaded worker, or to a central FIFO queue when all are busy. If the worker was idle, the request thread
# reads the answer itself (one thread hand-off less: a lone request's round trip is about 45 us on one
# core instead of 80). Otherwise it sleeps on its own lock, and the worker's reader thread in the server
# receives the Result, gives the worker its next job from the queue and wakes the request thread. A
# reader thread sleeps while its worker is idle; a worker that died while idle is noticed by the next
# job's failed write, and that job runs elsewhere.
#
# Jobs are pipelined: a busy worker that has been on its current job for less than PIPELINE_STALL may
# hold up to PIPELINE_DEPTH jobs in its pipe, so under load it reads several jobs per wake-up and never
# sleeps between them (on one core this halves the cost of the process hop; measured in bench/hop.py).
# Only jobs known to be fast get others queued behind them: each Result says how long the job took, and
# a job whose file took PIPELINE_STALL or more last time (or has not run yet) is the last in its pipe.
# Fast requests then never wait behind a script known to be slow (bench/mixed_latency.py: p99 of a
# fast page next to 0.2 s scripts went from 150-155 ms to 16-22 ms).
# The reader takes every answer already buffered before it feeds the worker, so the jobs that free room
# in the pipe go down in one write (about 8% more hello.py requests/s than feeding one job per answer,
# bench/cpu_per_request.py A/B). A worker still runs one job at a time, in order, so the reader always
# knows which job is running: the oldest unanswered one. Faults stay with the request that caused them:
#   - the running job passes its deadline -> the worker is killed, that caller gets GatewayTimeout, and
#     the jobs queued behind it (never started) go back to the front of the central queue;
#   - the pipe hits EOF (os._exit, segfault, OOM kill) -> InternalError for the running job, the same
#     requeue, and a replacement worker;
#   - more than `max_queued` jobs waiting -> ServiceUnavailable at once.
# A worker that has taken `max_requests` jobs, or belongs to a generation that reload() replaced, takes
# no new jobs, is stopped once its pipe is empty, and is replaced in the background: no request in flight
# is cut.
#
# SessionPool holds the WebSocket workers: one session owns one worker for as long as it lasts, so it is
# a plain take/give-back pool that grows up to its size and keeps one spare started.

from __future__ import annotations

import logging
import math
import multiprocessing
import threading
import time
from collections import deque
from typing import Any

from krait import jobs, limits
from krait.pipe import MessagePipe
from krait.errors import ConfigError, GatewayTimeout, InternalError, ServiceUnavailable
from krait.settings import Settings

log = logging.getLogger("krait.pool")

_START_TIMEOUT = 120.0  # seconds a worker may take to import and run init.py
# Who reads a JobPool worker's pipe: its reader thread, the request thread whose job an idle worker
# took (it reads its own answer, which saves a thread hand-off), or nobody (idle; the reader is parked).
_READER, _DIRECT, _PARKED = "reader", "direct", "parked"
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

    __slots__ = ("process", "conn", "pid", "served", "generation", "inflight", "load", "unsure", "started",
                 "retiring", "dead", "send_lock", "mode", "wake")

    def __init__(self, process: Any, conn: MessagePipe, generation: int) -> None:
        self.process = process
        self.conn = conn
        self.pid = process.pid
        self.served = 0  # jobs given to it
        self.generation = generation
        self.inflight: deque[_Entry] = deque()  # sent, not answered; [0] is running (JobPool)
        self.load = 0  # jobs given to it and not answered (includes ones being sent)
        self.unsure = 0  # JobPool: of those, jobs not known to be fast (nothing is queued behind them)
        self.started = 0.0  # when inflight[0] started running
        self.retiring = False  # takes no new jobs; stopped when its pipe is empty
        self.dead = False  # failed (JobPool._fail): jobs sent to it from now on are requeued
        self.send_lock = threading.Lock()  # a job's place in `inflight` and on the wire must agree
        self.mode = _PARKED  # JobPool: who reads the pipe (see JobPool._read_results)
        self.wake: Any = None  # JobPool: wakes the parked reader thread

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


class _Entry:
    """One job of a request thread, waiting in the queue or in a worker's pipe."""

    __slots__ = ("wire", "rel_path", "timeout", "small", "fast", "queued", "done", "result", "error")

    def __init__(self, job: jobs.Job, timeout: float) -> None:
        self.wire = tuple(job)
        self.rel_path = job.rel_path
        self.timeout = timeout
        self.small = len(job.body) < limits.PIPELINE_MAX_BODY  # may wait in a busy worker's pipe
        self.fast = False  # its file ran in under PIPELINE_STALL last time (set when given to a worker)
        self.queued = 0.0
        self.done = threading.Lock()
        self.done.acquire()  # released once `result` or `error` is set
        self.result: jobs.Result | None = None
        self.error: Exception | None = None

    def finish(self, result: jobs.Result | None = None, error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.done.release()


class _Workers:
    """What both pools share: starting workers and waiting for their start-up report."""

    kind = "http"
    pipes = False  # reach the workers over socketpairs (see krait/pipe.py)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config: Any = None
        self._mutex = threading.Lock()  # never re-entered: a plain lock is cheaper
        self._lock = threading.Condition(self._mutex)
        self._generation = 0
        self._closed = False

    def _spawn(self) -> Worker:
        from krait import worker as worker_module

        ctx = context()
        parent, child = MessagePipe.pair(pipes=self.pipes)
        process = ctx.Process(target=worker_module.main, args=(child, self.settings, self.kind), daemon=True)
        process.start()
        for sock in child:
            sock.close()
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
        self.config = self.config or ready.config
        return ready

    def _start_all(self, count: int) -> list[Worker]:
        starting = [self._spawn() for _ in range(count)]
        try:
            for worker in starting:
                self._wait_ready(worker)
        except Exception:
            for worker in starting:
                worker.kill()
            raise
        log.debug("%s pool started: %d workers", self.kind, count)
        return starting

    def _replace_later(self) -> None:
        """Start one replacement worker in the background (the caller already counted the loss)."""
        threading.Thread(target=self._replace, name="krait-replace", daemon=True).start()

    def _replace(self) -> None:
        try:
            worker = self._spawn()
            self._wait_ready(worker)
        except Exception as exc:
            log.error("could not start a replacement worker: %s", exc)
            self._lost()
            return
        self._adopt(worker)

    def _lost(self) -> None:
        raise NotImplementedError

    def _adopt(self, worker: Worker) -> None:
        raise NotImplementedError


class JobPool(_Workers):
    """A fixed number of workers running HTTP jobs, pipelined (see the module comment)."""

    kind = "http"

    def __init__(self, settings: Settings, size: int) -> None:
        super().__init__(settings)
        self.size = size
        self.max_queued = settings.max_queued_jobs
        self.depth = max(1, limits.PIPELINE_DEPTH)
        self._workers: list[Worker] = []  # taking new jobs
        self._queue: deque[_Entry] = deque()  # waiting for any worker
        self._took: dict[str, float] = {}  # rel_path -> seconds its last job took in a worker
        self._alive = 0  # workers started or starting and not yet retired

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and wait until init.py ran in each; raise ConfigError on failure."""
        for worker in self._start_all(self.size):
            self._alive += 1
            self._adopt(worker)

    def _adopt(self, worker: Worker) -> None:
        with self._lock:
            if self._closed or worker.generation != self._generation:
                stale = True
            else:
                stale = False
                self._workers.append(worker)
        if stale:
            self._lost()
            worker.stop()
            return
        worker.conn.use_kernel_timeouts(limits.PIPE_SEND_TIMEOUT)
        worker.wake = threading.Condition(self._mutex)
        threading.Thread(target=self._read_results, args=(worker,), name="krait-pool-reader", daemon=True).start()
        self._feed(worker)

    def _lost(self) -> None:
        """A worker is gone for good (or never came): with none left, nobody would ever run the queue."""
        with self._lock:
            self._alive -= 1
            if self._alive > 0 and not self._closed:
                return
        self._lost_queue()

    def _lost_queue(self) -> None:
        with self._lock:
            stranded = list(self._queue)
            self._queue.clear()
        for entry in stranded:
            entry.finish(error=ServiceUnavailable("no script worker is running"))

    def reload(self) -> None:
        """Start a new generation of workers (re-running init.py); retire the old ones when idle."""
        with self._lock:
            if self._closed:
                return
            self._generation += 1
            old = list(self._workers)
        for _ in range(self.size):  # counted before the old ones leave, so the queue never looks orphaned
            self._replace_later()
        for worker in old:
            self._retire(worker)
        log.info("http workers reloading (generation %d)", self._generation)

    def _replace_later(self) -> None:
        with self._lock:
            self._alive += 1
        super()._replace_later()

    def _retire(self, worker: Worker) -> None:
        """Take no new jobs; the reader thread stops the worker once its pipe is empty."""
        with self._lock:
            if worker.retiring:
                return
            worker.retiring = True
            if worker in self._workers:
                self._workers.remove(worker)
            idle = worker.load == 0
            if idle and worker.wake is not None:
                self._need_reader(worker)  # to read the EOF that follows the stop message
        self._lost()
        if idle:
            self._send_stop(worker)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
            stranded = list(self._queue)
            self._queue.clear()
        for entry in stranded:
            entry.finish(error=ServiceUnavailable("the server is shutting down"))
        for worker in workers:
            self._retire(worker)
        for worker in workers:
            worker.process.join(1.0)
            if worker.process.is_alive():
                worker.kill()

    # --- running jobs ---------------------------------------------------------------------

    def run(self, job: jobs.Job, timeout: float) -> jobs.Result:
        """Run one job and return its Result (see the module comment for faults)."""
        entry = _Entry(job, timeout)
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the server is shutting down")
            worker = self._choose(entry)
            direct = worker is not None and worker.load == 0 and worker.mode == _PARKED
            if direct:
                worker.mode = _DIRECT  # an idle worker: this thread reads the answer itself
                # and takes the first answer as its own, so no job may be queued behind it before
                # it is on the wire: until _send() sets `started`, the worker looks stuck to _choose().
                worker.started = -math.inf
                self._place(worker, entry)
            else:
                if worker is None or worker.load:  # it will wait: in the queue or behind a running job
                    waiting = len(self._queue) + sum(w.load - 1 for w in self._workers if w.load > 1)
                    if waiting >= self.max_queued:
                        raise ServiceUnavailable("all %d workers are busy and %d requests wait"
                                                 % (len(self._workers), waiting))
                    log.debug("http queue depth %d", waiting + 1)
                if worker is None:
                    entry.queued = time.monotonic()
                    self._queue.append(entry)
                else:
                    self._place(worker, entry)
                    self._need_reader(worker)
        if direct:
            return self._run_direct(worker, entry)  # type: ignore[arg-type]
        if worker is not None:
            self._send(worker, [entry])
        return self._wait(entry)

    def _wait(self, entry: _Entry) -> jobs.Result:
        timeout = entry.timeout
        # The reader thread finishes every entry that reached a worker (answer, timeout or crash). Only a
        # queued one could be stranded, so after the longest fair wait the caller takes it back.
        if not entry.done.acquire(timeout=timeout + limits.QUEUE_WAIT_SLACK + timeout):
            with self._lock:
                try:
                    self._queue.remove(entry)
                    raise ServiceUnavailable("no worker became free within %.0fs" % timeout)
                except ValueError:  # already with a worker: its reader will finish it
                    pass
            entry.done.acquire()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    @staticmethod
    def _need_reader(worker: Worker) -> None:
        """Wake a parked reader thread: its worker has work in the pipe (caller holds the lock)."""
        if worker.mode == _PARKED:
            worker.mode = _READER
            worker.wake.notify()

    def _run_direct(self, worker: Worker, entry: _Entry) -> jobs.Result:
        """Send `entry` to an idle worker and read its answer in this thread (no hand-off to the
        reader thread); jobs queued behind it meanwhile are handed to the reader thread after."""
        if not self._send(worker, [entry]):
            # It died while idle (an OOM kill, say): the job never reached it, so it is not the job's
            # fault. The usual paths replace the worker and run the job elsewhere.
            log.error("worker %d had died while idle (exit code %s); replaced", worker.pid,
                      worker.process.exitcode)
            self._fail(worker, None)
            return self._wait(entry)
        try:
            message = worker.conn.recv(entry.timeout)
        except TimeoutError:
            self._timed_out(worker, entry)
            raise entry.error  # type: ignore[misc]
        except (EOFError, OSError):
            self._died(worker, entry)
            raise entry.error  # type: ignore[misc]
        result = jobs.result_from_wire(message)
        self._answered(worker, [result])
        return result

    def _timed_out(self, worker: Worker, running: _Entry) -> None:
        log.error("script %s exceeded the %.0fs timeout; worker %d killed", running.rel_path, running.timeout,
                  worker.pid)
        self._fail(worker, GatewayTimeout("the script did not finish within %.0f seconds" % running.timeout))

    def _died(self, worker: Worker, running: _Entry | None) -> None:
        log.error("worker %d died while running %s (exit code %s); replaced", worker.pid,
                  running.rel_path if running else "nothing", worker.process.exitcode)
        self._fail(worker, InternalError("the worker process running the script died"))

    def _place(self, worker: Worker, entry: _Entry) -> None:
        """Count `entry` as given to `worker` (caller holds the lock)."""
        entry.fast = self._took.get(entry.rel_path, limits.PIPELINE_STALL) < limits.PIPELINE_STALL
        worker.load += 1
        if not entry.fast:
            worker.unsure += 1

    def _answered(self, worker: Worker, results: list[jobs.Result]) -> list[_Entry]:
        """The pipe's oldest jobs got these answers: count them, remember how long their files took,
        feed the worker (one write for all the jobs it takes), and decide who reads next."""
        entries = [worker.inflight.popleft() for _ in results]
        worker.started = time.monotonic()
        with self._lock:
            worker.load -= len(entries)
            if len(self._took) > 1000:
                self._took.clear()
            for entry, result in zip(entries, results):
                if not entry.fast:
                    worker.unsure -= 1
                self._took[entry.rel_path] = result.took
        if not worker.retiring:
            self._feed(worker)
        with self._lock:
            if worker.load or worker.retiring:
                if worker.mode != _READER:
                    worker.mode = _READER
                    worker.wake.notify()
            else:
                worker.mode = _PARKED
            stop = worker.retiring and worker.load == 0
        if stop:
            self._send_stop(worker)
        return entries

    def _choose(self, entry: _Entry) -> Worker | None:
        """The least loaded worker that may take `entry` now (caller holds the lock), else None."""
        best = None
        for worker in self._workers:
            if best is None or worker.load < best.load:
                best = worker
        if best is None or best.load == 0:
            return best
        if (best.load < self.depth and entry.small and not self._queue and not best.unsure
                and time.monotonic() - best.started < limits.PIPELINE_STALL):
            return best
        return None

    def _send(self, worker: Worker, entries: list[_Entry]) -> bool:
        """Put `entries` in the worker's pipe; False when a write failed (the worker is gone)."""
        written = True
        with worker.send_lock:
            dead = worker.dead  # it failed after this caller chose it: the jobs never reached it
            if not dead:
                if not worker.inflight:
                    worker.started = time.monotonic()
                worker.inflight.extend(entries)
                worker.served += len(entries)
                try:
                    worker.conn.send_many([entry.wire for entry in entries])  # one write for all
                except OSError:
                    # A dead pipe: whoever reads it sees EOF and answers (or requeues) every entry.
                    written = False
        if dead:
            self._requeue(entries)
            return True
        limit = self.settings.max_requests
        if limit and worker.served >= limit and not worker.retiring:  # recycled: --max-requests
            self._replace_later()
            self._retire(worker)
        return written

    def _feed(self, worker: Worker) -> None:
        """Give `worker` queued jobs up to its pipeline depth (none while it is stuck on a slow job)."""
        take: list[_Entry] = []
        late: list[_Entry] = []
        now = time.monotonic()
        with self._lock:
            while self._queue and not worker.retiring:
                if worker.load and (worker.load >= self.depth or not self._queue[0].small or worker.unsure
                                    or now - worker.started >= limits.PIPELINE_STALL):
                    break
                entry = self._queue.popleft()
                if now - entry.queued > entry.timeout:
                    late.append(entry)
                    continue
                self._place(worker, entry)
                take.append(entry)
            if take:
                self._need_reader(worker)
        for entry in late:
            entry.finish(error=ServiceUnavailable("no worker became free within %.0fs" % entry.timeout))
        if take:
            self._send(worker, take)

    # --- the reader thread ------------------------------------------------------------------

    def _read_results(self, worker: Worker) -> None:
        """Deliver each Result of `worker` to its caller; handle its timeouts, crash and retirement."""
        conn = worker.conn
        poll = limits.POOL_POLL_INTERVAL
        while True:
            if worker.mode != _READER:
                with self._lock:
                    while worker.mode != _READER and not worker.dead:
                        worker.wake.wait()
                if worker.dead:
                    return  # failed while another thread read the pipe: _fail did the rest
            head = worker.inflight[0] if worker.inflight else None
            if head is None:
                wait = poll
            else:
                wait = min(poll, head.timeout - (time.monotonic() - worker.started))
            try:
                if wait <= 0:
                    raise TimeoutError
                message = conn.recv(wait)
            except TimeoutError:
                if head is None or time.monotonic() - worker.started < head.timeout:
                    continue  # nothing due yet: look again
                self._timed_out(worker, head)
                return
            except (EOFError, OSError):
                if worker.retiring and not worker.inflight:
                    worker.process.join(2)
                    worker.conn.close()
                    return
                self._died(worker, head)
                return
            # Every answer already buffered is taken before the worker is fed, so that it gets its next
            # jobs with one write and one wake-up (jobs fed one answer at a time woke it for each).
            results = [jobs.result_from_wire(message)]
            while conn.pending():
                results.append(jobs.result_from_wire(conn.recv(wait)))
            for entry, result in zip(self._answered(worker, results), results):
                entry.finish(result)

    def _send_stop(self, worker: Worker) -> None:
        with worker.send_lock:
            try:
                worker.conn.send(None)  # the worker exits; its reader sees EOF and returns
            except OSError:
                pass

    def _fail(self, worker: Worker, error: Exception | None) -> None:
        """The worker is dead or must die: answer its running job with `error` (None: the running job
        never reached the worker, requeue it too), requeue the rest, replace it."""
        try:  # first, so that a sender blocked on its full pipe gets EPIPE and lets go of send_lock
            worker.process.kill()
        except Exception:  # already gone
            pass
        with worker.send_lock, self._lock:
            worker.dead = True
            if worker.wake is not None:
                worker.wake.notify()  # a parked reader thread exits
            counted = not worker.retiring  # a retiring worker was already subtracted from _alive
            if worker in self._workers:
                self._workers.remove(worker)
            worker.retiring = True
            running = worker.inflight.popleft() if worker.inflight and error is not None else None
            requeue = list(worker.inflight)
            worker.inflight.clear()
            worker.load = worker.unsure = 0
            replace = counted and not self._closed and worker.generation == self._generation
        if replace:
            self._replace_later()
        if counted:
            self._lost()
        worker.kill()
        if running is not None:
            running.finish(error=error)
        self._requeue(requeue)

    def _requeue(self, entries: list[_Entry]) -> None:
        """Jobs that never started go back to the front of the queue, in order, for any live worker."""
        if not entries:
            return
        with self._lock:
            now = time.monotonic()
            for entry in reversed(entries):
                entry.queued = now
                self._queue.appendleft(entry)
            others = list(self._workers)
            orphaned = self._alive <= 0 or self._closed
        if orphaned:
            self._lost_queue()
            return
        for other in others:  # they need not wait for the replacement
            self._feed(other)


class SessionPool(_Workers):
    """WebSocket workers: a session takes one for its whole life; grows to `size`, keeps one spare."""

    kind = "ws"
    pipes = True  # one message each way per WebSocket message, none with a deadline: os.pipe()s are cheaper

    def __init__(self, settings: Settings, size: int, spares: int = 1) -> None:
        super().__init__(settings)
        self.size = size
        self.spares = spares
        self.max_queued = settings.max_queued_jobs
        self._idle: deque[Worker] = deque()
        self._alive = 0  # workers started and not retired (busy + idle + starting)
        self._waiting = 0

    def start(self) -> None:
        for worker in self._start_all(min(self.spares, self.size)):
            self._alive += 1
            self._idle.append(worker)

    def _replace(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._alive += 1
        super()._replace()

    def _lost(self) -> None:
        with self._lock:
            self._alive -= 1
            self._lock.notify_all()

    def _adopt(self, worker: Worker) -> None:
        with self._lock:
            stop = self._closed or worker.generation != self._generation
            if stop:
                self._alive -= 1
            else:
                self._idle.append(worker)
                self._lock.notify()
        if stop:
            worker.stop()

    def reload(self) -> None:
        """Start a new generation (re-running init.py); sessions in progress keep their old worker."""
        with self._lock:
            if self._closed:
                return
            self._generation += 1
            old = list(self._idle)
            self._idle.clear()
            self._alive -= len(old)
        for worker in old:
            threading.Thread(target=worker.stop, daemon=True).start()
        for _ in range(min(self.spares, self.size)):
            self._replace_later()
        log.info("ws workers reloading (generation %d)", self._generation)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._lock.notify_all()
        for worker in idle:
            worker.stop(1.0)

    def acquire(self, wait: float) -> Worker:
        """Take an idle worker, waiting up to `wait` seconds; ServiceUnavailable when overloaded."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._closed:
                raise ServiceUnavailable("the server is shutting down")
            if self._alive < self.size:
                self._alive += 1
                grow = True
            else:
                grow = False
                if self._waiting >= self.max_queued:
                    raise ServiceUnavailable("all %d workers are busy and %d requests wait" % (self._alive, self._waiting))
                self._waiting += 1
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
        """Give a worker back; an unhealthy one is killed, and a spare is kept started."""
        if not healthy:
            with self._lock:
                self._alive -= 1
            worker.kill()
            if self._want_spare():
                self._replace_later()
            return
        if not self._want_spare(extra=1):
            with self._lock:
                self._alive -= 1
            threading.Thread(target=worker.stop, daemon=True).start()
            return
        self._adopt(worker)

    def _want_spare(self, extra: int = 0) -> bool:
        with self._lock:
            return len(self._idle) + extra <= self.spares


def _describe_init_error(report: jobs.ErrorReport) -> str:
    where = f" at {report.where}" if report.where else ""
    return f"init.py failed{where}: {report.type_name}: {report.message}\n{report.traceback}".rstrip()
