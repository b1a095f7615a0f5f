# Dispatch: from one Incoming request to either a Reply or a Pending job for a worker (no socket I/O here).
#
# Design: the channel calls route() once per request, then dispatch(), which answers static files,
# code-free templates a worker has rendered once (krait/server/pages.py) and errors itself (a Reply), and
# turns scripts and other templates into a Pending job. The channel runs the job on
# the pool, outside the request gate, and hands its Result (or the pool's HttpError) to the Pending's
# finish, complete(). Errors become responses at one place, error_reply(): an HttpError keeps its status
# (404, 405 + Allow, 501, 503 + Retry-After, 504), a worker's ErrorReport its status with the details
# shown only in --debug mode; the log line of a 5xx carries the whole report (the traceback of the
# site's frames). When the site has its own page for the status (SITE/.errors/<status>.html, a Pympl
# template; docs/site-layout.md), answer() returns a Pending that renders it, like any template but never
# in the gate; if that page fails, the built-in page is sent (an error page never gets an error page).
# Every reply then gets the same finishing touches: gzip, and no representation metadata on a 304. The
# headers every response carries (Date, Server) are the channel's; Cache-Control follows
# docs/configuration.md.
#
# Reloads: an App is built from one worker generation's krait.config snapshot and stamps that generation
# on its jobs; the pool runs them on that generation only (krait/pool/scheduler.py), and the channel routes
# a request again with the new App when a reload replaced the generation meanwhile. Error pages run on
# whichever generation serves.

from __future__ import annotations

import functools
import html
import logging
import os
from collections.abc import Callable
from typing import Any

from krait import config as site_config
from krait import limits, mime
from krait.errors import HttpError
from krait.http.events import reason_phrase
from krait.pool import jobs
from krait.server.compress import Gzip
from krait.server.pages import CodeFreePages
from krait.server.records import Incoming, Pending, Reply
from krait.server.replies import PlainReplies, plain_key
from krait.server.routing import KNOWN_METHODS, SCRIPT, STATIC, Router, Target
from krait.server.static import FileChanged, FileVersion, StaticFiles, file_reply, open_checked, version_reply
from krait.urls import decode_path

log = logging.getLogger("krait")

DYNAMIC_CACHE_CONTROL = "no-cache, no-store, must-revalidate"

# RFC 9110 section 9.3.7: "OPTIONS *" asks about the server in general, not a resource; it is answered
# here with the methods Krait can route, and never reaches the site's routes.
SERVER_OPTIONS = Reply(200, [("Allow", ", ".join(sorted(KNOWN_METHODS)))])


class App:
    """Everything the server process knows about the site: routes, cache rules, static files."""

    def __init__(self, settings: Any, cfg: site_config.SiteConfig, generation: int = 0) -> None:
        self.settings = settings
        self.generation = generation  # the worker generation whose init.py gave `cfg`
        self.cfg = cfg
        self.router = Router(settings.site_root, cfg.build_routes(), use_cache=not settings.debug)
        self.root = self.router.root
        self.static = StaticFiles(lambda rel: site_config.cache_control(rel, False, cfg))
        self.pages = CodeFreePages(lambda rel: site_config.cache_control(rel, False, cfg))
        self.gzip = Gzip() if settings.gzip else None
        self.plain = None if settings.debug else PlainReplies()

    # --- the request path ---------------------------------------------------------------------

    def route(self, req: Incoming, websocket: bool = False) -> Target | Reply:
        """The target of a request, or the error Reply when no route leads anywhere."""
        if req.target == "*":  # "OPTIONS *" (the only method the reader lets through with it)
            return SERVER_OPTIONS
        try:
            return self.router.route(req.method, req.path, websocket)
        except HttpError as exc:
            return self.error_reply(exc.status, str(exc), list(exc.headers), req)

    def dispatch(self, req: Incoming, routed: Target | Reply) -> Reply | Pending:
        """The Reply for a static file or a routing error; a Pending for a script, a template or an error
        page of the site's."""
        if type(routed) is Reply:
            return self.answer(req, routed)
        target: Target = routed  # type: ignore[assignment]
        if target.kind != STATIC:
            if target.kind != SCRIPT and req.method in ("GET", "HEAD"):
                page = self.pages.get(target.path)
                if page is not None:  # a code-free template, unchanged since a worker rendered it
                    return self.kept(req, functools.partial(self.pages.get, target.path), page)
            job = self.job(req, target, jobs.SCRIPT if target.kind == SCRIPT else jobs.TEMPLATE)
            return Pending(job, self.generation, functools.partial(self.complete, req, target))
        try:
            st = target.stat or os.stat(target.path)
            version = self.static.version(target.path, target.rel_path, st)
            if version.data is None:  # sent from the file, which is opened before the head is built
                return self.finish(req, file_reply(version, req.method, req.headers, open_checked(target.path, st)))
        except FileChanged as exc:  # replaced since routing (a deploy's rename, say): ask again
            return self.answer(req, self.error_reply(503, str(exc), [], req))
        except OSError as exc:  # the file vanished or became unreadable since routing
            return self.answer(req, self.error_reply(404, "file unavailable: %s" % exc.strerror, [], req))
        return self.kept(req, functools.partial(self.static.version, target.path, target.rel_path), version)

    def kept(self, req: Incoming, current: Callable[[], FileVersion | None], version: FileVersion) -> Reply:
        """The reply for a version of a static file or code-free page; a plain request's 200 is kept to
        answer the same request again (krait/server/replies.py)."""
        reply = self.finish(req, version_reply(version, req.method, req.headers))
        if self.plain is not None and reply.status == 200 and reply.file_range is None:
            key = plain_key(req.method, req.target, req.headers)
            if key is not None:
                self.plain.put(key, current, version, reply)
        return reply

    def plain_reply(self, method: str, target: str, headers: dict[str, str]) -> Reply | None:
        """The kept reply of a plain request without a body, if there is one (krait/server/replies.py)."""
        if self.plain is None:
            return None
        key = plain_key(method, target, headers)
        return None if key is None else self.plain.get(key)

    def job(self, req: Incoming, target: Target, kind: str) -> jobs.Job:
        return jobs.Job(kind, target.path, target.rel_path, req.method, req.url, target.decoded_path, req.query,
                        "HTTP/" + req.http_version, req.headers, req.body, req.remote_addr, req.scheme,
                        target.url_params, body_file=req.body_file)

    def complete(self, req: Incoming, target: Target, outcome: jobs.Result | HttpError) -> Reply | Pending:
        """The Reply for a job's Result, or for the HttpError the pool raised instead (503, 504, 500)."""
        if isinstance(outcome, HttpError):
            reply = self.error_reply(outcome.status, str(outcome), list(outcome.headers), req)
        else:
            reply = self.result_reply(outcome, target.rel_path, req)
            if outcome.code_free is not None and outcome.error is None and outcome.status == 200:
                reply = self.code_free_reply(reply, target, req, outcome.code_free)
            elif target.kind == jobs.TEMPLATE:
                self.pages.forget(target.path)  # it has code now
        return self.answer(req, reply)

    def answer(self, req: Incoming, reply: Reply) -> Reply | Pending:
        """The finished reply, or first the Pending job that renders the site's own page for its error."""
        page = self.error_page_job(req, reply)
        if page is None:
            return self.finish(req, reply)
        return Pending(page, None, functools.partial(self.with_error_page, req, reply))

    def finish(self, req: Incoming, reply: Reply) -> Reply:
        """What every reply gets last: gzip (and its Vary on a 206), and no representation metadata on a 304."""
        if self.gzip is not None and reply.file_range is None and reply.stream is None and not reply.own_tag:
            if reply.status == 200:
                reply = self.gzip.reply(reply, req.headers.get("accept-encoding", ""))
            elif reply.status == 304:
                reply = self.gzip.not_modified(reply, req.headers.get("accept-encoding", ""))
            elif reply.status == 206:
                reply = self.gzip.partial(reply)
        if reply.status == 304:  # RFC 9110 section 15.4.5: validators and caching fields only
            reply = reply._replace(headers=[h for h in reply.headers if h[0] != "Content-Type"])
        return reply

    # --- workers' results -----------------------------------------------------------------------

    def result_reply(self, result: jobs.Result, rel_path: str, req: Incoming) -> Reply:
        if result.error is not None:
            return self.error_reply(result.error.status, report_text(result.error), [], req, result.error)
        headers = list(result.headers)
        names = {name.lower() for name, _ in headers}
        if "cache-control" not in names:
            # Dynamic targets default to no-store; a cache list naming the target overrides.
            value = site_config.cache_control(rel_path, True, self.cfg, sets_cookie="set-cookie" in names)
            headers.append(("Cache-Control", value))
        if "content-type" not in names and (result.body or result.stream or req.method == "HEAD"):
            headers.append(("Content-Type", result.content_type or mime.DEFAULT))
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        if result.file is not None:  # krait.ResponseFile: the file as it is now
            try:
                opened = open(result.file, "rb")
            except OSError as exc:
                return self.error_reply(500, "ResponseFile %s: %s" % (result.file, exc.strerror), [], req)
            size = os.fstat(opened.fileno()).st_size
            headers.append(("Content-Length", str(size)))
            return Reply(result.status, headers, b"", (opened, 0, size), result.reason or None)
        if result.pieces is not None:
            # A known length; else the body goes chunked (close-delimited to an HTTP/1.0 client).
            if result.stream is not None and result.stream >= 0:
                headers.append(("Content-Length", str(result.stream)))
            return Reply(result.status, headers, b"", None, result.reason or None, stream=result.pieces)
        # A script that validates its own responses (it set an ETag, and answers If-None-Match itself)
        # gets them sent as it made them: gzip would change the tag the client sends back to it.
        return Reply(result.status, headers, result.body, None, result.reason or None, own_tag="etag" in names)

    def code_free_reply(self, reply: Reply, target: Target, req: Incoming,
                        source: tuple[int, int, int, int]) -> Reply:
        """A code-free template's output, kept to serve it like a static file from now on, and answered the
        way it will be then: validators, the cache table, 304, ranges."""
        headers = [(n, v) for n, v in reply.headers if n != "Cache-Control"]
        page = self.pages.store(target.path, target.rel_path, source, headers, reply.body)
        return version_reply(page, req.method, req.headers)

    # --- errors ---------------------------------------------------------------------------------

    def error_reply(self, status: int, detail: str, headers: list[tuple[str, str]], req: Incoming | None,
                    report: jobs.ErrorReport | None = None) -> Reply:
        """Krait's own error response (built-in page); its `error` is the detail and any report's traceback."""
        if status == 503:
            headers = headers + [("Retry-After", str(limits.RETRY_AFTER))]
        page = error_page(status, detail, report, self.settings.debug)
        headers = headers + [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", DYNAMIC_CACHE_CONTROL)]
        if report is not None and report.traceback:
            detail += "\n" + report.traceback.rstrip("\n")
        return Reply(status, headers, page, None, None, detail)

    def error_page_job(self, req: Incoming, reply: Reply) -> jobs.Job | None:
        """The job that renders SITE/.errors/<status>.html for one of Krait's own error replies, if the site
        has that page. Not for 503: it means that no worker can run a page now."""
        if reply.error is None or reply.status == 503:
            return None
        page = os.path.join(self.root, ".errors", "%d.html" % reply.status)
        if not os.path.isfile(page):
            return None
        try:
            decoded = decode_path(req.path)
        except HttpError:  # the error being rendered may be about this very path
            decoded = req.path
        target = Target(jobs.TEMPLATE, page, ".errors/%d.html" % reply.status, (), decoded)
        job = self.job(req._replace(query="", body=b"", body_file=""), target, jobs.TEMPLATE)
        return job._replace(error_text=reply.error if self.settings.debug else "")

    def with_error_page(self, req: Incoming, reply: Reply, outcome: jobs.Result | HttpError) -> Reply:
        """The error reply with the body its error page rendered; the built-in page if that failed."""
        if isinstance(outcome, HttpError):
            log.warning("error page .errors/%d.html not rendered: %s", reply.status, outcome)
        elif outcome.error is not None:
            log.error("error page .errors/%d.html failed: %s\n%s", reply.status, report_text(outcome.error),
                      outcome.error.traceback.rstrip("\n"))
        elif outcome.pieces is not None:  # a page of STREAM_CHUNK or more comes in pieces: send them
            reply = reply._replace(body=b"", stream=outcome.pieces)
        else:
            reply = reply._replace(body=outcome.body)
        return self.finish(req, reply)


def report_text(report: jobs.ErrorReport) -> str:
    where = " at %s" % report.where if report.where else ""
    return "%s%s: %s" % (report.type_name, where, report.message)


def error_page(status: int, detail: str, report: jobs.ErrorReport | None, debug: bool) -> bytes:
    """A small HTML page for an error status; the detail and traceback only with --debug."""
    title = "%d %s" % (status, reason_phrase(status))
    body = "<h1>%s</h1>" % html.escape(title)
    if debug:
        body += "<p>%s</p>" % html.escape(detail)
        if report is not None and report.traceback:
            body += "<pre>%s</pre>" % html.escape(report.traceback)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head><body>%s</body></html>\n"
            % (html.escape(title), body)).encode("utf-8", "backslashreplace")  # a lone surrogate of a message


def overload_reply(detail: str = "server overloaded") -> Reply:
    return Reply(503, [("Retry-After", str(limits.RETRY_AFTER)), ("Content-Type", "text/html; charset=utf-8")],
                 error_page(503, detail, None, False), None, None, detail)
