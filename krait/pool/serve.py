# The worker's half of the protocol for script workers: jobs in, answers out; and publishing to rooms.
#
# Design: serve_jobs() is the loop of every script worker. The worker side (krait/worker) gives it
# `handle(job) -> Result`, which runs one job's site code, and never touches the pipe or its records.
# The pipelining half of krait/pool/scheduler.py lives here: with more jobs already waiting in the pipe,
# an answer may wait for the next job when, going by how long its file took last time, that job ends
# within RESULT_HOLD of the first answer held; the server then gets several answers with one wake-up, and
# none waits much longer than RESULT_HOLD. WebSocket workers run krait/pool/wsserve.py instead.
# publisher() is how krait.websockets.publish() reaches the server from either kind of worker: one
# PUBLISH record on the worker's own pipe, written under the pipe's send lock.

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
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


def serve_jobs(pipe: MessagePipe, send_lock: threading.Lock, handle: Callable[[jobs.Job], jobs.Result]) -> None:
    """Serve jobs until the server sends the stop message or goes away (see the module comment)."""
    held: list[tuple] = []  # answers not sent yet
    took: dict[str, float] = {}  # seconds the last job on each file took

    def flush() -> None:
        with send_lock:
            pipe.send_many(held)
        held.clear()

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
        result = handle(current)
        if len(took) > 1000:
            took.clear()
        now = time.perf_counter()
        took[current.path] = now - started
        if not held:
            held_since = now
        held.append(jobs.result_to_wire(result, now - started))
        if len(held) < limits.PIPELINE_DEPTH and pipe.pending():
            wire = pipe.recv()  # already buffered: does not wait
            if wire is None:  # the stop message
                flush()
                return
            job = jobs.job_from_wire(wire)
            if now - held_since + took.get(job.path, limits.RESULT_HOLD) < limits.RESULT_HOLD:
                continue
        flush()
