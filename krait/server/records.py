# The records of the server's request path: Incoming (what was asked), Reply (what to send), and Pending
# (a job a worker must run before there is a Reply).
#
# Design: the channel builds one Incoming per request from the parsed head, with the target split into
# path and query once and the client's address and scheme already adjusted for trusted proxies; routing,
# dispatch, the job for a worker and the access log all read that one record. Every answer, whether a
# static file, an error or a worker's result, becomes one Reply, which the channel writes. Where a worker
# must run first (a script, a template, a site's error page), dispatch gives a Pending instead: the
# channel runs its job outside the request gate and hands the outcome to `finish`, which gives the Reply
# or the next Pending (krait/server/dispatch.py).

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple

from krait.errors import HttpError
from krait.pool.jobs import Job, Result


class Incoming(NamedTuple):
    """One request, as the server's layers above krait/http see it."""

    method: str
    target: str  # the raw request-target, for the log
    url: str  # the raw path (before "?"), not percent-decoded
    path: str  # the origin-form path that routing decodes ("/x" for "http://host/x", "/" for "*")
    query: str  # after "?", "" when absent
    http_version: str  # "1.1"
    headers: dict[str, str]  # lower-case names, duplicates joined with ", "
    body: bytes  # b"" until the channel has read it (only scripts and templates get it)
    remote_addr: tuple[str, int] | None
    scheme: str  # "http" or "https"
    body_file: str = ""  # a large body is in this file instead (krait/server/bodies.py)


class Reply(NamedTuple):
    """A response to send: a status line, headers and a body in memory, a file range to stream, or the
    pieces a worker streams (an iterable of bytes with close(): krait/pool/answers.py's Stream)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    file_range: tuple[BinaryIO, int, int] | None = None  # (open file, offset, length) to send; closed once sent
    reason: str | None = None
    error: str | None = None  # what went wrong, for the log
    stream: Any = None
    own_tag: bool = False  # a script's reply with its own ETag: sent as the script made it, never gzipped


class Pending(NamedTuple):
    """A job to run on the worker pool, and what turns its outcome into the answer."""

    job: Job
    generation: int | None  # the pool generation whose configuration routed it (None: any may run it)
    finish: Callable[[Result | HttpError], Reply | Pending]
