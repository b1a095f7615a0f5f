# JobPool: runs the scripts and templates of HTTP requests on a fixed number of worker processes.
#
# Design (the policy; krait/pool/process.py is the mechanism, krait/pool/serve.py the worker's half):
# - A request thread calls run(job). The job goes to the least loaded worker, or waits in one FIFO queue
#   shared by all workers when none may take it now.
# - Pipelining: a busy worker may hold up to PIPELINE_DEPTH jobs in its pipe, so under load it reads
#   several jobs per wake-up and never sleeps between them. It still runs them one at a time and in
#   order, and answers each before it starts the next (krait/pool/serve.py), so the oldest unanswered
#   job is always the running one. A job only queues behind a worker
#   whose running job started less than PIPELINE_STALL ago and whose pipe holds only jobs of files
#   known to be fast (every answer says how long its job took); a file that was slow last time, or has
#   not run yet, is the last job in its pipe. So a fast request never waits behind a slow script.
# - Each worker is a Lane: `inflight` holds its jobs in wire order, `outbox` those not written yet.
#   Jobs are placed under the pool lock and written, in placement order, under the lane's send lock,
#   so the order on the wire is the order of `inflight` whatever thread writes. Loads and counts are
#   read off these lists, never kept on the side.
# - The thread that reads a worker's answers never waits to write to it: a worker whose pipe is full
#   writes no more answers until they are read, and a writer waiting on it would wait for ever (jobs
#   with large bodies, answers with large ones). So whoever holds the send lock writes the outbox until
#   it is empty and lets go of the lock under the pool lock; a reader that feeds the worker only tries
#   the lock (its holder writes the reader's jobs too), writes what the pipe takes at once, and leaves
#   the rest, with the lock, to a writer thread of its own. Request threads that place a job on a busy
#   worker write it themselves and may wait: the reader goes on reading.
# - Reading answers, streamed bodies and worker faults are krait/pool/answers.py's half of the class; the
#   records both halves work on are krait/pool/lanes.py's. More than `max_queued` jobs waiting:
#   ServiceUnavailable.
# - Generations (reloads, docs/deployment.md): prepare() starts a complete new generation of workers and
#   waits until init.py ran in every one, while the current generation serves on. commit() then, under the
#   pool lock, makes them the serving lanes, runs the server's `publish` (which installs the App built from
#   their krait.config) and retires the old lanes. discard() kills a prepared generation instead. A job
#   carries the generation whose configuration routed it: run() refuses one of a replaced generation with
#   Reloaded, and commit() hands back the same way the jobs still queued for the old one (so do the jobs
#   a dying old worker never started): they never ran, and the server routes their requests again. So a
#   request is routed and run by one generation; jobs of no generation (error pages) run on any.
# - A worker that belongs to a replaced generation takes no new jobs and is stopped once its pipe is empty:
#   no request in flight is cut. So is a worker that served --max-requests jobs, once its replacement ran
#   init.py; until then it serves on, and if the replacement fails (a broken edit of init.py), it serves
#   that many jobs more before the next try.
# - A script may publish to a WebSocket room (krait.websockets.publish()): whoever reads the worker's pipe
#   hands that record to `on_publish`.

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from krait import limits
from krait.errors import Reloaded, ServiceUnavailable
from krait.pool import jobs
from krait.pool.answers import AnswerReader
from krait.pool.lanes import Entry, Generation, Lane, Reader
from krait.pool.process import Starting, WorkerProcess, start_all
from krait.settings import Settings

log = logging.getLogger("krait.pool")


class JobPool(AnswerReader):
    """A fixed number of workers running HTTP jobs, pipelined (see the module comment)."""

    def __init__(self, settings: Settings, size: int) -> None:
        self.settings = settings
        self.size = size
        self.max_queued = settings.max_queued_jobs
        self.depth = max(1, limits.PIPELINE_DEPTH)
        self.config: Any = None  # krait.config's snapshot of the serving generation
        self.generation = -1  # the serving generation's number (commit() sets both)
        mutex = threading.Lock()
        self._mutex = mutex
        self._lock = threading.Condition(mutex)
        self._lanes: list[Lane] = []  # taking new jobs
        self._starting: set[object] = set()  # replacements being started (one token each)
        self._queue: deque[Entry] = deque()  # waiting for any worker
        self._took: dict[str, float] = {}  # rel_path -> seconds its last job took in a worker
        self._numbered = -1  # the last generation number given out
        self._closed = False
        self._closing = threading.Event()  # set with _closed: wakes a replacement waiting to try again
        self.on_publish: Callable[[str, str, bytes], None] | None = None  # the server's WebSocket rooms

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the first generation and wait until init.py ran in each worker; ConfigError on failure."""
        self.commit(self.prepare())

    def prepare(self, starting: Starting | None = None) -> Generation:
        """Start a complete new generation and wait until init.py ran in each of its workers (the serving
        generation is left alone); `starting` lets another thread abandon it meanwhile.

        Raises:
            ConfigError: a worker failed (all of the new ones are killed): init.py's file, line, traceback.
        """
        with self._lock:
            self._numbered += 1
            number = self._numbered
        started = start_all(self.settings, self.size, number, starting=starting)
        return Generation(number, [proc for proc, _ in started], started[0][1])

    def commit(self, new: Generation, publish: Callable[[], None] | None = None) -> None:
        """Make a prepared generation the serving one, and call `publish` at the same instant (under the
        pool lock); the old workers finish the jobs in their pipes and stop (see the module comment)."""
        for proc in new.workers:
            proc.pipe.use_kernel_timeouts(limits.PIPE_SEND_TIMEOUT)
        fresh = [Lane(proc, self._mutex) for proc in new.workers]
        stopping: list[Lane] = []
        stale: list[Entry] = []
        with self._lock:
            closed = self._closed
            if not closed:
                self.generation, self.config = new.number, new.config
                if publish is not None:
                    publish()
                old, self._lanes = self._lanes, list(fresh)
                stopping = [lane for lane in old if self._retire_locked(lane)]
                stale = [entry for entry in self._queue if entry.generation not in (None, new.number)]
                for entry in stale:
                    self._queue.remove(entry)
        if closed:
            self.discard(new)
            return
        for entry in stale:
            entry.finish(error=Reloaded())
        for lane in stopping:
            self._send_stop(lane)
        for lane in fresh:
            self._run_lane(lane)

    def discard(self, new: Generation) -> None:
        """Kill the workers of a prepared generation that will not serve."""
        for proc in new.workers:
            proc.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            lanes = list(self._lanes)
        self._closing.set()
        self._strand("the server is shutting down")
        for lane in lanes:
            self._retire(lane)
        for lane in lanes:
            lane.proc.process.join(1.0)
            if lane.proc.process.is_alive():
                lane.proc.kill()

    def _start_replacement(self, recycled: Lane | None = None) -> None:
        token = object()
        with self._lock:
            self._starting.add(token)
        threading.Thread(target=self._replace, args=(token, recycled), name="krait-replace", daemon=True).start()

    def _replace(self, token: object, recycled: Lane | None) -> None:
        """Start a worker for a dead one, or for `recycled` (which is retired once it is ready).

        A failed start for a dead worker (init.py failing for a while, a fork refused) is tried again
        WORKER_RESTART_DELAY seconds later, and twice as late after each failure up to WORKER_RESTART_MAX,
        for as long as its generation serves; meanwhile requests that find no worker get 503."""
        generation = self.generation
        delay = limits.WORKER_RESTART_DELAY
        while True:
            try:
                proc = WorkerProcess.start(self.settings, generation)
                proc.wait_ready()
                break
            except Exception as exc:
                again = "" if recycled is not None else "; trying again in %.1fs" % delay
                log.error("could not start a replacement worker: %s%s", exc, again)
            with self._lock:
                self._starting.discard(token)
                if recycled is not None:  # it serves on, and tries again after --max-requests more jobs
                    recycled.served, recycled.recycling = 0, False
            self._strand_if_orphaned()
            if recycled is not None:
                return
            if self._closing.wait(delay):
                return
            with self._lock:
                if generation != self.generation:  # a reload started a whole new generation meanwhile
                    return
                self._starting.add(token)
            delay = min(2 * delay, limits.WORKER_RESTART_MAX)
        self._adopt(proc, token)
        if recycled is not None:
            self._retire(recycled)

    def _adopt(self, proc: WorkerProcess, token: object = None) -> None:
        proc.pipe.use_kernel_timeouts(limits.PIPE_SEND_TIMEOUT)
        with self._lock:
            self._starting.discard(token)
            stale = self._closed or proc.generation != self.generation
            lane = None if stale else Lane(proc, self._mutex)
            if lane is not None:
                self._lanes.append(lane)
        if lane is None:
            proc.stop()
            self._strand_if_orphaned()
            return
        self._run_lane(lane)

    def _run_lane(self, lane: Lane) -> None:
        """Start serving a lane that just joined `_lanes`: its reader thread, and the queued jobs."""
        threading.Thread(target=self._read_answers, args=(lane,), name="krait-pool-reader", daemon=True).start()
        self._feed(lane)

    def _retire(self, lane: Lane) -> None:
        """Take no new jobs; the reader thread stops the worker once its pipe is empty."""
        with self._lock:
            idle = self._retire_locked(lane)
        self._strand_if_orphaned()
        if idle:
            self._send_stop(lane)

    def _retire_locked(self, lane: Lane) -> bool:
        """_retire() under the lock, but for the stop message: True when the caller must send it."""
        if lane.retiring:
            return False
        lane.retiring = True
        if lane in self._lanes:
            self._lanes.remove(lane)
        if lane.inflight:
            return False
        self._set_reader(lane, Reader.THREAD)  # to read the EOF that follows the stop message
        return True

    def _strand_if_orphaned(self) -> None:
        """With no worker left and none starting, nobody would ever run the queue: answer it 503."""
        with self._lock:
            orphaned = self._closed or not (self._lanes or self._starting)
        if orphaned:
            self._strand("no script worker is running" if not self._closed else "the server is shutting down")

    def _strand(self, why: str) -> None:
        with self._lock:
            stranded = list(self._queue)
            self._queue.clear()
        for entry in stranded:
            entry.finish(error=ServiceUnavailable(why))

    # --- running jobs ---------------------------------------------------------------------

    def run(self, job: jobs.Job, timeout: float, generation: int | None = None) -> jobs.Result:
        """Run one job, routed with the configuration of `generation` (None: any), and return its Result.

        Raises:
            Reloaded: `generation` is no longer the serving one; the job did not run.
            ServiceUnavailable: too many jobs wait, no worker is running, or the server stops.
            GatewayTimeout: the job ran past `timeout` (its worker was killed).
            InternalError: the worker died while running the job.
        """
        entry = Entry(job, timeout, generation)
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the server is shutting down")
            if generation is not None and generation != self.generation:
                raise Reloaded()
            if not (self._lanes or self._starting):  # none would ever take it (see _replace)
                raise ServiceUnavailable("no script worker is running")
            lane = self._choose(entry)
            if lane is None or lane.inflight:  # it will wait: in the queue or behind a running job
                waiting = len(self._queue) + sum(max(len(other.inflight) - 1, 0) for other in self._lanes)
                if waiting >= self.max_queued:
                    raise ServiceUnavailable("all %d workers are busy and %d requests wait"
                                             % (len(self._lanes), waiting))
                log.debug("http queue depth %d", waiting + 1)
            if lane is None:
                self._queue.append(entry)
                direct = False
            else:
                self._place(lane, entry)
                direct = lane.reader is Reader.NONE  # idle: this thread reads the answer itself
                if direct:
                    lane.reader = Reader.CALLER
        if lane is None:
            return self._wait(entry)
        written = self._write(lane, direct)
        if not direct:
            return self._wait(entry)
        if not written:
            # It died while idle (an OOM kill, say): the job never reached it, so it is not the job's
            # fault. The usual paths replace the worker and run the job elsewhere.
            log.error("worker %d had died while idle (%s); replaced", lane.proc.pid, lane.proc.ended_how())
            self._fail(lane, None)
            return self._wait(entry)
        return self._read_own(lane, entry)

    def _choose(self, entry: Entry) -> Lane | None:
        """The least loaded lane that may take `entry` now (caller holds the lock), else None."""
        best = None
        for lane in self._lanes:
            if best is None or len(lane.inflight) < len(best.inflight):
                best = lane
        if best is None or not best.inflight:
            return best
        if (len(best.inflight) < self.depth and entry.small and not self._queue
                and time.monotonic() - best.started < limits.PIPELINE_STALL and not best.unsure()):
            return best
        return None

    def _place(self, lane: Lane, entry: Entry) -> None:
        """Give `entry` to `lane` (caller holds the lock); _write() puts it on the wire."""
        entry.fast = self._took.get(entry.rel_path, limits.PIPELINE_STALL) < limits.PIPELINE_STALL
        lane.inflight.append(entry)
        lane.outbox.append(entry)

    def _write(self, lane: Lane, reading: bool = False) -> bool:
        """Write the lane's outbox, in order; False when a write failed. `reading`: the calling thread reads
        the lane's answers, so it must never wait to write (see the module comment)."""
        if reading:
            with self._lock:
                if not lane.send_lock.acquire(blocking=False):
                    return True  # the thread that holds it writes the outbox before it lets go
        else:
            lane.send_lock.acquire()
        return self._write_held(lane, reading)

    def _write_held(self, lane: Lane, reading: bool) -> bool:
        """_write() with the lane's send lock held: batch after batch until the outbox is empty, then the
        lock is let go (under the pool lock, so that no job is left behind). A reader's write takes what
        the pipe takes at once; the rest, and the lock, go to a writer thread of their own."""
        pipe = lane.proc.pipe
        recycle = False
        try:
            while True:
                with self._lock:
                    batch, lane.outbox = lane.outbox, []
                    if not batch:
                        lane.send_lock.release()
                        break
                    if batch[0] is lane.inflight[0]:
                        lane.started = time.monotonic()  # the pipe was empty: the first of them runs now
                    lane.served += len(batch)
                    limit = self.settings.max_requests
                    if limit and lane.served >= limit and not (lane.recycling or lane.retiring):
                        lane.recycling = recycle = True
                wires = [entry.wire for entry in batch]
                if not reading:
                    pipe.send_many(wires)
                    continue
                rest = pipe.send_some(wires)
                if rest:  # a full pipe: waiting here could wait for ever (the worker waits for us to read)
                    threading.Thread(target=self._write_rest, args=(lane, rest), name="krait-pool-writer",
                                     daemon=True).start()
                    break
        except OSError:  # a dead pipe: whoever reads it sees EOF and answers every entry
            lane.send_lock.release()
            return False
        finally:
            if recycle:  # --max-requests
                self._start_replacement(lane)
        return True

    def _write_rest(self, lane: Lane, rest: deque) -> None:
        """A writer thread, given the send lock: the rest of a reader's batch, then the outbox."""
        try:
            lane.proc.pipe.send_rest(rest)
        except OSError:
            lane.send_lock.release()
            return
        self._write_held(lane, False)

    def _feed(self, lane: Lane, reading: bool = False) -> None:
        """Give `lane` queued jobs up to its pipeline depth (none while it is on a slow job). `reading`: as
        for _write()."""
        take = False
        now = time.monotonic()
        with self._lock:
            queue = self._queue
            while queue and not lane.retiring:
                if lane.inflight and (len(lane.inflight) >= self.depth or not queue[0].small or lane.unsure()
                                      or now - lane.started >= limits.PIPELINE_STALL):
                    break
                # A job that waited long is still run now that a worker is free: its request waits for it
                # up to twice --timeout and QUEUE_WAIT_SLACK (_wait), then takes it back.
                self._place(lane, queue.popleft())
                take = True
            if take and lane.reader is Reader.NONE:
                self._set_reader(lane, Reader.THREAD)
        if take:
            self._write(lane, reading)

    def _wait(self, entry: Entry) -> jobs.Result:
        timeout = entry.timeout
        # The reader finishes every entry that reached a worker (answer, timeout or crash). Only a queued
        # one could be stranded, so after the longest fair wait the caller takes it back.
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
