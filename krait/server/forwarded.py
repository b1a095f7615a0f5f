# Which client and scheme a request really comes from, when Krait runs behind a proxy.
#
# Rules: proxy headers are believed only when the TCP peer is in --forwarded-allow-ips (default
# 127.0.0.1 and ::1; "*" trusts everyone). From such a peer, RFC 7239 `Forwarded` (for=, proto=) wins over
# the de-facto X-Forwarded-For / X-Forwarded-Proto. The client is the LAST address the trusted proxy
# appended (the right-most entry); earlier entries are whatever the client claimed and are not trusted.
# From any other peer these headers are ignored entirely. A client that is not an IP address (RFC 7239's
# "unknown" and "_obfuscated" nodes, or junk) is ignored too: the peer is kept, so only addresses reach
# krait.request and the access log.
# Addresses are compared as ipaddress objects, never as text: an allow-list entry is an address or a
# network (10.0.0.0/8), and an IPv4-mapped IPv6 address (::ffff:127.0.0.1, how a server listening on ::
# sees an IPv4 client) is the IPv4 address it maps, wherever it appears: the peer (canonical_peer(), which
# the listener applies to every accepted connection), an allow-list entry, or a forwarded address.
# Where connections are counted by client address, an IPv6 client counts under its /64 (counted_under()).

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from krait import limits

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NET = ipaddress.IPv4Network | ipaddress.IPv6Network


class Proxies:
    """The --forwarded-allow-ips entries, parsed once: addresses and networks, or everyone ("*").
    Raises ValueError for an entry that is neither (krait/server/cli.py refuses it at start)."""

    def __init__(self, entries: Iterable[str]) -> None:
        entries = [e.strip() for e in entries if e.strip()]
        self.everyone = "*" in entries
        self.networks: tuple[_NET, ...] = tuple(_network(e) for e in entries if e != "*")

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def __contains__(self, host: object) -> bool:
        """Whether the peer address `host` (text) is a trusted proxy."""
        if self.everyone:
            return True
        ip = _ip(str(host))
        return ip is not None and any(ip in net for net in self.networks)  # an IPv4 ip is in no IPv6 net


def _network(entry: str) -> _NET:
    net = ipaddress.ip_network(entry, strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.network_address.ipv4_mapped:
        return ipaddress.IPv4Network((net.network_address.ipv4_mapped, net.prefixlen - 96))
    return net


def _ip(host: str) -> _IP | None:
    """The address `host` names, an IPv4-mapped one as IPv4; None when it names none."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def canonical_peer(address: Any) -> Any:
    """A socket peer address with an IPv4-mapped host as the plain IPv4 (host, port); anything else as is."""
    if isinstance(address, tuple) and len(address) >= 2 and str(address[0]).lower().startswith("::ffff:"):
        ip = _ip(str(address[0]))
        if isinstance(ip, ipaddress.IPv4Address):
            return str(ip), address[1]
    return address


def counted_under(host: str) -> str:
    """What a client's connections are counted under by the per-address bounds: an IPv4 address as is, an
    IPv6 one as its network of limits.IPV6_COUNTED_PREFIX bits ("2001:db8::/64"). `host` is canonical
    (canonical_peer(), or a forwarded address)."""
    if ":" not in host:
        return host
    try:
        return str(ipaddress.IPv6Network((host, limits.IPV6_COUNTED_PREFIX), strict=False))
    except ValueError:  # not an address (a peer that is no IP socket's): counted as it is
        return host


def _address(node: str) -> tuple[str, int] | None:
    """(ip, port) of a node ("ip", "ip:port", "[v6]:port"), or None when it names no IP address."""
    host, port = _strip_port(node)
    # A zone ID (fe80::1%eth0, the only use of "%" that ipaddress accepts) names an interface of the
    # proxy's host: it means nothing here, and RFC 7239 section 6 allows none (its IPv6address is RFC
    # 3986's). So it is refused like any other junk, not stripped: the peer is kept.
    ip = None if "%" in host else _ip(host)
    return None if ip is None else (str(ip), port)


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
                trusted: Proxies) -> tuple[tuple[str, int], str]:
    """Return ((client_ip, client_port), scheme) for a request received from `peer`."""
    peer, via_proxy = peer_and_trust(peer, trusted)
    return proxied_view(peer, scheme, headers) if via_proxy else (peer, scheme)


def peer_and_trust(address: Any, trusted: Proxies) -> tuple[tuple[str, int], bool]:
    """A connection's peer as (ip, port), and whether it is a trusted proxy: asked once per connection
    (krait/server/channel.py), since comparing addresses costs microseconds."""
    peer = (address[0], address[1]) if isinstance(address, tuple) and len(address) >= 2 else (str(address), 0)
    return peer, bool(trusted) and peer[0] in trusted


def proxied_view(peer: tuple[str, int], scheme: str, headers: dict[str, str]) -> tuple[tuple[str, int], str]:
    """client_view() for a `peer` known to be a trusted proxy (peer_and_trust())."""
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
