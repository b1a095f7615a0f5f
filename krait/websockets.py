# krait.websockets: the site-code side of WebSocket connections.
#
# Design: the route script of an upgrade request sees `request` (a WebsocketsRequest) and accepts
# by setting `response` to a WebsocketsResponse holding a controller. The worker then owns the
# controller for the connection's lifetime: it calls on_start(), feeds incoming messages to
# on_in_message_internal(), and calls on_stop() + wait_stopped() when the connection ends. Outgoing
# items are sent by whichever thread pushes them, through the worker's out-listener: nothing waits
# for the queue and nothing polls. An item goes straight to the listener when nothing is queued
# before it (the common case, one step less per message); otherwise it is queued behind the others
# and the listener is called with None, to send everything queued (_take_out()) in order.
# on_start() starts a handler thread only for a controller that overrides on_thread_start(): one worker
# process hosts many connections, and a controller that only reacts to messages costs no thread.
# Rooms: join()/leave() tell the server (through the worker's link, once the connection is open;
# rooms joined in __init__ are told when it opens), and publish() sends one record to this worker's
# server process, which delivers the message to every member there and in the other server processes
# (docs/websockets.md).
#
# Rules:
# - Subprotocols: Sec-WebSocket-Protocol is a comma list of tokens with optional whitespace
#   (RFC 6455 section 4.1 and 11.3.4); `protocols` is [] when none is offered (docs/websockets.md).
# - Outgoing items are ("text", UTF-8 bytes), ("binary", bytes) or ("close", code, reason), in push
#   order (the items krait/pool/serve.py's SessionLink sends). Text is encoded when pushed, so a str that
#   has no UTF-8 form
#   (a lone surrogate) fails in push_out_message(), in the controller, not later in the sender.
# - close() codes are those an endpoint may send (RFC 6455 section 7.4.1 and 7.4.2: 1000-1003,
#   1007-1011, 3000-4999); the reason must fit a control frame: 123 UTF-8 bytes (section 5.5).
# - Queues are guarded by locks; the out-listener callback runs outside every lock.
# - Room names are non-empty str of at most WS_MAX_ROOM bytes in UTF-8.
# - What crosses to the server is plain data: a str subclass (a StrEnum room name or close reason) is
#   taken as its plain str, an int subclass (an IntEnum close code) as its int, a bytes subclass as bytes.
#   The pipe's fast codec (marshal) refuses subclasses, and its pickle fallback would name a site class
#   the server cannot import (krait/pool/pipe.py).

from __future__ import annotations

import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable

from krait import limits

_SENDABLE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011))
_MAX_REASON_BYTES = 123  # RFC 6455 section 5.5: control payload <= 125 bytes, 2 for the code

#: The WebsocketsRequest of the current upgrade request, or None for a plain HTTP request.
request = None
#: Set by the route script to accept the upgrade; None refuses it.
response = None
#: How publish() reaches the server: set by the worker process (None outside Krait's workers).
_publisher: Callable[[str, str, bytes], None] | None = None


class WebsocketsRequest:
    """Extra information about a WebSocket upgrade request.

    Args:
        http_request: the krait.Request of the upgrade.

    Attributes:
        protocols: the subprotocols the client offered, in its order ([] when none).
    """

    def __init__(self, http_request):
        self.http_request = http_request
        self.protocols = self.extract_protocols(http_request)

    @staticmethod
    def extract_protocols(http_request) -> list[str]:
        """The Sec-WebSocket-Protocol values of a request as a list ([] when absent)."""
        header = http_request.headers.get("sec-websocket-protocol")
        if not header:
            return []
        return [p for p in (part.strip(" \t") for part in header.split(",")) if p]

    def __repr__(self) -> str:
        return f"<WebsocketsRequest protocols={self.protocols!r}>"


class WebsocketsResponse:
    """Accepts a WebSocket upgrade.

    Args:
        controller: the WebsocketsCtrlBase that serves the connection.
        protocol: the chosen subprotocol (one the client offered), or None.
    """

    def __init__(self, controller, protocol=None):
        self.controller = controller
        self.protocol = protocol

    def __repr__(self) -> str:
        return f"<WebsocketsResponse {type(self.controller).__name__} protocol={self.protocol!r}>"


class WebsocketsCtrlBase:
    """Base class of WebSocket controllers; subclass it and override on_thread_start().

    Args:
        use_in_message_queue: True to queue incoming messages for pop_in_message(); False to
            handle them by overriding on_in_message().
    """

    def __init__(self, use_in_message_queue=True):
        self._in_lock = threading.RLock()
        self._in_queue: deque | None = deque() if use_in_message_queue else None
        self._in_bytes = 0  # the memory of what _in_queue holds (-1: past WS_MAX_UNREAD, closed)
        self._out_lock = threading.Lock()
        self._out_queue: deque = deque()
        self._close_requested = False
        self._out_listener = None
        self._link = None  # the worker's link to the server, once the connection is open
        self._rooms: set[str] = set()
        self._exit_event = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        """Called by Krait when the connection is open: starts the handler thread, if the controller
        overrides on_thread_start()."""
        if type(self).on_thread_start is not WebsocketsCtrlBase.on_thread_start:
            self._thread = threading.Thread(target=self._run_thread, daemon=True,
                                            name=f"krait-ws-{type(self).__name__}")
            self._thread.start()

    def _run_thread(self) -> None:
        # An exception in the handler thread ends the connection with 1011 and no details (RFC 6455
        # section 7.4.1); its traceback goes to the log (stderr).
        try:
            self.on_thread_start()
        except Exception:
            traceback.print_exc()
            self.close(1011, "")

    def on_thread_start(self) -> None:
        """The handler thread's body. Override it: loop until should_stop() is True."""

    def on_stop(self) -> None:
        """Called by Krait when the connection is closing: asks the handler thread to stop."""
        self._exit_event.set()

    def should_stop(self) -> bool:
        """True once the connection is closing; check it often from the handler thread."""
        return self._exit_event.is_set()

    def wait_stopped(self, timeout=None) -> bool:
        """Wait for the handler thread to end (None waits forever); True when it has ended."""
        thread = self._thread
        if thread is None:
            return True
        if thread.is_alive():
            thread.join(None if timeout is None else float(timeout))
        return not thread.is_alive()

    # --- incoming messages -------------------------------------------------------------------

    def on_in_message(self, message) -> None:
        """Handle a message from the client (str for text, bytes for binary). The default queues
        it for pop_in_message(); override it when the queue is disabled. A queue that holds more than
        WS_MAX_UNREAD bytes closes the connection with 1008 (docs/websockets.md)."""
        if self._in_queue is None or self._in_bytes < 0:
            return
        # The message's memory, not its length: a str of 4-byte characters takes four times its len(),
        # and an empty message still takes an object.
        self._in_bytes += sys.getsizeof(message)
        if self._in_bytes <= limits.WS_MAX_UNREAD:
            self._in_queue.append(message)
            return
        # Nothing pops the queue fast enough: the connection ends before the worker's memory does.
        self._in_queue.clear()
        self._in_bytes = -1
        self.close(1008, "messages sent faster than they are handled")

    def on_in_message_internal(self, message) -> None:
        """Called by Krait for each incoming message: takes the input lock, calls on_in_message."""
        with self._in_lock:
            self.on_in_message(message)

    def pop_in_message(self):
        """The oldest unread incoming message, removed from the queue, or None.

        Raises:
            RuntimeError: the controller was created with use_in_message_queue=False.
        """
        if self._in_queue is None:
            raise RuntimeError("this controller does not use an input message queue")
        with self._in_lock:
            if not self._in_queue:
                return None
            message = self._in_queue.popleft()
            if self._in_bytes > 0:
                self._in_bytes -= sys.getsizeof(message)
            return message

    # --- outgoing messages -------------------------------------------------------------------

    def push_out_message(self, message) -> None:
        """Send a message: str as a text message, bytes as a binary one.

        Raises:
            TypeError: message is neither str nor bytes-like.
            UnicodeEncodeError: a str with no UTF-8 form (it holds a lone surrogate).
        """
        self._queue_out(_item(message))

    def close(self, code=1000, reason="") -> None:
        """Ask Krait to close the connection (after the messages already pushed).

        Args:
            code: the close status code (RFC 6455 section 7.4): 1000-1003, 1007-1011 or 3000-4999.
            reason: a short text, at most 123 bytes in UTF-8.

        Raises:
            ValueError: a code an endpoint may not send, or a reason that is too long.
            TypeError: a reason that is not a str.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not (
            code in _SENDABLE_CODES or 3000 <= code <= 4999
        ):
            raise ValueError(f"close code {code!r} may not be sent (RFC 6455 section 7.4)")
        if not isinstance(reason, str):
            raise TypeError(f"a close reason is a str, not {type(reason).__name__}")
        code, reason = int(code), str.__str__(reason)  # plain types (see the module comment)
        if len(reason.encode("utf-8")) > _MAX_REASON_BYTES:
            raise ValueError(f"close reason is longer than {_MAX_REASON_BYTES} bytes in UTF-8")
        with self._out_lock:
            if self._close_requested:
                return
            self._close_requested = True
        self._queue_out(("close", code, reason))

    def pop_out_message(self):
        """The oldest unsent outgoing message (str or bytes), removed from the queue, or None.
        A pending close request is not a message: it stays queued and None is returned."""
        with self._out_lock:
            queue = self._out_queue
            if queue and queue[0][0] != "close":
                kind, data = queue.popleft()
                return data.decode("utf-8") if kind == "text" else data
            return None

    def _queue_out(self, item) -> None:
        # The queue is looked at without the lock: pushes from two threads have no order between them
        # anyway, and one thread's pushes keep theirs, because the listener sends (under the worker's
        # send lock) before push_out_message() returns.
        listener = self._out_listener
        if listener is not None and not self._out_queue:
            listener(item)
            return
        with self._out_lock:
            self._out_queue.append(item)
        if listener is not None:
            listener(None)

    # --- rooms -----------------------------------------------------------------------------

    def join(self, room) -> None:
        """Add this connection to `room`, so that publish(room, ...) reaches it (from __init__ it takes
        effect when the connection opens). A closed connection leaves all its rooms."""
        room = _room(room)
        with self._out_lock:
            if room in self._rooms:
                return
            self._rooms.add(room)
            link = self._link
        if link is not None:
            link.join(room)

    def leave(self, room) -> None:
        """Take this connection out of `room` (nothing happens when it is not a member)."""
        room = _room(room)
        with self._out_lock:
            if room not in self._rooms:
                return
            self._rooms.discard(room)
            link = self._link
        if link is not None:
            link.leave(room)

    # --- worker hooks (private) --------------------------------------------------------------

    def _attach(self, link) -> None:
        # The connection is open: `link` (krait/pool/wsserve.py SessionLink) carries room membership
        # from now on; the rooms joined before are told now.
        with self._out_lock:
            self._link = link
            rooms = list(self._rooms)
        for room in rooms:
            link.join(room)

    def _set_out_listener(self, callback) -> None:
        # The worker's callback for each push_out_message()/close(), run outside the lock: called with
        # the item to send, or with None to send what _take_out() returns.
        self._out_listener = callback

    def _take_out(self) -> list:
        # Every queued item, oldest first, removed from the queue ([] when none).
        with self._out_lock:
            queue = self._out_queue
            if not queue:
                return []
            items = list(queue)
            queue.clear()
            return items


def _room(room) -> str:
    if not isinstance(room, str) or not room:
        raise TypeError(f"a room name is a non-empty str, not {room!r}")
    if len(room.encode("utf-8")) > limits.WS_MAX_ROOM:
        raise ValueError(f"room names are at most {limits.WS_MAX_ROOM} bytes in UTF-8")
    return str.__str__(room)  # a plain str, even of a StrEnum (see the module comment)


def _item(message) -> tuple:
    # str -> ("text", UTF-8 bytes); bytes-like -> ("binary", bytes)
    if isinstance(message, str):
        return ("text", message.encode("utf-8"))
    if isinstance(message, (bytes, bytearray, memoryview)):
        return ("binary", bytes(message))
    raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")


def publish(room, message) -> None:
    """Send `message` (str as text, bytes as binary) to every connection in `room`, whichever worker or
    server process holds it. Works from controllers and from any script or template. Messages from one
    publisher reach each member in publish order.

    Raises:
        TypeError / ValueError: a bad room name or message.
        RuntimeError: called outside Krait's worker processes.
    """
    room = _room(room)
    kind, payload = _item(message)
    if _publisher is None:
        raise RuntimeError("krait.websockets.publish() works only in Krait's worker processes")
    _publisher(room, kind, payload)


def _reset() -> None:
    """Fresh per-request state (called by krait._begin_request)."""
    global request, response
    request = None
    response = None
