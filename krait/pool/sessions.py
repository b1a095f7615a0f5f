# The server's side of the WebSocket workers: a small, bounded set of processes, each hosting many
# connections, spoken to without ever blocking (the server's hub serves them all from one selector loop).
#
# Design:
# - WsWorker is one WebSocket worker process: the read side of its pipe (PipeReader) and the write side
#   (PipeWriter), the connections it holds, and read(), which turns what arrived into the events below.
#   The hub (krait/server/hub.py) registers its two descriptors in its selector and never blocks on it.
#   It also knows which route script runs: the worker runs them one at a time, in the order sent, each
#   after the on_start() of the connection before it, so `script_since` is when the oldest unanswered
#   one began, and the hub kills a worker whose route script has run past --timeout.
# - WsWorkers is the policy: a new connection goes to the worker of the current generation holding the
#   fewest connections; while every worker already holds some, another one is started in the background,
#   up to `size`; a worker that dies, or is killed because its route script overran, is replaced (with
#   its connections closed, as a script worker is killed with its job); reload() starts a worker
#   of a new generation, and once it has run init.py, new connections go to the new generation while the
#   old workers finish the connections they hold. If the new worker fails to start, the old generation
#   goes on serving, and the next reload tries again.
# Every method runs on the hub's thread; background starts hand their worker back through the hub.

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from krait.pool import jobs
from krait.pool.pipe import PipeReader, PipeWriter
from krait.pool.process import Starting, WorkerProcess, start_all
from krait.settings import Settings

log = logging.getLogger("krait.pool")

TEXT, BINARY = jobs.WS_TEXT, jobs.WS_BINARY


class Opened(NamedTuple):
    """A route script finished: status 101 means the session started in the worker."""

    conn: int
    result: jobs.Result


class Message(NamedTuple):
    """A controller sends its client a message (text as UTF-8 bytes)."""

    conn: int
    text: bool
    payload: bytes


class Closing(NamedTuple):
    """A controller closes its connection."""

    conn: int
    code: int
    reason: str


class Done(NamedTuple):
    """The worker is finished with a connection (its controller stopped)."""

    conn: int


class Joined(NamedTuple):
    conn: int
    room: str


class Left(NamedTuple):
    conn: int
    room: str


class Published(NamedTuple):
    """A message for every member of a room, from a controller, a script or another server process."""

    room: str
    text: bool
    payload: bytes


def published(record: tuple) -> Published:
    """The event of a PUBLISH record (krait/pool/jobs.py)."""
    return Published(record[1], record[2] == TEXT, record[3])


def publish_record(event: Published) -> tuple:
    return (jobs.PUBLISH, event.room, TEXT if event.text else BINARY, event.payload)


class WsWorker:
    """One WebSocket worker process, for a selector loop."""

    __slots__ = ("proc", "reader", "writer", "conns", "openings", "script_since", "paused")

    def __init__(self, proc: WorkerProcess) -> None:
        self.proc = proc
        self.reader = PipeReader(proc.pipe.sock, proc.pipe.buffered())  # records sent right after start-up
        self.writer = PipeWriter(proc.pipe.out)
        self.conns: set[int] = set()  # connections opened on it and not done
        self.openings: deque[int] = deque()  # connections whose route script has not answered, in order
        self.script_since = 0.0  # when the route script of openings[0] began (see the module comment)
        self.paused = False  # its clients are not read: its pipe has WS_MAX_TO_WORKER waiting (krait/server/hub.py)

    @property
    def generation(self) -> int:
        return self.proc.generation

    def open(self, conn: int, job: jobs.Job) -> None:
        """Run an upgrade's route script for connection `conn` (answered by an Opened event)."""
        self.conns.add(conn)
        self.openings.append(conn)
        if len(self.openings) == 1:
            self.script_since = time.monotonic()
        self.writer.send((jobs.WS_OPEN, conn, jobs.job_to_wire(job)))

    def script_overran(self, now: float, timeout: float) -> bool:
        """Whether the route script running now began more than `timeout` seconds ago."""
        return bool(self.openings) and now - self.script_since > timeout

    def send(self, conn: int, text: bool, payload: bytes) -> None:
        """A client's message to its controller (text as its checked UTF-8 bytes)."""
        self.writer.send_message(TEXT if text else BINARY, conn, payload)

    def close(self, conn: int, code: int, reason: str = "") -> None:
        """The connection is closing (the client closed, failed or went away): stop its controller."""
        self.writer.send((jobs.WS_CLOSE, conn, code, reason))

    def read(self) -> list[Any]:
        """The events of everything the worker sent since the last read (EOFError: it is gone)."""
        events: list[Any] = []
        for record in self.reader.read():
            tag = record[0]
            if tag == TEXT or tag == BINARY:
                events.append(Message(record[1], tag == TEXT, record[2]))
            elif tag == jobs.WS_CLOSE:
                events.append(Closing(record[1], record[2], record[3]))
            elif tag == jobs.WS_RESULT:
                result = jobs.result_from_wire(record[2])
                if result.status != 101:
                    self.conns.discard(record[1])
                openings = self.openings
                if record[1] in openings:
                    openings.remove(record[1])  # the first: route scripts answer in order
                    if openings:  # the next one begins now
                        self.script_since = time.monotonic()
                events.append(Opened(record[1], result))
            elif tag == jobs.WS_DONE:
                self.conns.discard(record[1])
                events.append(Done(record[1]))
            elif tag == jobs.WS_JOIN:
                events.append(Joined(record[1], record[2]))
            elif tag == jobs.WS_LEAVE:
                events.append(Left(record[1], record[2]))
            elif tag == jobs.PUBLISH:
                events.append(published(record))
        return events

    def stop(self) -> None:
        """Ask the worker to stop every controller and exit (it is killed if it has not in time)."""
        try:
            self.writer.send(None)
        except OSError:
            pass
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        process = self.proc.process
        process.join(10)
        if process.is_alive():
            self.proc.kill()
        else:
            self.proc.pipe.close()

    def kill(self) -> None:
        self.proc.kill()

    def died(self) -> None:
        """The worker was found dead: make sure of it, and let a thread wait for its end (the only one
        that does: two joins of one process can both read its exit status, and one then gets 255), log
        how it ended, and close its pipe; the hub's loop does not wait."""
        self.proc.kill_now()
        threading.Thread(target=self._log_death, args=(len(self.conns),), daemon=True).start()

    def _log_death(self, connections: int) -> None:
        log.error("WebSocket worker %d died (%s); its %d connections are closed", self.proc.pid,
                  self.proc.ended_how(), connections)
        self.proc.pipe.close()


class WsWorkers:
    """The WebSocket worker processes of one server process (see the module comment)."""

    def __init__(self, settings: Settings, size: int, on_started: Callable[[WsWorker | None, int], None]) -> None:
        self.settings = settings
        self.size = max(1, size)
        self.on_started = on_started  # called from a start thread: (the worker or None, generation)
        self.workers: list[WsWorker] = []  # every live worker, old generations included
        self.starting = 0
        self.generation = 0  # the generation new connections go to
        self.next_generation = 0  # the newest generation asked for (reload() raises it)
        self._starts: set[Starting] = set()  # the background starts under way
        self._lock = threading.Lock()  # orders a start's hand-over against close()
        self.closed = False

    def start(self) -> WsWorker:
        """Start the first worker and wait for it (ConfigError when init.py fails)."""
        (proc, _), = start_all(self.settings, 1, self.generation, kind="ws")
        worker = WsWorker(proc)
        self.workers.append(worker)
        return worker

    def choose(self) -> WsWorker | None:
        """The worker for a new connection (None: none is ready yet; one is starting)."""
        usable = self.usable()
        best = min(usable, key=lambda w: len(w.conns), default=None)
        if (best is None or best.conns) and len(usable) + self.starting < self.size:
            self._start_one()
        return best

    def _start_one(self) -> None:
        self.starting += 1
        generation = self.next_generation
        threading.Thread(target=self._start, args=(generation,), name="krait-ws-start", daemon=True).start()

    def _start(self, generation: int) -> None:
        starting = Starting()
        self._starts.add(starting)
        try:
            (proc, _), = start_all(self.settings, 1, generation, kind="ws", starting=starting)
        except Exception as exc:
            if not starting.abandoned:
                log.error("could not start a WebSocket worker: %s", exc)
            self.on_started(None, generation)
            return
        finally:
            self._starts.discard(starting)
        worker = WsWorker(proc)
        with self._lock:
            if not self.closed:
                self.on_started(worker, generation)
                return
        worker.stop()  # ready after close(): nobody would ever stop it

    def close(self) -> None:
        """The server is stopping: kill the workers still starting (they would only delay the stop), and
        stop any that gets ready after all instead of handing it on."""
        with self._lock:
            self.closed = True
        for starting in list(self._starts):
            starting.abandon()

    def started(self, worker: WsWorker | None, generation: int) -> list[WsWorker]:
        """A background start ended (on the hub's thread): the workers to stop now (the old generation's
        idle ones, when this worker is the first of a new generation; or this one, when it came too
        late). `worker` is None when it failed to start."""
        self.starting -= 1
        if worker is None:
            return []
        if generation != self.next_generation:
            return [worker]
        self.workers.append(worker)
        if generation == self.generation:
            return []
        self.generation = generation  # the reload succeeded: new connections go to the new workers
        idle = [w for w in self.workers if w.generation != generation and not w.conns]
        for old in idle:
            self.workers.remove(old)
        return idle

    def lost(self, worker: WsWorker) -> None:
        """The worker died or was killed, or it is an old generation's and holds no connection any more:
        replace it when the current generation has none."""
        if worker in self.workers:
            self.workers.remove(worker)
        if worker.generation == self.generation and self.starting == 0 and not self.usable():
            self._start_one()

    def usable(self) -> list[WsWorker]:
        return [w for w in self.workers if w.generation == self.generation]

    def reload(self) -> None:
        """Start a worker of a new generation (re-running init.py); see the module comment."""
        self.next_generation += 1
        self._start_one()
