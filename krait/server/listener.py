# The listening socket, the accept loop, the connection limit, graceful shutdown and the access log.
#
# Design: socketserver.ThreadingTCPServer accepts connections; each connection runs in its own daemon thread
# (krait/server/channel.py). The number of open connections is bounded by --max-connections, and per client address
# by --max-connections-per-ip (0: no bound). A full server makes room before it refuses anyone: it closes a
# connection that waits for its client (idle between requests, in its TLS handshake, with a request head still
# arriving, or answered and waiting for the client to close), one from the address that holds the most connections,
# the oldest of those. RFC 9112 section 9.5 lets a server close a connection at any time, and clients retry on a
# new one (section 9.3.1); so one address cannot hold every place by keeping connections open and silent. Past the
# per-address bound, or when every connection is in the middle of a request, a new connection gets a canned 503
# with Retry-After and is closed without a thread. When accept() fails for want of a file descriptor (EMFILE,
# ENFILE), the client would wait in the backlog and the listening socket stay readable, so the loop would spin: the
# server keeps one spare descriptor, frees it to take that client and refuse it the same way, then takes it back;
# without a spare it sleeps ACCEPT_BACKOFF. With --certfile the TLS handshake runs inside the connection's thread
# under one deadline, from accept to the end of the handshake (TLS_HANDSHAKE_TIMEOUT, however the client spreads
# its bytes), so a client that never speaks TLS cannot block the accept loop; a first byte that starts no TLS
# record but a plain HTTP request (a letter) gets a cleartext 400 first, within the same deadline. A dual-stack
# peer (::ffff:1.2.3.4, listening on ::) is known by its IPv4 address from accept on (krait/server/forwarded.py).
# drain() is the graceful part of a stop (krait/server/lifecycle.py): wake idle keep-alive connections so they
# close, send WebSockets a 1001 close, and let requests in flight finish within --graceful-timeout. Every access
# log field is escaped. The port is bound with SO_REUSEADDR (a restart need not wait for old connections'
# TIME_WAIT), except on portable paths (krait/portable.py): on Windows that option lets another program bind the
# same port and take its connections, so the port gets SO_EXCLUSIVEADDRUSE there instead.

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from krait import limits, portable
from krait.http.writers import build_head
from krait.server import forwarded
from krait.server.bodies import BodySpool
from krait.server.channel import Channel
from krait.server.dispatch import App, error_page, overload_reply
from krait.server.gate import FairGate
from krait.server.records import Incoming, Reply
from krait.server.throttle import Throttled
from krait.settings import Settings
from krait.timefmt import http_date

log = logging.getLogger("krait")
access_log = logging.getLogger("krait.access")

# When no connection waited, newcomers are refused this long without looking again: under a flood, looking
# through every connection for each newcomer would cost the accept loop more than the refusals themselves.
_NONE_WAITING_RECHECK = 0.01
_TLS_RECORD_HANDSHAKE = b"\x16"  # the first byte of a TLS ClientHello (RFC 8446 section 5.1)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = not portable.ACTIVE
    block_on_close = False
    request_queue_size = limits.LISTEN_BACKLOG

    def __init__(self, settings: Settings, reuse_port: bool = False) -> None:
        self.settings = settings
        self._spare_fd: int | None = None  # see _out_of_descriptors(); a failed bind calls server_close()
        self.bodies: BodySpool | None = None  # request bodies on their way to workers (krait/server/bodies.py)
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.address_family = family
        super().__init__((settings.host, settings.port), None, bind_and_activate=False)  # type: ignore[arg-type]
        if reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sys.platform == "win32":
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        try:
            self.server_bind()
        except BaseException:
            self.server_close()
            raise
        self.app: Any = None  # the App (a reload replaces it), the JobPool and the WebSocketHub: activate()
        self.pool: Any = None
        self.hub: Any = None
        self.scheme = settings.scheme
        self.tls: ssl.SSLContext | None = None
        if settings.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(settings.certfile, settings.keyfile, password=_no_pass_phrase)
            self.tls = ctx
        self.trusted_proxies = forwarded.Proxies(settings.forwarded_allow_ips)
        self.channels: dict[Channel, None] = {}  # in the order they were accepted (oldest first)
        self.open_count = 0  # accepted connections not yet closed (the --max-connections count)
        self.leaving = 0  # of those, the ones closed to make room that have not ended yet
        self._none_waiting_until = 0.0  # see _make_room()
        # The same, per client address: for --max-connections-per-ip, and for who gives way (_make_room())
        self.per_address: dict[str, int] = {}
        self._spare_fd = _spare()
        self._fd_exhausted = Throttled(log, "out of file descriptors: new connections are refused (%d open)")
        self._refusals = Throttled(log, "connection refused: %s")
        self._room_made = Throttled(log, "all %d connection places taken: closed a waiting connection from %%s to "
                                     "make room" % settings.max_connections)
        # Requests handled at once, where connection threads cannot be SCHED_BATCH (krait/portable.py);
        # a request waiting for a script worker gives its slot up meanwhile.
        self.gate = None if portable.batch_threads() else FairGate(limits.GATE_SLOTS)
        self.bodies = BodySpool()
        self._lock = threading.Lock()
        self.stopping = False

    @property
    def port(self) -> int:
        return self.server_address[1]

    def activate(self, app: App, pool: Any, hub: Any) -> None:
        """Start listening, with the site's App, the pool that runs its scripts and the WebSocket hub."""
        self.app, self.pool, self.hub = app, pool, hub
        self.server_activate()

    def stop_accepting(self) -> None:
        """End the accept loop (socketserver's shutdown()) at once. The loop looks at its stop flag between
        two polls of the listening socket, up to poll_interval apart; shutting the socket first ends the
        poll under way on Linux (elsewhere the flag is seen within the interval). Connections still in
        the listen backlog are reset, as closing the socket does anyway."""
        _shutdown(self.socket, socket.SHUT_RDWR)
        self.shutdown()

    # --- per connection ---------------------------------------------------------------------

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return self.socket.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._out_of_descriptors()
            raise  # socketserver skips this round

    def _out_of_descriptors(self) -> None:
        self._fd_exhausted.warn(self.open_count)
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
            try:
                sock, _ = self.socket.accept()
            except OSError:
                pass
            else:
                self._turn_away(sock)  # logged above, once in a while
            self._spare_fd = _spare()
        if self._spare_fd is None:
            time.sleep(limits.ACCEPT_BACKOFF)
            self._spare_fd = _spare()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted from accept, so connections still in their TLS handshake hold a place too.
        client_address = forwarded.canonical_peer(client_address)  # as logs, limits and scripts see it
        address = _address(client_address)
        per_address = self.settings.max_connections_per_ip
        made_room = None
        with self._lock:
            held = self.per_address.get(address, 0)
            if self.stopping:
                why: str | None = "the server is stopping"
            elif per_address and held >= per_address:
                why = "%s has %d connections open (limit %d per address)" % (address, held, per_address)
            elif (self.open_count - self.leaving >= self.settings.max_connections
                    and (made_room := self._make_room()) is None):
                why = "%d connections open (limit %d), all of them in the middle of a request" % (
                    self.open_count, self.settings.max_connections)
            else:
                why = None
                self.open_count += 1
                self.per_address[address] = held + 1
        if made_room is not None:
            self._room_made.warn(made_room)
        if why is not None:
            self._refuse(request, why)
            return
        # finish_request() closes the socket itself (not socketserver's shutdown_request()): a socket
        # that became a WebSocket belongs to the hub from then on.
        thread = threading.Thread(target=self.finish_request, args=(request, client_address, address),
                                  name="krait-conn", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had (a thread or memory limit): give the place back
            with self._lock:
                self.open_count -= 1
                self._address_closed(address)
            self._refuse(request, "no thread for the connection: %s" % exc)

    def _make_room(self) -> str | None:
        """Close a connection that waits for its client so that a new one can have its place (caller holds
        the lock): from the address holding the most connections, the oldest of those. Returns
        that address; None when every connection is in the middle of a request."""
        now = time.monotonic()
        if now < self._none_waiting_until:
            return None
        counts = self.per_address
        top = max(counts.values(), default=0)
        victim, most = None, 0
        for channel in self.channels:  # oldest first
            if channel.waiting and not channel.evicted:
                held = counts.get(channel.address, 0)
                if held > most:
                    victim, most = channel, held
                    if held == top:
                        break
        if victim is None:
            self._none_waiting_until = now + _NONE_WAITING_RECHECK
            return None
        victim.evicted = True
        self.leaving += 1
        self._wake(victim)  # it answers a head begun with 503
        return victim.address

    def _wake(self, channel: Channel) -> None:
        """Make a connection that waits for its client see the end of its input, so its thread ends it.
        Over TLS the sending side is shut too: OpenSSL would answer that end with an alert (decode_error),
        and nothing could be sent after it anyway."""
        _shutdown(channel.sock, socket.SHUT_RD if self.tls is None else socket.SHUT_RDWR)

    def _refuse(self, sock: socket.socket, why: str) -> None:
        self._refusals.warn(why)
        self._turn_away(sock)

    def _turn_away(self, sock: socket.socket) -> None:
        if self.tls is not None:  # no cleartext into a TLS handshake: a plain close is the clean refusal
            self.shutdown_request(sock)
            return
        try:
            sock.setblocking(False)
            sock.send(_canned(overload_reply("too many open connections")))
        except OSError:
            pass
        self.shutdown_request(sock)

    def finish_request(self, request: Any, client_address: Any, address: str | None = None) -> None:
        portable.batch_scheduling()  # this connection's thread (docs/architecture.md, "Fairness under load")
        channel = Channel(self, request, client_address, address)
        with self._lock:
            self.channels[channel] = None
        try:
            self._serve(channel)
        finally:
            self._closed(channel)

    def _closed(self, channel: Channel) -> None:
        """A counted connection is gone; or it became a WebSocket, which counts against --max-websockets
        instead, and against its address until it closes."""
        with self._lock:
            self.channels.pop(channel, None)
            self.open_count -= 1
            if channel.evicted:
                self.leaving -= 1
            if not channel.handed_off:
                self._address_closed(channel.address)

    def _address_closed(self, address: str) -> None:
        left = self.per_address.pop(address, 0) - 1
        if left > 0:
            self.per_address[address] = left

    def websocket_closed_callback(self, address: str) -> Callable[[], None]:
        """What the WebSocket hub calls once the socket of a WebSocket counted under `address` is closed."""
        def closed() -> None:
            with self._lock:
                self._address_closed(address)
        return closed

    def _serve(self, channel: Channel) -> None:
        """Serve one connection; a socket that became a WebSocket is left open (the hub owns it)."""
        request = channel.sock
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.tls is not None:
            deadline = time.monotonic() + limits.TLS_HANDSHAKE_TIMEOUT  # one for the whole handshake
            try:
                request.settimeout(limits.TLS_HANDSHAKE_TIMEOUT)
                if not _speaks_tls(request, channel.peer[0], deadline):
                    request.close()
                    return
                # The handshake gets what is left: one do_handshake() call keeps one deadline across
                # all its reads and writes (CPython's _ssl), so a byte at a time does not extend it.
                request.settimeout(_left(deadline))
                request = channel.sock = self.tls.wrap_socket(request, server_side=True,
                                                              do_handshake_on_connect=False)
                if channel.evicted:  # while the socket changed hands: _make_room() shut the old one
                    raise ConnectionAbortedError("closed to make room")
                request.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", channel.addr, exc)
                request.close()
                return
        try:
            channel.run()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except Exception:
            log.exception("error while serving %s", channel.addr)
        finally:
            if not channel.handed_off:  # an accepted WebSocket now belongs to the hub
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("unexpected error for %s", client_address)

    def server_close(self, keep_spool: bool = False) -> None:
        """Close the listening socket; and the body spool unless `keep_spool` (a graceful stop closes it
        after drain(), as the requests in flight still use it)."""
        super().server_close()
        if self.bodies is not None and not keep_spool:
            self.bodies.close()
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None

    # --- logging ---------------------------------------------------------------------------

    @staticmethod
    def logs_access() -> bool:
        """Whether requests are logged (--access-log)."""
        return access_log.isEnabledFor(logging.INFO)

    def log_access(self, remote: Any, req: Incoming | None, reply: Reply, started: float) -> None:
        if not self.logs_access():
            return
        headers = req.headers if req is not None else {}
        line = '%s %s %s' % (req.method, req.target, "HTTP/" + req.http_version) if req is not None else "-"
        size = len(reply.body) if reply.file_range is None else reply.file_range[2]
        if (req is not None and req.method == "HEAD") or reply.status in (204, 304) or reply.status < 200:
            size = 0  # CLF %b counts body bytes sent
        access_log.info('%s - - [%s] "%s" %d %s "%s" "%s" %.3fms', _clf(str(remote[0])) if remote else "-",
                        time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()), _clf(line), reply.status,
                        size if size else "-", _clf(headers.get("referer", "-")),
                        _clf(headers.get("user-agent", "-")), (time.monotonic() - started) * 1000)

    # --- shutdown --------------------------------------------------------------------------

    def drain(self, timeout: float) -> None:
        """Close idle connections, wait for busy ones (up to timeout), then cut what is left."""
        self.stopping = True
        started = time.monotonic()
        deadline = started + timeout
        settle = started + 0.2  # idle connections get this long to notice their socket was shut
        while True:
            with self._lock:
                channels = list(self.channels)
            busy = 0
            for channel in channels:
                channel.closing = True
                if channel.busy:
                    busy += 1
                else:
                    self._wake(channel)
            if not channels or (busy == 0 and time.monotonic() > settle):
                break
            if time.monotonic() > deadline:
                log.warning("graceful timeout: cutting %d connections", busy)
                for channel in channels:
                    _shutdown(channel.sock, socket.SHUT_RDWR)
                break
            time.sleep(0.05)


_CLF_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _clf(text: str) -> str:
    # Apache's rule: backslash and double quote get a backslash, every other byte outside printable ASCII
    # becomes \xhh, so a client can neither forge log fields nor break or colour the line.
    return _CLF_UNSAFE.sub(_clf_escape, text)


def _clf_escape(m: re.Match) -> str:
    c = m.group()
    if c in '"\\':
        return "\\" + c
    return "\\x%02x" % ord(c) if ord(c) < 0x100 else "\\u%04x" % ord(c)


def _address(client_address: Any) -> str:
    """What a connection from `client_address` is counted under (its Channel's `address`)."""
    if isinstance(client_address, tuple) and client_address:
        return forwarded.counted_under(str(client_address[0]))
    return ""


def _spare() -> int | None:
    """A descriptor held in reserve to accept (and refuse) a client when none is left."""
    try:
        return os.open(os.devnull, os.O_RDONLY)  # not inherited by child processes (PEP 446)
    except OSError:
        return None


def _canned(reply: Reply) -> bytes:
    """A whole response for a connection that gets no Channel, ending with Connection: close."""
    headers = [("Date", http_date()), *reply.headers]
    head = build_head(reply.status, headers, None, len(reply.body), http10=False, head_request=False,
                      keep_alive=False)[0]
    return head + reply.body


def _left(deadline: float) -> float:
    """Seconds until `deadline` (monotonic), for settimeout(); past it, a TimeoutError."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the TLS handshake deadline passed")
    return left


def _no_pass_phrase() -> str:
    """OpenSSL asks for this when the key is encrypted: Krait never prompts (it runs unattended)."""
    raise ssl.SSLError(0, "the private key is encrypted: give Krait a key without a pass phrase "
                       "(openssl pkey -in KEY -out PLAIN_KEY)")


def _speaks_tls(sock: socket.socket, address: str, deadline: float) -> bool:
    """Whether the client starts a TLS handshake (its first byte, peeked under the socket's timeout).
    A plain HTTP request (a method starts with a letter) gets a cleartext 400 and is read to its end
    before the connection closes, so that the client sees the answer instead of a reset; all of that
    before `deadline`, the handshake's."""
    first = sock.recv(1, socket.MSG_PEEK)
    if first == _TLS_RECORD_HANDSHAKE:
        return True
    if first.isalpha():
        log.info("%s: 400 plain HTTP on the HTTPS port", address)
        detail = "This port speaks HTTPS: use an https:// URL."
        reply = Reply(400, [("Content-Type", "text/html; charset=utf-8")], error_page(400, detail, None, True))
        sock.settimeout(_left(deadline))
        sock.sendall(_canned(reply))
        sock.shutdown(socket.SHUT_WR)
        drained = 0
        while drained < limits.MAX_HEADER_BLOCK and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            drained += len(chunk)
    return False


def _shutdown(sock: socket.socket, how: int) -> None:
    """Shut the TCP connection under `sock`. For a TLS socket this is socket.socket's shutdown, not
    SSLSocket's, which also drops the TLS state, so that whatever the channel sends next would go out in
    cleartext."""
    try:
        socket.socket.shutdown(sock, how)
    except OSError:
        pass
