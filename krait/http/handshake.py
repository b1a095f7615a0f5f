# RFC 6455 section 4.2: the server side of the WebSocket opening handshake.
#
# Rules:
#   - The HTTP layer has already parsed the request; this module only reads its method, version
#     and headers (lower-case names, duplicates joined with ", ") and never touches bytes.
#   - is_upgrade_request() answers "does the client ask for WebSocket?" (token match, case-
#     insensitive, section 4.2.1 items 3-4). validate_request() then checks the whole handshake and
#     raises krait.errors.ProtocolError with the status to answer (400, or 426 for a version we do
#     not speak, section 4.4). Errors about the version carry ``headers = VERSION_HEADERS`` so the
#     caller can add "Sec-WebSocket-Version: 13"; every other ProtocolError here has ``headers = ()``.
#   - response_headers() builds the 101 headers (section 4.2.2 step 5) for a subprotocol the
#     application picked; picking one the client did not offer is our bug (LocalProtocolError).
#   - No extension is ever negotiated: offers are parsed for logging only.

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from krait.errors import LocalProtocolError, ProtocolError

#: Section 1.3 / 4.2.2: the GUID appended to Sec-WebSocket-Key before hashing.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Section 4.2.2: the only version we speak; section 4.4: sent back with a version rejection.
WEBSOCKET_VERSION = "13"
VERSION_HEADERS = (("Sec-WebSocket-Version", WEBSOCKET_VERSION),)
#: Section 4.1: the key "MUST be a nonce consisting of a randomly selected 16-byte value that has
#: been base64-encoded", i.e. 24 characters ending in "==".
KEY_SIZE = 16

# RFC 9110 section 5.6.2: token = 1*tchar. Subprotocol names are tokens (RFC 6455 section 4.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


@dataclass(frozen=True, slots=True)
class WebSocketHandshake:
    """A validated client handshake.

    Attributes:
        key: the Sec-WebSocket-Key, as sent.
        protocols: the offered subprotocols in the client's order ([] when none offered).
        extensions_offered: names of the offered extensions (informational; never negotiated).
    """

    key: str
    protocols: list[str]
    extensions_offered: list[str]


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for ``key``: base64(SHA-1(key + GUID)) (section 4.2.2 step 5.4)."""
    digest = hashlib.sha1((key + GUID).encode("latin-1")).digest()
    return base64.b64encode(digest).decode("ascii")


def _comma_list(value: str) -> list[str]:
    # RFC 9110 section 5.6.1: #element lists, OWS around commas, empty elements ignored.
    return [item for item in (part.strip() for part in value.split(",")) if item]


def _has_token(value: str | None, token: str) -> bool:
    if not value:
        return False
    return any(item.lower() == token for item in _comma_list(value))


def is_upgrade_request(headers: dict[str, str]) -> bool:
    """True if the request asks to switch to WebSocket (section 4.2.1 items 3 and 4).

    "Upgrade" must list the token "websocket" and "Connection" the token "Upgrade"; both are
    compared case-insensitively (RFC 9110 sections 7.6.1 and 7.8).
    """
    upgrade, connection = headers.get("upgrade"), headers.get("connection")
    return _has_token(upgrade, "websocket") and _has_token(connection, "upgrade")


def _reject(message: str, status: int = 400, headers: tuple = ()) -> ProtocolError:
    error = ProtocolError(message, status)
    error.headers = headers  # extra response headers the caller must send with the rejection
    return error


def validate_request(method: str, http_version: str, headers: dict[str, str]) -> WebSocketHandshake:
    """Check a client opening handshake (section 4.2.1).

    Args:
        method: the request method.
        http_version: "1.1" (or "HTTP/1.1").
        headers: lower-case names, str values, duplicates joined with ", ".
    Returns:
        The key, offered subprotocols and offered extension names.
    Raises:
        ProtocolError: status_hint 400 for a malformed handshake; 426 when Sec-WebSocket-Version is
            present but not 13 (section 4.4). Version errors (400 for a missing or repeated
            header, and 426) have ``headers == VERSION_HEADERS``; others ``headers == ()``.
    """
    # 4.2.1 item 1: "An HTTP/1.1 or higher GET request". We speak only HTTP/1.1 (HTTP/2 uses
    # RFC 8441 instead).
    if method != "GET":
        raise _reject(f"WebSocket handshake with method {method}, not GET")
    if http_version not in ("1.1", "HTTP/1.1"):
        raise _reject(f"WebSocket handshake over HTTP/{http_version}, not 1.1")
    # Items 2-4: Host, Upgrade: websocket, Connection: Upgrade.
    if not headers.get("host"):
        raise _reject("WebSocket handshake without Host")
    if not is_upgrade_request(headers):
        raise _reject("WebSocket handshake without Upgrade: websocket and Connection: Upgrade")
    # Item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
    version = headers.get("sec-websocket-version")
    if version is None:
        raise _reject("WebSocket handshake without Sec-WebSocket-Version", 400, VERSION_HEADERS)
    version = version.strip()
    if "," in version:  # section 11.3.5: it "MUST NOT appear more than once"
        raise _reject("Sec-WebSocket-Version repeated", 400, VERSION_HEADERS)
    if version != WEBSOCKET_VERSION:
        raise _reject(f"unsupported Sec-WebSocket-Version {version!r}", 426, VERSION_HEADERS)
    # Item 5: the key, base64 of 16 bytes. A repeated header (section 11.3.1 "MUST NOT appear
    # more than once") has been joined with ", " and fails to decode.
    key = headers.get("sec-websocket-key", "").strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _reject("Sec-WebSocket-Key is not base64") from None
    if len(raw) != KEY_SIZE:
        raise _reject("Sec-WebSocket-Key is not 16 bytes (missing or wrong size)")
    # Item 8 (optional): |Sec-WebSocket-Protocol|, "a comma-separated list of values indicating
    # which protocols the client would like to speak", each a token.
    protocols = _comma_list(headers.get("sec-websocket-protocol", ""))
    for protocol in protocols:
        if not _TOKEN.match(protocol):
            raise _reject(f"Sec-WebSocket-Protocol {protocol!r} is not a token")
    # Item 9 (optional): |Sec-WebSocket-Extensions|; keep each offer's name.
    offers = _comma_list(headers.get("sec-websocket-extensions", ""))
    extensions = [name for name in (offer.split(";", 1)[0].strip() for offer in offers) if name]
    return WebSocketHandshake(key, protocols, extensions)


def response_headers(handshake: WebSocketHandshake, protocol: str | None) -> list[tuple[str, str]]:
    """Headers of the 101 Switching Protocols response (section 4.2.2 step 5).

    Args:
        handshake: from validate_request().
        protocol: the subprotocol the application chose, or None.
    Raises:
        LocalProtocolError: ``protocol`` is not one the client offered (section 4.2.2 step 5.5:
            "the value chosen MUST be derived from the client's handshake").
    """
    result = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(handshake.key)),
    ]
    if protocol is not None:
        if protocol not in handshake.protocols:
            raise LocalProtocolError(f"subprotocol {protocol!r} was not offered by the client")
        result.append(("Sec-WebSocket-Protocol", protocol))
    return result
