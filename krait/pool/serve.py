# The worker's half of the protocol: jobs in, answers out, and the messages of a WebSocket session.
#
# Design: serve() is the loop of every worker process. The worker side (krait/worker) gives it two
# callables and never touches the pipe or its records:
#   handle(job) -> Result               runs one job's site code;
#   run_session(link) -> bool           drives an accepted WebSocket session through a SessionLink until
#                                       the server closes it; False when the controller would not stop.
# The pipelining half of krait/pool/scheduler.py lives here: with more jobs already waiting in the pipe,
# an answer may wait for the next job when, going by how long its file took last time, that job ends
# within RESULT_HOLD of the first answer held; the server then gets several answers with one wake-up, and
# none waits much longer than RESULT_HOLD.

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from krait import limits
from krait.pool import jobs
from krait.pool.pipe import MessagePipe

# The items SessionLink.send() takes: (TEXT, bytes), (BINARY, bytes) or (CLOSE, code, reason).
TEXT, BINARY, CLOSE = jobs.WS_TEXT, jobs.WS_BINARY, jobs.WS_CLOSE


def report_ready(pipe: MessagePipe, config: Any) -> None:
    """The first message of a worker whose init.py ran: krait.config's snapshot."""
    pipe.send(jobs.WorkerReady(os.getpid(), config, None))


def report_failure(pipe: MessagePipe, error: jobs.ErrorReport) -> None:
    """The first and last message of a worker whose init.py failed."""
    pipe.send(jobs.WorkerReady(os.getpid(), None, error))


class SessionLink:
    """The worker's side of one accepted WebSocket session.

    Rules: any thread may send; hold `lock` around taking items from a queue and sending them, so that
    they leave in queue order. Nothing is sent after a close, nor once the server side is gone.
    """

    def __init__(self, pipe: MessagePipe, lock: threading.Lock) -> None:
        self.pipe = pipe
        self.lock = lock
        self.closed = False

    def send(self, items: Iterable[tuple]) -> None:
        """Send items in order (the caller holds `lock`)."""
        pipe = self.pipe
        for item in items:
            if self.closed:
                return
            try:
                if item[0] == CLOSE:
                    pipe.send(item)
                    self.closed = True
                else:
                    pipe.send_message(item[0], item[1])
            except (OSError, ValueError):  # the server side is gone; the session is ending
                self.closed = True
                return

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """The client's messages, (TEXT, UTF-8 bytes) or (BINARY, bytes), until the session closes."""
        pipe = self.pipe
        try:
            while True:
                item = pipe.recv()
                if item[0] == CLOSE:  # from the peer, or the connection was lost
                    return
                yield item
        except (EOFError, OSError):
            return

    def done(self) -> None:
        """The session is over and the worker is free again."""
        try:
            with self.lock:
                self.pipe.send((jobs.WS_DONE,))
        except (OSError, ValueError):
            pass


def serve(pipe: MessagePipe, handle: Callable[[jobs.Job], jobs.Result],
          run_session: Callable[[SessionLink], bool]) -> None:
    """Serve jobs until the server sends the stop message or goes away (see the module comment)."""
    send_lock = threading.Lock()
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
        if result.status != 101 and len(held) < limits.PIPELINE_DEPTH and pipe.pending():
            wire = pipe.recv()  # already buffered: does not wait
            if wire is None:  # the stop message
                flush()
                return
            job = jobs.job_from_wire(wire)
            if now - held_since + took.get(job.path, limits.RESULT_HOLD) < limits.RESULT_HOLD:
                continue
        flush()
        if result.status == 101:
            link = SessionLink(pipe, send_lock)
            if not run_session(link):  # no WS_DONE: the server replaces this worker
                sys.stderr.write("krait: WebSocket controller on %s did not stop; worker exits\n" % current.url)
                os._exit(3)
            link.done()
