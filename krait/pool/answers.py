# The reading half of JobPool (krait/pool/scheduler.py): a worker's answers, its faults, streamed bodies.
#
# Design:
# - Who reads a worker's pipe is the lane's Reader (krait/pool/lanes.py): a request thread that found the
#   worker idle reads its own answer; otherwise the lane's reader thread reads every answer of a batch,
#   hands each to its caller and refills the pipe with one write, which never waits (the worker may be
#   waiting for its answers to be read: krait/pool/scheduler.py). On Linux the reader thread is
#   SCHED_BATCH (krait/portable.py): woken by an answer, it does not preempt the worker, which runs on
#   to its next jobs while their answers gather in the pipe, so one wake-up of the reader takes several.
#   It waits at most for the worker to sleep or use up its time slice, a few milliseconds.
# - Between answers a worker may send records that are no answer: PUBLISH (krait.websockets.publish()
#   from a script), and COMPILING / COMPILED around a template's compilation, which moves the running
#   job's deadline (Lane.deadline(): compilation has COMPILE_TIMEOUT of its own and --timeout counts the
#   rest).
# - A streamed body (jobs.Result.stream): the pieces follow their Result on the pipe, so whoever read the
#   Result stops reading there and the pipe goes to the request thread, which reads the pieces through a
#   Stream (the Result's `pieces`) at the pace its client takes them. The job stays the running one until
#   STREAM_END; nothing new is queued behind it. Each piece must come within --timeout of being asked for.
#   A stream given up before its end (the client left, or was too slow) kills the worker, which would
#   otherwise go on producing it, and a fresh one replaces it.
# - A retired worker (see krait/pool/scheduler.py) is sent the stop message once its pipe is empty, and its
#   reader thread waits for the EOF of its exit: WORKER_STOP_GRACE at most, then it is killed (a thread of
#   init.py's that is not a daemon would keep it alive for ever).
# - Faults stay with the job that caused them. The running job passes its deadline: the worker is killed,
#   that caller gets GatewayTimeout. The pipe hits EOF (os._exit, a segfault, the OOM killer):
#   InternalError. Either way the jobs behind it never started, so they go back to the front of the queue,
#   and a replacement worker starts. A worker sends each answer before it starts the next job
#   (krait/pool/serve.py), but may do so just as the server's wait for it runs out: so the answers it sent
#   before it was killed are read and delivered, and the job after them, which may have started, gets
#   InternalError instead of running again.
# - The log says how a worker that died ended (WorkerProcess.ended_how()).

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from krait import limits, portable
from krait.errors import GatewayTimeout, InternalError, Reloaded
from krait.pool import jobs
from krait.pool.lanes import Entry, Lane, Reader

log = logging.getLogger("krait.pool")


class AnswerReader:
    """JobPool's methods that read worker pipes and handle worker faults (see the module comment)."""

    _lock: threading.Condition
    _lanes: list[Lane]
    _queue: deque[Entry]
    _took: dict[str, float]
    _closed: bool
    generation: int
    on_publish: Callable[[str, str, bytes], None] | None

    if TYPE_CHECKING:  # JobPool's own
        def _feed(self, lane: Lane, reading: bool = False) -> None: ...
        def _start_replacement(self, recycled: Lane | None = None) -> None: ...
        def _strand_if_orphaned(self) -> None: ...

    # --- reading answers ------------------------------------------------------------------

    @staticmethod
    def _set_reader(lane: Lane, reader: Reader) -> None:
        """Hand the lane's pipe to `reader` (caller holds the lock); wakes the reader thread for THREAD."""
        if lane.reader is not reader:
            lane.reader = reader
            if reader is Reader.THREAD:
                lane.wake.notify()

    def _note(self, lane: Lane, record: tuple) -> None:
        """A record between answers: a room publication, or a template compilation starting or ending."""
        tag = record[0]
        if tag == jobs.COMPILING:
            lane.compiling = time.monotonic()
        elif tag == jobs.COMPILED:
            if lane.compiling:
                lane.started += time.monotonic() - lane.compiling
                lane.compiling = 0.0
        elif self.on_publish is not None:
            self.on_publish(record[1], record[2], record[3])

    def _read_own(self, lane: Lane, entry: Entry) -> jobs.Result:
        """Read the answer to `entry`, the first job of an idle worker, in the calling thread."""
        pipe = lane.proc.pipe
        try:
            while True:
                message = pipe.recv(max(lane.deadline() - time.monotonic(), 0.001))
                if type(message[0]) is not str:
                    break
                self._note(lane, message)
        except TimeoutError:
            self._timed_out(lane, entry)
            if entry.error is None:  # it answered as its deadline passed (see _timed_out)
                return entry.result  # type: ignore[return-value]
            raise entry.error from None
        except (EOFError, OSError):
            self._died(lane, entry)
            raise entry.error from None  # type: ignore[misc]
        result = jobs.result_from_wire(message)
        if result.stream is not None:
            return self._streaming(lane, entry, result)
        self._answered(lane, [result])
        return result

    def _read_answers(self, lane: Lane) -> None:
        """The lane's reader thread: deliver each answer to its caller; handle timeouts, crash, retirement."""
        portable.batch_scheduling()  # the worker's answers gather until it sleeps (see the module comment)
        pipe = lane.proc.pipe
        poll = limits.POOL_POLL_INTERVAL
        while True:
            if lane.reader is not Reader.THREAD:
                with self._lock:
                    while lane.reader is not Reader.THREAD and not lane.dead:
                        lane.wake.wait()
                if lane.dead:
                    return  # failed while another thread read the pipe: _fail did the rest
            head = lane.inflight[0] if lane.inflight else None
            wait = poll if head is None else min(poll, lane.deadline() - time.monotonic())
            try:
                if wait <= 0:
                    raise TimeoutError
                message = pipe.recv(wait)
            except TimeoutError:
                if head is None:
                    if lane.stopped and time.monotonic() - lane.stopped >= limits.WORKER_STOP_GRACE:
                        self._stop_overdue(lane)
                        return
                    continue  # nothing due yet: look again
                if time.monotonic() < lane.deadline():
                    continue
                self._timed_out(lane, head)
                return
            except (EOFError, OSError):
                if lane.retiring and not lane.inflight:  # the EOF after the stop message
                    lane.proc.process.join(max(lane.stopped + limits.WORKER_STOP_GRACE - time.monotonic(), 0.0))
                    if lane.proc.process.is_alive():
                        self._stop_overdue(lane)
                    pipe.close()
                    return
                self._died(lane, head)
                return
            if type(message[0]) is str:
                self._note(lane, message)
                continue
            # Every answer already buffered is taken before the worker is fed, so that it gets its next
            # jobs with one write and one wake-up. A streamed body's pieces are left to its caller.
            results = [jobs.result_from_wire(message)]
            while results[-1].stream is None and pipe.pending():
                message = pipe.recv(wait)
                if type(message[0]) is str:
                    self._note(lane, message)
                else:
                    results.append(jobs.result_from_wire(message))
            streamed = results.pop() if results[-1].stream is not None else None
            if streamed is not None:
                with self._lock:
                    streaming = lane.inflight[len(results)]
                    streaming.fast = False  # nothing may be fed behind a stream
            for entry, result in zip(self._answered(lane, results), results):
                entry.finish(result)
            if streamed is not None:
                streaming.finish(self._streaming(lane, streaming, streamed))

    def _answered(self, lane: Lane, results: list[jobs.Result]) -> list[Entry]:
        """The pipe's oldest jobs got these answers: remember how long their files took, feed the worker
        (one write for all the jobs it takes), and decide who reads next."""
        with self._lock:
            entries = [lane.inflight.popleft() for _ in results]
            lane.started = time.monotonic()
            took = self._took
            if len(took) > 1000:
                took.clear()
            for entry, result in zip(entries, results):
                took[entry.rel_path] = result.took
        if not lane.retiring:
            self._feed(lane, reading=True)
        with self._lock:
            self._set_reader(lane, Reader.THREAD if lane.inflight or lane.retiring else Reader.NONE)
            stop = lane.retiring and not lane.inflight
        if stop:
            self._send_stop(lane)
        return entries

    def _streaming(self, lane: Lane, entry: Entry, result: jobs.Result) -> jobs.Result:
        """`entry` is answered with a streamed body: the pipe goes to its caller, who reads the pieces."""
        with self._lock:
            entry.streaming = True
            entry.fast = False
            lane.started = time.monotonic()
            self._set_reader(lane, Reader.CALLER)
        return result._replace(pieces=Stream(self, lane, entry, result))

    # --- faults ---------------------------------------------------------------------------

    def _timed_out(self, lane: Lane, running: Entry) -> None:
        if lane.compiling:
            log.error("template %s did not compile within %.0fs; worker %d killed", running.rel_path,
                      limits.COMPILE_TIMEOUT, lane.proc.pid)
            self._fail(lane, GatewayTimeout("the template did not compile within %.0f seconds"
                                            % limits.COMPILE_TIMEOUT))
            return
        answers = [] if running.streaming else self._last_answers(lane)
        if answers:  # it answered as its deadline passed, and the next job may have started
            log.error("script %s answered as its %.0fs timeout passed; worker %d killed", running.rel_path,
                      running.timeout, lane.proc.pid)
            self._fail(lane, InternalError("the worker process was killed as the script started"), answers)
            return
        log.error("script %s exceeded the %.0fs timeout; worker %d killed", running.rel_path, running.timeout,
                  lane.proc.pid)
        self._fail(lane, GatewayTimeout("the script did not finish within %.0f seconds" % running.timeout))

    def _last_answers(self, lane: Lane) -> list[jobs.Result]:
        """Kill a worker whose running job passed its deadline, and read the answers it sent before it died
        (see the module comment)."""
        lane.proc.kill_now()
        lane.proc.process.join(1.0)
        pipe = lane.proc.pipe
        results: list[jobs.Result] = []
        try:
            while len(results) < len(lane.inflight):
                message = pipe.recv(0.05)  # the dead worker's end is closed: what it sent, then EOF
                if type(message[0]) is str:
                    self._note(lane, message)
                    continue
                result = jobs.result_from_wire(message)
                if result.stream is not None:  # its body can no longer come whole
                    break
                results.append(result)
        except (TimeoutError, EOFError, OSError):
            pass
        return results

    def _died(self, lane: Lane, running: Entry | None) -> None:
        log.error("worker %d died while running %s (%s); replaced", lane.proc.pid,
                  running.rel_path if running else "nothing", lane.proc.ended_how())
        self._fail(lane, InternalError("the worker process running the script died"))

    def _stop_overdue(self, lane: Lane) -> None:
        """A retired worker did not exit within WORKER_STOP_GRACE of its stop message: kill it."""
        log.warning("retired worker %d did not exit within %gs of being stopped (a thread that is not a daemon, "
                    "started by init.py?); killed", lane.proc.pid, limits.WORKER_STOP_GRACE)
        lane.proc.kill()

    def _send_stop(self, lane: Lane) -> None:
        lane.stopped = time.monotonic()
        with lane.send_lock:
            try:
                lane.proc.pipe.send(None)  # the worker exits; its reader sees EOF and returns
            except OSError:
                pass

    def _fail(self, lane: Lane, error: Exception | None, answers: list[jobs.Result] | None = None) -> None:
        """The worker is dead or must die: deliver `answers` (read after its death) to its oldest jobs,
        answer the job it was running with `error` (None: the running job never reached the worker,
        requeue it too), requeue the rest, replace the worker."""
        lane.proc.kill_now()  # first, so that a writer blocked on its full pipe gets EPIPE and lets go of send_lock
        with lane.send_lock, self._lock:
            lane.dead = True
            lane.wake.notify()  # a sleeping reader thread exits
            serving = lane in self._lanes  # a retiring one was replaced already
            if serving:
                self._lanes.remove(lane)
            lane.retiring = True
            answered = [lane.inflight.popleft() for _ in (answers or ())]
            running = lane.inflight.popleft() if lane.inflight and error is not None else None
            requeue = list(lane.inflight)
            lane.inflight.clear()
            lane.outbox = []
            replace = serving and not (self._closed or lane.recycling) and lane.proc.generation == self.generation
        if replace:
            self._start_replacement()
        lane.proc.kill()
        for entry, result in zip(answered, answers or ()):
            entry.finish(result)
        if running is not None and not running.streaming:  # a stream's caller has its answer and reads on
            running.finish(error=error)
        self._requeue(requeue)
        self._strand_if_orphaned()

    def _requeue(self, entries: list[Entry]) -> None:
        """Jobs that never started go back to the front of the queue, in order, for any live worker (those
        of a replaced generation back to their callers, to be routed again)."""
        if not entries:
            return
        with self._lock:
            stale = [entry for entry in entries if entry.generation not in (None, self.generation)]
            for entry in reversed(entries):
                if entry not in stale:
                    self._queue.appendleft(entry)
            others = list(self._lanes)
        for entry in stale:
            entry.finish(error=Reloaded())
        for other in others:  # they need not wait for the replacement
            self._feed(other)


class Stream:
    """The pieces of a streamed body, read from the worker's pipe as the caller iterates.

    Iterating raises GatewayTimeout when the worker takes longer than --timeout for a piece, and
    InternalError when it dies or its site code failed mid-way (the body is then incomplete: the caller
    must cut the connection). close() before the end gives the stream up (see the module comment)."""

    def __init__(self, pool: AnswerReader, lane: Lane, entry: Entry, result: jobs.Result) -> None:
        self.pool = pool
        self.lane = lane
        self.entry = entry
        self.result = result
        self.started = time.monotonic()
        self.ended = False

    def __iter__(self) -> Iterator[bytes]:
        pool, lane, entry = self.pool, self.lane, self.entry
        pipe = lane.proc.pipe
        while True:
            asked = time.monotonic()
            try:
                while True:
                    record = pipe.recv(max(asked + entry.timeout - time.monotonic(), 0.001))
                    if record[0] == jobs.STREAM_DATA:
                        break
                    if record[0] == jobs.STREAM_END:
                        self._end(record[1])
                        return
                    pool._note(lane, record)
            except TimeoutError:
                self.ended = True
                pool._timed_out(lane, entry)
                raise GatewayTimeout("the script did not produce the next piece of its response within %.0f "
                                     "seconds" % entry.timeout) from None
            except (EOFError, OSError):
                self.ended = True
                pool._died(lane, entry)
                raise InternalError("the worker process streaming the response died") from None
            yield record[2]

    def _end(self, error: tuple | None) -> None:
        self.ended = True
        took = max(time.monotonic() - self.started, limits.PIPELINE_STALL)  # never pipelined behind again
        self.pool._answered(self.lane, [self.result._replace(took=took)])
        if error is not None:
            report = jobs.ErrorReport(*error)
            raise InternalError("%s failed while its response streamed: %s: %s\n%s" % (
                self.entry.rel_path, report.type_name, report.message, report.traceback.rstrip("\n")))

    def close(self) -> None:
        """Give up the stream if it has not ended: its worker is killed and replaced."""
        if self.ended:
            return
        self.ended = True
        log.info("a streamed response of %s was given up; worker %d replaced", self.entry.rel_path,
                 self.lane.proc.pid)
        self.pool._fail(self.lane, InternalError("the response was given up"))
