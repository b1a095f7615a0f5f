# krait.cookie: read request cookies and set response cookies without touching headers by hand.
#
# Strategy: request cookies are parsed from `krait.request.headers["cookie"]` once per request
# (cached together with the request they came from, so a stale cache can never leak); response
# cookies are plain ("Set-Cookie", text) entries in `krait.extra_headers`, which
# get_response_cookies() parses back into Cookie objects.
#
# Rules (RFC 6265, 0.5.2 quirks fixed, docs/forms-uploads-cookies.md):
# - Output follows RFC 6265 section 4.1.1: "name=value" then "; Attr" / "; Attr=value" with the
#   attribute names Expires, Max-Age, Path, Domain, Secure, HttpOnly (and SameSite, RFC 6265bis).
# - cookie-name is a token (RFC 9110 section 5.6.2). Values and Path/Domain may not hold control
#   characters or ";" (they would end or inject the attribute); anything else browsers accept.
# - Expires is an IMF-fixdate (RFC 6265 section 5.1.1, RFC 9110 section 5.6.7), zero-padded;
#   naive datetimes are UTC.
# - Parsing a Cookie header is tolerant (RFC 6265 section 5.4 is what user agents send, but
#   proxies and old code vary): split on ";", strip spaces, skip pieces without "=", drop one pair
#   of surrounding double quotes from values; values may contain "=".
# - A signed cookie's value is "<value>.<signature>", the signature being HMAC-SHA256 (RFC 2104) of
#   "<name>=<value>" in UTF-8 under the site's key (krait/_store.py), base64url without padding
#   (RFC 4648 section 5). Signing the name too keeps one cookie's value from being replayed as another.

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import re

import krait
from krait import _store

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE_RE = re.compile(r"[\x00-\x1f\x7f;]")
_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}

#: Per-request cache of parsed request cookies: (request, list of Cookie) or None.
_cookies_cpt = None


def _check_value(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"cookie {what} must be a str, not {type(value).__name__}")
    if _BAD_VALUE_RE.search(value):
        raise ValueError(f"cookie {what} {value!r} contains a control character or ';'")
    return value


def _format_expires(when: _dt.datetime) -> str:
    from email.utils import format_datetime

    if not isinstance(when, _dt.datetime):
        raise TypeError(f"Expires needs a datetime.datetime, not {type(when).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    else:
        when = when.astimezone(_dt.UTC)
    return format_datetime(when, usegmt=True)


class CookieAttribute:
    """A cookie attribute, rendered "name" (value None) or "name=value".

    Args:
        name: the attribute name, e.g. "Path".
        value: its value, or None for a flag attribute such as "Secure".
    """

    def __init__(self, name, value=None):
        self.name = name
        self.value = value

    def __str__(self) -> str:
        value = self.value
        return self.name if value is None else f"{self.name}={value}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}={self.value!r}>"

    def __eq__(self, other):
        if not isinstance(other, CookieAttribute):
            return NotImplemented
        return self.name.lower() == other.name.lower() and self.value == other.value

    def __hash__(self):
        return hash((self.name.lower(), self.value))


class CookieExpiresAttribute(CookieAttribute):
    """Expires: the cookie is deleted at this moment (naive datetimes are UTC)."""

    name = "Expires"

    def __init__(self, expire_datetime):
        _format_expires(expire_datetime)  # type check now, not when the header is built
        self.expire_datetime = expire_datetime

    @property
    def value(self) -> str:
        return _format_expires(self.expire_datetime)


class CookieMaxAgeAttribute(CookieAttribute):
    """Max-Age: the cookie is deleted after this many seconds (<= 0 deletes it now)."""

    name = "Max-Age"

    def __init__(self, max_age):
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise TypeError(f"Max-Age must be an int, not {max_age!r}")
        self.max_age = max_age

    @property
    def value(self) -> str:
        return str(self.max_age)


class CookiePathAttribute(CookieAttribute):
    """Path: the cookie is only sent for this URL path and those below it."""

    name = "Path"

    def __init__(self, path):
        self.path = _check_value("Path", path)

    @property
    def value(self) -> str:
        return self.path


class CookieDomainAttribute(CookieAttribute):
    """Domain: the host (and its subdomains) the cookie is sent to."""

    name = "Domain"

    def __init__(self, domain):
        self.domain = _check_value("Domain", domain)

    @property
    def value(self) -> str:
        return self.domain


class CookieHttpOnlyAttribute(CookieAttribute):
    """HttpOnly: the cookie is hidden from JavaScript."""

    name = "HttpOnly"
    value = None

    def __init__(self):
        pass


class CookieSecureAttribute(CookieAttribute):
    """Secure: the cookie is only sent over HTTPS."""

    name = "Secure"
    value = None

    def __init__(self):
        pass


class CookieSameSiteAttribute(CookieAttribute):
    """SameSite: "Strict", "Lax" or "None" (case-insensitive; "None" needs Secure in browsers)."""

    name = "SameSite"

    def __init__(self, same_site):
        canonical = _SAME_SITE.get(str(same_site).lower())
        if canonical is None:
            raise ValueError(f"SameSite must be 'Strict', 'Lax' or 'None', not {same_site!r}")
        self.same_site = canonical

    @property
    def value(self) -> str:
        return self.same_site


class Cookie:
    """An HTTP cookie.

    Args:
        name: the cookie name (an RFC 9110 token).
        value: the cookie value (no control characters or ";").
        attributes: a list of CookieAttribute, or None.

    Raises:
        ValueError: the name is not a token or the value holds a forbidden character.
    """

    def __init__(self, name, value, attributes=None):
        if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
            raise ValueError(f"cookie name {name!r} is not a token")
        self.name = name
        self.value = _check_value("value", value)
        self.attributes = [] if attributes is None else list(attributes)

    @classmethod
    def _unchecked(cls, name, value, attributes=None):
        # Cookies parsed from headers are kept as received, whatever their characters.
        cookie = cls.__new__(cls)
        cookie.name, cookie.value = name, value
        cookie.attributes = [] if attributes is None else attributes
        return cookie

    def add_attribute(self, attribute) -> None:
        """Add an attribute, replacing any with the same name (case-insensitive)."""
        self.remove_attribute(attribute.name)
        self.attributes.append(attribute)

    def remove_attribute(self, name) -> None:
        """Remove every attribute with this name (case-insensitive), e.g. "Expires"."""
        lname = name.lower()
        self.attributes = [a for a in self.attributes if a.name.lower() != lname]

    def _set(self, name, attribute_or_none) -> None:
        if attribute_or_none is None:
            self.remove_attribute(name)
        else:
            self.add_attribute(attribute_or_none)

    def set_expires(self, expires_datetime) -> None:
        """Set Expires to a datetime (naive = UTC), or remove it with None."""
        self._set("Expires", None if expires_datetime is None else CookieExpiresAttribute(expires_datetime))

    def set_max_age(self, max_age) -> None:
        """Set Max-Age in seconds, or remove it with None."""
        self._set("Max-Age", None if max_age is None else CookieMaxAgeAttribute(max_age))

    def set_path(self, path) -> None:
        """Set Path, or remove it with None."""
        self._set("Path", None if path is None else CookiePathAttribute(path))

    def set_domain(self, domain) -> None:
        """Set Domain, or remove it with None."""
        self._set("Domain", None if domain is None else CookieDomainAttribute(domain))

    def set_secure(self, is_secure) -> None:
        """Add (True) or remove (False) the Secure flag."""
        self._set("Secure", CookieSecureAttribute() if is_secure else None)

    def set_http_only(self, is_http_only) -> None:
        """Add (True) or remove (False) the HttpOnly flag."""
        self._set("HttpOnly", CookieHttpOnlyAttribute() if is_http_only else None)

    def set_same_site(self, value) -> None:
        """Set SameSite to "Strict", "Lax" or "None", or remove it with None."""
        self._set("SameSite", None if value is None else CookieSameSiteAttribute(value))

    def __str__(self) -> str:
        if not self.attributes:
            return f"{self.name}={self.value}"
        return f"{self.name}={self.value}; " + "; ".join(map(str, self.attributes))

    def __repr__(self) -> str:
        return f"<Cookie {self.name}={self.value!r} {self.attributes!r}>"

    def __eq__(self, other):
        if not isinstance(other, Cookie):
            return NotImplemented
        return (self.name, self.value, self.attributes) == (other.name, other.value, other.attributes)

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _parse_cookie_header(header: str) -> list[Cookie]:
    cookies = []
    for piece in header.split(";"):
        name, eq, value = piece.partition("=")
        name = name.strip()
        if eq and name:
            cookies.append(Cookie._unchecked(name, _unquote(value.strip())))
    return cookies


def get_cookies() -> list[Cookie]:
    """All cookies the client sent, in order ([] when none)."""
    global _cookies_cpt
    request = krait.request
    if request is None:
        return []
    cached = _cookies_cpt
    if cached is None or cached[0] is not request:
        header = request.headers.get("cookie")
        cached = _cookies_cpt = (request, _parse_cookie_header(header) if header else [])
    return list(cached[1])


def get_cookie(name, default=None):
    """The value of the first request cookie called `name`, or `default`."""
    for cookie in get_cookies():
        if cookie.name == name:
            return cookie.value
    return default


_ATTRIBUTE_PARSERS = {
    "path": CookiePathAttribute,
    "domain": CookieDomainAttribute,
    "samesite": CookieSameSiteAttribute,
}


def _parse_attribute(text: str) -> CookieAttribute:
    name, eq, value = text.partition("=")
    name, value = name.strip(), value.strip()
    lname = name.lower()
    try:
        if lname == "secure":
            return CookieSecureAttribute()
        if lname == "httponly":
            return CookieHttpOnlyAttribute()
        if lname == "max-age":
            return CookieMaxAgeAttribute(int(value))
        if lname == "expires":
            from email.utils import parsedate_to_datetime

            return CookieExpiresAttribute(parsedate_to_datetime(value))
        if lname in _ATTRIBUTE_PARSERS:
            return _ATTRIBUTE_PARSERS[lname](value)
    except (ValueError, TypeError):
        pass  # an unparsable value: keep it as a generic attribute
    return CookieAttribute(name, value if eq else None)


def get_response_cookies() -> list[Cookie]:
    """Cookies already set for the response (by set_cookie() or a "Set-Cookie" extra header)."""
    cookies = []
    for name, value in krait.extra_headers or ():
        if str(name).lower() != "set-cookie":
            continue
        pair, *attrs = str(value).split(";")
        cname, _, cvalue = pair.partition("=")
        attributes = [_parse_attribute(a) for a in attrs if a.strip()]
        cookies.append(Cookie._unchecked(cname.strip(), cvalue.strip(), attributes))
    return cookies


def set_cookie(cookie) -> None:
    """Send this cookie with the response (appends a Set-Cookie header to krait.extra_headers)."""
    if krait.extra_headers is None:
        krait.extra_headers = []
    krait.extra_headers.append(("Set-Cookie", str(cookie)))


def _signature(key: bytes, name: str, value: str) -> str:
    text = ("%s=%s" % (name, value)).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, text, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def set_signed_cookie(cookie) -> None:
    """Send this cookie with its value signed (HMAC-SHA256 with krait.config.secret_key); the cookie
    object itself is left as it is. Read it back with get_signed_cookie()."""
    key = _store.secret_key()
    assert key is not None  # made when missing
    value = "%s.%s" % (cookie.value, _signature(key, cookie.name, cookie.value))
    set_cookie(Cookie(cookie.name, value, list(cookie.attributes)))


def get_signed_cookie(name, default=None):
    """The value of the first request cookie called `name` whose signature is valid (as given to
    set_signed_cookie()), or `default` when there is none: a forged or altered value reads as `default`."""
    key = None
    for cookie in get_cookies():
        if cookie.name == name:
            if key is None:
                key = _store.secret_key(create=False)
                if key is None:  # no key was ever made here: nothing was signed with it
                    return default
            value, dot, signature = cookie.value.rpartition(".")
            if dot and signature.isascii() and hmac.compare_digest(signature, _signature(key, name, value)):
                return value
    return default


def _reset() -> None:
    """Fresh per-request state (called by krait._begin_request)."""
    global _cookies_cpt
    _cookies_cpt = None
