# The `krait` command line: arguments -> Settings, then krait/server/lifecycle.py runs the server.
#
# Design: every option's default is the Settings field's (krait/settings.py, whose limits come from
# krait/limits.py), so a default is written in one place, and --help shows it (but for an on/off flag or an
# option that is unset unless given: "default: True" on --no-gzip misleads). Each number is checked
# against its range when it is parsed, each --forwarded-allow-ips entry must be an address or a network, and
# the access log is opened once: an invalid value ends with one line, `krait: error: ...` (argparse's,
# without the usage above it), and exit status 2, never a traceback.

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from typing import NoReturn

from krait import __version__
from krait.server.forwarded import Proxies
from krait.settings import Settings

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}


def _number(kind: type, low: float, high: float = math.inf, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` (int or float) from `low` (excluded when `above`) to `high`."""
    if above:
        wanted = "a number above %g" % low
    elif high < math.inf:
        wanted = "a whole number from %d to %d" % (low, high)
    else:
        wanted = "%s of at least %g" % ("a whole number" if kind is int else "a number", low)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (value > low if above else low <= value <= high) or value in (math.inf, -math.inf):
            raise argparse.ArgumentTypeError("expected %s, not %r" % (wanted, text))
        return value

    return parse


_PORT = _number(int, 0, 65535)
_COUNT = _number(int, 1)  # at least one
_SIZE = _number(int, 0)  # zero or more
_SECONDS = _number(float, 0, above=True)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in --help, but none for a flag (--no-gzip's default is not "True") or an
    option unset unless given ("None")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def parse_args(argv: list[str] | None = None) -> Settings:
    """Settings from the command line (argparse exits with status 2 on invalid values)."""
    p = _Parser(prog="krait", formatter_class=_Help,
                description="Serve a Krait site: static files, .py scripts, Pympl templates and WebSockets from "
                "one folder.", argument_default=argparse.SUPPRESS)

    def option(*flags: str, dest: str, **kw: object) -> None:
        if "action" not in kw and "metavar" not in kw and "choices" not in kw:
            kw["metavar"] = flags[0].lstrip("-").upper().replace("-", "_")  # N, not the Settings field's name
        p.add_argument(*flags, dest=dest, default=_DEFAULTS[dest], **kw)  # type: ignore[arg-type]

    p.add_argument("site_root", metavar="SITE",
                   help="the site folder (holds .py/init.py, pages, scripts, static files)")
    option("--host", dest="host", help="address to listen on")
    option("--port", "-p", dest="port", type=_PORT, help="port (0 picks a free port)")
    option("--workers", dest="workers", type=_COUNT, help="script worker processes (the CPUs this process may use)")
    option("--processes", dest="processes", type=_COUNT, help="server processes sharing the port (Linux)")
    option("--timeout", dest="timeout", type=_SECONDS, help="per-request script deadline, seconds")
    option("--debug", dest="debug", action="store_true", help="tracebacks in error pages, no lookup caching")
    option("--max-body-size", dest="max_body_size", type=_SIZE, help="largest request body in bytes (413)")
    option("--max-request-line", dest="max_request_line", type=_COUNT, help="longest request line (414)")
    option("--max-header-size", dest="max_header_block", type=_COUNT, help="largest header block (431)")
    option("--max-header-line", dest="max_header_line", type=_COUNT, help="longest header line (431)")
    option("--max-headers", dest="max_header_count", type=_COUNT, help="most header fields (431)")
    option("--header-timeout", dest="header_timeout", type=_SECONDS, help="seconds to send a header block (408)")
    option("--keepalive-timeout", dest="keepalive_timeout", type=_SECONDS, help="idle keep-alive seconds")
    option("--min-body-rate", dest="min_body_rate", type=_COUNT, help="slowest accepted body upload, bytes/s (408)")
    option("--send-timeout", dest="send_timeout", type=_SECONDS,
           help="seconds a client may take no response bytes (the connection is dropped)")
    option("--min-send-rate", dest="min_send_rate", type=_COUNT,
           help="slowest accepted reading of a large response, bytes/s per --send-timeout window (dropped)")
    option("--max-connections", dest="max_connections", type=_COUNT, help="open connections per process (503 past it)")
    option("--max-connections-per-ip", dest="max_connections_per_ip", type=_SIZE,
           help="open connections per client address and process (503 past it; 0 = no limit)")
    option("--max-queued", dest="max_queued_jobs", type=_SIZE, help="requests waiting for a worker (503 past it)")
    option("--max-requests", dest="max_requests", type=_SIZE, help="recycle a worker after N requests (0 = never)")
    option("--max-websockets", dest="max_websockets", type=_COUNT,
           help="open WebSocket connections per server process (when all are taken, shared out by client "
                "address; lowered to fit the open-file limit)")
    option("--max-ws-message", dest="max_ws_message", type=_COUNT,
           help="largest WebSocket message in bytes (close 1009)")
    option("--ws-workers", dest="ws_workers", type=_COUNT,
           help="WebSocket worker processes, each hosting many connections (the CPUs this process may use)")
    option("--ws-ping-interval", dest="ws_ping_interval", type=_number(float, 0),
           help="ping a WebSocket client silent this many seconds (0: never)")
    option("--ws-ping-timeout", dest="ws_ping_timeout", type=_SECONDS,
           help="close (1011) a WebSocket client whose pong takes longer, seconds")
    option("--graceful-timeout", dest="graceful_timeout", type=_number(float, 0),
           help="seconds in-flight requests get on stop")
    option("--access-log", dest="access_log", metavar="PATH|-",
           help="write an access log (Combined Log Format + time) to PATH or stdout")
    option("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"], help="log level")
    option("--certfile", dest="certfile", help="PEM certificate chain: serve HTTPS")
    option("--keyfile", dest="keyfile", help="PEM private key for --certfile")
    p.add_argument("--forwarded-allow-ips", dest="forwarded_allow_ips",
                   default=",".join(Settings.forwarded_allow_ips),
                   help="comma-separated proxy addresses or networks whose X-Forwarded-*/Forwarded headers are trusted "
                        "('*' = all)")
    p.add_argument("--no-gzip", dest="gzip", action="store_false", default=True, help="never gzip responses")
    p.add_argument("--version", action="version", version="Krait " + __version__)
    a = p.parse_args(argv)
    if a.keyfile and not a.certfile:
        p.error("--keyfile needs --certfile")
    if a.access_log and a.access_log != "-":
        try:
            open(a.access_log, "a").close()
        except OSError as exc:
            p.error("cannot open the access log %r: %s" % (a.access_log, exc.strerror or exc))
    a.forwarded_allow_ips = tuple(x.strip() for x in a.forwarded_allow_ips.split(",") if x.strip())
    for entry in a.forwarded_allow_ips:
        try:
            Proxies([entry])
        except ValueError:
            p.error("--forwarded-allow-ips: expected addresses or networks (10.0.0.0/8) or '*', not %r" % entry)
    return Settings(**vars(a))


def main(argv: list[str] | None = None) -> int:
    """The `krait` command: parse the arguments and run the server until it is stopped."""
    from krait.server.lifecycle import run

    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
