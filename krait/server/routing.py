# URL -> Target: routes, percent-decoding, path safety and the 0.5.2 file search order.
#
# Rules (docs/routing.md):
#   1. The method must be known (else 501); HEAD routes as GET, an Upgrade: websocket request as WEBSOCKET.
#   2. The path is percent-decoded once as UTF-8 (invalid -> 400). Routes are tried in order against the
#      decoded path; the first whose verb (or ANY) and url/regex match wins. Regex named groups become
#      url_params and fill "{name}" in the route's target. No route for this verb: 405 + Allow when another
#      verb's route matches the path, else 404.
#   3. The target is looked up under the site root: any component starting with "." (so ".", "..",
#      ".py", ".git"), an empty component ("//"), a backslash, a NUL or an encoded slash -> 404. A directory
#      becomes dir/index; then F, F.html, F.htm, F.pyml, F.py, then the .html <-> .htm swap. A trailing
#      slash names a folder: a file there is 404. The real path (symlinks resolved) must stay inside the
#      real site root and pass through no dot folder, else 404.
#   4. The real file's extension, in any case, picks the kind: template (.html .htm .pyml), script (.py)
#      or static; so no name or symbolic link makes site code a static file (docs/site-layout.md).
#   5. A static file with other hard links is refused (404) when it is one of the files never sent raw:
#      site code anywhere under the root, a dot file or a file in a dot folder. Those inodes are found by
#      a scan (CodeInodes) made only when such a file is asked for, and made again when the file's ctime
#      (which link, unlink and rename change) is newer than the scan, or the scan is older than
#      limits.CODE_SCAN_TTL.
# Lookups are cached for RESOLVE_TTL seconds so a hot static file costs no repeated stat() storm; the
# cache is bypassed in --debug mode. A cached static file is stat()ed again, and its lookup redone when
# that is another inode (a symbolic link or a hard link swapped in since): the stat goes on in the Target,
# for the static files to use instead of their own (krait/server/static.py).

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import NamedTuple

from krait import limits
from krait.errors import MethodNotAllowed, NotFound, NotImplementedMethod
from krait.pool.jobs import SCRIPT, TEMPLATE
from krait.urls import decode_path

log = logging.getLogger("krait")

# CONNECT is not among them: a 2xx answer would make the connection a tunnel (RFC 9110 section 9.3.6),
# which Krait does not provide, so it is 501 whatever the routes (a CONNECT route never matches).
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"))
STATIC = "static"  # a file the server sends itself; SCRIPT and TEMPLATE targets become worker jobs
_KIND_BY_EXT = {".html": TEMPLATE, ".htm": TEMPLATE, ".pyml": TEMPLATE, ".py": SCRIPT}  # lower-cased
_CODE_EXTENSIONS = tuple(_KIND_BY_EXT)
_SEARCH_SUFFIXES = ("", ".html", ".htm", ".pyml", ".py")
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
RESOLVE_TTL = 1.0
_RESOLVE_CACHE_MAX = 4096


class Target(NamedTuple):
    kind: str  # STATIC, SCRIPT or TEMPLATE
    path: str  # absolute real path of the file
    rel_path: str  # relative to the site root, "/" separated, no leading slash
    url_params: tuple[tuple[str, str], ...]
    decoded_path: str = ""  # the request path, percent-decoded (what the routes matched)
    stat: os.stat_result | None = None  # a static file's, taken when it was checked


class Router:
    """Routes requests of one site; built in the server process from krait.config's snapshot."""

    def __init__(self, site_root: str, routes: list, use_cache: bool = True) -> None:
        self.root = os.path.realpath(site_root)
        self._root_prefix = self.root.rstrip(os.sep) + os.sep
        self.routes = routes  # krait.config.Route objects, in order
        self.use_cache = use_cache
        self._cache: dict[str, tuple[float, str, str, str, tuple[int, int] | None]] = {}
        self.code_inodes = CodeInodes(self.root)

    def route(self, method: str, raw_path: str, websocket: bool = False) -> Target:
        """Find what serves this request (see the module comment); raises HttpError subclasses."""
        if method not in KNOWN_METHODS:
            raise NotImplementedMethod("method %s is not implemented" % method)
        if _ENCODED_SEPARATOR.search(raw_path):
            raise NotFound("encoded separator in path")
        path = decode_path(raw_path)
        verb = "WEBSOCKET" if websocket else method
        for route in self.routes:
            # A HEAD request matches GET routes too (RFC 9110 section 9.3.2: HEAD is GET without the body).
            if route.verb != verb and route.verb != "ANY" and (verb != "HEAD" or route.verb != "GET"):
                continue
            params = route.match(path)
            if params is None:
                continue
            target = route.format_target(params)
            if target is None:
                target = path
            kind, real, rel, st = self.resolve(target)
            return Target(kind, real, rel, tuple(params.items()), path, st)
        allowed = self.allowed_methods(path)
        if allowed and not websocket:
            raise MethodNotAllowed("%s is not routed for %s" % (method, path), (("Allow", ", ".join(allowed)),))
        raise NotFound("no route matches %s %s" % (method, path))

    def allowed_methods(self, path: str) -> list[str]:
        verbs: list[str] = []
        for route in self.routes:
            if route.verb in ("ANY", "WEBSOCKET") or route.verb in verbs:
                continue
            if route.match(path) is not None:
                verbs.append(route.verb)
                if route.verb == "GET":
                    verbs.append("HEAD")
        return verbs

    def resolve(self, target: str) -> tuple[str, str, str, os.stat_result | None]:
        """Map a decoded target path to (kind, real path, relative path, a static file's stat); NotFound
        when unsafe or absent."""
        if self.use_cache:
            hit = self._cache.get(target)
            if hit is not None and hit[0] > time.monotonic():
                _, kind, real, rel, inode = hit
                if inode is None:
                    return kind, real, rel, None
                try:
                    st = os.stat(real)
                except OSError:
                    st = None
                if st is not None and (st.st_dev, st.st_ino) == inode:
                    return kind, real, rel, st
        kind, real, rel, st = self._resolve(target)
        if self.use_cache:
            if len(self._cache) >= _RESOLVE_CACHE_MAX:
                self._cache.clear()
            inode = None if st is None else (st.st_dev, st.st_ino)
            self._cache[target] = (time.monotonic() + RESOLVE_TTL, kind, real, rel, inode)
        return kind, real, rel, st

    def _resolve(self, target: str) -> tuple[str, str, str, os.stat_result | None]:
        if "\\" in target or "\0" in target:
            raise NotFound("backslash or NUL in path")
        rel = target[1:] if target.startswith("/") else target
        parts = rel.split("/")
        folder = bool(parts) and parts[-1] == ""
        if folder:
            parts.pop()  # a trailing slash names the directory itself
        for part in parts:
            if not part or part[0] == ".":
                raise NotFound("hidden, empty or relative path component")
        base = os.path.join(self.root, *parts)
        if os.path.isdir(base):
            base = os.path.join(base, "index")
        elif folder:
            raise NotFound("%s is not a folder" % target)
        found = None
        for suffix in _SEARCH_SUFFIXES:
            candidate = base + suffix
            if os.path.isfile(candidate):
                found = candidate
                break
        if found is None:
            if base.endswith(".html") and os.path.isfile(base[:-1]):
                found = base[:-1]
            elif base.endswith(".htm") and os.path.isfile(base + "l"):
                found = base + "l"
            else:
                raise NotFound("no file for %s" % target)
        real = os.path.realpath(found)
        if not real.startswith(self._root_prefix):
            raise NotFound("path leaves the site root")
        rel_real = real[len(self._root_prefix):].replace(os.sep, "/")
        if any(p.startswith(".") for p in rel_real.split("/")):
            raise NotFound("resolves into a hidden folder")
        kind = _KIND_BY_EXT.get(os.path.splitext(real)[1].lower(), STATIC)
        if kind != STATIC:
            return kind, real, rel_real, None
        try:
            st = os.stat(real)
        except OSError:  # deleted since it was found
            raise NotFound("no file for %s" % target) from None
        if st.st_nlink > 1 and self.code_inodes.holds(st):
            log.warning("refused %s: a hard link to site code or to a file in a dot folder", rel_real)
            raise NotFound("a hard link to a file never served as it is")
        return kind, real, rel_real, st


class CodeInodes:
    """The (st_dev, st_ino) of the files under a site root that are never sent as they are and have other
    hard links: site code (.py and templates, in any case), dot files and everything in dot folders."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._inodes: frozenset[tuple[int, int]] = frozenset()
        self._scanned_ns = 0  # time.time_ns() when the last scan began (0: never)
        self._expires = 0.0  # time.monotonic() after which the scan is redone
        self._lock = threading.Lock()

    def holds(self, st: os.stat_result) -> bool:
        """Whether the file `st` describes shares its inode with a file never sent raw."""
        with self._lock:
            # ctime changes with every link, unlink and rename of the inode; file systems stamp it with
            # a clock that may lag the real one by a tick, hence the slack.
            if st.st_ctime_ns >= self._scanned_ns - int(limits.CODE_SCAN_CLOCK_SLACK * 1e9) \
                    or time.monotonic() > self._expires:
                self._scanned_ns = time.time_ns()
                self._inodes = frozenset(self._scan())
                self._expires = time.monotonic() + limits.CODE_SCAN_TTL
            return (st.st_dev, st.st_ino) in self._inodes

    def _scan(self) -> list[tuple[int, int]]:
        found = []
        folders = [(self.root, False)]  # (path, inside a dot folder)
        while folders:
            folder, hidden = folders.pop()
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for entry in entries:
                private = hidden or entry.name.startswith(".")
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, private))
                    elif (private or entry.name.lower().endswith(_CODE_EXTENSIONS)) \
                            and entry.is_file(follow_symlinks=False):
                        st = os.lstat(entry.path)  # Windows' DirEntry.stat() has no st_ino, st_nlink
                        if st.st_nlink > 1:
                            found.append((st.st_dev, st.st_ino))
                except OSError:  # vanished while we looked
                    continue
        return found
