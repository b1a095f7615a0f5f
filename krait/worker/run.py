# One job in a worker: bind krait.request, run the site code, describe the response as a Result.
#
# Design: run_job() never raises. It restores the krait.* modules and takes a fresh namespace (Site),
# builds krait.request from the Job, then runs the .py script (and its MVC view) or renders the template
# into one output list, then stores krait.session's changes. Whatever site code raises becomes an
# ErrorReport inside the Result: an HttpError keeps its status, anything else is a 500 (a controller whose
# view does not exist too: a bug of the site). The report's traceback holds the site's frames and the
# library frames they called, without Krait's plumbing, for each exception of a chain; the server logs it
# and shows it only with --debug (docs/scripts.md). A template's syntax error has no frames: its file, line,
# column and source line are the report's text, and its message is the bare message, so that the log and the
# error page, which print the message and then the text, give the location once. The one exception is
# InvalidJSON (a body get_json() could not parse) and InvalidForm (a form of too many fields): a plain 400
# whose text says what was wrong.
#
# Rules:
# - The Content-Type a script or template gets by default: krait.set_content_type() if called, else the
#   view's extension for a script that rendered one, else the target's (page.css.pyml is CSS; a plain
#   .pyml is HTML; docs/pympl.md).
# - The headers a script sets (its Response's and krait.extra_headers, cookies included) are checked
#   before anything is sent: names are tokens (RFC 9110 section 5.1); values, stripped of leading and
#   trailing SP/HTAB, hold only VCHAR, SP, HTAB and obs-text (section 5.5). Values are str sent as
#   Latin-1, so obs-text is U+00A0-U+00FF: the C1 controls U+0080-U+009F (U+0085 is a line break to
#   some readers) are refused like the other controls, and so is anything beyond Latin-1. The block is
#   capped at limits.MAX_RESPONSE_HEADER_BLOCK bytes and MAX_RESPONSE_HEADER_COUNT fields. So are the
#   Content-Type from krait.set_content_type() and the reason phrase of a raw-text response (RFC 9112
#   section 4), and the status must be one a response can end with: no 1xx (interim responses, RFC 9110
#   section 15.2), no body with a 204 or 304 (section 6.4.1). Any of these fails the job with a 500
#   (logged; its headers are never sent), before krait.session's changes are stored.
# - A template whose compiled code only writes constant text is "code-free": the Result says so, with the
#   stamp of the file version rendered (krait/pympl/cache.py), and the server serves that output itself until the
#   file changes (docs/pympl.md).
# - Large bodies stream (docs/scripts.md): a body of limits.STREAM_CHUNK bytes or more, or an iterable
#   body, is not put in the Result. run_job() gives the Result (with its length, or -1) and a BodyStream
#   of the pieces, which the pool's loop sends behind it; a failure of site code while the pieces are
#   produced is kept in the stream's `error`. A HEAD request gets no pieces: an iterable is not run.
#   A ResponseFile names its file in the Result, and the server sends it.
# - A spooled request body (krait/server/bodies.py) is read from its file only if site code asks; the
#   request drops what it read once the response is produced, so a large upload is not kept until the
#   worker's next request.

from __future__ import annotations

import functools
import os
import re
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import krait
from krait import limits, mime
from krait._response import ResponseFile, response_parts
from krait.errors import HttpError, InvalidForm, InvalidJSON, NotFound, TemplateSyntaxError
from krait.http import abnf
from krait.pool import jobs
from krait.pympl import render_into
from krait.worker.site import Site

TEMPLATE_EXTENSIONS = (".html", ".htm", ".pyml")
_KRAIT_DIR = os.path.dirname(os.path.abspath(krait.__file__)) + os.sep
_FIELD_NAME = re.compile(abnf.TOKEN)
_FIELD_VALUE = re.compile("[\t\x20-\x7e\xa0-\xff]*")  # see the rules above


class JobRun:
    """Runs one job's site code against one namespace; `out` collects the rendered text."""

    def __init__(self, site: Site, ns: dict[str, Any]) -> None:
        self.site = site
        self.ns = ns
        self.out: list[str] = []
        self.view_path: str | None = None
        self.first_code: Any = None  # the compiled code of the first template rendered (the target)
        self.nesting: list[str] = []  # the files being rendered, outermost first

    def include(self, value: Any) -> None:
        """@import: render or run another file of the site, inline, into the same output."""
        path = krait.get_full_path(str(value))
        if not os.path.isfile(path):
            raise NotFound("imported file not found: %s" % value)
        self.run_file(path)

    def include_ctrl(self, ctrl: Any) -> None:
        """@import-ctrl: push a controller, include its view, pop it."""
        self.ns["ctrl"] = krait.mvc.push_ctrl(ctrl)
        self.run_file(_view_of(ctrl))
        self.ns["ctrl"] = krait.mvc.pop_ctrl()

    def run_file(self, path: str) -> None:
        nesting = self.nesting
        if len(nesting) >= limits.MAX_IMPORT_DEPTH:
            chain = [os.path.relpath(p, self.site.root) for p in nesting + [path]]
            raise RecursionError("@import and views nest more than %d deep (a cycle?): %s"
                                 % (limits.MAX_IMPORT_DEPTH, " -> ".join(chain[:3] + ["..."] + chain[-5:])))
        nesting.append(path)
        if path.lower().endswith(TEMPLATE_EXTENSIONS):  # any case, as the server decides (docs/site-layout.md)
            code = self.site.templates.get(path)
            if self.first_code is None:
                self.first_code = code
            render_into(code, self.ns, self.out, self.include, self.include_ctrl)
        elif path.lower().endswith(".py"):
            self.run_script(path)
        else:
            with open(path, "rb") as f:
                self.out.append(f.read().decode("utf-8", "replace"))
        nesting.pop()

    def run_script(self, path: str) -> None:
        exec(self.site.scripts.get(path), self.ns)
        ctrl = krait.mvc.init_ctrl
        if ctrl is not None:
            krait.mvc.init_ctrl = None  # consumed: a script imported by the view must not re-trigger it
            self.ns["ctrl"] = krait.mvc.push_ctrl(ctrl)
            view_path = _view_of(ctrl)
            if self.view_path is None:
                self.view_path = view_path
            self.run_file(view_path)
            self.ns["ctrl"] = krait.mvc.pop_ctrl()


def _view_of(ctrl: Any) -> str:
    """The path of a controller's view; FileNotFoundError (ValueError) naming the view and the controller
    when the file does not exist (lies outside the site root)."""
    view = ctrl.get_view()
    cls = type(ctrl)
    name = cls.__qualname__ if cls.__module__ == "__main__" else "%s.%s" % (cls.__module__, cls.__qualname__)
    try:
        path = krait.get_full_path(str(view))
    except HttpError:  # a bug of the site's, like a missing view: not the client's 403
        raise ValueError("view %r of controller %s is not inside the site root" % (view, name)) from None
    if not os.path.isfile(path):
        raise FileNotFoundError("view %r of controller %s does not exist" % (view, name))
    return path


def _content_type(job: jobs.Job, view_path: str | None) -> str:
    explicit = krait._content_type
    if explicit:
        explicit = str(explicit)
        if explicit.startswith("ext/"):
            return mime.for_extension(explicit[4:])
        return explicit
    if job.path.lower().endswith(".py"):  # a script's body comes from its MVC view, if it rendered one
        return _type_of_file(view_path) if view_path else mime.DEFAULT
    return _type_of_file(job.path)


def _type_of_file(path: str) -> str:
    if path.lower().endswith(".pyml"):  # extensions count in any case (docs/site-layout.md)
        return mime.for_extension(os.path.splitext(path[:-5])[1] or ".html")
    return mime.for_path(path)


def _code_free(code: Any) -> bool:
    # Imports count as code here, so a page that @imports anything is always treated as dynamic; so does
    # code nested in a lambda or a comprehension (a code object among the constants), whose names are
    # its own.
    return set(code.co_names) <= {"__pympl_w"} and not any(type(c) is types.CodeType for c in code.co_consts)


def _checked_headers(pairs: Any) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    size = 0
    for item in pairs or ():
        name, value = item
        name, value = str(name), str(value).strip(" \t")
        size += len(name) + len(value) + 4  # "name: value\r\n"
        if len(headers) >= limits.MAX_RESPONSE_HEADER_COUNT or size > limits.MAX_RESPONSE_HEADER_BLOCK:
            raise ValueError("refused to send the response headers: more than %d fields or %d bytes"
                             % (limits.MAX_RESPONSE_HEADER_COUNT, limits.MAX_RESPONSE_HEADER_BLOCK))
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError("refused to send header %r: not a valid field name (RFC 9110 section 5.1)" % name)
        if not _FIELD_VALUE.fullmatch(value):
            raise ValueError("refused to send header %r: a control character or a character beyond Latin-1 in "
                             "its value (RFC 9110 section 5.5)" % name)
        headers.append((name, value))
    return tuple(headers)


def _check_status(status: int, reason: str, body: Any) -> Any:
    """Refuse what no response may be; the body to send (an empty list or tuple for a 204 or 304 is b"")."""
    if status < 200:
        raise ValueError("refused to send status %d as the response: a script's response must be final "
                         "(200-599; RFC 9110 section 15.2)" % status)
    if status > 599:
        raise ValueError("refused to send status %d: a status code is 100-599 (RFC 9110 section 15)" % status)
    if status in (204, 205, 304):  # RFC 9110 sections 15.3.5, 15.3.6 and 15.4.5
        if type(body) in (list, tuple) and not body:
            return b""
        if type(body) is not bytes or body:  # another iterable could only be known empty by running it
            raise ValueError("refused to send a %d response with a body (RFC 9110 section 6.4.1)" % status)
    if not _FIELD_VALUE.fullmatch(reason):
        raise ValueError("refused to send reason phrase %r: a control character or a character beyond "
                         "Latin-1 (RFC 9112 section 4)" % reason)
    return body


def error_report(exc: BaseException, site_root: str, status: int = 500) -> jobs.ErrorReport:
    """What the server needs to log and show an exception of site code: type, message, the innermost
    site frame's file:line, and the traceback of the site's own frames."""
    where = ""
    if isinstance(exc, TemplateSyntaxError):
        where = "%s:%d" % (exc.path, exc.line)
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename.startswith(site_root):
                where = "%s:%s" % (frame.filename, frame.lineno)
        if not where and isinstance(exc, SyntaxError) and exc.filename:
            where = "%s:%s" % (exc.filename, exc.lineno)
    try:
        message = str(exc)
    except Exception:  # a broken __str__ of the site's must not take the worker with it
        message = "<exception str() failed>"
    if isinstance(exc, TemplateSyntaxError):
        message = exc.message  # without the location: the text has it (see the module comment)
        text = "TemplateSyntaxError: %s\n" % exc
    else:
        # Only the site's own frames (scripts, templates) and library frames they called: Krait's plumbing
        # above them would only hide the line that matters. Chained exceptions keep theirs.
        report = traceback.TracebackException.from_exception(exc)
        parts = [report]
        while parts:
            part = parts.pop()
            part.stack = traceback.StackSummary.from_list(
                [f for f in part.stack if not f.filename.startswith(_KRAIT_DIR)])
            parts += [p for p in (part.__cause__, part.__context__) if p is not None] + list(part.exceptions or ())
        text = "".join(report.format())
    return jobs.ErrorReport(status, type(exc).__name__, message, where, text)


class BodyStream:
    """The pieces of a streamed body, as bytes of at most STREAM_CHUNK; a failure of the site code that
    produces them ends the pieces early and is kept in `error`."""

    def __init__(self, site: Site, source: Iterable[Any], request: Any, done: Callable[[], None]) -> None:
        self.site = site
        self.source = source
        self.request = request
        self.done = done  # called once the body ended (the request's globals may go)
        self.error: jobs.ErrorReport | None = None

    def __iter__(self) -> Iterator[Any]:
        size = limits.STREAM_CHUNK
        try:
            for piece in self.source:
                if isinstance(piece, str):
                    piece = piece.encode("utf-8")
                elif not isinstance(piece, bytes):
                    piece = bytes(piece)
                if len(piece) <= size:
                    if piece:  # an empty piece would end a chunked body
                        yield piece
                    continue
                with memoryview(piece) as view:
                    for start in range(0, len(piece), size):
                        yield view[start:start + size]
        except BaseException as exc:
            self.error = error_report(exc, self.site.root)
        finally:
            self.close()

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # a generator's own cleanup failing changes nothing now
                pass
        _forget_body(self.request)
        self.done()


def _forget_body(request: Any) -> None:
    if request._body_path:
        request._spooled(request._body_path)  # a read body goes back to being only its file


def handle(site: Site, job: jobs.Job) -> jobs.Result:
    """Run one job and describe its response, with any streamed body joined into `body` (never raises)."""
    result, stream = run_job(site, job)
    if stream is None:
        return result
    body = b"".join(stream)
    if stream.error is not None:
        return jobs.Result(500, "", (), b"", None, stream.error)
    return result._replace(body=body, stream=None)


def run_job(site: Site, job: jobs.Job) -> tuple[jobs.Result, BodyStream | None]:
    """Run one job: its Result, and the stream of its body when the body streams (never raises)."""
    site.restore_modules()
    ns = site.namespace(websocket=job.kind == jobs.WEBSOCKET)
    request = krait.Request(job.method, job.url, job.query_string, job.http_version, None, job.body,
                            remote_addr=job.remote_addr, scheme=job.scheme, path=job.decoded_path)
    if job.body_file:
        request._spooled(job.body_file)
    # The server already lower-cased the names and joined repeated fields (krait.http does), and the
    # dict is this job's own: the public constructor's normalising is skipped.
    request.headers = job.headers
    krait._begin_request(request, job.url_params)
    if job.kind == jobs.WEBSOCKET:
        krait.websockets.request = krait.websockets.WebsocketsRequest(request)
    if job.rel_path.startswith(".errors/"):  # the site's own error page: tell it which error and where
        ns["status"] = int(os.path.basename(job.rel_path).split(".")[0])
        ns["path"] = job.decoded_path
        ns["traceback"] = job.error_text
    try:
        result, stream = _run(site, job, ns)
    except (InvalidJSON, InvalidForm) as exc:  # the client's mistake, no secret: say what (docs/scripts.md)
        result, stream = jobs.Result(400, "Bad Request", (), (str(exc) + "\n").encode("utf-8"),
                                     "text/plain; charset=utf-8"), None
    except HttpError as exc:
        result, stream = jobs.Result(exc.status, "", (), b"", None, error_report(exc, site.root, exc.status)), None
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from site code are script errors too
        result, stream = jobs.Result(500, "", (), b"", None, error_report(exc, site.root)), None
    done = _nothing if job.kind == jobs.WEBSOCKET else functools.partial(site.release, [ns])
    del ns  # release() must hold the only reference
    if stream is None:
        _forget_body(request)
        done()
        return result, None
    return result, BodyStream(site, stream, request, done)


def _nothing() -> None:
    """A WebSocket route script's globals stay: the controller it made lives on with them."""


def _run(site: Site, job: jobs.Job, ns: dict[str, Any]) -> tuple[jobs.Result, Iterable[Any] | None]:
    """run_job()'s site code: the Result, and the source of a streamed body's pieces."""
    session = krait.session  # this request's, even if site code rebinds the name
    run = JobRun(site, ns)
    try:
        if job.kind == jobs.TEMPLATE:
            run.run_file(job.path)
        else:
            run.run_script(job.path)
    except FileNotFoundError as exc:
        if exc.filename != job.path:
            raise
        # Deleted since the server routed the request (it keeps a lookup up to a second): as for a static
        # file that vanished, the client gets a 404, not a 500 for a bug.
        raise NotFound("file unavailable: %s" % exc.strerror) from None
    upgrade = job.kind == jobs.WEBSOCKET and krait.websockets.response is not None and krait.response is None
    headers = extra = _checked_headers(krait.extra_headers)
    if krait.response is not None and not upgrade:
        status, reason, own, body = response_parts(krait.response)
        status, reason = int(status), str(reason)  # plain types cross the pipe (an IntEnum would not)
        body = _check_status(status, reason, body)
        headers = _checked_headers((*own, *extra))  # the whole block, for its caps
    content_type = None
    if not upgrade and not isinstance(krait.response, ResponseFile):
        content_type = _content_type(job, run.view_path)
        if not _FIELD_VALUE.fullmatch(content_type):
            raise ValueError("refused to send Content-Type %r: a control character or a character beyond "
                             "Latin-1 (RFC 9110 section 5.5)" % content_type)
    # Only a response that passed its checks stores what the site code changed in krait.session (changes
    # made later, while a streamed body is produced, are not stored: docs/sessions.md).
    headers += session._end(job.scheme)
    if upgrade:
        proto = krait.websockets.response.protocol
        proto = None if proto is None else str(proto)
        return jobs.Result(101, "Switching Protocols", headers, b"", None, None, proto), None
    if krait.response is not None:
        if isinstance(krait.response, ResponseFile):
            return jobs.Result(status, reason, headers, b"", None, file=krait.response.path), None
    else:
        status, reason = 200, "OK"
        body = "".join(run.out).encode("utf-8")
    if type(body) is bytes and len(body) < limits.STREAM_CHUNK:
        code_free = None
        if job.kind == jobs.TEMPLATE and _code_free(run.first_code):
            code_free = site.templates.version(job.path)
        return jobs.Result(status, reason, headers, body, content_type, None, None, code_free), None
    length = len(body) if type(body) is bytes else -1
    if job.method == "HEAD":
        return jobs.Result(status, reason, headers, b"", content_type, stream=length), ()
    source = (body,) if length >= 0 else body  # bytes: one piece, which BodyStream cuts up
    return jobs.Result(status, reason, headers, b"", content_type, stream=length), source
