# Events: the values that cross the sans-IO boundary.
#
# Rules:
# - The receive side (Connection.next_event) produces Request, Data, EndOfMessage and
#   ConnectionClosed, or one of the sentinels NEED_DATA / PAUSED.
# - The send side (Connection.send) consumes InformationalResponse, Response, Data and
#   EndOfMessage.
# - Events are `@dataclass(slots=True)`, deliberately not frozen: a frozen slots dataclass is
#   about 4x slower to construct (measured: 0.36 us vs 1.54 us for a Request), and one Request,
#   one EndOfMessage and often one Data are built for every request on the hot path. Treat
#   them as read-only all the same.
# - Header names in received events are lower-case str; values are Latin-1-decoded str with
#   the surrounding OWS stripped (RFC 9110 section 5.5).

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "InformationalResponse",
    "Request",
    "Response",
    "reason_phrase",
]


class _Sentinel:
    """A named singleton returned by next_event() instead of an event."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:  # pickling gives back the same module-level object
        return self._name


#: More bytes are needed before the next event can be produced.
NEED_DATA = _Sentinel("NEED_DATA")
#: The request is complete; no further event until our response to it is complete.
PAUSED = _Sentinel("PAUSED")


@dataclass(slots=True)
class Request:
    """A request head. `headers` joins duplicates with ", "; `raw_headers` keeps each field line,
    in received order (names lower-cased as in `headers`)."""

    method: str
    target: str
    http_version: str
    headers: dict[str, str]
    raw_headers: tuple[tuple[str, str], ...]
    keep_alive: bool
    expect_continue: bool
    content_length: int | None
    chunked: bool


@dataclass(slots=True)
class Data:
    """A piece of a message body (whatever bytes were available)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The end of a message body; `trailers` holds the fields of a chunked trailer section."""

    trailers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ConnectionClosed:
    """The peer closed its sending side between requests, or the connection is finished."""


@dataclass(slots=True)
class InformationalResponse:
    """A 1xx interim response (normally 100 Continue)."""

    status: int
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()


@dataclass(slots=True)
class Response:
    """A final response head; the body follows as Data events and an EndOfMessage."""

    status: int
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()
    reason: str | None = None


_REASONS = {s.value: s.phrase for s in HTTPStatus}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for `status` ("Not Found"), or "" for an unregistered code (RFC 9112
    section 4: the reason-phrase may be empty)."""
    return _REASONS.get(status, "")
