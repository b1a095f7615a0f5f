# The two records of the server's request path: Incoming (what was asked) and Reply (what to send).
#
# Design: the channel builds one Incoming per request from the parsed head, with the target split into
# path and query once and the client's address and scheme already adjusted for trusted proxies; routing,
# dispatch, the job for a worker and the access log all read that one record. Every answer, whether a
# static file, an error or a worker's result, becomes one Reply, which the channel writes.

from __future__ import annotations

from typing import NamedTuple


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


class Reply(NamedTuple):
    """A response to send: a status line, headers and a body in memory or a file range to stream."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    file_range: tuple[str, int, int] | None = None  # (path, offset, length) to stream with sendfile
    reason: str | None = None
    error: str | None = None  # what went wrong, for the log
