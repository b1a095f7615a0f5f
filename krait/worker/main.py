# The entry point of a worker process (krait/pool/process.py starts it by name).
#
# Design: build the Site (which runs .py/init.py), report krait.config's snapshot or the failure, then
# hand the pipe to the pool's loop for this kind of worker: krait/pool/serve.py with run.run_job for a
# script worker (which also hears when a template compiles), krait/pool/wsserve.py with
# websocket.open_session for a WebSocket worker. Both kinds get krait.websockets.publish() wired to their
# pipe. The server decides when a worker stops (it kills one with SIGKILL when it must), so SIGINT,
# SIGTERM and SIGHUP (none on Windows: krait/portable.py) are ignored here: a terminal's Ctrl-C or a
# service manager that signals every process of the service (systemd's default KillMode) would otherwise
# cut the requests the server is still finishing. Whatever site code prints goes to the server's
# standard error, its log, line by line (docs/configuration.md): file descriptor 1 becomes a copy of 2,
# so output of child processes and C code goes there too, and the server's standard output carries only
# its ready line and the access log.

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from typing import Any

import krait
import krait.websockets
from krait import portable
from krait.pool import serve, wsserve
from krait.pool.pipe import MessagePipe
from krait.worker.run import error_report, run_job
from krait.worker.site import Site
from krait.worker.websocket import open_session


def main(ends: tuple[Any, Any], settings: Any, kind: str) -> None:
    """Run a worker of `kind` ("http" or "ws"); `ends` are its (in, out) ends of MessagePipe.pair()."""
    pipe = MessagePipe(*ends)
    if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
        os.register_at_fork(after_in_child=functools.partial(_let_go, (pipe.sock.fileno(), pipe.out.fileno())))
    send_lock = threading.Lock()
    krait.websockets._publisher = serve.publisher(pipe, send_lock)  # before the Site saves the modules
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not portable.ACTIVE:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.dup2(2, 1)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print() reaches the log promptly
    except Exception:  # no standard error, or stdout replaced: print() goes wherever it goes
        pass
    try:
        site = Site(settings.site_root, settings.template_cache_size)
        config = krait.config.snapshot()
    except BaseException as exc:
        serve.report_failure(pipe, error_report(exc, os.path.realpath(settings.site_root)))
        return
    serve.report_ready(pipe, config)
    if kind == "ws":
        wsserve.serve_sessions(pipe, send_lock, functools.partial(open_session, site))
    else:
        loop = serve.JobLoop(pipe, send_lock, functools.partial(run_job, site))
        site.on_compile = loop.compiling
        loop.serve()


def _let_go(fds: tuple[int, int]) -> None:
    """In a process that site code forks: the worker's pipe ends become /dev/null. Left open there, they
    would keep the server from reading the EOF that tells it the worker died (krait/pool/answers.py)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd)
    os.close(null)
