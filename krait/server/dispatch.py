# Dispatch: from one Incoming request to either a Reply or a Job for a worker (no socket I/O here).
#
# Design: the channel calls route() once per request, then dispatch(), which answers static files and
# errors itself (a Reply) and turns scripts and templates into a Job. The channel runs the job on the
# pool and hands its Result (or the pool's HttpError) back to complete(). Errors become responses at one
# place, error_reply(): an HttpError keeps its status (404, 405 + Allow, 501, 503 + Retry-After, 504), a
# worker's ErrorReport its status with the details shown only in --debug mode, and a site's own error
# page (SITE/.errors/<status>.html, a Pympl template) is used when present. Every reply then gets the
# same finishing touches: gzip, and no representation metadata on a 304. The headers every response
# carries (Date, Server) are the channel's; Cache-Control follows docs/configuration.md.

from __future__ import annotations

import html
import logging
import os
from typing import Any

from krait import config as site_config
from krait import limits, mime
from krait.errors import HttpError
from krait.http.events import reason_phrase
from krait.pool import jobs
from krait.server.compress import Gzip
from krait.server.records import Incoming, Reply
from krait.server.routing import SCRIPT, STATIC, Router, Target
from krait.server.static import StaticFiles, not_modified
from krait.urls import decode_path

log = logging.getLogger("krait")

DYNAMIC_CACHE_CONTROL = "no-cache, no-store, must-revalidate"
_ERROR_PAGE_STATUSES = (403, 404, 405)  # a site's .errors/<status>.html is used for these


class App:
    """Everything the server process knows about the site: routes, cache rules, static files."""

    def __init__(self, settings: Any, cfg: site_config.SiteConfig, pool: Any = None) -> None:
        self.settings = settings
        self.pool = pool  # runs the site's own error pages
        self.cfg = cfg
        self.router = Router(settings.site_root, cfg.build_routes(), use_cache=not settings.debug)
        self.root = self.router.root
        self.static = StaticFiles(lambda rel: site_config.cache_control(rel, False, cfg))
        self.gzip = Gzip() if settings.gzip else None

    # --- the request path ---------------------------------------------------------------------

    def route(self, req: Incoming, websocket: bool = False) -> Target | Reply:
        """The target of a request, or the error Reply when no route leads anywhere."""
        try:
            return self.router.route(req.method, req.path, websocket)
        except HttpError as exc:
            return self.error_reply(exc.status, str(exc), list(exc.headers), req)

    def dispatch(self, req: Incoming, routed: Target | Reply) -> Reply | jobs.Job:
        """The Reply for a static file or a routing error; the Job for a script or template."""
        if type(routed) is Reply:
            return self.finish(req, routed)
        target: Target = routed  # type: ignore[assignment]
        if target.kind != STATIC:
            return self.job(req, target, jobs.SCRIPT if target.kind == SCRIPT else jobs.TEMPLATE)
        try:
            reply = self.static.reply(target.path, target.rel_path, req.method, req.headers)
        except OSError as exc:  # the file vanished or became unreadable since routing
            reply = self.error_reply(404, "file unavailable: %s" % exc.strerror, [], req)
        return self.finish(req, reply)

    def job(self, req: Incoming, target: Target, kind: str) -> jobs.Job:
        return jobs.Job(kind, target.path, target.rel_path, req.method, req.url, target.decoded_path, req.query,
                        "HTTP/" + req.http_version, req.headers, req.body, req.remote_addr, req.scheme,
                        target.url_params)

    def complete(self, req: Incoming, target: Target, outcome: jobs.Result | HttpError) -> Reply:
        """The Reply for a job's Result, or for the HttpError the pool raised instead (503, 504, 500)."""
        if isinstance(outcome, HttpError):
            reply = self.error_reply(outcome.status, str(outcome), list(outcome.headers), req)
        else:
            reply = self.result_reply(outcome, target.rel_path, req)
            if not outcome.dynamic and outcome.error is None and outcome.status == 200:
                reply = self.static_template_reply(reply, target, req)
        return self.finish(req, reply)

    def finish(self, req: Incoming, reply: Reply) -> Reply:
        """What every reply gets last: gzip (and its Vary on a 206), and no representation metadata on a 304."""
        if self.gzip is not None and reply.file_range is None:
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
            headers.append(("Cache-Control", site_config.cache_control(rel_path, True, self.cfg)))
        if "content-type" not in names and (result.body or req.method == "HEAD"):
            headers.append(("Content-Type", result.content_type or mime.DEFAULT))
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        return Reply(result.status, headers, result.body, None, result.reason or None)

    def static_template_reply(self, reply: Reply, target: Target, req: Incoming) -> Reply:
        """A code-free template is cached like a static file: validators, the cache table, 304."""
        version = self.static.version(target.path, target.rel_path)
        headers = [(n, v) for n, v in reply.headers if n != "Cache-Control"]
        headers += [("ETag", version.etag), ("Last-Modified", version.last_modified),
                    ("Cache-Control", site_config.cache_control(target.rel_path, False, self.cfg))]
        if req.method in ("GET", "HEAD") and not_modified(version, req.headers):
            headers = [h for h in headers if h[0] != "Content-Type"]
            return Reply(304, headers + [("Content-Length", str(len(reply.body)))])
        return reply._replace(headers=headers)

    # --- errors ---------------------------------------------------------------------------------

    def error_reply(self, status: int, detail: str, headers: list[tuple[str, str]], req: Incoming | None,
                    report: jobs.ErrorReport | None = None) -> Reply:
        if status == 503:
            headers = headers + [("Retry-After", str(limits.RETRY_AFTER))]
        page = self.custom_error_page(status, req) if req is not None else None
        if page is None:
            page = error_page(status, detail, report, self.settings.debug)
        headers = headers + [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", DYNAMIC_CACHE_CONTROL)]
        return Reply(status, headers, page, None, None, detail)

    def custom_error_page(self, status: int, req: Incoming) -> bytes | None:
        """Render SITE/.errors/<status>.html when the site has one."""
        if status not in _ERROR_PAGE_STATUSES or self.pool is None:
            return None
        page = os.path.join(self.root, ".errors", "%d.html" % status)
        if not os.path.isfile(page):
            return None
        try:
            decoded = decode_path(req.path)
        except HttpError:  # the error being rendered may be about this very path
            decoded = req.path
        target = Target(jobs.TEMPLATE, page, ".errors/%d.html" % status, (), decoded)
        try:
            result = self.pool.run(self.job(req._replace(query=""), target, jobs.TEMPLATE), self.settings.timeout)
        except (HttpError, ValueError):
            return None
        if result.error is not None:
            log.error("error page %s failed: %s", page, report_text(result.error))
            return None
        return result.body


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
            % (html.escape(title), body)).encode("utf-8")


def overload_reply(detail: str = "server overloaded") -> Reply:
    return Reply(503, [("Retry-After", str(limits.RETRY_AFTER)), ("Content-Type", "text/html; charset=utf-8")],
                 error_page(503, detail, None, False), None, None, detail)
