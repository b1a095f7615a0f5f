# krait.session: the visitor's session, a dict of JSON values kept on the server (docs/sessions.md).
#
# Design: krait._begin_request binds a fresh Session for every request, which costs nothing until site
# code uses it. Its first use reads the krait_session cookie and loads that session from the store
# (krait/_store.py); a malformed, unknown or expired id gives an empty session, and of several
# krait_session cookies (a parent domain's beside the site's own) the first the store knows counts.
# After the site code ran, the worker calls _end(): every value is compared with what was loaded by its
# JSON text (so a list changed in place counts as written), and only the changed and deleted keys go to
# the store, which merges them into the stored session in one transaction. Two requests of one session
# that change different keys therefore keep both changes; when both change the same key, the later wins.
#
# Rules:
# - An id is 128 random bits (secrets.token_urlsafe(16), 22 characters). The server never adopts an id
#   it did not make: writing to a session the store does not know creates one under a new id.
# - The cookie (RFC 6265 section 4.1): krait_session=<id>; Path=/; HttpOnly; SameSite=Lax, and Secure
#   when the request came over HTTPS. It has no Max-Age, so the browser forgets it when it closes, and
#   the store forgets a session after krait.config.session_max_age idle seconds. It is sent when a session
#   gets a new id (its first write, regenerate()); clear() sends it with Max-Age=0, which deletes it.
# - A request whose site code fails with an exception stores none of its session changes.

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, MutableMapping
from typing import Any

from krait import _store, cookie

COOKIE_NAME = "krait_session"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")


def _json_text(key: str, value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError("krait.session[%r] cannot be stored: %s (a session keeps what json can encode)"
                        % (key, exc)) from None


class Session(MutableMapping[str, Any]):
    """The visitor's session (`krait.session`): a dict of str keys and JSON values, kept on the server.

    Nothing is read until it is used, and nothing is stored (no cookie sent) until a request changes it.
    """

    _data: dict[str, Any] | None = None  # None until first use
    _loaded: dict[str, str] = {}  # key -> JSON text of the value as loaded (replaced, never mutated)
    _sid: str | None = None  # the id of the stored session the values came from
    _expires = 0.0
    _had_cookie = False
    _regenerate = False
    _cleared = False
    _dropped: str | None = None  # the id of the stored session clear() emptied (deleted by _end)
    _finished = False  # _end() ran: the request is over

    def _values(self) -> dict[str, Any]:
        data = self._data
        if self._finished:
            raise RuntimeError("krait.session belongs to a request that has ended (a WebSocket controller "
                               "keeps what it needs from its route script's session)")
        if data is None:
            data = {}
            sent = [c.value for c in cookie.get_cookies() if c.name == COOKIE_NAME]
            self._had_cookie = bool(sent)
            sids = [sid for sid in sent if _ID_RE.fullmatch(sid)]
            db = _store.existing_store() if sids else None
            for sid in sids:  # a stale cookie must not hide the live one
                found = db.load(sid) if db is not None else None
                if found is not None:
                    data, self._expires = found
                    self._sid = sid
                    self._loaded = {key: json.dumps(value) for key, value in data.items()}
                    break
            self._data = data
        return data

    def __getitem__(self, key: str) -> Any:
        return self._values()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError("session keys are str, not %s" % type(key).__name__)
        _json_text(key, value)  # fail here, at the script's line, rather than after the script
        self._values()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def __contains__(self, key: object) -> bool:
        return key in self._values()

    def __repr__(self) -> str:
        return "<krait.Session %r>" % (self._values(),)

    def regenerate(self) -> None:
        """Give the session a new id, keeping its values (do it when a visitor logs in)."""
        self._values()
        self._regenerate = True

    def clear(self) -> None:
        """Empty the session: the stored session is deleted and the cookie dropped. Values set afterwards
        start a new session, under a new id."""
        self._values()
        if self._sid is not None:
            self._dropped = self._sid
        self._data, self._loaded, self._sid, self._cleared = {}, {}, None, True

    def _end(self, scheme: str) -> tuple[tuple[str, str], ...]:
        """For the worker, once the site code ran and its response was checked: store the changes. Returns
        the header fields to add to the response: the session's cookie when it must be sent, else ().
        The session is finished: later use (a WebSocket controller's) raises RuntimeError."""
        data = self._data
        self._finished = True
        if data is None:  # never used: no store, no cookie
            return ()
        loaded = self._loaded
        changed = {key: value for key, value in data.items() if _json_text(key, value) != loaded.get(key)}
        deleted = [key for key in loaded if key not in data]
        sid = self._sid
        if self._dropped is not None:
            _store.store().delete(self._dropped)
        if sid is not None and not (changed or deleted or self._regenerate):
            _store.store().touch(sid, self._expires)
        elif sid is not None or changed:
            new_sid = sid if sid is not None and not self._regenerate else secrets.token_urlsafe(16)
            stored = _store.store().write(sid, new_sid, changed, deleted)
            if stored != sid:
                return _cookie_field(stored, scheme)
        elif self._cleared and self._had_cookie:
            return _cookie_field("", scheme, delete=True)
        return ()


def _cookie_field(value: str, scheme: str, delete: bool = False) -> tuple[tuple[str, str], ...]:
    session_cookie = cookie.Cookie(COOKIE_NAME, value)
    session_cookie.set_path("/")
    session_cookie.set_http_only(True)
    session_cookie.set_same_site("Lax")
    if scheme == "https":
        session_cookie.set_secure(True)
    if delete:
        session_cookie.set_max_age(0)
    return (("Set-Cookie", str(session_cookie)),)
