# The WebSocket hub: every WebSocket connection of one server process, served by one thread.
#
# Design:
# - One selector loop holds every accepted WebSocket client (krait/server/websocket.py), the pipes of
#   the WebSocket workers (krait/pool/sessions.py), and the relay to the other server processes
#   (krait/pool/relay.py) when there are several. Nothing in it blocks, so the server's thread count does
#   not grow with open WebSockets, and a client that does not read slows nobody else down.
# - Other threads talk to the hub through call(): a command queue and a wake-up socket. An upgrade's
#   HTTP thread calls open() and waits (without holding the request gate) while a worker runs the route
#   script; when the script accepts, that thread sends the 101 and hands the socket over with attach()
#   and is done. When --max-websockets are open, an upgrade its script accepts takes the place of another
#   address's connection, closed with 1013 (krait/server/websocket.py Places), or fails with 503.
# - Rooms live here, where the sockets are: a worker tells the hub which room a connection joins or
#   leaves; a publish (from a controller, a script, or another server process) builds its frame once and
#   queues it to every member in this process, and is passed to the relay once when it started here.
# - Timers: every second the hub kills a worker whose route script has run past --timeout, as a script
#   worker is killed with its job (its connections close with 1011 and it is replaced: a looping script
#   would otherwise hold a CPU and every later upgrade sent to that worker for good), pings clients
#   silent for --ws-ping-interval, closes (1011) those whose pong is overdue (krait/server/websocket.py),
#   and drops connections whose closing handshake has taken longer than WS_CLOSE_TIMEOUT. A session the
#   client ended (its Close frame, EOF, a protocol error) while output to it was still queued gets the
#   same WS_CLOSE_TIMEOUT to take that output (a closing client may read its echo); after EOF its socket
#   is watched for writing only.
# - A worker that takes nothing from its pipe (stopped, or stuck in C code holding the GIL) would let its
#   clients' messages pile up here: past WS_MAX_TO_WORKER waiting for it, the hub stops reading its
#   clients (they are taken out of the selector, and TCP holds them back) until half of that is written;
#   meanwhile they are not pinged, as their pongs would not be read.
# - The selector is the system's best (epoll on Linux), or select() on portable paths (krait/portable.py):
#   Windows has nothing else, and select() there takes SELECT_MAX_SOCKETS sockets (krait/limits.py).

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from krait import limits, portable, sockopt
from krait.errors import GatewayTimeout, InternalError, ServiceUnavailable
from krait.http.websocket import message_frame
from krait.pool import jobs
from krait.pool.relay import RelayEnd
from krait.pool.sessions import (
    Closing,
    Done,
    Joined,
    Left,
    Message,
    Opened,
    Published,
    WsWorker,
    WsWorkers,
    publish_record,
    published,
)
from krait.server.rooms import Rooms
from krait.server.throttle import Throttled
from krait.server.websocket import MESSAGE, InputBudget, Opening, Places, WsClient, address_of
from krait.settings import Settings

log = logging.getLogger("krait.ws")

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_RECV_SIZE = 262144  # one read buffer for every client: large messages arrive in few reads
_TICK = 1.0  # seconds between two looks at the timers


class WebSocketHub:
    """The WebSocket connections of one server process (see the module comment)."""

    def __init__(self, settings: Settings, relay: socket.socket | None = None) -> None:
        self.settings = settings
        self.places = Places(settings.max_websockets)
        self.workers = WsWorkers(settings, settings.ws_workers, self._worker_started)
        self.clients: dict[int, WsClient] = {}  # every connection, from open() until both ends are done
        self.rooms = Rooms()
        self._input = InputBudget(settings.max_ws_message)
        self._made_room = Throttled(log, "all %d WebSocket places taken: closed (1013) a connection from %%s to "
                                    "make room" % settings.max_websockets)
        self._ids = 0
        self._selector = selectors.SelectSelector() if portable.ACTIVE else selectors.DefaultSelector()
        self._commands: deque[tuple[Callable[..., None], tuple]] = deque()
        self._wake_r, self._wake_w = sockopt.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, _READ, ("wake", None))
        self._waiting: deque[Opening] = deque()  # upgrades waiting for a worker to start
        self._buf = memoryview(bytearray(_RECV_SIZE))
        self._relay = None if relay is None else RelayEnd(relay, self._selector, ("relay", None))
        self._thread = threading.Thread(target=self._loop, name="krait-ws-hub", daemon=True)
        self._running = True
        self._going_away = False

    # --- called from other threads --------------------------------------------------------

    def start(self) -> None:
        """Start the first WebSocket worker (ConfigError when init.py fails), then the loop."""
        self._add_worker(self.workers.start())
        self._thread.start()

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args) on the hub's thread, soon."""
        self._commands.append((fn, args))
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the socket is full of wake-ups already, or the hub is gone

    def open(self, job: jobs.Job, timeout: float) -> tuple[jobs.Result, int]:
        """Run an upgrade's route script in a WebSocket worker and wait for its Result; with 101, the
        connection's number for attach() (or release()). Raises ServiceUnavailable (no place for it),
        GatewayTimeout (the script ran past `timeout`) or InternalError (the worker died)."""
        opening = Opening(job)
        self.call(self._open, opening)
        if not opening.done.wait(timeout):
            self.call(self._abandon, opening)
            raise GatewayTimeout("the WebSocket route script did not finish within %.0f seconds" % timeout)
        if opening.error is not None:
            raise opening.error
        return opening.result, opening.conn  # type: ignore[return-value]

    def attach(self, conn: int, sock: socket.socket, leftover: bytes, on_close: Callable[[], None]) -> None:
        """The 101 went out: the hub serves the socket from now on (`leftover`: bytes read past it), and
        calls `on_close` once it is closed."""
        self.call(self._attach, conn, sock, leftover, on_close)

    def release(self, conn: int) -> None:
        """The 101 could not be sent: the accepted session ends before it began."""
        self.call(self._release, conn)

    def publish(self, room: str, kind: str, payload: bytes) -> None:
        """A script published to a room (krait/pool/scheduler.py on_publish)."""
        self.call(self._publish, Published(room, kind == jobs.WS_TEXT, payload), True)

    def go_away(self) -> None:
        """A graceful stop: close every connection with 1001 Going Away (RFC 6455 section 7.4.1)."""
        self.call(self._go_away)

    def count(self) -> int:
        return len(self.clients)

    def reload(self) -> None:
        """Start a worker of the site's new generation (on the hub's thread: the pool is its alone)."""
        self.call(self.workers.reload)

    def stop(self) -> None:
        """Stop the loop and the workers (after go_away() and a wait, for a graceful stop)."""
        self.call(self._stop)
        self._thread.join(5)

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        next_tick = time.monotonic() + _TICK
        select = self._selector.select
        while self._running:
            for key, mask in select(max(next_tick - time.monotonic(), 0.0)):
                kind, obj = key.data
                try:
                    if kind == "client":
                        if mask & _READ and obj.sock is not None:  # (an earlier event may have dropped it)
                            self._client_readable(obj)
                        if mask & _WRITE and obj.sock is not None:
                            self._client_writable(obj)
                    elif kind == "worker":
                        self._worker_readable(obj)
                    elif kind == "worker-out":
                        self._worker_writable(obj)
                    elif kind == "wake":
                        self._run_commands()
                    else:
                        self._relay_io(mask)
                except Exception:  # a bug in one connection's handling must not end every WebSocket
                    log.exception("WebSocket hub: error while handling %s", kind)
            if time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + _TICK
        self._selector.close()
        for fn, args in self._commands:  # left by _run_commands after _stop: workers that started meanwhile
            if fn == self._started and args[0] is not None:  # (none can start later: WsWorkers.close())
                args[0].stop()

    def _run_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        commands = self._commands
        while commands and self._running:
            fn, args = commands.popleft()
            try:
                fn(*args)
            except Exception:  # as in the loop: the other commands still run
                log.exception("WebSocket hub: error in %s", getattr(fn, "__name__", fn))

    # --- upgrades -------------------------------------------------------------------------

    def _open(self, opening: Opening) -> None:
        if self._going_away:
            opening.finish(error=ServiceUnavailable("the server is shutting down"))
            return
        full = self.places.full(len(self.clients))
        if full and self.places.victim(self.clients.values(), address_of(opening.job)) is None:
            opening.finish(error=ServiceUnavailable("%d WebSocket connections are open" % len(self.clients)))
            return
        worker = self.workers.choose()
        if worker is None:
            self._waiting.append(opening)  # served when a worker has started
            return
        self._ids += 1
        conn = self._ids
        opening.conn = conn
        self.clients[conn] = client = WsClient(conn, worker, self._input, opening)
        client.needs_room = full  # made once its script accepts (_opened): a refused upgrade closes nobody
        self.places.take(client)
        worker.open(conn, opening.job)
        self._want_write(worker)

    def _abandon(self, opening: Opening) -> None:
        opening.abandoned = True
        if opening.done.is_set():  # answered just after the HTTP thread stopped waiting: no 101 will go out
            if opening.result is not None and opening.result.status == 101:
                self._release(opening.conn)
            return
        if opening in self._waiting:
            self._waiting.remove(opening)
        # Otherwise its route script still runs: the worker answers at last (the session is then released,
        # see _opened), or it is killed when the script has run past --timeout (_tick).

    def _opened(self, event: Opened) -> None:
        client = self.clients.get(event.conn)
        if client is None:
            return
        opening, client.opening = client.opening, None
        if opening is not None and opening.abandoned:
            opening = None  # nobody waits for the answer
        if event.result.status != 101:
            self._forget(client)
        elif opening is None or (client.needs_room and not self._make_room(client)):
            self._release(event.conn)  # nobody will get the 101
            if opening is not None:
                opening.finish(error=ServiceUnavailable("%d WebSocket connections are open" % len(self.clients)))
            return
        if opening is not None:
            opening.finish(event.result)

    def _make_room(self, newcomer: WsClient) -> bool:
        """Its script accepted an upgrade that came while every place was taken: close the connection
        that gives its place up (Places), if places were not freed meanwhile; False if none should go."""
        if self.places.full(len(self.clients) - 1):  # the others, the newcomer left out
            victim = self.places.victim(self.clients.values(), newcomer.address, counted=True)
            if victim is None:
                return False
            self.places.evict(victim)
            self._made_room.warn(victim.address)
            victim.drop_output()
            victim.send(victim.ws.send_close(1013, "try again later"))  # RFC 6455 section 7.4.1 (IANA)
            self._drop(victim, 1013)
        return True

    def _attach(self, conn: int, sock: socket.socket, leftover: bytes, on_close: Callable[[], None]) -> None:
        client = self.clients.get(conn)
        if client is None or (client.told_worker and not client.unsent):
            sock.close()  # the worker died meanwhile, or the session ended with nothing left to say
            on_close()
            return
        client.attach(sock, on_close)
        client.last_seen = time.monotonic()
        client.events = _READ
        self._selector.register(sock, _READ, ("client", client))
        if not client.flush():  # what the controller sent before the 101 went out
            self._drop(client, 1006)
            return
        self._watch(client)
        if self._going_away:
            self._close(client, 1001, "server shutting down")
        if leftover:  # bytes that came right behind the upgrade request
            self._heard(client, client.receive(leftover, time.monotonic()))

    def _release(self, conn: int) -> None:
        client = self.clients.get(conn)
        if client is not None:
            client.drop_output()  # no socket will come for it
            self._tell_worker(client, 1006)

    # --- clients --------------------------------------------------------------------------

    def _client_readable(self, client: WsClient) -> None:
        if client.worker.paused:  # ready in the same select() as the read that paused its worker (which
            return  # took every client of that worker out of the selector: _pause)
        self._heard(client, client.read(self._buf, time.monotonic()))

    def _heard(self, client: WsClient, heard: list[tuple]) -> None:
        worker = client.worker
        for kind, a, b in heard:
            if kind == MESSAGE:
                if not client.told_worker:
                    worker.send(client.conn, a, b)
            else:  # CLOSED: the session is over on the client's side
                self._tell_worker(client, a, b)
        if heard and worker.writer.pending and not client.told_worker:
            self._want_write(worker)
        if client.unsent > limits.WS_SLOW_UNSENT and client.too_slow(time.monotonic()):
            # What the protocol answers by itself (pongs to a ping flood) counts too. A client already
            # closing gets no second chance: nothing more is queued for it.
            if not client.is_open:
                self._drop(client, 1006)
                return
            self._too_slow(client)
        if client.sock is not None and client.is_closed:
            if not client.unsent:
                self._drop(client, 1006)  # closed: the echo of its close (if any) is out
                return
            if not client.deadline:  # what is queued (its close echo too) must leave in time
                client.deadline = time.monotonic() + limits.WS_CLOSE_TIMEOUT
        if client.unsent or client.events != _READ or client.eof:
            self._watch(client)

    def _client_writable(self, client: WsClient) -> None:
        if not client.flush():
            self._drop(client, 1006)
            return
        if not client.unsent and client.is_closed:
            self._drop(client, 1006)  # our close frame is out, and the session was over
        else:
            self._watch(client)

    def _watch(self, client: WsClient) -> None:
        """Watch the socket for output while some is queued, and for input until the client's EOF (a
        client at EOF with nothing queued is dropped by the caller) unless its worker is paused; a socket
        watched for nothing is taken out of the selector (client.events 0) until it is again."""
        sock = client.sock
        if sock is None:
            return
        reading = not client.eof and not client.worker.paused
        events = (_READ if reading else 0) | (_WRITE if client.unsent else 0)
        if events == client.events or (not events and client.eof):
            return
        if not events:
            self._selector.unregister(sock)
        elif not client.events:
            self._selector.register(sock, events, ("client", client))
        else:
            self._selector.modify(sock, events, ("client", client))
        client.events = events

    def _queue(self, client: WsClient, frame: bytes) -> None:
        """Send a message frame to a client; one that does not read is closed (1008)."""
        if client.unsent and client.too_slow(time.monotonic()):
            self._too_slow(client)
            return
        if not client.send(frame):
            self._drop(client, 1006)
        elif client.unsent or client.events & _WRITE:
            self._watch(client)

    def _too_slow(self, client: WsClient) -> None:
        client.drop_output()
        self._close(client, 1008, "too slow")

    def _close(self, client: WsClient, code: int, reason: str) -> None:
        """Start the closing handshake from the server's side; the connection is dropped if the client
        has not answered within WS_CLOSE_TIMEOUT."""
        if client.is_open:
            client.send(client.ws.send_close(code, reason))
            client.deadline = time.monotonic() + limits.WS_CLOSE_TIMEOUT
            self._watch(client)
        if code in (1008, 1011):  # the server decided: the controller hears the same code
            self._tell_worker(client, code, reason)

    def _tell_worker(self, client: WsClient, code: int, reason: str = "") -> None:
        if not client.told_worker:
            client.told_worker = True
            self.rooms.leave_all(client)
            if not client.worker_done:
                client.worker.close(client.conn, code, reason)
                self._want_write(client.worker)
        self._forget_if_done(client)

    def _drop(self, client: WsClient, code: int) -> None:
        """The client's socket is done: close it, and tell the controller if nobody has."""
        if client.sock is not None:
            if client.events:  # 0: out of the selector (_watch)
                self._selector.unregister(client.sock)
            client.close()
        self._tell_worker(client, code)

    def _forget_if_done(self, client: WsClient) -> None:
        # Output with no socket yet waits for the one the HTTP thread is about to attach (a controller that
        # closed at once: its Close frame); a closed socket's output is dropped (WsClient.close()).
        if client.worker_done and client.sock is None and client.opening is None and not client.unsent:
            self._forget(client)

    def _forget(self, client: WsClient) -> None:
        if self.clients.pop(client.conn, None) is not None:
            self.places.give_back(client)
        self.rooms.leave_all(client)

    # --- rooms (krait/server/rooms.py) ----------------------------------------------------

    def _publish(self, event: Published, here: bool) -> None:
        """Deliver a published message to the room's members here; pass it on to the other server
        processes when it was published in this one."""
        members = self.rooms.members(event.room)
        if members:
            frame = message_frame(event.text, event.payload)  # built once for every member
            for client in members:
                if client.is_open:
                    self._queue(client, frame)
        if here and self._relay is not None:
            self._relay.send(publish_record(event))

    # --- workers --------------------------------------------------------------------------

    def _add_worker(self, worker: WsWorker) -> None:
        self._selector.register(worker.reader, _READ, ("worker", worker))
        self._worker_readable(worker)  # what it sent right after its start-up report (no event will say)

    def _worker_started(self, worker: WsWorker | None, generation: int) -> None:
        self.call(self._started, worker, generation)  # from the start thread

    def _started(self, worker: WsWorker | None, generation: int) -> None:
        stop = self.workers.started(worker, generation)
        if worker is not None and worker not in stop:
            self._add_worker(worker)
        for old in stop:
            if old is not worker:
                self._selector.unregister(old.reader)
            old.stop()
        waiting, self._waiting = self._waiting, deque()
        for opening in waiting:
            if self.workers.usable() or self.workers.starting:
                self._open(opening)
            else:
                opening.finish(error=InternalError("no WebSocket worker could be started"))

    def _want_write(self, worker: WsWorker) -> None:
        writer = worker.writer
        if writer.pending:
            try:
                self._selector.register(writer, _WRITE, ("worker-out", worker))
            except KeyError:  # registered already
                pass
            if writer.pending > limits.WS_MAX_TO_WORKER and not worker.paused:
                log.warning("WebSocket worker %d has taken none of %d bytes of its clients' messages; its "
                            "clients are not read until it does", worker.proc.pid, writer.pending)
                self._pause(worker, True)

    def _worker_writable(self, worker: WsWorker) -> None:
        if worker.writer.flush():  # all written, or the worker is gone (its pipe's EOF says so)
            self._selector.unregister(worker.writer)
        if worker.paused and worker.writer.pending <= limits.WS_MAX_TO_WORKER // 2:
            self._pause(worker, False)

    def _pause(self, worker: WsWorker, paused: bool) -> None:
        """Stop or resume reading the clients of a worker (see WS_MAX_TO_WORKER)."""
        worker.paused = paused
        now = time.monotonic()
        for client in [c for c in self.clients.values() if c.worker is worker]:  # closing ones too
            if not paused:  # the server did not read it meanwhile: its silence was ours (pings, _tick)
                client.last_seen, client.ping_sent = now, 0.0
            self._watch(client)

    def _worker_readable(self, worker: WsWorker) -> None:
        try:
            events = worker.read()
        except EOFError:
            self._worker_lost(worker)
            return
        clients = self.clients
        for event in events:
            kind = type(event)
            if kind is Message:
                client = clients.get(event.conn)
                if client is not None and client.is_open:
                    self._queue(client, message_frame(event.text, event.payload))
            elif kind is Published:
                self._publish(event, True)
            elif kind is Done:
                client = clients.get(event.conn)
                if client is not None:
                    client.worker_done = True
                    self._forget_if_done(client)
                self._retire_if_idle(worker)
            elif kind is Closing:
                client = clients.get(event.conn)
                if client is not None:
                    self._close(client, event.code, event.reason)
            elif kind is Joined:
                client = clients.get(event.conn)
                if client is not None and not client.told_worker:  # told: its session is over
                    self.rooms.join(client, event.room)
            elif kind is Left:
                client = clients.get(event.conn)
                if client is not None:
                    self.rooms.leave(client, event.room)
            else:
                self._opened(event)

    def _worker_lost(self, worker: WsWorker, why: str = "") -> None:
        """A WebSocket worker died, or is killed (`why`): only its connections close (1011), and it is
        replaced."""
        if worker not in self.workers.workers:
            return
        for selector_key in (worker.reader, worker.writer):
            try:
                self._selector.unregister(selector_key)
            except (KeyError, ValueError):
                pass
        if why:
            log.error("WebSocket worker %d %s; its %d connections are closed", worker.proc.pid, why,
                      len(worker.conns))
            worker.kill()
        else:
            worker.died()
        worker.paused = False  # its clients' Close frames must be read
        for client in [c for c in self.clients.values() if c.worker is worker]:
            client.worker_done = True
            client.told_worker = True
            opening = client.opening
            if opening is not None:
                client.opening = None
                opening.finish(error=InternalError("the WebSocket worker died"))
            self.rooms.leave_all(client)
            if client.sock is None:
                self._forget(client)
            else:
                self._close(client, 1011, "")
                self._watch(client)  # read again if a pause had stopped it
        self.workers.lost(worker)

    def _retire_if_idle(self, worker: WsWorker) -> None:
        # An old generation's worker is stopped once it holds no connection (once: one read may bring the
        # Done of several of its connections).
        if worker.conns or worker.generation == self.workers.generation or worker not in self.workers.workers:
            return
        self._selector.unregister(worker.reader)
        worker.stop()
        self.workers.lost(worker)

    # --- relay ----------------------------------------------------------------------------

    def _relay_io(self, mask: int) -> None:
        records = self._relay.ready(mask)  # type: ignore[union-attr]
        if records is None:  # the parent is gone: this process is being stopped
            self._relay = None
            return
        for record in records:
            self._publish(published(record), False)

    # --- timers and the end ---------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.workers):
            if worker.script_overran(now, self.settings.timeout):
                self._worker_lost(worker, "is killed: a route script ran past %.0fs" % self.settings.timeout)
        interval, timeout = self.settings.ws_ping_interval, self.settings.ws_ping_timeout
        for client in list(self.clients.values()):
            if client.sock is None:
                continue
            if client.deadline:
                if now > client.deadline:
                    self._drop(client, 1006)
                continue
            if client.unsent and client.too_slow(now):
                self._too_slow(client)
                continue
            if not interval or not client.is_open or client.worker.paused:  # paused: its pong is not read
                continue
            if client.ping_sent:
                if client.pong_overdue(now, timeout):
                    self._close(client, 1011, "keepalive ping timeout")
            elif now - client.last_seen > interval:
                if client.ping(now):
                    self._watch(client)
                else:
                    self._drop(client, 1006)

    def _go_away(self) -> None:
        self._going_away = True
        for client in list(self.clients.values()):
            if client.sock is not None:
                self._close(client, 1001, "server shutting down")

    def _stop(self) -> None:
        self._running = False
        for client in list(self.clients.values()):
            if client.sock is not None:
                self._drop(client, 1001)
        for worker in list(self.workers.workers):
            worker.stop()
        self.workers.close()
        for opening in self._waiting:
            opening.finish(error=ServiceUnavailable("the server is shutting down"))
