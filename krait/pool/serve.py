# The worker's half of the protocol for script workers: jobs in, answers out; and publishing to rooms.
#
# Design: JobLoop is the loop of every script worker. The worker side (krait/worker) gives it
# `run(job) -> (Result, pieces or None)`, which runs one job's site code and never touches the pipe or
# its records. The pipelining half of krait/pool/scheduler.py lives here: with more jobs already waiting
# in the pipe, an answer may wait for the next job when, going by how long its file took last time, that
# job ends within RESULT_HOLD of the first answer held; the server then gets several answers with one
# wake-up, and none waits much longer than RESULT_HOLD. A streamed body (jobs.Result.stream) goes out
# right behind its Result, one STREAM_DATA record per piece and a STREAM_END, each written as it is
# produced: a full pipe (a client reading slowly) holds the worker, never the memory of either process.
# compiling() tells the server that a template's compilation starts or ends, so that it does not count
# against the request's deadline; answers held back go out first, so the server knows whose it is.
# WebSocket workers run krait/pool/wsserve.py instead.
# publisher() is how krait.websockets.publish() reaches the server from either kind of worker: one
# PUBLISH record on the worker's own pipe, written under the pipe's send lock.

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from krait import limits
from krait.pool import jobs
from krait.pool.pipe import MessagePipe

Publish = Callable[[str, str, bytes], None]  # (room, jobs.WS_TEXT or WS_BINARY, payload)


def report_ready(pipe: MessagePipe, config: Any) -> None:
    """The first message of a worker whose init.py ran: krait.config's snapshot."""
    pipe.send(jobs.WorkerReady(os.getpid(), config, None))


def report_failure(pipe: MessagePipe, error: jobs.ErrorReport) -> None:
    """The first and last message of a worker whose init.py failed."""
    pipe.send(jobs.WorkerReady(os.getpid(), None, error))


def publisher(pipe: MessagePipe, send_lock: threading.Lock) -> Publish:
    """The function behind krait.websockets.publish() in this worker."""

    def publish(room: str, kind: str, payload: bytes) -> None:
        with send_lock:
            pipe.send((jobs.PUBLISH, room, kind, payload))

    return publish


Run = Callable[[jobs.Job], "tuple[jobs.Result, Iterable[bytes] | None]"]


class JobLoop:
    """Serves one script worker's pipe (see the module comment)."""

    def __init__(self, pipe: MessagePipe, send_lock: threading.Lock, run: Run) -> None:
        self.pipe = pipe
        self.send_lock = send_lock
        self.run = run
        self.held: list[tuple] = []  # answers not sent yet

    def flush(self) -> None:
        with self.send_lock:
            self.pipe.send_many(self.held)
        self.held.clear()

    def compiling(self, starting: bool) -> None:
        """A template's compilation starts (True) or ends (False)."""
        self.held.append((jobs.COMPILING,) if starting else (jobs.COMPILED,))
        self.flush()

    def stream(self, pieces: Iterable[bytes]) -> None:
        """Send a streamed body's pieces and its end (the Result went just before)."""
        pipe, lock = self.pipe, self.send_lock
        for piece in pieces:
            with lock:
                pipe.send_message(jobs.STREAM_DATA, 0, piece)
        error = getattr(pieces, "error", None)
        with lock:
            pipe.send((jobs.STREAM_END, None if error is None else tuple(error)))

    def serve(self) -> None:
        """Serve jobs until the server sends the stop message or goes away."""
        pipe, held = self.pipe, self.held
        took: dict[str, float] = {}  # seconds the last job on each file took
        job = None  # the next job, when already read ahead
        held_since = 0.0  # when the oldest held answer was ready
        while True:
            if job is None:
                try:
                    wire = pipe.recv()
                except (EOFError, OSError, KeyboardInterrupt):
                    return
                if wire is None:
                    return
                job = jobs.job_from_wire(wire)
            current, job = job, None
            started = time.perf_counter()
            result, pieces = self.run(current)
            if len(took) > 1000:
                took.clear()
            now = time.perf_counter()
            took[current.path] = now - started
            if not held:
                held_since = now
            held.append(jobs.result_to_wire(result, now - started))
            if pieces is not None:
                self.flush()
                try:
                    self.stream(pieces)
                except OSError:  # the server stopped reading it (the client left): it ends this worker
                    return
                continue
            if len(held) < limits.PIPELINE_DEPTH and pipe.pending():
                wire = pipe.recv()  # already buffered: does not wait
                if wire is None:  # the stop message
                    self.flush()
                    return
                job = jobs.job_from_wire(wire)
                if now - held_since + took.get(job.path, limits.RESULT_HOLD) < limits.RESULT_HOLD:
                    continue
            self.flush()
