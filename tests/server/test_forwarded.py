"""krait/server/forwarded.py: which client and scheme a request comes from behind a trusted proxy."""

import pytest

from krait.server.forwarded import Proxies, canonical_peer, client_view, counted_under

PROXY = ("127.0.0.1", 5000)
TRUSTED = Proxies(("127.0.0.1", "::1"))


@pytest.mark.parametrize("headers, expected", [
    ({}, (PROXY, "http")),
    ({"x-forwarded-for": "203.0.113.9"}, (("203.0.113.9", 0), "http")),
    ({"x-forwarded-for": "1.1.1.1, 203.0.113.9:4711"}, (("203.0.113.9", 4711), "http")),  # the last hop counts
    ({"x-forwarded-proto": "https"}, (PROXY, "https")),
    ({"x-forwarded-proto": "http, HTTPS"}, (PROXY, "https")),
    ({"x-forwarded-proto": "gopher"}, (PROXY, "http")),
    ({"forwarded": 'for="[2001:db8::1]:80";proto=https'}, (("2001:db8::1", 80), "https")),
    ({"forwarded": "for=1.1.1.1, for=198.51.100.7", "x-forwarded-for": "9.9.9.9"}, (("198.51.100.7", 0), "http")),
    ({"forwarded": "proto=https"}, (PROXY, "https")),
])
def test_a_trusted_proxy_is_believed(headers, expected):
    assert client_view(PROXY, "http", headers, TRUSTED) == expected


def test_anyone_else_is_not():
    peer = ("198.51.100.1", 1234)
    headers = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "forwarded": "for=1.2.3.4"}
    assert client_view(peer, "http", headers, TRUSTED) == (peer, "http")
    assert client_view(peer, "https", headers, Proxies(())) == (peer, "https")
    assert client_view(peer, "http", headers, Proxies(("*",))) == (("1.2.3.4", 0), "http")  # "*" trusts everyone


@pytest.mark.parametrize("headers", [
    {"x-forwarded-for": 'evil" 200 "x'}, {"x-forwarded-for": "1.2.3.4, unknown"}, {"x-forwarded-for": "\x1b[31m"},
    {"x-forwarded-for": "example.com"}, {"x-forwarded-for": ""}, {"forwarded": "for=unknown"},
    {"forwarded": "for=_hidden;proto=https"}, {"forwarded": 'for="[not-v6]:80"'},
    # A zone ID means nothing off the proxy's host (and RFC 7239 has none): refused, not stripped.
    {"x-forwarded-for": "fe80::1%eth0"}, {"x-forwarded-for": "fe80::1%25eth0"},
    {"forwarded": 'for="[fe80::1%eth0]:80"'}, {"x-forwarded-for": "::ffff:192.0.2.1%eth0"},
])
def test_a_forwarded_client_that_is_no_ip_address_is_ignored(headers):
    _, scheme = client_view(PROXY, "http", headers, TRUSTED)
    assert client_view(PROXY, "http", headers, TRUSTED) == (PROXY, scheme)


def test_forwarded_ports_are_numbers_or_zero():
    assert client_view(PROXY, "http", {"x-forwarded-for": "1.2.3.4:\u00b2"}, TRUSTED)[0] == ("1.2.3.4", 0)
    assert client_view(PROXY, "http", {"x-forwarded-for": "1.2.3.4:" + "9" * 5000}, TRUSTED)[0] == ("1.2.3.4", 0)
    assert client_view(PROXY, "http", {"x-forwarded-for": "[::1]:65535"}, TRUSTED)[0] == ("::1", 65535)


@pytest.mark.parametrize("peer", [("::ffff:127.0.0.1", 5000, 0, 0), ("::FFFF:127.0.0.1", 5000), ("127.0.0.1", 5000)])
@pytest.mark.parametrize("entries", [("127.0.0.1",), ("127.0.0.0/8",), ("10.0.0.0/8", "127.0.0.0/8"),
                                     ("::ffff:127.0.0.1",), ("::ffff:127.0.0.0/104",)])
def test_a_dual_stack_peer_matches_its_ipv4_address(peer, entries):
    # Listening on ::, an IPv4 proxy is ::ffff:127.0.0.1 to the socket; entries are addresses or networks.
    headers = {"x-forwarded-for": "203.0.113.9"}
    assert client_view(peer, "http", headers, Proxies(entries)) == (("203.0.113.9", 0), "http")


@pytest.mark.parametrize("peer, entries", [
    (("::ffff:127.0.0.2", 5000, 0, 0), ("127.0.0.1",)), (("::ffff:10.0.0.1", 5000, 0, 0), ("127.0.0.0/8",)),
    (("::ffff:127.0.0.1", 5000, 0, 0), ("::1",)), (("::1", 5000, 0, 0), ("127.0.0.1",)),
    (("10.0.0.1", 5000), ("::ffff:127.0.0.0/104",)), (("::2", 5000, 0, 0), ("::1",)),
])
def test_other_peers_still_do_not(peer, entries):
    headers = {"x-forwarded-for": "203.0.113.9"}
    assert client_view(peer, "http", headers, Proxies(entries)) == ((peer[0], 5000), "http")


def test_ipv6_allow_entries_are_compared_as_addresses():
    assert "0:0:0:0:0:0:0:1" in TRUSTED and "fe80::1%eth0" in Proxies(("fe80::/10",))
    assert "junk" not in TRUSTED and "" not in TRUSTED


@pytest.mark.parametrize("entry", ["proxy.example", "127.0.0.1/33", "10.0.0.0/8/8", "::1::2"])
def test_an_allow_entry_that_is_no_address_or_network_is_refused(entry):
    with pytest.raises(ValueError):
        Proxies(("127.0.0.1", entry))


def test_the_peer_and_forwarded_addresses_are_reported_in_ipv4_form_when_they_map_one():
    assert canonical_peer(("::ffff:192.0.2.7", 4711, 0, 0)) == ("192.0.2.7", 4711)
    assert canonical_peer(("::1", 4711, 0, 0)) == ("::1", 4711, 0, 0)
    assert canonical_peer(("192.0.2.7", 4711)) == ("192.0.2.7", 4711)
    assert canonical_peer("/run/krait.sock") == "/run/krait.sock"
    for xff in ("::ffff:198.51.100.7", "[::ffff:198.51.100.7]:0"):
        assert client_view(PROXY, "http", {"x-forwarded-for": xff}, TRUSTED)[0] == ("198.51.100.7", 0)


@pytest.mark.parametrize("host, counted", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8::1", "2001:db8::/64"),
    ("2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64"),  # any host of the same /64
    ("2001:db8:0:1::1", "2001:db8:0:1::/64"),  # the next /64 is another client
    ("", ""),
])
def test_an_ipv6_client_is_counted_under_its_slash_64(host, counted):
    assert counted_under(host) == counted
