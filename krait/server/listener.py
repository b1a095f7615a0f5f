# The listening socket, the accept loop, the connection limit, graceful shutdown and the access log.
#
# Design: socketserver.ThreadingTCPServer accepts connections; each connection runs in its own daemon
# thread (krait/server/channel.py). The number of open connections is bounded by --max-connections: past
# it a new connection gets a canned 503 with Retry-After and is closed without a thread. With --certfile
# the TLS handshake runs inside the connection's thread under a deadline, so a client that never speaks
# TLS cannot block the accept loop. drain() is the graceful part of a stop (krait/server/lifecycle.py):
# wake idle keep-alive connections so they close, send WebSockets a 1001 close, and let requests in
# flight finish within --graceful-timeout.

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from typing import Any

from krait import limits
from krait.server.channel import Channel
from krait.server.dispatch import App, overload_reply
from krait.server.gate import FairGate
from krait.server.records import Incoming, Reply
from krait.settings import Settings
from krait.timefmt import http_date

log = logging.getLogger("krait")
access_log = logging.getLogger("krait.access")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = limits.LISTEN_BACKLOG

    def __init__(self, settings: Settings, reuse_port: bool = False) -> None:
        self.settings = settings
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.address_family = family
        super().__init__((settings.host, settings.port), None, bind_and_activate=False)  # type: ignore[arg-type]
        if reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
            ctx.load_cert_chain(settings.certfile, settings.keyfile)
            self.tls = ctx
        self.trusted_proxies = frozenset(settings.forwarded_allow_ips)
        self.channels: set[Channel] = set()
        self.open_count = 0  # accepted connections not yet closed (the --max-connections count)
        # Requests handled at once; a request waiting for a script worker gives its slot up meanwhile.
        self.gate = FairGate(limits.GATE_SLOTS)
        self._lock = threading.Lock()
        self.stopping = False

    @property
    def port(self) -> int:
        return self.server_address[1]

    def activate(self, app: App, pool: Any, hub: Any) -> None:
        """Start listening, with the site's App, the pool that runs its scripts and the WebSocket hub."""
        self.app, self.pool, self.hub = app, pool, hub
        self.server_activate()

    # --- per connection ---------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted from accept, so connections still in their TLS handshake hold a place too.
        with self._lock:
            full = self.open_count >= self.settings.max_connections or self.stopping
            if not full:
                self.open_count += 1
        if full:
            self._refuse(request)
            return
        # finish_request() closes the socket itself (not socketserver's shutdown_request()): a socket
        # that became a WebSocket belongs to the hub from then on.
        thread = threading.Thread(target=self.finish_request, args=(request, client_address),
                                  name="krait-conn", daemon=True)
        thread.start()

    def _refuse(self, sock: socket.socket) -> None:
        log.warning("connection refused: %d connections open (limit %d)", self.open_count,
                    self.settings.max_connections)
        if self.tls is not None:  # no cleartext into a TLS handshake: a plain close is the clean refusal
            self.shutdown_request(sock)
            return
        reply = overload_reply("too many open connections")
        head = "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\nRetry-After: %d\r\nConnection: close\r\n" \
               "Content-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % (
                   http_date(), limits.RETRY_AFTER, len(reply.body))
        try:
            sock.setblocking(False)
            sock.send(head.encode("latin-1") + reply.body)
        except OSError:
            pass
        self.shutdown_request(sock)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            self._serve(request, client_address)
        finally:
            with self._lock:
                self.open_count -= 1

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.tls is not None:
            try:
                request.settimeout(limits.TLS_HANDSHAKE_TIMEOUT)
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        channel = Channel(self, request, client_address)
        with self._lock:
            self.channels.add(channel)
        try:
            channel.run()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except Exception:
            log.exception("error while serving %s", client_address)
        finally:
            with self._lock:
                self.channels.discard(channel)
            if not channel.handed_off:  # an accepted WebSocket now belongs to the hub
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("unexpected error for %s", client_address)

    # --- logging ---------------------------------------------------------------------------

    def log_access(self, remote: Any, req: Incoming | None, reply: Reply, started: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        headers = req.headers if req is not None else {}
        line = '%s %s %s' % (req.method, req.target, "HTTP/" + req.http_version) if req is not None else "-"
        size = len(reply.body) if reply.file_range is None else reply.file_range[2]
        if (req is not None and req.method == "HEAD") or reply.status in (204, 304) or reply.status < 200:
            size = 0  # CLF %b counts body bytes sent
        access_log.info('%s - - [%s] "%s" %d %s "%s" "%s" %.3fms', remote[0] if remote else "-",
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
                    _shutdown(channel.sock, socket.SHUT_RD)
            if not channels or (busy == 0 and time.monotonic() > settle):
                break
            if time.monotonic() > deadline:
                log.warning("graceful timeout: cutting %d connections", busy)
                for channel in channels:
                    _shutdown(channel.sock, socket.SHUT_RDWR)
                break
            time.sleep(0.05)


def _clf(text: str) -> str:
    # Apache's rule: escape backslash and double quote so a client cannot forge log fields.
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass
