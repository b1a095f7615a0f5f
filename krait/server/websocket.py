# One WebSocket client in the hub: its socket, its sans-IO session, and the output it has not taken yet;
# and the Opening it starts as, an upgrade whose route script has not answered.
#
# Design: the hub (krait/server/hub.py) owns every WsClient and calls it from its one thread; nothing
# here blocks. read() feeds what the socket holds to the sans-IO krait.http.websocket core and returns
# what the controller must hear; send() queues frames and writes as much as the socket takes now.
# too_slow() says when a client that does not read holds too much (krait/limits.py WS_SLOW_UNSENT), and
# the hub then closes it (docs/websockets.md); its clock starts when the socket is attached (what a
# controller sends before the 101 is out waits for the socket without counting as unread).
# ping() and pong_overdue() keep a silent client alive or find it dead: the pong is due --ws-ping-timeout
# after the ping reached the client, so one queued behind a backlog the client is still taking is not late.
# What the clients hold of messages still arriving is counted in one InputBudget per hub; past its bound
# (krait/limits.py WS_PARTIAL_MESSAGES) a client that holds much and sends more is closed with 1013.
# `eof` says the client's side is shut: the hub stops watching it for input (a socket at EOF is always
# readable), and output still queued then gets WS_CLOSE_TIMEOUT to leave.
# TLS sockets work the same way: OpenSSL's "want read" / "want write" are the non-blocking socket's
# "try again later", and bytes OpenSSL already decrypted are read before the next select.
# Queued frames go out with one sendmsg(), or one send() each over TLS and on portable paths
# (krait/portable.py: Windows has no sendmsg).
# Places says who holds the hub's --max-websockets places, by client address (seen through trusted
# proxies), and which connection gives its place up when they are all taken.

from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from krait import limits, portable, sockopt
from krait.http.websocket import CLOSED as SESSION_CLOSED
from krait.http.websocket import (
    OPEN,
    BinaryMessage,
    CloseReceived,
    ConnectionLost,
    ProtocolFailure,
    TextMessage,
    WebSocketConnection,
)
from krait.pool import jobs
from krait.server import forwarded

_SENDMSG = not portable.ACTIVE
_WANT = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

# What read() returns for the controller: (MESSAGE, text, payload) or (CLOSED, code, reason), the
# latter once the session is over (the client closed, broke the protocol, or went away).
MESSAGE, CLOSED = 0, 1


class Opening:
    """An upgrade waiting for its route script (WebSocketHub.open()); the HTTP thread that asked waits on
    `done`."""

    __slots__ = ("job", "done", "result", "conn", "error", "abandoned")

    def __init__(self, job: jobs.Job) -> None:
        self.job = job
        self.done = threading.Event()
        self.result: jobs.Result | None = None
        self.conn = 0
        self.error: Exception | None = None
        self.abandoned = False  # the HTTP thread gave up waiting, or could not send the 101

    def finish(self, result: jobs.Result | None = None, error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class InputBudget:
    """The unfinished input (partly received frames and messages) that the clients of one hub hold, and
    its bound (krait/limits.py WS_PARTIAL_MESSAGES); used from the hub's thread alone."""

    __slots__ = ("fair", "held", "limit", "max_message")

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message  # --max-ws-message
        self.held = 0
        self.limit = max_message * limits.WS_PARTIAL_MESSAGES
        self.fair = max_message // limits.WS_FAIR_SHARE  # what a client may hold whatever the others do


def address_of(job: jobs.Job) -> str:
    """The address a WebSocket's place is counted under (Places): its client's, seen through trusted
    proxies (--forwarded-allow-ips), so that clients behind one proxy are told apart; an IPv6 one's /64
    (forwarded.counted_under())."""
    return forwarded.counted_under(str(job.remote_addr[0])) if job.remote_addr else ""


class Places:
    """The --max-websockets places of one hub, counted by client address; used from the hub's thread alone.

    When every place is taken, a newcomer takes the place of an open connection of the address that
    holds the most, the oldest of those, provided that address holds at least two more than the
    newcomer's: so one address that opened every connection cannot lock the others out, shares even
    out, and two addresses never take places back and forth. A newcomer holds a place of its address
    from its upgrade on; the hub makes room for it only once its route script has accepted it, so an
    upgrade that is refused closes nobody. The connection given up no longer counts for its address,
    and leaves at once (its entry lingers until its controller has finished: `leaving` counts those)."""

    __slots__ = ("limit", "held", "leaving")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: dict[str, int] = {}  # address -> its connections among the hub's clients
        self.leaving = 0

    def full(self, clients: int) -> bool:
        return clients - self.leaving >= self.limit

    def take(self, client: WsClient) -> None:
        self.held[client.address] = self.held.get(client.address, 0) + 1

    def give_back(self, client: WsClient) -> None:
        if client.evicted:  # its address's count went down when it was chosen (evict())
            self.leaving -= 1
        else:
            self._release(client.address)

    def evict(self, victim: WsClient) -> None:
        """`victim` gives its place up: it is leaving, and no longer counts for its address."""
        victim.evicted = True
        self.leaving += 1
        self._release(victim.address)

    def _release(self, address: str) -> None:
        left = self.held.pop(address, 0) - 1
        if left > 0:
            self.held[address] = left

    def victim(self, clients: Any, address: str, counted: bool = False) -> WsClient | None:
        """The connection to close for a newcomer from `address` (see the class), None if none should be;
        `clients` oldest first; `counted`: the newcomer's own place is among its address's already."""
        held = self.held
        most = held.get(address, 0) + (not counted)  # a victim's address must hold more than that
        top = max(held.values(), default=0)
        if top <= most:
            return None
        victim = None
        for client in clients:
            if client.sock is not None and not client.evicted and client.is_open:
                count = held[client.address]
                if count > most:
                    victim, most = client, count
                    if count == top:
                        break
        return victim


class WsClient:
    """One WebSocket connection of this server process (its fields belong to the hub's thread)."""

    __slots__ = ("conn", "worker", "sock", "ws", "tls", "out", "unsent", "written", "delivered", "ping_end",
                 "budget", "held", "rooms", "last_seen", "ping_sent", "deadline", "opening", "told_worker",
                 "worker_done", "events", "eof", "last_taken", "on_close", "address", "evicted",
                 "needs_room")

    def __init__(self, conn: int, worker: Any, budget: InputBudget, opening: Opening | None) -> None:
        self.conn = conn  # the number the worker knows it by
        self.address = "" if opening is None else address_of(opening.job)  # counted under it (Places)
        self.evicted = False  # closed to give its place to a newcomer (Places)
        self.needs_room = False  # upgraded while every place was taken: room is made once accepted
        self.worker = worker  # the WsWorker hosting its controller
        self.sock: Any = None  # set by attach(), after the 101 went out
        self.ws = WebSocketConnection(max_message_size=budget.max_message)
        self.budget = budget
        self.held = 0  # this client's share of budget.held
        self.tls = False
        self.out: deque[bytes | memoryview] = deque()  # frames not written yet
        self.unsent = 0
        self.written = 0  # bytes the kernel has taken from us
        self.delivered = 0  # of those, what had reached the client when the hub last looked (pings)
        self.ping_end = 0  # where the last ping ends in the output (counted as `written` counts)
        self.rooms: set[str] = set()
        self.last_seen = 0.0  # when the client last sent anything
        self.ping_sent = 0.0  # when the unanswered ping went out (0: none)
        self.deadline = 0.0  # when to drop the connection (a close handshake under way), 0: none
        self.opening = opening  # the HTTP thread's pending upgrade, until the route script answers
        self.told_worker = False  # the controller was told the connection is closing
        self.worker_done = False  # the worker is finished with it (or died)
        self.events = 0  # what the hub's selector watches the socket for (EVENT_READ, EVENT_WRITE)
        self.eof = False  # the client's side is shut (or broken): nothing more to read
        self.last_taken = 0.0  # when the socket last took some of the output (from attach() on)

    def attach(self, sock: Any, on_close: Callable[[], None]) -> None:
        """Serve `sock` from now on; `on_close` is called once it is closed (its place in the server's
        per-address count)."""
        sock.setblocking(False)
        self.sock = sock
        self.on_close = on_close
        self.last_taken = time.monotonic()
        self.tls = isinstance(sock, ssl.SSLSocket)

    # --- input ------------------------------------------------------------------------------

    def read(self, view: memoryview, now: float) -> list[tuple]:
        """Read what the socket holds into `view` (a buffer shared by all clients) and return what the
        controller must hear; the protocol's own answers (pongs, a close echo) are queued to send."""
        try:
            count = self.sock.recv_into(view)
        except _WANT:
            return []
        except OSError:
            count = 0
        if not count:
            self.eof = True
        data: Any = view[:count]
        if self.tls:
            while count and self.sock.pending():  # OpenSSL holds more decrypted bytes: select won't tell
                more = self.sock.recv(self.sock.pending())
                data = bytes(data) + more
                count += len(more)
        return self.receive(data, now)

    def receive(self, data: Any, now: float) -> list[tuple]:
        """What the controller must hear of `data`, bytes from the client (b"" is EOF)."""
        self.last_seen = now
        self.ping_sent = 0.0
        ws = self.ws
        single = ws.receive_single(data) if data else None
        if single is not None:  # nearly every read of small messages: one whole message
            return [(MESSAGE, single[0], single[1])]
        ws.receive_data(data)  # b"" is EOF
        held, budget = ws.buffered_input(), self.budget
        budget.held += held - self.held
        self.held = held
        if budget.held > budget.limit and held > budget.fair:
            ws.abort(1013, "the server holds too many unfinished messages")  # its buffers are dropped
            budget.held -= held
            self.held = 0
        heard: list[tuple] = []
        for event in ws.events():  # pings and pongs: any frame counts as alive (last_seen above)
            if type(event) is TextMessage:
                heard.append((MESSAGE, True, event.data.encode("utf-8")))
            elif type(event) is BinaryMessage:
                heard.append((MESSAGE, False, event.data))
            elif type(event) is CloseReceived:
                heard.append((CLOSED, event.code or 1005, event.reason))
            elif type(event) is ProtocolFailure:
                heard.append((CLOSED, event.code, event.reason))
            elif type(event) is ConnectionLost:
                heard.append((CLOSED, 1006, ""))
        out = ws.data_to_send()
        if out:
            self.send(out)
        return heard

    # --- output -----------------------------------------------------------------------------

    def too_slow(self, now: float) -> bool:
        """Whether the client does not read (see the module comment): the hub closes it."""
        unsent = self.unsent
        return unsent > limits.WS_MAX_UNSENT or (
            unsent > limits.WS_SLOW_UNSENT and self.sock is not None and now - self.last_taken > limits.WS_SEND_STALL)

    def _reached(self) -> int:
        """The bytes of our output that reached the client (what the kernel still holds is not counted,
        where it can say: sockopt.kernel_unsent())."""
        return self.written - sockopt.kernel_unsent(self.sock)

    def ping(self, now: float) -> bool:
        """Send a keepalive ping (see pong_overdue()); False when the client is gone."""
        self.ping_sent = now
        self.delivered = self._reached()
        data = self.ws.send_ping(b"krait")
        self.ping_end = self.written + self.unsent + len(data)
        return self.send(data)

    def pong_overdue(self, now: float, timeout: float) -> bool:
        """Whether `timeout` has passed without a pong since the ping reached the client. While the client
        takes the output queued before the ping (the kernel's own queue counts where it can say), the
        clock is held; a client that takes nothing (a dead peer) gets no such delay."""
        delivered = self._reached()
        if self.delivered < delivered < self.ping_end:
            self.ping_sent = now
        self.delivered = delivered
        return now - self.ping_sent > timeout

    def send(self, data: bytes | memoryview) -> bool:
        """Write `data` as far as the socket takes it now and queue the rest; False when the client is
        gone."""
        sock = self.sock
        if not self.out and sock is not None:  # nothing waits before it: one send(), no queue
            try:
                sent = sock.send(data)
            except _WANT:  # over TLS the same bytes must be offered again: all of them wait
                sent = 0
            except OSError:
                return False
            if sent:
                self.last_taken = time.monotonic()
                self.written += sent
                if sent == len(data):
                    return True
                data = memoryview(data)[sent:]
        self.out.append(data)
        self.unsent += len(data)
        return self.flush()

    def flush(self) -> bool:
        """Write queued output as far as the socket takes it; False when the client is gone (the caller
        drops it). `unsent` says what is left."""
        sock, out = self.sock, self.out
        if sock is None:
            return True  # not attached yet: kept until then
        try:
            while out:
                sent = sockopt.send_queued(sock, out, _SENDMSG and not self.tls)
                self.unsent -= sent
                if sent:
                    self.last_taken = time.monotonic()
                    self.written += sent
        except _WANT:
            return True
        except OSError:
            return False
        return True

    def drop_output(self) -> None:
        """Forget the output not sent yet, except the rest of a frame already partly sent: a frame goes
        out whole (RFC 6455 section 5.2), or the Close that follows would land inside its payload. What a
        partial send left is a view; over TLS, the first queued frame has always been offered to
        OpenSSL, which may hold part of it and must be offered the rest."""
        out = self.out
        started = out[0] if out and (self.tls or type(out[0]) is memoryview) else None
        out.clear()
        self.unsent = 0
        if started is not None:
            out.append(started)
            self.unsent = len(started)

    @property
    def is_open(self) -> bool:
        return self.ws.state == OPEN

    @property
    def is_closed(self) -> bool:
        """Both Close frames were exchanged, or the session failed (not CLOSING: waiting for the client's)."""
        return self.ws.state == SESSION_CLOSED

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None
        self.on_close()
        self.out.clear()
        self.unsent = 0
        self.budget.held -= self.held
        self.held = 0
