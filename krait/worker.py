# Runs inside a worker process: site code lives here, never in the server process.
#
# Strategy: at start the worker puts SITE/.py on sys.path, runs .py/init.py once in a namespace dict that
# plays the role of 0.5.2's shared __main__ globals, snapshots krait.config and reports WorkerReady. Then it
# serves one Job at a time from its pipe. Every job gets a fresh copy of the post-init namespace (plain
# containers in it are copied one level deep, so a request that appends to a global list leaves no trace) and freshly
# reset krait.* module state (krait._begin_request), runs the .py script (then its MVC view) or renders the
# template into one output list, and answers a Result. Any exception becomes an ErrorReport: the server
# logs it and shows it only with --debug. An accepted WebSocket job keeps the worker for the session: the
# controller's messages and the client's messages cross the same pipe as small tuples (krait/jobs.py).

from __future__ import annotations

import builtins
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import krait
from krait import jobs, limits, mime
from krait.pipe import MessagePipe
from krait.pympl import TemplateCache, render_into
from krait.errors import HttpError, NotFound, TemplateSyntaxError

TEMPLATE_EXTENSIONS = (".html", ".htm", ".pyml")
_KRAIT_DIR = os.path.dirname(os.path.abspath(krait.__file__)) + os.sep
_BAD_HEADER_CHARS = ("\r", "\n", "\0")


class _ScriptCache:
    """Compiled .py files keyed by path, recompiled when mtime or size change."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, Any]] = {}

    def get(self, path: str) -> Any:
        st = os.stat(path)
        entry = self._entries.get(path)
        if entry is not None and entry[0] == st.st_mtime_ns and entry[1] == st.st_size:
            return entry[2]
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec", dont_inherit=True)
        if len(self._entries) > 1000:
            self._entries.clear()
        self._entries[path] = (st.st_mtime_ns, st.st_size, code)
        return code


class Site:
    """The worker's view of the site: the post-init namespace and the code caches."""

    def __init__(self, site_root: str, template_cache_size: int) -> None:
        self.root = os.path.realpath(site_root)
        self.py_dir = os.path.join(self.root, ".py")
        if self.py_dir not in sys.path:
            sys.path.append(self.py_dir)
        krait.site_root = self.root
        self.templates = TemplateCache(template_cache_size)
        self.scripts = _ScriptCache()
        ns: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "krait": krait,
            "sys": sys,
            "os": os,
            "project_dir": self.root,
            "site_py_dir": self.py_dir,
        }
        init = os.path.join(self.py_dir, "init.py")
        ns["main_script_path"] = init
        if os.path.isfile(init):
            exec(self.scripts.get(init), ns)
        self.base = ns
        # The krait modules as init.py left them: restored before every request, so that nothing a
        # request assigns to krait.* (even a brand-new attribute) is seen by the next one.
        self.modules = [(vars(m), dict(vars(m))) for m in (krait, krait.config, krait.mvc, krait.cookie,
                                                           krait.websockets)]
        self.copy_keys = [k for k, v in ns.items() if type(v) in (list, dict, set) and k != "__builtins__"]

    def restore_modules(self) -> None:
        # dict.update() puts every saved value back, and any deleted attribute, at C speed (2.3 us for
        # the five modules' 157 names); a key-by-key comparison in Python cost 6 us per request, because
        # every request sets krait.request and krait.response. After the update the live dict holds
        # every saved name, so it is larger exactly when the request added names: a length check finds
        # that case, where comparing the key views first cost another 2.4 us on every request.
        # Values are never compared, so a hostile __eq__ is harmless.
        for live, saved in self.modules:
            live.update(saved)
            if len(live) != len(saved):  # the request added module attributes
                for key in [k for k in live if k not in saved]:
                    del live[key]

    def fresh_namespace(self) -> dict[str, Any]:
        # One level of copying: a request that appends to, removes from or rebinds an item of a global
        # list/dict/set leaves no trace. Objects nested inside them stay shared (a deep copy of a large
        # table built by init.py would cost more than the request itself); docs/scripts.md says so.
        ns = self.base.copy()
        for key in self.copy_keys:
            ns[key] = ns[key].copy()
        return ns


class Request:
    """Runs one job's site code against one namespace; `out` collects the rendered text."""

    def __init__(self, site: Site, ns: dict[str, Any]) -> None:
        self.site = site
        self.ns = ns
        self.out: list[str] = []
        self.view_path: str | None = None
        self.first_code: Any = None  # the compiled code of the first template rendered (the target)

    def include(self, value: Any) -> None:
        """@import: render or run another file of the site, inline, into the same output."""
        path = krait.get_full_path(str(value))
        if not os.path.isfile(path):
            raise NotFound("imported file not found: %s" % value)
        self.run_file(path)

    def include_ctrl(self, ctrl: Any) -> None:
        """@import-ctrl: push a controller, include its view, pop it."""
        self.ns["ctrl"] = krait.mvc.push_ctrl(ctrl)
        self.include(ctrl.get_view())
        self.ns["ctrl"] = krait.mvc.pop_ctrl()

    def run_file(self, path: str) -> None:
        if path.endswith(TEMPLATE_EXTENSIONS):
            code = self.site.templates.get(path)
            if self.first_code is None:
                self.first_code = code
            render_into(code, self.ns, self.out, self.include, self.include_ctrl)
        elif path.endswith(".py"):
            self.run_script(path)
        else:
            with open(path, "rb") as f:
                self.out.append(f.read().decode("utf-8", "replace"))

    def run_script(self, path: str) -> None:
        exec(self.site.scripts.get(path), self.ns)
        ctrl = krait.mvc.init_ctrl
        if ctrl is not None:
            krait.mvc.init_ctrl = None  # consumed: a script imported by the view must not re-trigger it
            self.ns["ctrl"] = krait.mvc.push_ctrl(ctrl)
            view = ctrl.get_view()
            view_path = krait.get_full_path(str(view))
            if not os.path.isfile(view_path):
                raise NotFound("view not found: %s" % view)
            if self.view_path is None:
                self.view_path = view_path
            self.run_file(view_path)
            self.ns["ctrl"] = krait.mvc.pop_ctrl()


def _content_type(job: jobs.Job, view_path: str | None) -> str:
    explicit = krait._content_type
    if explicit:
        if explicit.startswith("ext/"):
            return mime.for_extension(explicit[4:])
        return explicit
    if job.path.endswith(".py"):  # a script's body comes from its MVC view, if it rendered one
        return _type_of_file(view_path) if view_path else mime.DEFAULT
    return _type_of_file(job.path)


def _type_of_file(path: str) -> str:
    # page.css.pyml is CSS; a plain page.pyml is HTML (reference 4.6, with HTML as the friendlier default).
    if path.endswith(".pyml"):
        return mime.for_extension(os.path.splitext(path[:-5])[1] or ".html")
    return mime.for_path(path)


def _code_free(code: Any) -> bool:
    # A template whose compiled code only writes constant text (reference 4.1: "not dynamic"). Imports
    # count as code here, so a page that @imports anything is always treated as dynamic.
    return set(code.co_names) <= {"__pympl_w"}


def _checked_headers(pairs: Any) -> tuple[tuple[str, str], ...]:
    headers = []
    for item in pairs or ():
        name, value = item
        name, value = str(name), str(value)
        for ch in _BAD_HEADER_CHARS:
            if ch in name or ch in value:
                raise ValueError("refused to send header %r: CR, LF or NUL in a header name or value" % name)
        headers.append((name, value))
    return tuple(headers)


def _error_report(exc: BaseException, site_root: str, status: int = 500) -> jobs.ErrorReport:
    where = ""
    if isinstance(exc, TemplateSyntaxError):
        where = "%s:%d" % (exc.path, exc.line)
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename.startswith(site_root):
                where = "%s:%s" % (frame.filename, frame.lineno)
        if not where and isinstance(exc, SyntaxError) and exc.filename:
            where = "%s:%s" % (exc.filename, exc.lineno)
    if isinstance(exc, TemplateSyntaxError):
        text = "TemplateSyntaxError: %s\n" % exc
    else:
        # Only the site's own frames (scripts, templates) and library frames they called: Krait's and the
        # stdlib's plumbing above them would only hide the line that matters.
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_KRAIT_DIR)]
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
        text += "".join(traceback.format_exception_only(type(exc), exc))
    return jobs.ErrorReport(status, type(exc).__name__, str(exc), where, text)


def handle(site: Site, job: jobs.Job) -> jobs.Result:
    """Run one job and describe its response (never raises)."""
    site.restore_modules()
    ns = site.fresh_namespace()
    request = krait.Request(job.method, job.url, job.query_string, job.http_version, None, job.body,
                            remote_addr=job.remote_addr, scheme=job.scheme, path=job.decoded_path)
    # The server already lower-cased the names and joined repeated fields (jobs.Job.headers), so the
    # per-field normalising of the public constructor is skipped (handle() of hello.py with a browser's
    # 12 fields: 12.7 -> 10.7 us).
    request.headers = dict(job.headers)
    krait._begin_request(request, dict(job.url_params))
    if job.kind == jobs.WEBSOCKET:
        krait.websockets.request = krait.websockets.WebsocketsRequest(request)
    if job.rel_path.startswith(".errors/"):  # the site's own error page: tell it which error and where
        ns["status"] = int(os.path.basename(job.rel_path).split(".")[0])
        ns["path"] = job.decoded_path
    run = Request(site, ns)
    try:
        if job.kind == jobs.TEMPLATE:
            run.run_file(job.path)
        else:
            run.run_script(job.path)
        extra = _checked_headers(krait.extra_headers)
        if job.kind == jobs.WEBSOCKET and krait.websockets.response is not None and krait.response is None:
            proto = krait.websockets.response.protocol
            return jobs.Result(101, "Switching Protocols", extra, b"", None, None, proto)
        if krait.response is not None:
            status, reason, headers, body = krait._response.response_parts(krait.response)
            headers = _checked_headers(headers) + extra
        else:
            status, reason, headers = 200, "OK", extra
            body = "".join(run.out).encode("utf-8")
        dynamic = job.kind != jobs.TEMPLATE or not _code_free(run.first_code)
        return jobs.Result(status, reason, headers, body, _content_type(job, run.view_path), None, None, dynamic)
    except HttpError as exc:
        status = exc.status
        return jobs.Result(status, "", (), b"", None, _error_report(exc, site.root, status))
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from site code are script errors too
        return jobs.Result(500, "", (), b"", None, _error_report(exc, site.root))


def run_websocket(conn: Any, controller: Any, send_lock: threading.Lock, stop_timeout: float) -> bool:
    """Drive an accepted WebSocket session; returns False when the controller would not stop.

    Whichever thread pushes a message (the controller's own thread, or this one inside on_in_message)
    sends it at once through the out-listener hook: items are taken and sent under `send_lock`, so
    they leave in queue order and no thread hand-off delays a message.
    """
    closed = False  # once a close went out or the server side is gone: nothing more is sent

    def flush(pushed: Any = None) -> None:
        # The out-listener: send the item just pushed, or (None) everything queued.
        nonlocal closed
        with send_lock:
            for item in controller._take_out() if pushed is None else (pushed,):
                if closed:
                    return
                try:
                    if item[0] == jobs.WS_CLOSE:
                        conn.send(item)
                        closed = True  # nothing is sent after a close
                    else:
                        conn.send_message(item[0], item[1])
                except (OSError, ValueError):  # the server side is gone; the session is ending
                    closed = True
                    return

    def thread_failed(args: Any) -> None:
        # A controller whose thread raises ends its connection with 1011 and no details (RFC 6455 7.4.1).
        sys.stderr.write("".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))
        if args.thread is getattr(controller, "_thread", None):
            controller.close(1011, "")

    threading.excepthook = thread_failed
    controller._set_out_listener(flush)
    flush()  # anything pushed before the listener was set (e.g. in __init__), before any later push
    controller.on_start()
    try:
        while True:
            item = conn.recv()
            tag = item[0]
            if tag in (jobs.WS_TEXT, jobs.WS_BINARY):
                try:
                    # the server checked the UTF-8 (RFC 6455 section 8.1), so decoding cannot fail
                    controller.on_in_message_internal(item[1].decode("utf-8") if tag == jobs.WS_TEXT else item[1])
                except Exception:
                    traceback.print_exc()
                    controller.close(1011, "")
            else:  # WS_CLOSE from the peer, or a lost connection
                break
    except (EOFError, OSError):
        pass
    finally:
        controller.on_stop()
        stopped = controller.wait_stopped(stop_timeout)
        flush()  # what the controller queued before stopping
        controller._set_out_listener(None)
    if not stopped:  # the caller exits this process: no WS_DONE, so the server replaces the worker
        return False
    try:
        with send_lock:
            conn.send((jobs.WS_DONE,))
    except (OSError, ValueError):
        pass
    return True


def main(socks: Any, settings: Any, kind: str) -> None:
    """Worker process entry point (see the module comment); socks: the (in, out) of MessagePipe.pair()."""
    conn = MessagePipe(*socks)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sys.stdout.reconfigure(line_buffering=True)  # print() in site code reaches the log promptly
    except Exception:
        pass
    try:
        site = Site(settings.site_root, settings.template_cache_size)
        config = krait.config.snapshot()
    except BaseException as exc:
        conn.send(jobs.WorkerReady(os.getpid(), None, _error_report(exc, os.path.realpath(settings.site_root))))
        return
    conn.send(jobs.WorkerReady(os.getpid(), config, None))
    send_lock = threading.Lock()
    held: list[tuple] = []  # answers not sent yet (see below)
    took: dict[str, float] = {}  # seconds the last job on each file took

    def flush() -> None:
        with send_lock:
            conn.send_many(held)
        held.clear()

    job = None  # the next job, when already read ahead
    held_since = 0.0  # when the oldest held answer was ready
    while True:
        if job is None:
            try:
                wire = conn.recv()
            except (EOFError, OSError, KeyboardInterrupt):
                return
            if wire is None:
                return
            job = jobs.Job(*wire)
        current, job = job, None
        started = time.perf_counter()
        result = handle(site, current)
        if len(took) > 1000:
            took.clear()
        now = time.perf_counter()
        took[current.path] = now - started
        if not held:
            held_since = now
        held.append(jobs.result_to_wire(result, now - started))
        # With pipelined jobs already waiting (krait/pool.py), answers may wait for the next job when,
        # going by how long its file took last time, it ends within RESULT_HOLD of the first answer held:
        # the server then gets several answers with one wake-up, and none waits much longer than that.
        if result.status != 101 and len(held) < limits.PIPELINE_DEPTH and conn.pending():
            wire = conn.recv()  # already buffered: does not wait
            if wire is None:  # the stop message
                flush()
                return
            job = jobs.Job(*wire)
            if now - held_since + took.get(job.path, limits.RESULT_HOLD) < limits.RESULT_HOLD:
                continue
        flush()
        if result.status == 101:
            controller = krait.websockets.response.controller
            if not run_websocket(conn, controller, send_lock, limits.WS_STOP_TIMEOUT):
                sys.stderr.write("krait: WebSocket controller on %s did not stop; worker exits\n" % current.url)
                os._exit(3)

