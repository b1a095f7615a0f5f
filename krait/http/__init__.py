# krait.http: a sans-IO HTTP/1.1 server-side protocol core.
#
# Rules: this package contains no networking code at all. It never imports socket, selectors,
# threading, multiprocessing, clocks or settings; only the standard library, krait.errors and
# krait.limits. Bytes go in through Connection.receive_data(), events come out of
# Connection.next_event(); response events go in through Connection.send()/send_full() and
# bytes come out. The WebSocket modules of this package (handshake, frames, websocket) are
# separate and not re-exported here.
#
# Modules: abnf (grammar), events, buffer (ReceiveBuffer), readers (bytes -> events),
# writers (events -> bytes), state (states and transitions), connection (the facade).

from krait.errors import LocalProtocolError, ProtocolError

from .connection import Connection
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
    reason_phrase,
)

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Connection",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "InformationalResponse",
    "LocalProtocolError",
    "ProtocolError",
    "Request",
    "Response",
    "reason_phrase",
]
