# The `krait` command: parse arguments into Settings, start the pools and the server, handle signals.
#
# Start-up order matters (SPEC section 2 and 7): check the site folder, bind the port (a busy port fails
# here, before any site code runs), start the worker pools through a forkserver while this process still
# has one thread, read krait.config's snapshot, then listen and print the one ready line. Any failure
# before that prints one paragraph and exits 1. With --processes N the parent binds a placeholder socket
# with SO_REUSEPORT to fix the port, forks N servers that each bind the same port and own their pools,
# and supervises them.

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from krait import __version__, limits
from krait.errors import ConfigError
from krait.settings import Settings

log = logging.getLogger("krait")


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(prog="krait", description="Serve a Krait site: static files, .py scripts, "
                                "Pympl templates and WebSockets from one folder.")
    p.add_argument("site", help="the site folder (holds .py/init.py, pages, scripts, static files)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", "-p", type=int, default=8080, help="port (default 8080; 0 picks a free port)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="script worker processes (default: CPU count)")
    p.add_argument("--processes", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--timeout", type=float, default=limits.SCRIPT_TIMEOUT, help="per-request script deadline, seconds")
    p.add_argument("--debug", action="store_true", help="tracebacks in error pages, no lookup caching")
    p.add_argument("--max-body-size", type=int, default=limits.MAX_BODY_SIZE, help="largest request body in bytes (413)")
    p.add_argument("--max-request-line", type=int, default=limits.MAX_REQUEST_LINE, help="longest request line (414)")
    p.add_argument("--max-header-size", type=int, default=limits.MAX_HEADER_BLOCK, help="largest header block (431)")
    p.add_argument("--max-header-line", type=int, default=limits.MAX_HEADER_LINE, help="longest header line (431)")
    p.add_argument("--max-headers", type=int, default=limits.MAX_HEADER_COUNT, help="most header fields (431)")
    p.add_argument("--header-timeout", type=float, default=limits.HEADER_TIMEOUT, help="seconds to send a header block (408)")
    p.add_argument("--keepalive-timeout", type=float, default=limits.KEEPALIVE_TIMEOUT, help="idle keep-alive seconds")
    p.add_argument("--min-body-rate", type=int, default=limits.MIN_BODY_RATE, help="slowest accepted body upload, bytes/s (408)")
    p.add_argument("--max-connections", type=int, default=limits.MAX_CONNECTIONS, help="open connections per process (503 past it)")
    p.add_argument("--max-queued", type=int, default=limits.MAX_QUEUED_JOBS, help="requests waiting for a worker (503 past it)")
    p.add_argument("--max-requests", type=int, default=limits.MAX_REQUESTS_PER_WORKER, help="recycle a worker after N requests (0 = never)")
    p.add_argument("--max-websockets", type=int, default=limits.MAX_WEBSOCKETS, help="open WebSocket connections (each holds a worker)")
    p.add_argument("--max-ws-message", type=int, default=limits.MAX_WS_MESSAGE, help="largest WebSocket message in bytes (close 1009)")
    p.add_argument("--graceful-timeout", type=float, default=limits.GRACEFUL_TIMEOUT, help="seconds in-flight requests get on stop")
    p.add_argument("--access-log", metavar="PATH|-", help="write an access log (Combined Log Format + time) to PATH or stdout")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level")
    p.add_argument("--certfile", help="PEM certificate chain: serve HTTPS")
    p.add_argument("--keyfile", help="PEM private key for --certfile")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1,::1",
                   help="comma-separated proxy addresses whose X-Forwarded-*/Forwarded headers are trusted ('*' = all)")
    p.add_argument("--no-gzip", action="store_true", help="never gzip responses")
    p.add_argument("--version", action="version", version="Krait " + __version__)
    a = p.parse_args(argv)
    if a.keyfile and not a.certfile:
        p.error("--keyfile needs --certfile")
    for name in ("workers", "processes", "max_connections", "max_websockets"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    return Settings(
        site_root=a.site, host=a.host, port=a.port, workers=a.workers, processes=a.processes, timeout=a.timeout,
        debug=a.debug, max_body_size=a.max_body_size, max_request_line=a.max_request_line,
        max_header_line=a.max_header_line, max_header_block=a.max_header_size, max_header_count=a.max_headers,
        header_timeout=a.header_timeout, keepalive_timeout=a.keepalive_timeout, min_body_rate=a.min_body_rate,
        max_connections=a.max_connections, max_queued_jobs=a.max_queued, max_requests=a.max_requests,
        graceful_timeout=a.graceful_timeout, max_websockets=a.max_websockets, max_ws_message=a.max_ws_message,
        access_log=a.access_log, log_level=a.log_level, certfile=a.certfile, keyfile=a.keyfile,
        forwarded_allow_ips=tuple(x.strip() for x in a.forwarded_allow_ips.split(",") if x.strip()),
        gzip=not a.no_gzip)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("krait")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    access = logging.getLogger("krait.access")
    access.propagate = False
    if settings.access_log:
        ah: logging.Handler
        ah = logging.StreamHandler(sys.stdout) if settings.access_log == "-" else logging.FileHandler(settings.access_log)
        ah.setFormatter(logging.Formatter("%(message)s"))
        access.handlers[:] = [ah]
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL)


def fail(message: str) -> int:
    sys.stderr.write("krait: error: %s\n" % message)
    sys.stderr.flush()
    return 1


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    setup_logging(settings)
    if not os.path.isdir(settings.site_root):
        return fail("the site folder %r does not exist or is not a folder" % settings.site_root)
    if settings.certfile:
        for path in (settings.certfile, settings.keyfile):
            if path and not os.path.isfile(path):
                return fail("certificate file %r not found" % path)
    if settings.processes > 1:
        return run_many(settings)
    return run_one(settings)


def _bind(settings: Settings, reuse_port: bool) -> Any:
    from krait.server import Server

    try:
        return Server(settings, reuse_port=reuse_port)
    except OSError as exc:
        fail("cannot listen on %s:%d: %s" % (settings.host, settings.port, exc.strerror or exc))
        return None
    except ssl_errors() as exc:
        fail("cannot load the certificate: %s" % exc)
        return None


def ssl_errors() -> tuple:
    import ssl

    return (ssl.SSLError,)


def run_one(settings: Settings, reuse_port: bool = False, ready_fd: int | None = None) -> int:
    from krait.dispatch import App
    from krait.pool import JobPool, SessionPool

    server = _bind(settings, reuse_port)
    if server is None:
        return 1
    settings = _with_port(settings, server.port)
    pool = JobPool(settings, settings.workers)
    ws_pool = SessionPool(settings, settings.max_websockets, spares=1)
    try:
        pool.start()
        ws_pool.start()
    except ConfigError as exc:
        server.server_close()
        pool.close()
        return fail(str(exc))
    try:
        app = App(settings, pool, ws_pool, pool.config)
    except Exception as exc:  # a route or cache rule that only fails when compiled here
        server.server_close()
        pool.close()
        ws_pool.close()
        return fail("bad site configuration: %s" % exc)
    server.activate(app)
    signals = _SignalFlags()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.25}, name="krait-accept",
                              daemon=True)
    thread.start()
    if ready_fd is not None:
        os.write(ready_fd, b"ok\n")
        os.close(ready_fd)
    else:
        print("Krait %s serving %s at %s://%s:%d/" % (__version__, settings.site_root, settings.scheme,
                                                      _display_host(settings.host), server.port), flush=True)
    from krait import reloader

    watcher_stop = threading.Event()
    reloader.watch(os.path.join(settings.site_root, ".py"), lambda: _reload(pool, ws_pool), watcher_stop)
    while not signals.wait_stop():
        threading.Thread(target=_reload, args=(pool, ws_pool), daemon=True).start()  # SIGHUP
    watcher_stop.set()
    log.info("stopping: finishing requests in flight (up to %.0fs)", settings.graceful_timeout)
    server.shutdown()
    server.server_close()
    server.drain(settings.graceful_timeout)
    pool.close()
    ws_pool.close()
    log.info("stopped")
    return 0


class _SignalFlags:
    """SIGTERM/SIGINT/SIGHUP recorded as plain flags.

    A signal handler runs between two bytecodes of the main thread, possibly inside a lock that thread
    holds (an Event.set() it was in the middle of): a handler that takes any lock can deadlock the
    process. So the handlers only assign attributes, and the main thread polls them.
    """

    def __init__(self) -> None:
        self.stop = False
        self.hup = False
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, *_: Any) -> None:
        self.stop = True

    def _on_hup(self, *_: Any) -> None:
        self.hup = True

    def wait_stop(self) -> bool:
        """Sleep until a signal arrives: True for stop, False for SIGHUP (cleared)."""
        while not self.stop:
            if self.hup:
                self.hup = False
                return False
            time.sleep(0.1)
        return True


def _reload(pool: Any, ws_pool: Any) -> None:
    log.info("restarting workers")
    pool.reload()
    ws_pool.reload()


def _with_port(settings: Settings, port: int) -> Settings:
    from dataclasses import replace

    return replace(settings, port=port)


def _display_host(host: str) -> str:
    return "[%s]" % host if ":" in host else host


def run_many(settings: Settings) -> int:
    """Fork --processes servers sharing one port through SO_REUSEPORT, and supervise them."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    placeholder = socket.socket(family, socket.SOCK_STREAM)
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        placeholder.bind((settings.host, settings.port))
    except OSError as exc:
        return fail("cannot listen on %s:%d: %s" % (settings.host, settings.port, exc.strerror or exc))
    settings = _with_port(settings, placeholder.getsockname()[1])
    children: list[int] = []
    pipes: list[int] = []
    for _ in range(settings.processes):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: a complete server of its own
            os.close(r)
            placeholder.close()
            code = 1
            try:
                code = run_one(settings, reuse_port=True, ready_fd=w)
            finally:
                os._exit(code)
        os.close(w)
        children.append(pid)
        pipes.append(r)
    ok = all(os.read(r, 16).startswith(b"ok") for r in pipes)
    for r in pipes:
        os.close(r)
    placeholder.close()
    if not ok:
        _signal_all(children, signal.SIGTERM)
        _wait_all(children)
        return 1
    print("Krait %s serving %s at %s://%s:%d/ (%d processes)" % (__version__, settings.site_root, settings.scheme,
          _display_host(settings.host), settings.port, settings.processes), flush=True)
    signals = _SignalFlags()
    while not signals.wait_stop():
        _signal_all(children, signal.SIGHUP)
    _signal_all(children, signal.SIGTERM)
    _wait_all(children)
    return 0


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
