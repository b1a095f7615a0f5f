# The worker's half of WebSocket sessions: one worker process hosts many connections.
#
# Design:
# - One thread at a time reads the pipe: the leader. It hands each record to its connection and runs the
#   connection's callback (the controller's on_in_message, on_stop...) right there, so a message costs
#   no thread hand-off.
# - A connection's callbacks never run two at a time and always in arrival order: while one runs, the
#   records that arrive for that connection wait in its mailbox, and the thread running it drains them.
# - A callback that runs longer than WS_CALLBACK_STALL must not hold up the other connections: the
#   watchdog thread then makes a new leader, which goes on reading the pipe, and the old one ends once it
#   has drained its connection's mailbox. So a controller that blocks for seconds delays only its own
#   connection; the others wait at most about WS_CALLBACK_STALL.
# - A connection that ends while its callback runs: should_stop() turns True at once (a callback may be
#   the loop that waits for it), on_stop() runs once the callback returns. One that has not returned
#   within WS_STOP_TIMEOUT is given up, as a thread that does not stop is: the server hears that the
#   connection is done (its slot under --max-websockets is free again) and what it still sends is dropped.
# - Route scripts (WS_OPEN) run one at a time on the upgrade thread, because they see the module globals
#   krait.request and krait.websockets.request, as scripts do in a script worker. An accepted
#   connection's on_start() runs there too, right after, with what its client sent meanwhile held in
#   its mailbox, so no message reaches a controller before on_start(). A slow one delays the upgrades
#   behind it in this worker, never the messages of other connections.
# - A mailbox holds at most WS_MAX_UNREAD bytes of messages: past that, its connection is closed with 1008
#   and its waiting messages dropped, so a client that sends faster than its controller handles cannot
#   grow this process's memory without bound (the controller's own input queue has the same cap,
#   krait/websockets.py).
# - Any thread may send; send_lock keeps each record whole on the pipe, and a controller's items leave in
#   the order it pushed them (SessionLink).
# - A session's failure is its connection's alone: an exception out of start() or message() is logged
#   with its traceback and closes that connection with 1011; one out of close() still ends the
#   connection (WS_DONE); one out of a route script's open_session() answers the upgrade with 500. The
#   threads that read the pipe and run the upgrades never die of it, so the worker's other connections go
#   on. (The worker's sessions, krait/worker/websocket.py, catch the site's own errors first.)
# The worker side gives serve_sessions() `open_session(job, link) -> (Result, session or None)`; a
# session has start(), message(text, payload), ending() (the connection ended while a callback runs) and
# close(code, reason, timeout) -> bool (False when its controller would not stop in time).

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from krait import limits
from krait.pool import jobs
from krait.pool.pipe import MessagePipe

log = logging.getLogger("krait.ws")

TEXT, BINARY, CLOSE = jobs.WS_TEXT, jobs.WS_BINARY, jobs.WS_CLOSE
_START, _MESSAGE, _CLOSE = 0, 1, 2  # what a mailbox item asks: (_START,), (_MESSAGE, text, payload), ...


class SessionLink:
    """What a hosted session uses to reach its client: its items, and room membership.

    Rules: hold `lock` around taking items from a queue and sending them, so that they leave in queue
    order; send() takes items ("text", bytes), ("binary", bytes) or ("close", code, reason) and sends
    nothing after a close, nor once the server is gone.
    """

    __slots__ = ("pipe", "lock", "conn", "closed")

    def __init__(self, pipe: MessagePipe, lock: threading.Lock, conn: int) -> None:
        self.pipe = pipe
        self.lock = lock
        self.conn = conn
        self.closed = False

    def send(self, items: Iterable[tuple]) -> None:
        """Send items in order (the caller holds `lock`)."""
        pipe, conn = self.pipe, self.conn
        for item in items:
            if self.closed:
                return
            try:
                if item[0] == CLOSE:
                    pipe.send((CLOSE, conn, item[1], item[2]))
                    self.closed = True
                else:
                    pipe.send_message(item[0], conn, item[1])
            except (OSError, ValueError):  # the server is gone; the worker is ending
                self.closed = True
                return

    def close(self, code: int, reason: str = "") -> None:
        """Close the connection now, unless a close went out already (takes `lock`)."""
        with self.lock:
            self.send(((CLOSE, code, reason),))

    def join(self, room: str) -> None:
        self._tell(jobs.WS_JOIN, room)

    def leave(self, room: str) -> None:
        self._tell(jobs.WS_LEAVE, room)

    def _tell(self, tag: str, room: str) -> None:
        with self.lock:
            if not self.closed:
                try:
                    self.pipe.send((tag, self.conn, room))
                except (OSError, ValueError):
                    self.closed = True


class _Hosted:
    """One connection in this worker: its session, and the records waiting while a callback runs."""

    __slots__ = ("session", "link", "mailbox", "unread", "running", "ended", "given_up")

    def __init__(self, session: Any, link: SessionLink) -> None:
        self.session = session
        self.link = link
        self.ended = 0.0  # when the connection ended while a callback ran (0: it did not)
        self.given_up = False  # that callback ran past WS_STOP_TIMEOUT: the server was told it is done
        self.mailbox: deque[tuple] = deque()
        self.unread = 0  # bytes of the messages in `mailbox`, each with WS_MESSAGE_OVERHEAD (-1: past WS_MAX_UNREAD,
        # closed; more are dropped)
        self.running = False  # a thread is running this connection's callbacks


class SessionHost:
    """The sessions of one WebSocket worker (see the module comment)."""

    def __init__(self, pipe: MessagePipe, send_lock: threading.Lock,
                 open_session: Callable[[jobs.Job, SessionLink], tuple[jobs.Result, Any]],
                 stall: float = limits.WS_CALLBACK_STALL) -> None:
        self.pipe = pipe
        self.send_lock = send_lock
        self.open_session = open_session
        self.stall = stall
        self._lock = threading.Lock()  # guards the fields below and every mailbox
        self._hosted: dict[int, _Hosted] = {}
        self._ending: dict[int, _Hosted] = {}  # connections that ended while a callback ran (see above)
        self._leader: threading.Thread | None = None
        self._busy_since = 0.0  # when the leader's current callback began; 0 while it reads the pipe
        self._upgrades: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = threading.Event()

    def run(self) -> None:
        """Serve until the server sends the stop message or goes away; then stop every controller."""
        threading.Thread(target=self._upgrade_loop, name="krait-ws-upgrades", daemon=True).start()
        threading.Thread(target=self._watchdog, name="krait-ws-watchdog", daemon=True).start()
        self._leader = threading.current_thread()
        self._lead()
        self._done.wait()

    # --- reading the pipe -----------------------------------------------------------------

    def _lead(self) -> None:
        me = threading.current_thread()
        pipe = self.pipe
        while True:
            with self._lock:
                if self._leader is not me:
                    return  # demoted while a callback ran: the new leader reads the pipe
            try:
                record = pipe.recv()
            except (EOFError, OSError):
                record = None
            if record is None:
                self._shut_down()
                return
            tag = record[0]
            if tag == TEXT or tag == BINARY:
                self._deliver(record[1], (_MESSAGE, tag == TEXT, record[2]), me)
            elif tag == CLOSE:
                self._deliver(record[1], (_CLOSE, record[2], record[3]), me)
            elif tag == jobs.WS_OPEN:
                self._upgrades.put(record)

    def _deliver(self, conn: int, item: tuple, leader: threading.Thread) -> None:
        """Run `item` for `conn` in this thread, or queue it behind the callback already running."""
        with self._lock:
            hosted = self._hosted.get(conn)
            if hosted is None:
                return  # the connection is gone already
            if hosted.running:
                overflow = item[0] == _MESSAGE and self._unread(hosted, len(item[2]) + limits.WS_MESSAGE_OVERHEAD)
                if item[0] != _MESSAGE or hosted.unread >= 0:
                    hosted.mailbox.append(item)
                if item[0] == _CLOSE and not hosted.ended:
                    hosted.ended = time.monotonic()
                    self._ending[conn] = hosted
                    hosted.session.ending()
            else:
                hosted.running = True
                self._busy_since = time.monotonic()
                overflow = None
        if overflow is None:
            self._run(conn, hosted, item, leader)
        elif overflow:
            log.warning("WebSocket connection %d: its controller took none of %d bytes sent meanwhile; closed "
                        "(1008)", conn, limits.WS_MAX_UNREAD)
            hosted.link.close(1008, "messages sent faster than they are handled")

    @staticmethod
    def _unread(hosted: _Hosted, size: int) -> bool:
        """Count a message into the mailbox (the caller holds the lock); True when that takes it past
        WS_MAX_UNREAD: the messages waiting are dropped, and so are the ones still to come."""
        if hosted.unread < 0:
            return False
        hosted.unread += size
        if hosted.unread <= limits.WS_MAX_UNREAD:
            return False
        hosted.mailbox = deque(item for item in hosted.mailbox if item[0] != _MESSAGE)
        hosted.unread = -1
        return True

    def _run(self, conn: int, hosted: _Hosted, item: tuple, leader: threading.Thread | None) -> None:
        """Run `item` and then whatever arrives in the mailbox meanwhile (the caller set `running`)."""
        try:
            while True:
                self._call(conn, hosted, item)
                with self._lock:
                    if not hosted.mailbox:
                        return
                    item = hosted.mailbox.popleft()
                    if item[0] == _MESSAGE and hosted.unread > 0:
                        hosted.unread -= len(item[2]) + limits.WS_MESSAGE_OVERHEAD
                    elif item[0] == _CLOSE:  # the callback returned in time: the close has its own timeout
                        self._ending.pop(conn, None)
        finally:
            with self._lock:
                hosted.running = False
                if leader is not None and self._leader is leader:
                    self._busy_since = 0.0

    def _call(self, conn: int, hosted: _Hosted, item: tuple) -> None:
        kind = item[0]
        if kind != _CLOSE:
            try:
                if kind == _MESSAGE:
                    hosted.session.message(item[1], item[2])
                else:
                    hosted.session.start()
            except Exception:  # see the module comment: this connection ends, the others go on
                log.exception("WebSocket connection %d failed; it is closed (1011)", conn)
                hosted.link.close(1011)
        else:
            try:
                stopped = hosted.session.close(item[1], item[2], limits.WS_STOP_TIMEOUT)
            except Exception:
                log.exception("WebSocket connection %d failed while stopping", conn)
                stopped = True
            if not stopped:
                log.warning("WebSocket controller of connection %d did not stop within %.0fs", conn,
                            limits.WS_STOP_TIMEOUT)
            with self._lock:
                self._hosted.pop(conn, None)
                self._ending.pop(conn, None)
                hosted.mailbox.clear()
                if hosted.given_up:
                    return  # the server heard it from the watchdog
            self._done_with(conn)

    def _done_with(self, conn: int) -> None:
        with self.send_lock:
            try:
                self.pipe.send((jobs.WS_DONE, conn))
            except (OSError, ValueError):
                pass

    def _watchdog(self) -> None:
        # A leader stuck in one callback past `stall` is replaced, so the pipe keeps being read; a
        # connection whose callback did not return within WS_STOP_TIMEOUT of its end is given up.
        while not self._done.wait(self.stall / 2):
            now = time.monotonic()
            given_up = []
            with self._lock:
                busy = self._busy_since
                if busy and now - busy > self.stall:
                    new = threading.Thread(target=self._lead, name="krait-ws-leader", daemon=True)
                    self._leader = new
                    self._busy_since = 0.0
                    new.start()
                for conn, hosted in list(self._ending.items()):
                    if now - hosted.ended > limits.WS_STOP_TIMEOUT:
                        del self._ending[conn]
                        self._hosted.pop(conn, None)
                        hosted.given_up = True
                        hosted.link.closed = True  # what the callback still sends goes nowhere
                        given_up.append(conn)
            for conn in given_up:
                log.warning("WebSocket controller of connection %d did not return from its callback within "
                            "%.0fs of the connection's end; given up", conn, limits.WS_STOP_TIMEOUT)
                self._done_with(conn)

    # --- route scripts ----------------------------------------------------------------------

    def _upgrade_loop(self) -> None:
        while True:
            record = self._upgrades.get()
            if record is None:
                return
            conn = record[1]
            link = SessionLink(self.pipe, self.send_lock, conn)
            try:
                result, session = self.open_session(jobs.job_from_wire(record[2]), link)
            except Exception:
                log.exception("WebSocket upgrade of connection %d failed", conn)
                result, session = jobs.Result(500, "", (), b"", None), None
            hosted = None
            if session is not None:
                # Running from the start: what the client sends once it has the 101 waits in the mailbox
                # until on_start() has run.
                hosted = _Hosted(session, link)
                hosted.running = True
                with self._lock:
                    self._hosted[conn] = hosted
            with self.send_lock:
                try:
                    self.pipe.send((jobs.WS_RESULT, conn, jobs.result_to_wire(result)))
                except (OSError, ValueError):
                    return
            if hosted is not None:
                self._run(conn, hosted, (_START,), None)

    # --- the end ----------------------------------------------------------------------------

    def _shut_down(self) -> None:
        """The server stops this worker (or is gone): every controller gets on_stop, within one
        WS_STOP_TIMEOUT in all."""
        self._upgrades.put(None)
        with self._lock:
            hosted = list(self._hosted.items())
            self._hosted.clear()
        deadline = time.monotonic() + limits.WS_STOP_TIMEOUT
        for conn, one in hosted:
            try:
                one.session.close(1001, "", max(deadline - time.monotonic(), 0.0))
            except Exception as exc:  # one controller's failure must not keep the others from stopping
                sys.stderr.write("krait: WebSocket connection %d: %r while stopping\n" % (conn, exc))
        self._done.set()


def serve_sessions(pipe: MessagePipe, send_lock: threading.Lock,
                   open_session: Callable[[jobs.Job, SessionLink], tuple[jobs.Result, Any]]) -> None:
    """The loop of a WebSocket worker (see the module comment)."""
    SessionHost(pipe, send_lock, open_session).run()
