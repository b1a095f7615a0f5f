# The entry point of a worker process (krait/pool/process.py starts it by name).
#
# Design: build the Site (which runs .py/init.py), report krait.config's snapshot or the failure, then
# hand the pipe to krait/pool/serve.py with this package's two callables: run.handle for jobs and
# websocket.run_session for accepted WebSocket sessions. The server decides when a worker stops, so
# SIGINT and SIGHUP are ignored here. Whatever site code prints goes to the server's standard error, its
# log, line by line (docs/configuration.md): file descriptor 1 becomes a copy of 2, so output of child
# processes and C code goes there too, and the server's standard output carries only its ready line and
# the access log.

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any

import krait
from krait.pool import serve
from krait.pool.pipe import MessagePipe
from krait.worker.run import error_report, handle
from krait.worker.site import Site
from krait.worker.websocket import run_session


def main(ends: tuple[Any, Any], settings: Any) -> None:
    """Run a worker; `ends` are the worker's (in, out) ends of MessagePipe.pair()."""
    pipe = MessagePipe(*ends)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    serve.serve(pipe, functools.partial(handle, site), run_session)
