# Dispatch: one parsed request in, one Reply out (server process; no socket I/O here).
#
# Strategy: route the request (krait/routing.py); a static target is answered from krait/static.py; a
# script or template becomes a Job for the worker pool and its Result becomes the Reply. Errors are
# translated at exactly one place, `error_reply`: an HttpError keeps its status (404, 405 + Allow, 501,
# 503 + Retry-After, 504), a worker ErrorReport becomes its status with the detail shown only in --debug
# mode, and a site's own error page (SITE/.errors/<status>.html, a Pympl template) is used when present.
# The headers every response carries (Date, Server) are added by channel.py; dispatch adds
# Cache-Control (SPEC section 5 and reference section 4.7), Content-Type and optional gzip.

from __future__ import annotations

import gzip as _gzip
import html
import logging
import os
from typing import Any, NamedTuple

from krait import config as site_config
from krait import jobs, limits, mime
from krait.errors import HttpError
from krait.routing import SCRIPT, STATIC, Router, Target, decode_path
from krait.static import StaticFiles, not_modified

log = logging.getLogger("krait")

DYNAMIC_CACHE_CONTROL = "no-cache, no-store, must-revalidate"


class Reply(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    file_range: tuple[str, int, int] | None = None  # (path, offset, length) to stream with sendfile
    reason: str | None = None
    error: str | None = None  # what went wrong, for the log


class RequestInfo(NamedTuple):
    """What dispatch needs from the HTTP layer, already adjusted for trusted proxies."""

    method: str
    target: str  # raw request-target
    http_version: str  # "1.1"
    headers: dict[str, str]
    body: bytes
    remote_addr: tuple[str, int] | None
    scheme: str


class App:
    """Everything the server process knows about the site: routes, cache rules, pools."""

    def __init__(self, settings: Any, pool: Any, ws_pool: Any, cfg: Any) -> None:
        self.settings = settings
        self.pool = pool
        self.ws_pool = ws_pool
        self.cfg = cfg
        routes = [site_config.Route(*r) for r in cfg.routes] if cfg.routes is not None else [site_config.Route()]
        self.router = Router(settings.site_root, routes, use_cache=not settings.debug)
        self.root = self.router.root
        self.static = StaticFiles(lambda rel: site_config.cache_control(rel, False, cfg))
        self._gzip_cache: dict[tuple[str, str], bytes] = {}

    # --- requests ---------------------------------------------------------------------------

    def handle(self, req: RequestInfo, slot: Any = None, target: Target | None = None) -> Reply:
        """Answer one request. `slot` (the caller's FairGate slot, see krait/gate.py) is given up when
        the request goes to a script worker, so waiting never blocks static files. `target` is the
        route the caller already found, if any."""
        path, _, query = req.target.partition("?")
        try:
            if target is None:
                target = self.router.route(req.method, origin_path(path))
            if target.kind == STATIC:
                r = self.static.reply(target.path, target.rel_path, req.method, req.headers)
                reply = Reply(r.status, r.headers, r.body, r.file_range)
            else:
                reply = self.run_job(req, target, path, query, slot)
        except HttpError as exc:
            reply = self.error_reply(exc.status, str(exc), list(exc.headers), req)
        except OSError as exc:  # a file vanished or became unreadable between routing and reading
            reply = self.error_reply(404, "file unavailable: %s" % exc.strerror, [], req)
        if self.settings.gzip and reply.file_range is None:
            if reply.status == 200:
                reply = self.maybe_gzip(reply, req.headers.get("accept-encoding", ""))
            elif reply.status == 304:
                reply = self.gzip_validator(reply, req.headers.get("accept-encoding", ""))
        if reply.status == 304:  # RFC 9110 15.4.5: validators and caching fields, no representation metadata
            reply = reply._replace(headers=[h for h in reply.headers if h[0] != "Content-Type"])
        return reply

    def gzip_validator(self, reply: Reply, accept_encoding: str) -> Reply:
        """A 304 names the representation the client would get: the gzip one carries the -gz tag."""
        ctype = next((v for n, v in reply.headers if n == "Content-Type"), "")
        size = next((int(v) for n, v in reply.headers if n == "Content-Length"), 0)
        if size < limits.GZIP_MIN_SIZE or not mime.is_compressible(ctype):
            return reply
        headers = [(n, v) for n, v in reply.headers if n != "Content-Length"] + [("Vary", "Accept-Encoding")]
        if _accepts_gzip(accept_encoding):
            headers = [(n, v[:-1] + '-gz"' if n == "ETag" else v) for n, v in headers]
        return reply._replace(headers=headers)

    def make_job(self, req: RequestInfo, target: Target, path: str, query: str, kind: str) -> jobs.Job:
        return jobs.Job(kind, target.path, target.rel_path, req.method, path, target.decoded_path,
                        query, "HTTP/" + req.http_version, tuple(req.headers.items()), req.body,
                        req.remote_addr, req.scheme, target.url_params)

    def run_job(self, req: RequestInfo, target: Target, path: str, query: str, slot: Any = None) -> Reply:
        kind = jobs.SCRIPT if target.kind == SCRIPT else jobs.TEMPLATE
        job = self.make_job(req, target, path, query, kind)
        if slot is not None:
            slot.leave_gate()  # not taken again: what is left (building the reply) is short
        result = self.pool.run(job, self.settings.timeout)
        reply = self.result_reply(result, target.rel_path, req)
        if not result.dynamic and result.error is None and result.status == 200:
            reply = self.static_template_reply(reply, target, req)
        return reply

    def static_template_reply(self, reply: Reply, target: Target, req: RequestInfo) -> Reply:
        """A code-free template is cached like a static file: validators, cache table, 304 (ref. 4.7)."""
        version = self.static.version(target.path, target.rel_path)
        headers = [(n, v) for n, v in reply.headers if n != "Cache-Control"]
        headers += [("ETag", version.etag), ("Last-Modified", version.last_modified),
                    ("Cache-Control", site_config.cache_control(target.rel_path, False, self.cfg))]
        if req.method in ("GET", "HEAD") and not_modified(version, req.headers):
            return Reply(304, [h for h in headers if h[0] != "Content-Type"] + [("Content-Length", str(len(reply.body)))])
        return reply._replace(headers=headers)

    def result_reply(self, result: jobs.Result, rel_path: str, req: RequestInfo) -> Reply:
        if result.error is not None:
            return self.error_reply(result.error.status, _report_text(result.error), [], req, result.error)
        headers = list(result.headers)
        names = {name.lower() for name, _ in headers}
        if "cache-control" not in names:
            headers.append(("Cache-Control", self.dynamic_cache_control(rel_path)))
        if "content-type" not in names and (result.body or req.method == "HEAD"):
            headers.append(("Content-Type", result.content_type or mime.DEFAULT))
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        return Reply(result.status, headers, result.body, None, result.reason or None)

    def dynamic_cache_control(self, rel_path: str) -> str:
        # Dynamic targets default to no-store; a cache list naming the target overrides (reference 4.7).
        return site_config.cache_control(rel_path, True, self.cfg)

    # --- errors ---------------------------------------------------------------------------

    def error_reply(self, status: int, detail: str, headers: list[tuple[str, str]], req: RequestInfo | None,
                    report: jobs.ErrorReport | None = None) -> Reply:
        if status == 503:
            headers = headers + [("Retry-After", str(limits.RETRY_AFTER))]
        page = self.custom_error_page(status, req) if req is not None else None
        if page is None:
            page = error_page(status, detail, report, self.settings.debug)
        headers = headers + [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", DYNAMIC_CACHE_CONTROL)]
        return Reply(status, headers, page, None, None, detail)

    def custom_error_page(self, status: int, req: RequestInfo) -> bytes | None:
        """Render SITE/.errors/<status>.html when the site has one (never for 5xx caused by the pool)."""
        if status not in (403, 404, 405) or self.pool is None:
            return None
        page = os.path.join(self.root, ".errors", "%d.html" % status)
        if not os.path.isfile(page):
            return None
        path = req.target.partition("?")[0]
        try:
            decoded = decode_path(origin_path(path))
        except HttpError:  # the error being rendered may be about this very path
            decoded = origin_path(path)
        target = Target("template", page, ".errors/%d.html" % status, (), decoded)
        try:
            result = self.pool.run(self.make_job(req, target, path, "", jobs.TEMPLATE), self.settings.timeout)
        except (HttpError, ValueError):
            return None
        if result.error is not None:
            log.error("error page %s failed: %s", page, _report_text(result.error))
            return None
        return result.body

    # --- compression ----------------------------------------------------------------------

    def maybe_gzip(self, reply: Reply, accept_encoding: str) -> Reply:
        ctype = ""
        for name, value in reply.headers:
            lname = name.lower()
            if lname == "content-encoding":
                return reply
            if lname == "content-type":
                ctype = value
        if len(reply.body) < limits.GZIP_MIN_SIZE or not mime.is_compressible(ctype):
            return reply
        if not _accepts_gzip(accept_encoding):
            return reply._replace(headers=reply.headers + [("Vary", "Accept-Encoding")])
        etag = next((v for n, v in reply.headers if n == "ETag"), None)
        body = self._gzip_cache.get((etag, ctype)) if etag else None
        if body is None:
            body = _gzip.compress(reply.body, limits.GZIP_LEVEL, mtime=0)
            if etag:
                if len(self._gzip_cache) > 256:
                    self._gzip_cache.clear()
                self._gzip_cache[(etag, ctype)] = body
        headers = []
        for name, value in reply.headers:
            if name == "Content-Length":
                continue
            if name == "ETag":  # a different representation needs a different tag (RFC 9110 8.8.3)
                value = value[:-1] + '-gz"'
            headers.append((name, value))
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        return reply._replace(headers=headers, body=body)


def _accepts_gzip(accept: str) -> bool:
    # RFC 9110 section 12.5.3: "gzip" (or "*") listed with a non-zero q.
    for item in accept.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        return q > 0
    return False


def origin_path(path: str) -> str:
    """The path of an absolute-form target (RFC 9112 section 3.2.2), or the path itself."""
    if path.startswith("/"):
        return path
    if "://" in path:
        rest = path.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    if path == "*":
        return "/"
    return "/" + path


def _report_text(report: jobs.ErrorReport) -> str:
    where = " at %s" % report.where if report.where else ""
    return "%s%s: %s" % (report.type_name, where, report.message)


def error_page(status: int, detail: str, report: jobs.ErrorReport | None, debug: bool) -> bytes:
    from krait.http import reason_phrase

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

