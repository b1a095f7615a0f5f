"""RFC 6455 section 4.2 server handshake: krait.http.handshake (no sockets)."""

import base64
import os

import pytest

from krait.errors import LocalProtocolError, ProtocolError
from krait.http.handshake import (
    GUID,
    VERSION_HEADERS,
    WebSocketHandshake,
    accept_key,
    is_upgrade_request,
    response_headers,
    validate_request,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def headers(**extra):
    base = {
        "host": "server.example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": "13",
    }
    base.update({name.replace("_", "-"): value for name, value in extra.items()})
    return {name: value for name, value in base.items() if value is not None}


def rejected(method="GET", version="1.1", **extra):
    with pytest.raises(ProtocolError) as info:
        validate_request(method, version, headers(**extra))
    return info.value


def test_guid_and_rfc_example():
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    # RFC 6455 section 1.3 worked example
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    "upgrade, connection",
    [
        ("websocket", "Upgrade"),
        ("WebSocket", "upgrade"),
        ("foo/2, websocket", "keep-alive, Upgrade"),
        (" WEBSOCKET ", "UPGRADE,keep-alive"),
    ],
)
def test_is_upgrade_request_true(upgrade, connection):
    assert is_upgrade_request({"upgrade": upgrade, "connection": connection})


@pytest.mark.parametrize(
    "hdrs",
    [
        {},
        {"upgrade": "websocket"},
        {"connection": "Upgrade"},
        {"upgrade": "h2c", "connection": "Upgrade"},
        {"upgrade": "websockets", "connection": "Upgrade"},
        {"upgrade": "websocket", "connection": "keep-alive"},
        {"upgrade": "websocket", "connection": "upgraded"},
        {"upgrade": "", "connection": ""},
    ],
)
def test_is_upgrade_request_false(hdrs):
    assert not is_upgrade_request(hdrs)


def test_validate_minimal_request():
    hs = validate_request("GET", "1.1", headers())
    assert hs == WebSocketHandshake(KEY, [], [])
    assert validate_request("GET", "HTTP/1.1", headers()).key == KEY


def test_validate_parses_protocols_and_extensions():
    hs = validate_request(
        "GET",
        "1.1",
        headers(
            sec_websocket_protocol="chat,  superchat , , v2.ticker",
            sec_websocket_extensions="permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
        ),
    )
    assert hs.protocols == ["chat", "superchat", "v2.ticker"]
    assert hs.extensions_offered == ["permessage-deflate", "x-webkit-deflate-frame"]


def test_key_with_surrounding_whitespace_is_accepted():
    assert validate_request("GET", "1.1", headers(sec_websocket_key=f" {KEY} ")).key == KEY


@pytest.mark.parametrize("method", ["POST", "HEAD", "get", "CONNECT"])
def test_method_must_be_get(method):
    error = rejected(method=method)
    assert error.status_hint == 400 and error.headers == ()


@pytest.mark.parametrize("version", ["1.0", "HTTP/1.0", "2", "0.9"])
def test_http_version_must_be_1_1(version):
    assert rejected(version=version).status_hint == 400


def test_host_required():
    assert rejected(host=None).status_hint == 400


@pytest.mark.parametrize("extra", [{"upgrade": None}, {"connection": "keep-alive"}, {"upgrade": "h2c"}])
def test_upgrade_tokens_required(extra):
    assert rejected(**extra).status_hint == 400


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "not base64!!",
        base64.b64encode(os.urandom(15)).decode(),
        base64.b64encode(os.urandom(17)).decode(),
        KEY.rstrip("="),
        f"{KEY}, {KEY}",  # header sent twice
        "dGhlIHNhbXBsZSBub25jZQ==é",
    ],
)
def test_invalid_key_is_400(key):
    error = rejected(sec_websocket_key=key)
    assert error.status_hint == 400 and error.headers == ()


def test_missing_version_is_400_with_version_header():
    error = rejected(sec_websocket_version=None)
    assert error.status_hint == 400 and error.headers == VERSION_HEADERS


@pytest.mark.parametrize("version", ["8", "12", "14", "", "13a"])
def test_other_version_is_426_with_version_header(version):
    error = rejected(sec_websocket_version=version)
    assert error.status_hint == 426 and error.headers == VERSION_HEADERS
    assert VERSION_HEADERS == (("Sec-WebSocket-Version", "13"),)


def test_repeated_version_is_400_with_version_header():
    error = rejected(sec_websocket_version="13, 13")
    assert error.status_hint == 400 and error.headers == VERSION_HEADERS


@pytest.mark.parametrize("protocols", ["chat, sup er", "a/b", "chat, [x]"])
def test_protocols_must_be_tokens(protocols):
    assert rejected(sec_websocket_protocol=protocols).status_hint == 400


def test_response_headers_without_protocol():
    hs = validate_request("GET", "1.1", headers())
    assert response_headers(hs, None) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]


def test_response_headers_with_offered_protocol():
    hs = validate_request("GET", "1.1", headers(sec_websocket_protocol="chat, superchat"))
    assert response_headers(hs, "superchat")[-1] == ("Sec-WebSocket-Protocol", "superchat")


@pytest.mark.parametrize("offered", [None, "chat"])
def test_response_headers_with_protocol_not_offered_raises(offered):
    hs = validate_request("GET", "1.1", headers(sec_websocket_protocol=offered))
    with pytest.raises(LocalProtocolError):
        response_headers(hs, "superchat")
    with pytest.raises(LocalProtocolError):
        response_headers(hs, "Chat")  # subprotocol names are compared exactly


def test_handshake_is_frozen():
    hs = validate_request("GET", "1.1", headers())
    with pytest.raises(AttributeError):
        hs.key = "x"


def test_no_io_imports():
    import krait.http.handshake as hmod
    import krait.http.websocket as wmod

    for mod in (hmod, wmod):
        with open(mod.__file__, encoding="utf-8") as f:
            source = f.read()
        for name in ("socket", "selectors", "threading", "multiprocessing", "time"):
            assert f"import {name}" not in source
