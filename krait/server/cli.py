# The `krait` command line: arguments -> Settings, then krait/server/lifecycle.py runs the server.
#
# Design: every option's default is the Settings field's (krait/settings.py, whose limits come from
# krait/limits.py), so a default is written in one place. Invalid values end with argparse's one-line
# `krait: error: ...` and exit status 2.

from __future__ import annotations

import argparse
import dataclasses
import sys

from krait import __version__
from krait.settings import Settings

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}


def parse_args(argv: list[str] | None = None) -> Settings:
    """Settings from the command line (argparse exits with status 2 on invalid values)."""
    p = argparse.ArgumentParser(prog="krait", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Serve a Krait site: static files, .py scripts, Pympl templates "
                                "and WebSockets from one folder.", argument_default=argparse.SUPPRESS)

    def option(*flags: str, dest: str, **kw: object) -> None:
        if "action" not in kw and "metavar" not in kw and "choices" not in kw:
            kw["metavar"] = flags[0].lstrip("-").upper().replace("-", "_")  # N, not the Settings field's name
        p.add_argument(*flags, dest=dest, default=_DEFAULTS[dest], **kw)  # type: ignore[arg-type]

    p.add_argument("site_root", metavar="SITE",
                   help="the site folder (holds .py/init.py, pages, scripts, static files)")
    option("--host", dest="host", help="address to listen on")
    option("--port", "-p", dest="port", type=int, help="port (0 picks a free port)")
    option("--workers", dest="workers", type=int, help="script worker processes (the CPU count)")
    option("--processes", dest="processes", type=int, help="server processes sharing the port (SO_REUSEPORT)")
    option("--timeout", dest="timeout", type=float, help="per-request script deadline, seconds")
    option("--debug", dest="debug", action="store_true", help="tracebacks in error pages, no lookup caching")
    option("--max-body-size", dest="max_body_size", type=int, help="largest request body in bytes (413)")
    option("--max-request-line", dest="max_request_line", type=int, help="longest request line (414)")
    option("--max-header-size", dest="max_header_block", type=int, help="largest header block (431)")
    option("--max-header-line", dest="max_header_line", type=int, help="longest header line (431)")
    option("--max-headers", dest="max_header_count", type=int, help="most header fields (431)")
    option("--header-timeout", dest="header_timeout", type=float, help="seconds to send a header block (408)")
    option("--keepalive-timeout", dest="keepalive_timeout", type=float, help="idle keep-alive seconds")
    option("--min-body-rate", dest="min_body_rate", type=int, help="slowest accepted body upload, bytes/s (408)")
    option("--max-connections", dest="max_connections", type=int, help="open connections per process (503 past it)")
    option("--max-connections-per-ip", dest="max_connections_per_ip", type=int,
           help="open connections per client address and process (503 past it; 0 = no limit)")
    option("--max-queued", dest="max_queued_jobs", type=int, help="requests waiting for a worker (503 past it)")
    option("--max-requests", dest="max_requests", type=int, help="recycle a worker after N requests (0 = never)")
    option("--max-websockets", dest="max_websockets", type=int,
           help="open WebSocket connections per server process (503 past it; lowered to fit the open-file limit)")
    option("--max-ws-message", dest="max_ws_message", type=int, help="largest WebSocket message in bytes (close 1009)")
    option("--ws-workers", dest="ws_workers", type=int,
           help="WebSocket worker processes, each hosting many connections (the CPU count)")
    option("--ws-ping-interval", dest="ws_ping_interval", type=float,
           help="ping a WebSocket client silent this many seconds (0: never)")
    option("--ws-ping-timeout", dest="ws_ping_timeout", type=float,
           help="close (1011) a WebSocket client whose pong takes longer, seconds")
    option("--graceful-timeout", dest="graceful_timeout", type=float, help="seconds in-flight requests get on stop")
    option("--access-log", dest="access_log", metavar="PATH|-",
           help="write an access log (Combined Log Format + time) to PATH or stdout")
    option("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"], help="log level")
    option("--certfile", dest="certfile", help="PEM certificate chain: serve HTTPS")
    option("--keyfile", dest="keyfile", help="PEM private key for --certfile")
    p.add_argument("--forwarded-allow-ips", dest="forwarded_allow_ips",
                   default=",".join(Settings.forwarded_allow_ips),
                   help="comma-separated proxy addresses whose X-Forwarded-*/Forwarded headers are trusted ('*' = all)")
    p.add_argument("--no-gzip", dest="gzip", action="store_false", default=True, help="never gzip responses")
    p.add_argument("--version", action="version", version="Krait " + __version__)
    a = p.parse_args(argv)
    if a.keyfile and not a.certfile:
        p.error("--keyfile needs --certfile")
    for name in ("workers", "processes", "max_connections", "max_websockets", "ws_workers"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    if a.max_connections_per_ip < 0:
        p.error("--max-connections-per-ip must be 0 (no limit) or more")
    a.forwarded_allow_ips = tuple(x.strip() for x in a.forwarded_allow_ips.split(",") if x.strip())
    return Settings(**vars(a))


def main(argv: list[str] | None = None) -> int:
    """The `krait` command: parse the arguments and run the server until it is stopped."""
    from krait.server.lifecycle import run

    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
