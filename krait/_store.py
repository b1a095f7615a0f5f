# The session store and the signing key of a site: one folder, shared by every worker and server process.
#
# Design: krait.session (krait/_session.py) keeps its values here and krait.cookie's signed cookies use the
# key kept here. The worker's Site calls configure() once after init.py, which validates
# krait.config.session_store, session_max_age and secret_key (a bad value stops the server at start-up);
# nothing touches the disk until a request uses a session or signs a cookie. Each process opens the
# database once, on first use, and keeps it open.
#
# Rules (docs/sessions.md):
# - The folder is krait.config.session_store (a relative path starts at the site root, and inside the site
#   it must lie under a dot folder, which is never served), else <state>/krait/<name>-<hash>, where
#   <state> is $XDG_STATE_HOME or ~/.local/state (the XDG Base Directory specification's place for state
#   data; a relative $XDG_STATE_HOME is ignored, as it says) and <hash> comes from the site root's real
#   path. A missing folder is created with mode 0700.
# - sessions.sqlite3 holds one row per session: its id, its values as one JSON object, and when it
#   expires. WAL mode lets readers run beside a writer. Every write is one BEGIN IMMEDIATE transaction
#   that reads the row, applies the request's changed and deleted keys and writes it back, so two
#   requests of one session that change different keys keep both (merge by key). The file is created with
#   mode 0600; a database that fails (unwritable, damaged) raises a RuntimeError naming it and the fix.
# - A generated key (SECRET_KEY_BYTES random bytes, in hex) is written to a temporary file and
#   hard-linked into place: of two processes racing to create it, one wins and both use its key.

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import krait
from krait import limits

DB_FILE = "sessions.sqlite3"
KEY_FILE = "secret.key"

_SCHEMA = ("CREATE TABLE IF NOT EXISTS krait_sessions "
           "(id TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL NOT NULL) WITHOUT ROWID")


class StoreConfig(NamedTuple):
    folder: str | None  # None: no site root and no session_store (a snippet outside a server)
    max_age: int
    secret_key: bytes | None  # None: generated, kept in the folder


class SessionStore:
    """The SQLite database of one site's sessions, as opened by one process."""

    def __init__(self, path: str, max_age: int) -> None:
        self.path = path
        self.max_age = max_age
        self.touch_after = min(limits.SESSION_TOUCH_INTERVAL, max_age / 2)
        self.purged = 0.0  # when this process last deleted expired sessions (never: the first write does)
        with self._explained():
            # Session ids are credentials: the file is the owner's alone, whatever the umask or the mode of
            # a folder that already existed (SQLite gives its -wal and -shm files the database's mode).
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self.conn = sqlite3.connect(path, timeout=limits.SESSION_BUSY_TIMEOUT, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across crashes of the process
            self.conn.execute(_SCHEMA)

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        """Turn a failure of the database (unwritable, damaged) into one that names the file and the fix."""
        try:
            yield
        except (OSError, sqlite3.DatabaseError) as exc:
            raise RuntimeError("the session store %s cannot be used (%s): Krait's user must be able to write "
                               "its folder, and a damaged file must be moved away (its sessions are lost); "
                               "krait.config.session_store in .py/init.py chooses another folder "
                               "(docs/sessions.md)" % (self.path, getattr(exc, "strerror", None) or exc)) from None

    def load(self, sid: str) -> tuple[dict[str, Any], float] | None:
        """The values of session `sid` and when it expires; None when it is unknown or expired."""
        with self._explained():
            row = self.conn.execute("SELECT data, expires FROM krait_sessions WHERE id = ?", (sid,)).fetchone()
        if row is None or row[1] <= time.time():
            return None
        return json.loads(row[0]), row[1]

    def touch(self, sid: str, expires: float) -> None:
        """Move the expiry of a session that was only read (at most every touch_after seconds)."""
        now = time.time()
        if now + self.max_age - expires >= self.touch_after:
            with self._explained():
                self.conn.execute("UPDATE krait_sessions SET expires = ? WHERE id = ?", (now + self.max_age, sid))

    def write(self, sid: str | None, new_sid: str, changed: dict[str, Any], deleted: list[str]) -> str:
        """Merge one request's changes into session `sid` (None: a new session) and store it as `new_sid`;
        returns the id it was stored under. A session that ended while the request ran (another request
        cleared or renamed it, or it expired) is not brought back under its old id: the changes start a
        new session under a new id."""
        now = time.time()
        conn = self.conn
        with self._explained():
            conn.execute("BEGIN IMMEDIATE")  # the write lock first, so nobody writes between our read and write
        with self._explained(), conn:  # COMMIT, or ROLLBACK when anything below fails
            values: dict[str, Any] = {}
            if sid is not None:
                row = conn.execute("SELECT data, expires FROM krait_sessions WHERE id = ?", (sid,)).fetchone()
                if row is not None and row[1] > now:
                    values = json.loads(row[0])
                elif new_sid == sid:
                    new_sid = secrets.token_urlsafe(16)
                if new_sid != sid:
                    conn.execute("DELETE FROM krait_sessions WHERE id = ?", (sid,))
            for key in deleted:
                values.pop(key, None)
            values.update(changed)
            conn.execute("INSERT OR REPLACE INTO krait_sessions (id, data, expires) VALUES (?, ?, ?)",
                         (new_sid, json.dumps(values), now + self.max_age))
            if now - self.purged >= limits.SESSION_PURGE_INTERVAL:
                conn.execute("DELETE FROM krait_sessions WHERE expires <= ?", (now,))
                self.purged = now
        return new_sid

    def delete(self, sid: str) -> None:
        with self._explained():
            self.conn.execute("DELETE FROM krait_sessions WHERE id = ?", (sid,))


_config: StoreConfig | None = None
_store: SessionStore | None = None
_key: bytes | None = None


def default_folder(site_root: str) -> str:
    """The store folder of a site that sets no krait.config.session_store."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    real = os.path.realpath(site_root)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return os.path.join(base, "krait", "%s-%s" % (os.path.basename(real) or "root", digest))


def configure(site_root: str | None) -> StoreConfig:
    """Validate krait.config's session settings and make them this process's.

    Raises:
        ValueError: naming the setting that is unusable.
    """
    global _config, _store, _key
    cfg = krait.config
    max_age = cfg.session_max_age
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
        raise ValueError("krait.config.session_max_age must be a positive int (seconds), not %r" % (max_age,))
    key = cfg.secret_key
    if isinstance(key, str):
        key = key.encode("utf-8")
    if key is not None and not isinstance(key, bytes):
        raise ValueError("krait.config.secret_key must be a str or bytes, not %s" % type(key).__name__)
    if key is not None and len(key) < limits.SECRET_KEY_BYTES:
        raise ValueError("krait.config.secret_key has %d bytes; use at least %d, e.g. secrets.token_hex(32)"
                         % (len(key), limits.SECRET_KEY_BYTES))
    folder = cfg.session_store
    if folder is not None:
        if not isinstance(folder, (str, os.PathLike)):
            raise ValueError("krait.config.session_store must be a folder path, not %r" % (folder,))
        given = os.fspath(folder)
        folder = os.path.join(site_root or "", given)  # an absolute path stays as it is
        if site_root is not None:
            _check_not_served(given, folder, site_root)
    elif site_root is not None:
        folder = default_folder(site_root)
    _config = StoreConfig(folder, max_age, key)
    _store = _key = None
    return _config


def _check_not_served(given: str, folder: str, site_root: str) -> None:
    root = os.path.realpath(site_root)
    real = os.path.realpath(folder)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return
    parts = [] if real == root else os.path.relpath(real, root).split(os.sep)
    if not any(part.startswith(".") for part in parts):
        raise ValueError("krait.config.session_store %r is inside the site and would be served: use a dot "
                         "folder such as '.private/sessions', or a folder outside the site" % given)


def current() -> StoreConfig:
    """This process's settings (configured from krait.config on first use outside a worker)."""
    return _config if _config is not None else configure(krait.site_root)


def _folder(cfg: StoreConfig) -> str:
    if cfg.folder is None:
        raise RuntimeError("no session store: set krait.site_root or krait.config.session_store")
    try:
        os.makedirs(cfg.folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise RuntimeError("cannot create the session store folder %s (%s): set krait.config.session_store "
                           "in .py/init.py (docs/sessions.md)" % (cfg.folder, exc.strerror)) from None
    return cfg.folder


def store() -> SessionStore:
    """The session database, opened (and created if need be) on first use."""
    global _store
    if _store is None:
        cfg = current()
        _store = SessionStore(os.path.join(_folder(cfg), DB_FILE), cfg.max_age)
    return _store


def existing_store() -> SessionStore | None:
    """The session database, or None while nobody has created it (reading creates nothing)."""
    if _store is None:
        folder = current().folder
        if folder is None or not os.path.exists(os.path.join(folder, DB_FILE)):
            return None
    return store()


def secret_key(create: bool = True) -> bytes | None:
    """The key of signed cookies: krait.config.secret_key, else the one generated for the site. With
    `create` False (checking a signature) a key not generated yet is None: nothing can have been signed
    with it, and reading creates nothing."""
    global _key
    cfg = current()
    if cfg.secret_key is not None:
        return cfg.secret_key
    if _key is None:
        if not create and (cfg.folder is None or not os.path.exists(os.path.join(cfg.folder, KEY_FILE))):
            return None
        _key = _read_or_create_key(os.path.join(_folder(cfg), KEY_FILE))
    return _key


def _read_or_create_key(path: str) -> bytes:
    if not os.path.exists(path):
        tmp = "%s.%d.%d.tmp" % (path, os.getpid(), threading.get_ident())  # threads of one process too
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_hex(limits.SECRET_KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first: its key wins
        finally:
            os.unlink(tmp)
    with open(path) as f:
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < limits.SECRET_KEY_BYTES:
        raise RuntimeError("the key file %s is damaged: delete it (a new key is made; cookies signed with the "
                           "old one become invalid) or set krait.config.secret_key" % path)
    return key
