# Request targets: split once, decode once (shared by the server's routing and krait.Request).
#
# Rules:
# - A request-target (RFC 9112 section 3.2) is split at the first "?" into the path and the query.
# - An absolute-form target ("http://host/p", section 3.2.2) is routed by its origin-form path ("/p"). The
#   asterisk-form ("*", section 3.2.4) never reaches the routes (krait/server/dispatch.py answers
#   "OPTIONS *"); its path is "/".
# - The path is percent-decoded once, as UTF-8; bytes that are not UTF-8 are a 400 (docs/routing.md).

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from krait.errors import BadRequest


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a raw request-target; the query is "" when there is none."""
    path, _, query = target.partition("?")
    return path, query


def origin_path(path: str) -> str:
    """The path of an absolute-form target (RFC 9112 section 3.2.2), or the path itself."""
    if path.startswith("/"):
        return path
    if "://" in path:
        rest = path.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    if path == "*":
        return "/"
    return "/" + path


def decode_path(raw_path: str) -> str:
    """Percent-decode a request path once as UTF-8.

    Raises:
        BadRequest: the decoded bytes are not UTF-8.
    """
    if "%" not in raw_path:
        return raw_path
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request path is not valid UTF-8 after percent-decoding") from None
