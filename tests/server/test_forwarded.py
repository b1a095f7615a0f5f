"""krait/server/forwarded.py: which client and scheme a request comes from behind a trusted proxy."""

import pytest

from krait.server.forwarded import client_view

PROXY = ("127.0.0.1", 5000)
TRUSTED = ("127.0.0.1", "::1")


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
    assert client_view(peer, "https", headers, ()) == (peer, "https")
    assert client_view(peer, "http", headers, ("*",)) == (("1.2.3.4", 0), "http")  # "*" trusts everyone


@pytest.mark.parametrize("headers", [
    {"x-forwarded-for": 'evil" 200 "x'}, {"x-forwarded-for": "1.2.3.4, unknown"}, {"x-forwarded-for": "\x1b[31m"},
    {"x-forwarded-for": "example.com"}, {"x-forwarded-for": ""}, {"forwarded": "for=unknown"},
    {"forwarded": "for=_hidden;proto=https"}, {"forwarded": 'for="[not-v6]:80"'},
])
def test_a_forwarded_client_that_is_no_ip_address_is_ignored(headers):
    _, scheme = client_view(PROXY, "http", headers, TRUSTED)
    assert client_view(PROXY, "http", headers, TRUSTED) == (PROXY, scheme)


def test_forwarded_ports_are_numbers_or_zero():
    assert client_view(PROXY, "http", {"x-forwarded-for": "1.2.3.4:\u00b2"}, TRUSTED)[0] == ("1.2.3.4", 0)
    assert client_view(PROXY, "http", {"x-forwarded-for": "1.2.3.4:" + "9" * 5000}, TRUSTED)[0] == ("1.2.3.4", 0)
    assert client_view(PROXY, "http", {"x-forwarded-for": "[::1]:65535"}, TRUSTED)[0] == ("::1", 65535)
