# krait.config: routes and client-cache settings, set by the site's .py/init.py.
#
# Strategy: init.py assigns the module globals below; the worker then calls snapshot(), which
# validates everything once and freezes it into a picklable SiteConfig that the server process
# uses for routing and Cache-Control. Later changes to the globals are ignored (as in 0.5.2).
#
# Rules (docs/routing.md, docs/configuration.md):
# - Route verbs are the 0.5.2 list plus PATCH and HEAD. A HEAD request matches GET routes; a
#   WebSocket upgrade uses the verb "WEBSOCKET"; "ANY" matches every verb.
# - A route matches when its verb fits and (it has neither url nor regex, or url equals the path,
#   or regex matches the whole path). Only None means "unset".
# - Named regex groups become krait.url_params and fill "{name}" in the target.
# - Cache-Control follows the 0.5.2 pragma table, plus one fix: a cache_public match emits
#   "public" (RFC 9111 section 5.2.2.9).
# - session_store, session_max_age and secret_key concern the workers only: krait/_store.py validates
#   them once after init.py and they stay out of SiteConfig (docs/sessions.md).

from __future__ import annotations

import re
from dataclasses import dataclass, field

from krait import limits

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Route:
    """A route that incoming requests can take.

    Args:
        verb: one of `Route.route_verbs`; "GET" by default (HEAD requests match GET routes).
        url: the exact path to match, or None to skip.
        regex: a regular expression that must match the whole path, or None to skip. Its named
            groups are captured into `krait.url_params`.
        target: the target file (relative to the site root), possibly with "{name}"
            placeholders for named groups; None keeps the request path.

    Raises:
        ValueError: an unknown verb, an invalid regex, or a "{name}" placeholder that the regex
            does not capture.
    """

    route_verbs = ["GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "ANY", "WEBSOCKET",
                   "PATCH", "HEAD"]

    def __init__(self, verb=None, url=None, regex=None, target=None):
        if verb is None:
            verb = "GET"
        if not isinstance(verb, str) or verb.upper() not in self.route_verbs:
            raise ValueError(f"unknown route verb {verb!r}; expected one of {', '.join(self.route_verbs)}")
        self.verb = verb.upper()
        self.url = url
        self.regex = regex
        self.target = target
        self._compiled = None
        if regex is not None:
            try:
                self._compiled = re.compile(regex)
            except (re.error, TypeError) as exc:
                raise ValueError(f"invalid regex {regex!r} in {self!r}: {exc}") from None
        if target is not None:
            groups = self._compiled.groupindex if self._compiled is not None else {}
            for name in _PLACEHOLDER_RE.findall(target):
                if name not in groups:
                    raise ValueError(f"target placeholder {{{name}}} of {self!r} is not a named group of its regex")

    def match(self, route_verb: str, path: str | None = None) -> dict[str, str] | None:
        """Test this route against a request.

        Args:
            route_verb: the request's method ("HEAD" also matches GET routes), or "WEBSOCKET"
                for an upgrade request.
            path: the request path the route is matched against. `match(path)` with one
                argument tests the path only (the caller has checked the verb).

        Returns:
            None when it does not match, else the named regex groups ({} for url matches and
            routes without url and regex; groups that did not take part are "").
        """
        if path is None:
            path = route_verb
        else:
            verb = self.verb
            if verb != "ANY" and verb != route_verb and not (verb == "GET" and route_verb == "HEAD"):
                return None
        url, compiled = self.url, self._compiled
        if url is None and compiled is None:
            return {}
        if url is not None and url == path:
            return {}
        if compiled is not None:
            m = compiled.fullmatch(path)
            if m is not None:
                return m.groupdict("")
        return None

    def format_target(self, params) -> str | None:
        """The target with each "{name}" replaced by params[name] (names missing from params
        are left as they are); None when the route has no target."""
        target = self.target
        if target is None or "{" not in target:
            return target
        return _PLACEHOLDER_RE.sub(lambda m: params.get(m.group(1), m.group(0)), target)

    def as_tuple(self) -> tuple:
        """(verb, url, regex, target): the plain data SiteConfig carries."""
        return (self.verb, self.url, self.regex, self.target)

    def __repr__(self) -> str:
        return f"Route(verb={self.verb!r}, url={self.url!r}, regex={self.regex!r}, target={self.target!r})"

    def __eq__(self, other):
        return isinstance(other, Route) and self.as_tuple() == other.as_tuple()

    def __hash__(self):
        return hash(self.as_tuple())


#: list of Route, or None for the default (GET and HEAD to any path, default target).
routes = None
#: lists of regexes matched against the target file's path relative to the site root.
cache_no_store: list[str] = []
cache_private: list[str] = []
cache_public: list[str] = []
cache_long_term: list[str] = []
#: max-age (seconds) for cacheable responses, and for those matching cache_long_term.
cache_max_age_default = 300
cache_max_age_long_term = 864000

#: Sessions and signed cookies (docs/sessions.md): the folder holding the session store and the
#: generated secret key (None: one folder per site outside the served tree, under $XDG_STATE_HOME/krait
#: or ~/.local/state/krait; a relative path is taken from the site root), the idle lifetime of a session
#: in seconds, and the HMAC key of signed cookies (str or bytes; None: generated once, kept in the store
#: folder).
session_store: str | None = None
session_max_age = limits.SESSION_MAX_AGE
secret_key: str | bytes | None = None

_CACHE_LISTS = ("cache_no_store", "cache_private", "cache_public", "cache_long_term")


@dataclass(frozen=True)
class SiteConfig:
    """Validated, picklable copy of krait.config taken after init.py (see snapshot())."""

    routes: tuple[tuple, ...] | None = None  # (verb, url, regex, target) each; None = default
    cache_no_store: tuple[str, ...] = ()
    cache_private: tuple[str, ...] = ()
    cache_public: tuple[str, ...] = ()
    cache_long_term: tuple[str, ...] = ()
    cache_max_age_default: int = 300
    cache_max_age_long_term: int = 864000
    # Compiled cache patterns, one tuple per list (built in __post_init__, not compared).
    _patterns: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        compiled = []
        for list_name in _CACHE_LISTS:
            pats = []
            for pattern in getattr(self, list_name):
                try:
                    pats.append(re.compile(pattern))
                except (re.error, TypeError) as exc:
                    raise ValueError(f"invalid regex {pattern!r} in krait.config.{list_name}: {exc}") from None
            compiled.append(tuple(pats))
        object.__setattr__(self, "_patterns", tuple(compiled))

    def build_routes(self) -> list[Route]:
        """The route table as Route objects ([Route()] when the site set none)."""
        if self.routes is None:
            return [Route()]
        return [Route(*r) for r in self.routes]


def _cache_list(name: str, value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"krait.config.{name} must be a list of regex strings, not {type(value).__name__}")
    for pattern in value:
        if not isinstance(pattern, str):
            raise ValueError(f"krait.config.{name} holds {pattern!r}, which is not a regex string")
    return tuple(value)


def _max_age(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"krait.config.{name} must be a non-negative int, not {value!r}")
    return value


def snapshot() -> SiteConfig:
    """Validate the module globals and freeze them into a SiteConfig.

    Raises:
        ValueError: naming the setting (and route or pattern) that is unusable.
    """
    route_tuples = None
    if routes is not None:
        if not isinstance(routes, (list, tuple)):
            raise ValueError(f"krait.config.routes must be a list of Route, not {type(routes).__name__}")
        for route in routes:
            if not isinstance(route, Route):
                raise ValueError(f"krait.config.routes holds {route!r}, which is not a krait.config.Route")
        route_tuples = tuple(route.as_tuple() for route in routes)
    return SiteConfig(
        routes=route_tuples,
        cache_no_store=_cache_list("cache_no_store", cache_no_store),
        cache_private=_cache_list("cache_private", cache_private),
        cache_public=_cache_list("cache_public", cache_public),
        cache_long_term=_cache_list("cache_long_term", cache_long_term),
        cache_max_age_default=_max_age("cache_max_age_default", cache_max_age_default),
        cache_max_age_long_term=_max_age("cache_max_age_long_term", cache_max_age_long_term),
    )


def _matches(patterns, path: str) -> bool:
    for pattern in patterns:
        if pattern.fullmatch(path):
            return True
    return False


def cache_control(rel_path: str, dynamic: bool, cfg: SiteConfig, sets_cookie: bool = False) -> str:
    """The Cache-Control value for a target file (docs/configuration.md).

    Args:
        rel_path: the resolved target file relative to the site root, e.g. "css/site.css".
        dynamic: True for scripts and templates that run code.
        cfg: the site's SiteConfig.
        sets_cookie: the response sets a cookie (a session's id, say): one visitor's, so a cache the
            response may be kept in is that visitor's own (private, RFC 9111 section 5.2.2.7).
    """
    if rel_path[:1] == "/":
        rel_path = rel_path.lstrip("/")
    no_store, private, public, long_term = cfg._patterns
    store = not dynamic
    is_private = is_public = is_long = False
    if no_store and _matches(no_store, rel_path):
        store = False
    if private and _matches(private, rel_path):
        is_private = store = True
    if public and _matches(public, rel_path):
        is_private, is_public, store = False, True, True
    if long_term and _matches(long_term, rel_path):
        is_long = store = True
    if not store:  # cache == store in every branch of the 0.5.2 pragma
        return "no-cache, no-store, must-revalidate"
    max_age = cfg.cache_max_age_long_term if is_long else cfg.cache_max_age_default
    scope = "private, " if is_private or sets_cookie else "public, " if is_public else ""
    return f"{scope}max-age={max_age}, must-revalidate"
