"""krait.session and its store (krait/_session.py, krait/_store.py) in this process, over a real SQLite
file in a temp folder: requests are simulated as the worker runs them (krait._begin_request, the site
code, krait.session._end) and their Set-Cookie headers read back (docs/sessions.md)."""

import json
import os
import re
import sqlite3
import time

import pytest

import krait
from krait import _store, config, limits

SETTINGS = ("session_store", "session_max_age", "secret_key")
COOKIE_RE = re.compile(r"krait_session=([A-Za-z0-9_-]{22}); Path=/; HttpOnly; SameSite=Lax$")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site root whose default store lives under tmp_path/state; krait.config and the store are put back."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    saved = {name: getattr(config, name) for name in SETTINGS}
    saved_root = krait.site_root
    root = tmp_path / "site"
    root.mkdir()
    krait.site_root = str(root)
    _store.configure(str(root))
    yield root
    for name, value in saved.items():
        setattr(config, name, value)
    krait.site_root = saved_root
    _store._config = _store._store = _store._key = None
    krait._begin_request(None)


def begin(sid=None, cookie_header=None):
    """Start a request carrying this session id (or this raw Cookie header); returns krait.session."""
    if sid is not None:
        cookie_header = "krait_session=" + sid
    headers = {"cookie": cookie_header} if cookie_header else {}
    krait._begin_request(krait.Request("GET", "/", "", "HTTP/1.1", headers, b""))
    return krait.session


def end(session=None, scheme="http"):
    """Finish the request as the worker does; returns its Set-Cookie values."""
    return [value for name, value in (session or krait.session)._end(scheme) if name == "Set-Cookie"]


def new_id(set_cookies):
    [value] = set_cookies
    m = COOKIE_RE.fullmatch(value)
    assert m, value
    return m.group(1)


def stored(sid):
    """The stored values of session `sid`, read with sqlite3 directly, or None."""
    path = os.path.join(_store.current().folder, _store.DB_FILE)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT data FROM krait_sessions WHERE id = ?", (sid,)).fetchone()
    return None if row is None else json.loads(row[0])


def test_a_session_never_used_or_only_read_stores_nothing_and_sends_no_cookie(site):
    begin()
    assert end() == []
    session = begin()
    assert session.get("user") is None and len(session) == 0 and "user" not in session
    assert end() == []
    assert begin(sid="A" * 22).get("user") is None  # a cookie, and no store yet
    assert end() == []
    assert not os.path.exists(_store.current().folder), "nothing may be created before a session is written"


def test_the_first_write_stores_the_session_and_sends_its_cookie(site):
    session = begin()
    session["user"] = "ana"
    session["cart"] = (1, 2)  # JSON keeps it as a list
    sid = new_id(end())
    assert stored(sid) == {"user": "ana", "cart": [1, 2]}
    assert oct(os.stat(_store.current().folder).st_mode & 0o777) == "0o700"

    again = begin(sid)
    assert dict(again) == {"user": "ana", "cart": [1, 2]}
    again["cart"].append(3)  # changed in place: still stored
    assert end() == [], "a known session keeps its id and cookie"
    assert stored(sid) == {"user": "ana", "cart": [1, 2, 3]}


def test_the_cookie_is_secure_over_https(site):
    begin()["n"] = 1
    [value] = end(scheme="https")
    assert value.endswith("; Path=/; HttpOnly; SameSite=Lax; Secure")


def test_keys_are_str_and_values_what_json_stores(site):
    session = begin()
    with pytest.raises(TypeError, match="session keys are str"):
        session[1] = "x"
    with pytest.raises(TypeError, match=r"krait.session\['when'\] cannot be stored"):
        session["when"] = {1, 2}
    session["later"] = []
    session["later"].append(object())
    with pytest.raises(TypeError, match=r"krait.session\['later'\] cannot be stored"):
        end()


@pytest.mark.parametrize("cookie_header", ["krait_session=" + "A" * 22, "krait_session=short",
                                           "krait_session=" + "!" * 22, "krait_session="])
def test_an_unknown_or_malformed_id_starts_a_fresh_session_under_a_new_id(site, cookie_header):
    known = begin()
    known["secret"] = "mine"
    known_id = new_id(end())
    session = begin(cookie_header=cookie_header)
    assert dict(session) == {}
    session["n"] = 1
    sid = new_id(end())
    assert sid not in (known_id, cookie_header.partition("=")[2])
    assert stored(known_id) == {"secret": "mine"} and stored(sid) == {"n": 1}


def test_an_expired_session_is_gone_and_purged(site):
    begin()["n"] = 1
    old = new_id(end())
    db = sqlite3.connect(os.path.join(_store.current().folder, _store.DB_FILE))
    with db:
        db.execute("UPDATE krait_sessions SET expires = ? WHERE id = ?", (time.time() - 1, old))
    session = begin(old)
    assert dict(session) == {}
    session["n"] = 5
    fresh = new_id(end())
    assert fresh != old
    _store.configure(str(site))  # a new worker: its first write purges the expired sessions
    begin()["m"] = 1
    new_id(end())
    assert stored(old) is None and stored(fresh) == {"n": 5}


def test_two_requests_of_one_session_changing_different_keys_keep_both(site):
    begin()["a"] = 0
    sid = new_id(end())
    first, second = begin(sid), begin(sid)  # both loaded before either is stored
    first["a"] = 1
    second["b"] = 2
    assert second["a"] == 0
    end(first)
    end(second)
    assert stored(sid) == {"a": 1, "b": 2}
    third, fourth = begin(sid), begin(sid)
    del third["a"]
    fourth["c"] = 3
    end(third)
    end(fourth)
    assert stored(sid) == {"b": 2, "c": 3}


def test_regenerate_gives_a_new_id_and_keeps_the_values(site):
    begin()["cart"] = ["book"]
    old = new_id(end())
    session = begin(old)
    session["user"] = "ana"
    session.regenerate()
    new = new_id(end())
    assert new != old
    assert stored(new) == {"cart": ["book"], "user": "ana"} and stored(old) is None
    assert dict(begin(old)) == {}


def test_clear_deletes_the_session_and_drops_the_cookie(site):
    begin()["user"] = "ana"
    sid = new_id(end())
    session = begin(sid)
    session.clear()
    assert dict(session) == {}
    assert end() == ["krait_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    assert stored(sid) is None
    cleared_then_set = begin(sid)
    cleared_then_set.clear()
    cleared_then_set["flash"] = "bye"
    assert new_id(end()) != sid


def test_a_session_ended_by_another_request_is_never_brought_back_under_its_id(site):
    # One request still running when another signs the visitor out (clear) or in (regenerate): its
    # changes start a new session under a new id, and the ended id stays empty.
    for ending in ("clear", "regenerate"):
        begin()["user"] = "ana"
        sid = new_id(end())
        running, other = begin(sid), begin(sid)
        running.get("user")
        getattr(other, ending)()
        if ending == "regenerate":
            other["user"] = "ana again"
        end(other)
        running["cart"] = [1]
        fresh = new_id(end(running))
        assert fresh != sid and stored(sid) is None, ending
        assert stored(fresh) == {"cart": [1]}, ending


def test_a_finished_session_refuses_use(site):
    # What a WebSocket controller would see of krait.session after its route script's request ended.
    session = begin()
    session["user"] = "ana"
    end()
    with pytest.raises(RuntimeError, match="request that has ended"):
        session.get("user")


def test_a_read_only_request_moves_the_expiry_at_most_every_touch_interval(site):
    begin()["n"] = 1
    sid = new_id(end())
    db = sqlite3.connect(os.path.join(_store.current().folder, _store.DB_FILE))
    aged = time.time() + config.session_max_age - limits.SESSION_TOUCH_INTERVAL - 5
    with db:
        db.execute("UPDATE krait_sessions SET expires = ? WHERE id = ?", (aged, sid))
    assert begin(sid)["n"] == 1 and end() == []
    [(expires,)] = db.execute("SELECT expires FROM krait_sessions").fetchall()
    assert expires > aged + limits.SESSION_TOUCH_INTERVAL


# --- where the store lives, and its settings ---------------------------------------------------

def test_the_default_folder_is_per_site_outside_it_and_follows_the_real_path(site, tmp_path, monkeypatch):
    folder = _store.default_folder(str(site))
    assert folder.startswith(str(tmp_path / "state" / "krait" / "site-"))
    link = tmp_path / "link"
    link.symlink_to(site)
    assert _store.default_folder(str(link)) == folder
    other = tmp_path / "other" / "site"
    other.mkdir(parents=True)
    assert _store.default_folder(str(other)) != folder
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # the XDG specification: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _store.default_folder(str(site)).startswith(str(tmp_path / "home" / ".local" / "state" / "krait"))


def test_session_store_may_be_a_dot_folder_of_the_site_or_any_folder_outside(site, tmp_path):
    config.session_store = ".private/sessions"
    assert _store.configure(str(site)).folder == os.path.join(str(site), ".private/sessions")
    begin()["n"] = 1
    new_id(end())
    assert os.path.isfile(site / ".private" / "sessions" / "sessions.sqlite3")
    config.session_store = str(tmp_path / "elsewhere")
    assert _store.configure(str(site)).folder == str(tmp_path / "elsewhere")


@pytest.mark.parametrize("name, value, says", [
    ("session_store", "sessions", "is inside the site and would be served"),
    ("session_store", ".", "is inside the site and would be served"),
    ("session_store", 42, "must be a folder path"),
    ("session_max_age", 0, "must be a positive int"),
    ("session_max_age", "14d", "must be a positive int"),
    ("secret_key", "too short", "has 9 bytes; use at least 32"),
    ("secret_key", 12345, "must be a str or bytes"),
])
def test_unusable_settings_are_refused_naming_them(site, name, value, says):
    setattr(config, name, value)
    with pytest.raises(ValueError, match="krait.config.%s.*%s" % (name, re.escape(says))):
        _store.configure(str(site))


def test_the_generated_key_is_made_once_and_kept_beside_the_store(site):
    key = _store.secret_key()
    path = os.path.join(_store.current().folder, _store.KEY_FILE)
    assert len(key) == limits.SECRET_KEY_BYTES
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    _store.configure(str(site))  # another worker, or a restart
    assert _store.secret_key() == key
    assert os.listdir(_store.current().folder) == [_store.KEY_FILE]
    config.secret_key = "k" * 32
    _store.configure(str(site))
    assert _store.secret_key() == b"k" * 32


def test_a_damaged_key_file_is_reported(site):
    os.makedirs(_store.current().folder)
    with open(os.path.join(_store.current().folder, _store.KEY_FILE), "w") as f:
        f.write("not hex\n")
    with pytest.raises(RuntimeError, match="is damaged"):
        _store.secret_key()


def test_a_store_folder_that_cannot_be_made_is_reported_with_the_setting_to_change(site, tmp_path):
    (tmp_path / "file").write_text("")
    config.session_store = str(tmp_path / "file" / "sessions")
    _store.configure(str(site))
    session = begin()
    session["n"] = 1
    assert repr(session) == "<krait.Session {'n': 1}>"
    with pytest.raises(RuntimeError, match="cannot create the session store folder .*krait.config.session_store"):
        end()
    config.session_store = None
    _store.configure(None)  # no site root and no session_store: a snippet outside a server
    with pytest.raises(RuntimeError, match="no session store"):
        _store.secret_key()
