# Which client and scheme a request really comes from, when Krait runs behind a proxy.
#
# Rules: proxy headers are believed only when the TCP peer is in --forwarded-allow-ips (default
# 127.0.0.1 and ::1; "*" trusts everyone). From such a peer, RFC 7239 `Forwarded` (for=, proto=) wins over
# the de-facto X-Forwarded-For / X-Forwarded-Proto. The client is the LAST address the trusted proxy
# appended (the right-most entry); earlier entries are whatever the client claimed and are not trusted.
# From any other peer these headers are ignored entirely. A client that is not an IP address (RFC 7239's
# "unknown" and "_obfuscated" nodes, or junk) is ignored too: the peer is kept, so only addresses reach
# krait.request and the access log.

from __future__ import annotations

import ipaddress
from collections.abc import Collection


def _address(node: str) -> tuple[str, int] | None:
    """(ip, port) of a node ("ip", "ip:port", "[v6]:port"), or None when it names no IP address."""
    host, port = _strip_port(node)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return None


def _strip_port(node: str) -> tuple[str, int]:
    node = node.strip().strip('"')
    if node.startswith("["):  # [v6]:port
        host, _, rest = node[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
    else:
        host, port = node, ""
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        port = "0"
    return host, int(port)


def client_view(peer: tuple, scheme: str, headers: dict[str, str],
                trusted: Collection[str]) -> tuple[tuple[str, int], str]:
    """Return ((client_ip, client_port), scheme) for a request received from `peer`."""
    peer = (peer[0], peer[1]) if len(peer) >= 2 else (str(peer), 0)
    if not trusted or (peer[0] not in trusted and "*" not in trusted):
        return peer, scheme
    fwd = headers.get("forwarded")
    if fwd:
        last = fwd.split(",")[-1]
        client, proto = None, None
        for pair in last.split(";"):
            key, _, value = pair.strip().partition("=")
            key = key.strip().lower()
            if key == "for" and value:
                client = _address(value)
            elif key == "proto" and value:
                proto = value.strip().strip('"').lower()
        return client or peer, proto if proto in ("http", "https") else scheme
    xff = headers.get("x-forwarded-for")
    xfp = headers.get("x-forwarded-proto")
    client = _address(xff.split(",")[-1]) if xff else None
    proto = xfp.split(",")[-1].strip().lower() if xfp else scheme
    return client or peer, proto if proto in ("http", "https") else scheme
