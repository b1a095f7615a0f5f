# The entry point of a worker process (krait/pool/process.py starts it by name).
#
# Design: build the Site (which runs .py/init.py), report krait.config's snapshot or the failure, then
# hand the pipe to the pool's loop for this kind of worker: krait/pool/serve.py with run.run_job for a
# script worker (which also hears when a template compiles), krait/pool/wsserve.py with
# websocket.open_session for a WebSocket worker. Both kinds get krait.websockets.publish() wired to their
# pipe. The server decides when a worker stops (it kills one with SIGKILL when it must), so SIGINT,
# SIGTERM and SIGHUP (none on Windows: krait/portable.py) do nothing here: a terminal's Ctrl-C or a
# service manager that signals every process of the service (systemd's default KillMode) would otherwise
# cut the requests the server is still finishing. SIGINT is ignored (SIG_IGN), and so stays ignored in
# the programs and processes site code starts (exec keeps SIG_IGN, signal(7)): Ctrl-C reaches the whole
# process group, and a program that a request runs must finish with the request. SIGTERM and SIGHUP get
# a handler that does nothing instead, which exec and fork (_in_forked_child) put back to the default:
# a program that the site starts can still be terminated. The worker's pipe is closed on exec and let
# go of in forked processes. Whatever site code prints goes to the server's standard error, its log,
# line by line (docs/configuration.md): file descriptor 1 becomes a copy of 2, so output of child
# processes and C code goes there too, and the server's standard output carries only its ready line and
# the access log.

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
    fds = (pipe.sock.fileno(), pipe.out.fileno())
    _close_on_exec()
    if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
        os.register_at_fork(after_in_child=functools.partial(_in_forked_child, fds))
    send_lock = threading.Lock()
    krait.websockets._publisher = serve.publisher(pipe, send_lock)  # before the Site saves the modules
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in _SERVER_SIGNALS:
        signal.signal(sig, _do_nothing)
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


# Handled by _do_nothing here and at their defaults in forks (SIGINT is ignored in both).
_SERVER_SIGNALS = (signal.SIGTERM,) + (() if portable.ACTIVE else (signal.SIGHUP,))


def _do_nothing(*_: Any) -> None:
    """The handler of SIGTERM and SIGHUP: the server, not the service manager, stops the worker."""


def _close_on_exec() -> None:
    """Mark what this worker was handed besides 0, 1 and 2 (its pipe, multiprocessing's descriptors) to
    close when a program is executed: os.system() and os.posix_spawn() pass on inheritable descriptors."""
    for folder in ("/proc/self/fd", "/dev/fd"):  # Linux, then macOS and the BSDs
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for fd in map(int, names):
            if fd > 2:
                try:
                    os.set_inheritable(fd, False)
                except OSError:  # the listing's own descriptor, closed by now
                    pass
        return


def _in_forked_child(fds: tuple[int, int]) -> None:
    """In a process that site code forks: SIGTERM and SIGHUP are back to their defaults, and the worker's
    pipe ends become /dev/null. Left open there, they would keep the server from reading the EOF that tells
    it the worker died (krait/pool/answers.py)."""
    for sig in _SERVER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd, inheritable=False)
    os.close(null)
