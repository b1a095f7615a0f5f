# The scheduler's records: who reads a worker's pipe, a generation of workers, a job waiting for its
# answer (Entry) and one worker with its scheduling state (Lane).
#
# Design: plain state, no behaviour beyond small predicates; krait/pool/scheduler.py (placement and life
# cycle) and krait/pool/answers.py (reading answers, faults, streamed bodies) both work on them, always
# under the pool lock unless a field says otherwise.

from __future__ import annotations

import enum
import threading
from collections import deque
from typing import Any, NamedTuple

from krait import limits
from krait.pool import jobs
from krait.pool.process import WorkerProcess


class Reader(enum.Enum):
    """Who reads a lane's pipe. NONE: nobody, the worker is idle and its reader thread sleeps. CALLER: the
    request thread whose job an idle worker took reads that answer itself, or the pieces of its streamed
    body. THREAD: the lane's reader thread. Transitions: NONE -> CALLER (run() on an idle lane); NONE ->
    THREAD (jobs fed from the queue, or a stop to read the EOF of); CALLER/THREAD -> THREAD or NONE after
    each batch of answers (THREAD while jobs are left in the pipe)."""

    NONE = 0
    CALLER = 1
    THREAD = 2


class Generation(NamedTuple):
    """Workers that ran one version of init.py (prepare() -> commit() or discard())."""

    number: int
    workers: list[WorkerProcess]
    config: Any  # krait.config's snapshot (the first worker's)


class Entry:
    """One job of a request thread, waiting in the queue or in a worker's pipe."""

    __slots__ = ("wire", "rel_path", "generation", "timeout", "small", "fast", "done", "result", "error",
                 "streaming")

    def __init__(self, job: jobs.Job, timeout: float, generation: int | None) -> None:
        self.wire = jobs.job_to_wire(job)
        self.rel_path = job.rel_path
        self.generation = generation  # whose configuration routed it (None: any generation may run it)
        self.timeout = timeout
        self.small = len(job.body) < limits.PIPELINE_MAX_BODY and not job.body_file  # may wait in a busy pipe
        self.fast = False  # its file ran in under PIPELINE_STALL last time (set when it is placed)
        self.done = threading.Lock()
        self.done.acquire()  # released once `result` or `error` is set
        self.result: jobs.Result | None = None
        self.error: Exception | None = None
        self.streaming = False  # answered, and its body still streams from the worker (Stream)

    def finish(self, result: jobs.Result | None = None, error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.done.release()


class Lane:
    """One worker process with its scheduling state (fields under the pool lock unless noted)."""

    __slots__ = ("proc", "inflight", "outbox", "started", "compiling", "served", "recycling", "retiring", "stopped",
                 "dead", "reader", "wake", "send_lock")

    def __init__(self, proc: WorkerProcess, mutex: Any) -> None:
        self.proc = proc
        self.inflight: deque[Entry] = deque()  # placed on this worker, in wire order; [0] is running
        self.outbox: list[Entry] = []  # the tail of `inflight` not written yet
        self.started = 0.0  # when inflight[0] started running, moved on by the time it spent compiling
        self.compiling = 0.0  # when the template compilation under way started (0: none; serve.py)
        self.served = 0  # jobs written to it (--max-requests)
        self.recycling = False  # its replacement is starting (--max-requests)
        self.retiring = False  # takes no new jobs; stopped when its pipe is empty
        self.stopped = 0.0  # when it was sent the stop message (0: not yet); killed WORKER_STOP_GRACE later
        self.dead = False  # failed: the reader thread exits
        self.reader = Reader.NONE
        self.wake = threading.Condition(mutex)  # wakes the reader thread
        # Held while writing to the pipe (taken outside the pool lock, or tried under it by a reader, and let
        # go under it); a reader hands it with what the pipe did not take to a writer thread (scheduler.py).
        self.send_lock = threading.Lock()

    def unsure(self) -> bool:
        """Whether a job in the pipe is of a file not known to be fast (nothing may queue behind it)."""
        return not all(entry.fast for entry in self.inflight)

    def deadline(self) -> float:
        """When the running job is past its time: --timeout from its start, not counting the compilation of
        a template, which gets COMPILE_TIMEOUT of its own."""
        if self.compiling:
            return self.compiling + limits.COMPILE_TIMEOUT
        return self.started + self.inflight[0].timeout
