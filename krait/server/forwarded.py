# Which client and scheme a request really comes from, when Krait runs behind a proxy.
#
# Rules: proxy headers are believed only when the TCP peer is in --forwarded-allow-ips (default
# 127.0.0.1 and ::1; "*" trusts everyone). From such a peer, RFC 7239 `Forwarded` (for=, proto=) wins over
# the de-facto X-Forwarded-For / X-Forwarded-Proto. The client is the LAST address the trusted proxy
# appended (the right-most entry); earlier entries are whatever the client claimed and are not trusted.
# From any other peer these headers are ignored entirely.

from __future__ import annotations

from collections.abc import Collection


def _strip_port(node: str) -> tuple[str, int]:
    node = node.strip().strip('"')
    if node.startswith("["):  # [v6]:port
        host, _, rest = node[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
    else:
        host, port = node, ""
    return host, int(port) if port.isdigit() else 0


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
                client = _strip_port(value)
            elif key == "proto" and value:
                proto = value.strip().strip('"').lower()
        return client or peer, proto if proto in ("http", "https") else scheme
    xff = headers.get("x-forwarded-for")
    xfp = headers.get("x-forwarded-proto")
    client = _strip_port(xff.split(",")[-1]) if xff and xff.split(",")[-1].strip() else peer
    proto = xfp.split(",")[-1].strip().lower() if xfp else scheme
    return client, proto if proto in ("http", "https") else scheme
