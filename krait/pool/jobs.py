# The worker protocol's records: the only things that cross the process boundary.
#
# Design: plain NamedTuples of str, bytes, ints, dicts and tuples, so the codec (krait/pool/pipe.py)
# can use marshal and nothing live (sockets, exceptions, site objects) ever crosses. A script worker gets
# a Job down its pipe and sends back one Result (and PUBLISH records, when a script publishes to a room).
# A WebSocket worker hosts many connections: the WS_* records below, each naming its connection. `None`
# asks a worker to exit. Only krait/pool reads or writes these tags; the server and the worker use its
# objects.

from __future__ import annotations

from typing import Any, NamedTuple

# Kinds of work a worker does.
SCRIPT = "script"  # a .py route target (and its MVC view)
TEMPLATE = "template"  # a .html / .htm / .pyml Pympl template
WEBSOCKET = "websocket"  # a route script asked to accept a WebSocket upgrade


class Job(NamedTuple):
    kind: str
    path: str  # absolute, resolved file to run
    rel_path: str  # the same, relative to the site root (for errors and content type)
    method: str
    url: str  # raw request path, without query
    decoded_path: str  # percent-decoded UTF-8 path
    query_string: str
    http_version: str  # "HTTP/1.1"
    headers: dict[str, str]  # lower-case names, duplicates joined with ", " (as krait.http gives them)
    body: bytes
    remote_addr: tuple[str, int] | None
    scheme: str  # "http" or "https", after trusted proxy headers
    url_params: tuple[tuple[str, str], ...]
    error_text: str = ""  # for a site's error page (.errors/<status>.html): the error's report, --debug only
    body_file: str = ""  # a large body is in this file instead of `body` (krait/server/bodies.py)


class ErrorReport(NamedTuple):
    status: int  # 500, or the status of an HttpError the site code raised (404 missing view...)
    type_name: str
    message: str
    where: str  # "file:line" of the innermost site frame, or ""
    traceback: str  # formatted traceback text (shown only with --debug)


class Result(NamedTuple):
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str | None  # the default Content-Type the worker derived (set_content_type, extension)
    error: ErrorReport | None = None
    ws_protocol: str | None = None  # WEBSOCKET jobs: accepted (status 101) with this subprotocol
    # A template without any code (krait/worker/run.py): the stamp (krait/pympl/cache.py) of the file
    # version whose output this is; the server serves that output itself while the file is unchanged.
    code_free: tuple[int, int, int, int] | None = None
    took: float = 0.0  # seconds the worker spent on the job (the scheduler keeps slow files' jobs unpipelined)
    # A large or iterable body streams behind the Result (`body` is empty): its length, or -1 when unknown
    # (sent chunked). The pieces follow as STREAM_DATA records, then one STREAM_END. None: no stream.
    stream: int | None = None
    file: str | None = None  # krait.ResponseFile: the absolute path of the file to send as the body
    # In the server process only, never on the wire: the Stream of a streamed body's pieces, which
    # JobPool.run() puts here (krait/pool/answers.py).
    pieces: Any = None


class WorkerReady(NamedTuple):
    """First message of every worker: init.py ran (config holds krait.config's snapshot) or failed."""

    pid: int
    config: Any  # krait.config.SiteConfig, or None when init.py failed
    error: ErrorReport | None


# Records of the WebSocket workers. One worker hosts many connections, each named by the number the
# server gave it (`conn`). A text message travels as its UTF-8 bytes: the server checked them (or the
# worker encoded them), and the side that only forwards them never decodes and re-encodes. Messages
# cross without a codec (krait/pool/pipe.py send_message()); the other records are marshalled tuples.
WS_OPEN = "open"  # (WS_OPEN, conn, job): server -> worker: run the upgrade's route script
WS_RESULT = "result"  # (WS_RESULT, conn, result): worker -> server: its answer; 101 starts the session
WS_TEXT = "text"  # (WS_TEXT, conn, bytes): a message, either way
WS_BINARY = "binary"  # (WS_BINARY, conn, bytes)
WS_CLOSE = "close"  # (WS_CLOSE, conn, code, reason): either way: the client or the controller closes
WS_DONE = "done"  # (WS_DONE, conn): worker -> server: the controller stopped; the connection is gone
WS_JOIN = "join"  # (WS_JOIN, conn, room): worker -> server: the connection joins a room
WS_LEAVE = "leave"  # (WS_LEAVE, conn, room)
# A streamed response body (Result.stream), worker -> server, right behind its Result: each piece as
# (STREAM_DATA, 0, bytes) without a codec, like a WebSocket message; then (STREAM_END, error), error None
# when the body is complete, else the ErrorReport (as a tuple) of the site code that failed producing it
# (the server then cuts the connection: the response is incomplete). Markers around a template's
# compilation, which does not count against --timeout: (COMPILING,) and (COMPILED,).
STREAM_DATA = "data"
STREAM_END = "end"
COMPILING = "compiling"
COMPILED = "compiled"
# (PUBLISH, room, kind, payload), kind WS_TEXT or WS_BINARY: from any worker (a controller or an HTTP
# script) to its server process, and between server processes (krait/pool/relay.py). It is the only
# record a script worker sends besides its answers.
PUBLISH = "publish"


def job_to_wire(job: Job) -> tuple:
    """A Job as a plain tuple (marshal takes no tuple subclasses)."""
    return tuple(job)


def job_from_wire(data: tuple) -> Job:
    return Job(*data)


def result_to_wire(result: Result, took: float | None = None) -> tuple:
    """A Result as nested plain tuples; `took` overrides result.took."""
    error = tuple(result.error) if result.error is not None else None
    return (*result[:5], error, result.ws_protocol, result.code_free, result.took if took is None else took,
            result.stream, result.file)


def result_from_wire(data: tuple) -> Result:
    error = ErrorReport(*data[5]) if data[5] is not None else None
    return Result(*data[:5], error, *data[6:])  # type: ignore[call-arg]  # a wire tuple of Result's fields
