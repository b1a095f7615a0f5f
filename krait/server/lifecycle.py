# The life of a server process: start-up order, the worker pools, signals, reloads, --processes.
#
# Design: start-up order matters. Check the site folder, bind the port (a busy port fails here, before
# any site code runs), start the worker pools through a forkserver (krait/pool/process.py) while this
# process still has one thread, read krait.config's snapshot, then listen and print the one ready line.
# Any failure before that prints one paragraph and exits 1 (docs/deployment.md). SIGTERM and SIGINT stop
# gracefully. SIGHUP (not on portable paths: Windows has none, krait/portable.py) and edits under
# SITE/.py reload the site, one reload at a time: a complete new generation of workers runs init.py
# while the old one serves on, the App is built from its krait.config, and the pool swaps both at once
# (krait/pool/scheduler.py); when any of that fails, the old generation and App keep serving and the
# error is logged once; another ask while the new workers still run init.py abandons them and starts over
# (_Reload). The WebSocket pool reloads after a swap (sessions in progress keep their worker).
# With --processes N the parent checks that the port is free (a plain bind: SO_REUSEPORT alone would let the
# sockets of a Krait already there join ours; a Krait still starting listens on nothing yet, so while it
# starts it holds an abstract Unix socket named after the port, which a second one cannot bind), binds a
# placeholder socket with SO_REUSEPORT to fix the port, forks N servers that each bind the same port and own
# their pools, and supervises them: one that ends stops the others and the parent exits 1, for the service
# manager to restart the whole; a server whose parent is gone (its end of the lifeline pipe reads EOF)
# stops. Where the kernel does not spread one port's connections across processes (portable.SHARES_PORT),
# --processes is refused.
# Signals are caught from the first moment: a SIGHUP during start-up (the default action would kill
# Krait) reloads once the server is ready, and a stop abandons start-up at once, closing what it began.
# The open-file limit bounds the connections; on portable paths there is none, and the hub's select()
# bounds --max-websockets instead.

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from krait import __version__, limits, portable
from krait.errors import ConfigError
from krait.pool import relay as relays
from krait.pool.process import Starting, kill_stragglers
from krait.pool.scheduler import JobPool
from krait.server import reloader
from krait.server.dispatch import App
from krait.server.hub import WebSocketHub
from krait.server.listener import Server
from krait.settings import Settings

log = logging.getLogger("krait")

_OPEN_MAX = 10240  # the largest soft open-file limit macOS takes (OPEN_MAX in its <sys/syslimits.h>)


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
        if settings.access_log == "-":
            ah = logging.StreamHandler(sys.stdout)
        else:
            ah = logging.FileHandler(settings.access_log)
        ah.setFormatter(logging.Formatter("%(message)s"))
        access.handlers[:] = [ah]
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL)


def fail(message: str) -> int:
    sys.stderr.write("krait: error: %s\n" % message)
    sys.stderr.flush()
    return 1


def run(settings: Settings) -> int:
    """Run the server(s) described by `settings` until SIGTERM/SIGINT; the exit status."""
    setup_logging(settings)
    if not os.path.isdir(settings.site_root):
        return fail("the site folder %r does not exist or is not a folder" % settings.site_root)
    if settings.certfile:
        for path in (settings.certfile, settings.keyfile):
            if path and not os.path.isfile(path):
                return fail("certificate file %r not found" % path)
    if settings.processes > 1:
        if not portable.SHARES_PORT:
            where = "with KRAIT_PORTABLE=1" if portable.ACTIVE and sys.platform != "win32" else "on this system"
            return fail("--processes is refused %s: only Linux spreads the connections of one port across "
                        "processes (SO_REUSEPORT); run one process" % where)
        return run_many(settings)
    return run_one(settings)


def _bind(settings: Settings, reuse_port: bool) -> Server | None:
    try:
        return Server(settings, reuse_port=reuse_port)
    except ssl.SSLError as exc:
        fail("cannot load the certificate: %s" % exc)
        return None
    except OSError as exc:
        fail("cannot listen on %s:%d: %s" % (settings.host, settings.port, exc.strerror or exc))
        return None


def run_one(settings: Settings, reuse_port: bool = False, ready_fd: int | None = None,
            relay: socket.socket | None = None, lifeline: int | None = None) -> int:
    """One server process with its own workers; under run_many, `ready_fd` gets "ok" instead of the
    ready line being printed, `relay` joins its WebSocket rooms to the other processes', and the
    parent's end of `lifeline` closing (the parent is gone) stops this server."""
    signals = _SignalFlags()
    if lifeline is not None:
        threading.Thread(target=_watch_lifeline, args=(lifeline,), name="krait-lifeline", daemon=True).start()
    code_folder = os.path.join(settings.site_root, ".py")
    baseline = reloader.fingerprint(code_folder)  # before init.py runs: an edit during start-up reloads
    try:
        started = _start(fit_to_open_files(settings), reuse_port, relay, ready_fd, signals)
    except _StoppedStarting:
        kill_stragglers()
        log.info("stopped while starting")
        return 0
    if isinstance(started, int):
        return started
    settings, server, pool, hub = started
    watcher_stop = threading.Event()
    reload = _Reload(settings, server, pool, hub)
    reloader.watch(code_folder, reload, watcher_stop, baseline=baseline)
    while not signals.wait_stop():
        threading.Thread(target=reload, daemon=True).start()  # SIGHUP
    watcher_stop.set()
    reload.stop()
    log.info("stopping: finishing requests in flight (up to %.0fs)", settings.graceful_timeout)
    server.stop_accepting()
    server.server_close(keep_spool=True)
    deadline = time.monotonic() + settings.graceful_timeout
    hub.go_away()
    server.drain(settings.graceful_timeout)
    if server.bodies is not None:
        server.bodies.close()
    while hub.count() and time.monotonic() < deadline:  # WebSockets finish their closing handshakes
        time.sleep(0.05)
    hub.stop()
    pool.close()
    kill_stragglers(grace=limits.WS_STOP_TIMEOUT)  # WebSocket workers end their controllers first
    log.info("stopped")
    return 0


def _start(settings: Settings, reuse_port: bool, relay: socket.socket | None, ready_fd: int | None,
           signals: _SignalFlags) -> tuple[Settings, Server, JobPool, WebSocketHub] | int:
    """Bind, start the worker pools (init.py runs), build the App, start serving and say so (see
    run_one); or print why not and give the exit status. What was started is closed again when this
    ends early: a failure, or a stop during start-up (_StoppedStarting)."""
    with contextlib.ExitStack() as undo:
        server = _bind(settings, reuse_port)
        if server is None:
            return 1
        undo.callback(server.server_close)
        settings = _with_port(settings, server.port)
        pool = JobPool(settings, settings.workers)
        undo.callback(pool.close)
        try:
            pool.start()
            hub = WebSocketHub(settings, relay)
            hub.start()
        except ConfigError as exc:
            return fail(str(exc))
        undo.callback(hub.stop)
        pool.on_publish = hub.publish  # scripts publish to rooms; the hub holds them
        try:
            app = App(settings, pool.config, pool.generation)
        except Exception as exc:  # a route or cache rule that only fails when compiled here
            return fail("bad site configuration: %s" % exc)
        server.activate(app, pool, hub)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.25}, name="krait-accept",
                         daemon=True).start()
        undo.callback(server.stop_accepting)
        # From here a stop is a graceful one: before the ready line, which a client (or a test) may act on
        # at once, so that a SIGTERM sent just after it never takes the abrupt path of a stop while starting.
        signals.ready = True
        if ready_fd is not None:
            os.write(ready_fd, b"ok\n")
            os.close(ready_fd)
        else:
            print("Krait %s serving %s at %s://%s:%d/ (%s)" % (__version__, settings.site_root, settings.scheme,
                  _display_host(settings.host), server.port, _workers(settings.workers)), flush=True)
        undo.pop_all()
        return settings, server, pool, hub


def fit_to_open_files(settings: Settings) -> Settings:
    """Every connection and WebSocket costs a file descriptor: raise the soft open-file limit to the
    hard one, and lower --max-connections and --max-websockets (in proportion) to what it allows,
    keeping FD_RESERVE aside, with a log line saying so. On portable paths, where there is no such
    limit, --max-websockets is lowered to what the hub's select() takes."""
    if portable.ACTIVE:
        return _fit_to_select(settings)
    import resource  # POSIX only

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # macOS refuses a soft limit above OPEN_MAX (its setrlimit(2) manual), and its hard one is unlimited.
    for target in (hard, min(hard, _OPEN_MAX)):
        if soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
            break
        except (ValueError, OSError):  # not allowed: keep what we have
            pass
    if soft == resource.RLIM_INFINITY:
        return settings
    room = max(soft - limits.FD_RESERVE, 2)
    wanted = settings.max_connections + settings.max_websockets
    if wanted <= room:
        return settings
    connections = max(1, room * settings.max_connections // wanted)
    websockets = max(1, room - connections)
    log.warning("the open-file limit is %d: --max-connections lowered from %d to %d and --max-websockets "
                "from %d to %d", soft, settings.max_connections, connections, settings.max_websockets, websockets)
    return replace(settings, max_connections=connections, max_websockets=websockets)


def _fit_to_select(settings: Settings) -> Settings:
    # Besides the clients, select() watches the hub's wake-up socket and two sockets per WebSocket worker,
    # of two generations during a reload.
    room = max(limits.SELECT_MAX_SOCKETS - 1 - 4 * max(settings.ws_workers, 1), 1)
    if settings.max_websockets <= room:
        return settings
    log.info("the WebSocket hub's select() takes %d sockets: --max-websockets lowered from %d to %d",
             limits.SELECT_MAX_SOCKETS, settings.max_websockets, room)
    return replace(settings, max_websockets=room)


class _StoppedStarting(BaseException):
    """SIGTERM or SIGINT arrived before the server was ready: there is nothing to finish, so start-up is
    abandoned where it stands (a BaseException, which no `except Exception` on the way catches)."""


class _SignalFlags:
    """SIGTERM/SIGINT/SIGHUP recorded as plain flags.

    A signal handler runs between two bytecodes of the main thread, possibly inside a lock that thread
    holds (an Event.set() it was in the middle of): a handler that takes any lock can deadlock the
    process. So once the server is ready the handlers only assign attributes, and the main thread looks
    at them whenever a signal wakes it (wait_stop()); before, a stop raises _StoppedStarting in the main
    thread, and a SIGHUP waits for readiness.
    """

    def __init__(self) -> None:
        self.stop = False
        self.hup = False
        self.ready = False
        self._wakeup: socket.socket | None = None  # see wait_stop()
        self._wakeup_writer: socket.socket | None = None
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        if not portable.ACTIVE:  # Windows has no SIGHUP
            signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, *_: Any) -> None:
        if self.stop:  # a second one while stopping: already under way
            return
        self.stop = True
        if not self.ready:
            raise _StoppedStarting

    def _on_hup(self, *_: Any) -> None:
        self.hup = True

    def wait_stop(self) -> bool:
        """Sleep until a signal arrives: True for stop, False for SIGHUP (cleared). Python's C-level handler
        writes the number of every signal to a socket this waits on (signal.set_wakeup_fd), so a signal
        that came after the flags were looked at still ends the wait at once."""
        if self._wakeup is None:
            self._wakeup, self._wakeup_writer = socket.socketpair()
            for end in (self._wakeup, self._wakeup_writer):
                end.setblocking(False)
            signal.set_wakeup_fd(self._wakeup_writer.fileno(), warn_on_full_buffer=False)
        while not self.stop:
            if self.hup:
                self.hup = False
                return False
            select.select([self._wakeup], [], [], 1.0)
            try:
                self._wakeup.recv(4096)
            except BlockingIOError:
                pass
        return True


class _Reload:
    """Reload the site (see the module comment); calls wait for the reload in progress, if any. Asks that
    pile up meanwhile (SIGHUPs, edits) are merged: a reload that starts after an ask answers it too. An
    ask while the new workers still run init.py abandons them (they load what is now out of date, or hang)
    and starts over."""

    def __init__(self, settings: Settings, server: Server, pool: JobPool, hub: WebSocketHub) -> None:
        self.settings, self.server, self.pool, self.hub = settings, server, pool, hub
        self.lock = threading.Lock()  # one reload at a time
        self.asked = itertools.count(1)  # numbers the asks (next() is atomic under the GIL)
        self.covered = 0  # asks numbered up to this one are answered by a reload that has begun
        self.starting: Starting | None = None  # the workers of the reload under way, until all are ready
        self.stopping = False

    def stop(self) -> None:
        """Krait is stopping: the reload under way is abandoned, and no other starts."""
        self.stopping = True
        self.abandon()

    def abandon(self) -> None:
        starting = self.starting
        if starting is not None:
            starting.abandon()

    def __call__(self) -> None:
        ask = next(self.asked)
        self.abandon()
        with self.lock:
            if ask <= self.covered or self.stopping:
                return
            self.covered = next(self.asked)  # this reload reads the files after every ask made so far
            log.info("reloading: starting %s (init.py)", _workers(self.pool.size))
            self.starting = starting = Starting()
            if self.stopping:  # stop() came in between and saw no reload under way
                starting.abandon()
            try:
                new = self.pool.prepare(starting)
            except (ConfigError, OSError) as exc:
                if starting.abandoned:
                    log.info("reload abandoned: %s", "Krait is stopping" if self.stopping
                             else "asked for again while init.py ran; starting over")
                else:
                    log.error("reload failed, the running workers keep serving: %s", exc)
                return
            finally:
                self.starting = None
            try:
                app = App(self.settings, new.config, new.number)
            except Exception as exc:  # as at start-up: a route or cache rule that only fails when compiled here
                self.pool.discard(new)
                log.error("reload failed, the running workers keep serving: bad site configuration: %s", exc)
                return
            self.pool.commit(new, lambda: setattr(self.server, "app", app))
            self.hub.reload()
            log.info("reloaded: generation %d serves", new.number)


def _workers(count: int) -> str:
    return "%d worker%s" % (count, "" if count == 1 else "s")


def _with_port(settings: Settings, port: int) -> Settings:
    return replace(settings, port=port)


def _display_host(host: str) -> str:
    return "[%s]" % host if ":" in host else host


def run_many(settings: Settings) -> int:
    """Fork --processes servers sharing one port through SO_REUSEPORT, and supervise them."""
    signals = _SignalFlags()
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if settings.port:
            try:
                claim.bind("\0krait-starting-on-port-%d" % settings.port)
            except OSError:
                claim.close()
                return fail("cannot listen on %s:%d: another Krait with --processes is starting on that port"
                            % (settings.host, settings.port))
        with socket.socket(family, socket.SOCK_STREAM) as probe:  # no SO_REUSEPORT: fails if anyone holds it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((settings.host, settings.port))
            settings = _with_port(settings, probe.getsockname()[1])
        placeholder = socket.socket(family, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        placeholder.bind((settings.host, settings.port))
    except OSError as exc:
        claim.close()
        return fail("cannot listen on %s:%d: %s" % (settings.host, settings.port, exc.strerror or exc))
    children: list[int] = []
    try:
        ok = _fork_servers(settings, (placeholder, claim), children)
        if ok:
            signals.ready = True  # before the ready line, as in _start
            print("Krait %s serving %s at %s://%s:%d/ (%d processes, %s each)" % (__version__,
                  settings.site_root, settings.scheme, _display_host(settings.host), settings.port,
                  settings.processes, _workers(settings.workers)), flush=True)
    except _StoppedStarting:
        ok = None
    finally:
        signals.ready = True  # from here on a stop is only recorded: the servers are stopped below anyway
    placeholder.close()
    claim.close()  # the servers listen now, so a second Krait's plain bind fails
    if not ok:
        _signal_all(children, signal.SIGTERM)
        _wait_all(children)
        if ok is None:
            log.info("stopped while starting")
        return 0 if ok is None else 1
    while not signals.stop:
        if signals.hup:
            signals.hup = False
            _signal_all(children, signal.SIGHUP)
        ended = _ended(children)
        if ended is not None:
            log.error("server process %d ended (%s): stopping the others", *ended)
            _signal_all(children, signal.SIGTERM)
            _wait_all(children)
            return 1
        time.sleep(0.1)
    _signal_all(children, signal.SIGTERM)
    _wait_all(children)
    return 0


def _fork_servers(settings: Settings, parents_own: tuple[socket.socket, ...], children: list[int]) -> bool:
    """Fork the --processes servers (their pids go into `children` as they are made) and wait until each
    is ready: False when any of them failed to start. The children close the sockets in `parents_own`."""
    pipes: list[int] = []
    life_r, life_w = os.pipe()  # the parent holds the write end: the children read EOF once it is gone
    ends = relays.socketpairs(settings.processes)  # WebSocket rooms span the processes
    try:
        for index in range(settings.processes):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: a complete server of its own
                os.close(r)
                os.close(life_w)
                for earlier in pipes:  # the other children's ready pipes
                    os.close(earlier)
                for own in parents_own:
                    own.close()
                for other, (parent_end, child_end) in enumerate(ends):
                    parent_end.close()
                    if other != index:
                        child_end.close()
                code = 1
                try:
                    code = run_one(settings, reuse_port=True, ready_fd=w, relay=ends[index][1], lifeline=life_r)
                finally:
                    os._exit(code)
            os.close(w)
            children.append(pid)
            pipes.append(r)
        os.close(life_r)
        for _, child_end in ends:
            child_end.close()
        relays.Relay([parent_end for parent_end, _ in ends]).start()
        return all(os.read(r, 16).startswith(b"ok") for r in pipes)
    finally:
        for r in pipes:
            os.close(r)


def _ended(pids: list[int]) -> tuple[int, str] | None:
    """A child that ended (taken out of `pids`, and reaped) with what ended it, or None."""
    for pid in pids:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            pids.remove(pid)
            if os.WIFSIGNALED(status):
                return pid, "killed by signal %d" % os.WTERMSIG(status)
            return pid, "exit status %d" % os.waitstatus_to_exitcode(status)
    return None


def _watch_lifeline(fd: int) -> None:
    """Block on the parent's lifeline pipe; its EOF (the parent is gone) stops this server, as SIGTERM."""
    try:
        while os.read(fd, 64):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


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
