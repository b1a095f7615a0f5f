# The worker's half of the protocol for script workers: jobs in, answers out; and publishing to rooms.
#
# Design: JobLoop is the loop of every script worker. The worker side (krait/worker) gives it
# `run(job) -> (Result, pieces or None)`, which runs one job's site code and never touches the pipe or
# its records. The pipelining half of krait/pool/scheduler.py lives here: the worker reads every job
# already waiting in its pipe with one system call, runs them one at a time and in order, and sends each
# answer before it starts the next job. It never holds an answer back while another job runs: the server
# knows which job runs only by the answers it got (the oldest unanswered job), so a held answer would be
# timed, and killed, for the next job's overrun, and the jobs behind it requeued though one of them had
# started. (Holding answers while the next job was expected to be fast saved wake-ups, but "expected" is
# no promise: a page that was fast last time may hang this time.) Pipelining still saves the worker its
# wake-ups: with jobs waiting in its pipe it never sleeps between them.
# A streamed body (jobs.Result.stream) goes out right behind its Result, one STREAM_DATA record per piece
# and a STREAM_END, each written as it is produced: a full pipe (a client reading slowly) holds the
# worker, never the memory of either process. compiling() tells the server that a template's compilation
# starts or ends, so that it does not count against the request's deadline.
# WebSocket workers run krait/pool/wsserve.py instead.
# publisher() is how krait.websockets.publish() reaches the server from either kind of worker: one
# PUBLISH record on the worker's own pipe, written under the pipe's send lock.

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

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

    def send(self, record: tuple) -> None:
        with self.send_lock:
            self.pipe.send(record)

    def compiling(self, starting: bool) -> None:
        """A template's compilation starts (True) or ends (False)."""
        self.send((jobs.COMPILING,) if starting else (jobs.COMPILED,))

    def stream(self, pieces: Iterable[bytes]) -> None:
        """Send a streamed body's pieces and its end (the Result went just before)."""
        pipe, lock = self.pipe, self.send_lock
        for piece in pieces:
            with lock:
                pipe.send_message(jobs.STREAM_DATA, 0, piece)
        error = getattr(pieces, "error", None)
        self.send((jobs.STREAM_END, None if error is None else tuple(error)))

    def serve(self) -> None:
        """Serve jobs until the server sends the stop message or goes away."""
        pipe = self.pipe
        while True:
            try:
                wire = pipe.recv()
            except (EOFError, OSError, KeyboardInterrupt):
                return
            if wire is None:
                return
            job = jobs.job_from_wire(wire)
            started = time.perf_counter()
            result, pieces = self.run(job)
            self.send(jobs.result_to_wire(result, time.perf_counter() - started))  # before the next job starts
            if pieces is not None:
                try:
                    self.stream(pieces)
                except OSError:  # the server stopped reading it (the client left): it ends this worker
                    return
