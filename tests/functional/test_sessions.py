"""Sessions, signed cookies, repeated form fields and JSON bodies against the real server with several
workers (docs/sessions.md, docs/forms-uploads-cookies.md, docs/scripts.md).

Each test talks to Krait over HTTP with `requests` and keeps its cookies by hand, as a browser would.
The session store and the generated key live under the test's $XDG_STATE_HOME (tests/helpers.py)."""

from __future__ import annotations

import os
import threading
import time

import requests

from tests.helpers import needs_shared_port, write_site

INIT = """\
import krait
from krait.config import Route

krait.config.routes = [
    Route("POST", url="/echo", target="/echo.py"),
    Route("POST", url="/fields", target="/fields.py"),
    Route(),
]
"""

SITE = {
    ".py/init.py": INIT,
    # The visit counter: returns the count and the pid of the worker that served it.
    "count.py": "import os\nimport krait\n"
                "krait.session['n'] = krait.session.get('n', 0) + 1\n"
                "krait.response = krait.ResponseJSON({'n': krait.session['n'], 'pid': os.getpid()})\n",
    "peek.py": "import krait\nkrait.response = krait.ResponseJSON(dict(krait.session))\n",
    "put.py": "import krait\nkrait.session[krait.request.query['key']] = krait.request.query['value']\n",
    # Two of these run at once: each loads the session, then waits until the other has loaded it too
    # (a barrier made of files), then writes its own key.
    "write.py": """\
import os
import time

import krait

key = krait.request.query["key"]
other = krait.request.query["other"]
folder = krait.get_full_path(".private/barrier")
os.makedirs(folder, exist_ok=True)
before = dict(krait.session)
open(os.path.join(folder, key), "w").close()
deadline = time.monotonic() + 20
while not os.path.exists(os.path.join(folder, other)) and time.monotonic() < deadline:
    time.sleep(0.01)
krait.session[key] = "written by " + key
krait.response = krait.ResponseJSON({"before": before, "waited": os.path.exists(os.path.join(folder, other))})
""",
    "login.py": "import krait\nkrait.session['user'] = krait.request.query['user']\nkrait.session.regenerate()\n",
    "logout.py": "import krait\nkrait.session.clear()\n",
    # Changes the session, then sets a Content-Type that cannot be sent: a 500, and nothing stored.
    "refused.py": "import krait\nkrait.session['role'] = 'admin'\nkrait.set_content_type(raw='text/plain\\r\\nX: 1')\n",
    "sign.py": "import krait\nfrom krait import cookie\n"
               "c = cookie.Cookie('user', krait.request.query['user'])\nc.set_path('/')\n"
               "cookie.set_signed_cookie(c)\n",
    "whoami.py": "import krait\nfrom krait import cookie\n"
                 "krait.response = krait.ResponseJSON({'user': cookie.get_signed_cookie('user', 'nobody')})\n",
    "fields.py": "import krait\nr = krait.request\n"
                 "krait.response = krait.ResponseJSON({'query_all': r.query_all, 'query': r.query,\n"
                 "    'form_all': r.get_post_form_all(), 'form': r.get_post_form()})\n",
    "echo.py": "import krait\nkrait.response = krait.ResponseJSON({'got': krait.request.get_json()})\n",
}


def client() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxy between the test and 127.0.0.1
    return s


def session_cookie(response: requests.Response) -> str | None:
    return response.cookies.get("krait_session")


def state_folder(srv) -> str:
    return str(srv.err_path.parent / "state" / "krait")


def test_a_session_counter_across_four_workers_and_a_restart(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    # --max-requests 1: every request is served by a worker that never served this visitor before.
    srv = krait_server(site, "--workers", "4", "--max-requests", "1")
    browser = client()
    first = browser.get(srv.url + "/count", timeout=30)
    assert first.json()["n"] == 1
    set_cookie = first.headers["Set-Cookie"]
    assert set_cookie.startswith("krait_session=") and set_cookie.endswith("; Path=/; HttpOnly; SameSite=Lax")
    sid = session_cookie(first)
    assert len(sid) == 22
    # A recycled worker serves on until its replacement has run init.py: go on until four have served.
    answers = [first.json()]
    while len({a["pid"] for a in answers}) < 4 and len(answers) < 80:
        answers.append(browser.get(srv.url + "/count", timeout=30).json())
        time.sleep(0.1)
    assert [a["n"] for a in answers] == list(range(1, len(answers) + 1))
    assert len({a["pid"] for a in answers}) >= 4
    assert session_cookie(browser.get(srv.url + "/peek", timeout=30)) is None  # the id is sent once
    assert srv.stop() == 0

    again = krait_server(site, "--workers", "4")
    assert browser.get(again.url + "/count", timeout=30).json()["n"] == len(answers) + 1  # it survived
    assert browser.cookies.get("krait_session") == sid
    assert os.listdir(state_folder(again)) == [os.listdir(state_folder(again))[0]]  # one folder for the site


@needs_shared_port
def test_a_session_is_shared_by_several_server_processes(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--processes", "2", "--workers", "1")
    cookies: dict[str, str] = {}
    pids = set()
    for n in range(1, 13):
        # A new connection each time, so the kernel spreads them over both processes (SO_REUSEPORT).
        r = requests.get(srv.url + "/count", cookies=cookies, headers={"Connection": "close"}, timeout=30)
        cookies.update(r.cookies)
        assert r.json()["n"] == n
        pids.add(r.json()["pid"])
    assert len(pids) >= 2


def test_nothing_is_stored_until_written_and_a_tampered_id_starts_afresh(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "2")
    reader = client()
    r = reader.get(srv.url + "/peek", timeout=30)
    assert r.json() == {} and "Set-Cookie" not in r.headers
    assert not os.path.exists(state_folder(srv)), "reading an empty session must create nothing"

    owner = client()
    owner.get(srv.url + "/count", timeout=30)
    owner.get(srv.url + "/count", timeout=30)
    sid = owner.cookies["krait_session"]
    tampered = sid[:-1] + ("A" if sid[-1] != "A" else "B")
    for forged in (tampered, sid + "x", "../../etc/passwd", ""):
        r = requests.get(srv.url + "/count", cookies={"krait_session": forged}, timeout=30)
        assert r.status_code == 200 and r.json()["n"] == 1, forged
        assert session_cookie(r) not in (None, sid, forged)
    assert owner.get(srv.url + "/count", timeout=30).json()["n"] == 3  # the real session is untouched


def test_a_response_that_krait_refuses_to_send_stores_nothing(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", SITE), "--workers", "1")
    browser = client()
    browser.get(srv.url + "/put?key=role&value=user", timeout=30)
    assert browser.get(srv.url + "/refused", timeout=30).status_code == 500
    assert browser.get(srv.url + "/peek", timeout=30).json() == {"role": "user"}


def test_two_concurrent_requests_of_one_session_keep_both_writes(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "2")
    browser = client()
    browser.get(srv.url + "/put?key=start&value=1", timeout=30)
    cookies = dict(browser.cookies)
    answers: dict[str, dict] = {}

    def write(key: str, other: str) -> None:
        r = requests.get(srv.url + "/write", params={"key": key, "other": other}, cookies=cookies, timeout=60)
        answers[key] = r.json()

    threads = [threading.Thread(target=write, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    # Both loaded the session before either stored it...
    assert answers["a"] == answers["b"] == {"before": {"start": "1"}, "waited": True}
    # ... and neither write was lost.
    assert browser.get(srv.url + "/peek", timeout=30).json() == {
        "start": "1", "a": "written by a", "b": "written by b"}


def test_regenerate_after_login_and_clear_at_logout(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "2")
    browser = client()
    browser.get(srv.url + "/put?key=cart&value=book", timeout=30)
    before = browser.cookies["krait_session"]
    login = browser.get(srv.url + "/login?user=ana", timeout=30)
    after = session_cookie(login)
    assert after and after != before
    assert browser.get(srv.url + "/peek", timeout=30).json() == {"cart": "book", "user": "ana"}
    stolen = requests.get(srv.url + "/peek", cookies={"krait_session": before}, timeout=30)
    assert stolen.json() == {}, "the id from before the login no longer works"

    logout = browser.get(srv.url + "/logout", timeout=30)
    assert logout.headers["Set-Cookie"] == "krait_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    assert "krait_session" not in browser.cookies
    replayed = requests.get(srv.url + "/peek", cookies={"krait_session": after}, timeout=30)
    assert replayed.json() == {}


def test_the_session_cookie_is_secure_over_https(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "1")
    # Krait trusts X-Forwarded-Proto from 127.0.0.1 by default (a TLS-terminating proxy, docs/deployment.md).
    r = requests.get(srv.url + "/count", headers={"X-Forwarded-Proto": "https"}, timeout=30)
    assert r.headers["Set-Cookie"].endswith("; Path=/; HttpOnly; SameSite=Lax; Secure")


def test_session_store_in_a_dot_folder_and_a_served_one_refused(tmp_path, krait_server):
    files = dict(SITE)
    files[".py/init.py"] = INIT + "krait.config.session_store = '.private/sessions'\n"
    site = write_site(tmp_path / "site", files)
    srv = krait_server(site, "--workers", "1")
    assert client().get(srv.url + "/count", timeout=30).json()["n"] == 1
    assert os.path.isfile(site / ".private" / "sessions" / "sessions.sqlite3")
    assert requests.get(srv.url + "/.private/sessions/sessions.sqlite3", timeout=30).status_code == 404

    files[".py/init.py"] = INIT + "krait.config.session_store = 'sessions'\n"
    bad = krait_server(write_site(tmp_path / "bad", files), expect_ready=False)
    assert bad.proc.wait(60) == 1
    assert "krait.config.session_store 'sessions' is inside the site and would be served" in bad.log()


def test_signed_cookies_intact_forged_and_across_a_restart(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "2")
    browser = client()
    signed = browser.get(srv.url + "/sign?user=ana", timeout=30)
    value = signed.cookies["user"]
    assert value.startswith("ana.") and len(value) == len("ana.") + 43
    assert browser.get(srv.url + "/whoami", timeout=30).json() == {"user": "ana"}
    signature = value.partition(".")[2]
    for forged in ("admin." + signature, "ana." + signature[::-1], "ana", "admin"):
        r = requests.get(srv.url + "/whoami", cookies={"user": forged}, timeout=30)
        assert r.json() == {"user": "nobody"}, forged
    assert srv.stop() == 0
    folder = state_folder(srv)
    [site_folder] = os.listdir(folder)
    assert os.listdir(os.path.join(folder, site_folder)) == ["secret.key"]  # no session was written

    again = krait_server(site, "--workers", "2")
    assert browser.get(again.url + "/whoami", timeout=30).json() == {"user": "ana"}, "the key survives restarts"


def test_repeated_query_keys_and_checkbox_groups_keep_every_value(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "2")
    r = requests.post(srv.url + "/fields?tag=a&tag=b&page=2",
                      data=[("topic", "python"), ("name", "Ana"), ("topic", "web"), ("topic", "")], timeout=30)
    assert r.json() == {
        "query_all": {"tag": ["a", "b"], "page": ["2"]},
        "query": {"tag": "b", "page": "2"},
        "form_all": {"topic": ["python", "web", ""], "name": ["Ana"]},
        "form": {"topic": "", "name": "Ana"},
    }


def test_a_form_of_too_many_fields_is_a_400_saying_so(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", SITE), "--workers", "1")
    most = requests.post(srv.url + "/fields", data="&".join("f%d=" % i for i in range(10_000)), timeout=30)
    assert most.status_code == 200 and len(most.json()["form"]) == 10_000
    # Eight million of them (16 MB, within the body limit) used to take 640 MB and 5 s of a worker.
    flood = requests.post(srv.url + "/fields", data="a&" * 10_001, timeout=30)
    assert (flood.status_code, flood.text) == (400, "the form has more than 10000 fields\n")
    assert "Traceback" not in srv.log()


def test_json_in_and_out_and_invalid_json_is_a_400_naming_the_problem(tmp_path, krait_server):
    site = write_site(tmp_path / "site", SITE)
    srv = krait_server(site, "--workers", "2")
    ok = requests.post(srv.url + "/echo", json={"name": "J\u00fcrgen", "tags": [1, 2]}, timeout=30)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/json; charset=utf-8"
    assert ok.content == '{"got": {"name": "J\u00fcrgen", "tags": [1, 2]}}'.encode()

    bad = requests.post(srv.url + "/echo", data=b'{"name": "Ana",}', timeout=30)
    assert bad.status_code == 400
    assert bad.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert bad.text == ("the request body is not valid JSON: Expecting property name enclosed in double quotes: "
                        "line 1 column 16 (char 15)\n")
    empty = requests.post(srv.url + "/echo", timeout=30)
    assert (empty.status_code, empty.text) == (400, "the request body is empty, not JSON\n")
    # Valid to Python's json, not to RFC 8259: NaN, and a lone surrogate no UTF-8 response could carry.
    nan = requests.post(srv.url + "/echo", data=b'{"n": NaN}', timeout=30)
    assert (nan.status_code, nan.text) == (400, "the request body is not valid JSON: NaN is no JSON number "
                                                "(RFC 8259 section 6)\n")
    lone = requests.post(srv.url + "/echo", data=b'{"text": "\\ud800"}', timeout=30)
    assert lone.status_code == 400 and "lone surrogate" in lone.text
    pair = requests.post(srv.url + "/echo", data=b'{"text": "\\ud83d\\ude00"}', timeout=30)
    assert pair.content == '{"got": {"text": "\U0001f600"}}'.encode()
    assert "Traceback" not in srv.log(), "a client's bad JSON is not a server error"


def test_a_stale_session_cookie_sent_first_does_not_hide_the_live_one(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", SITE), "--workers", "1")
    sid = session_cookie(client().get(srv.url + "/count", timeout=30))
    # A parent domain's krait_session comes first in the header when the browser made it earlier.
    for stale in ("stale", "A" * 22):
        r = requests.get(srv.url + "/count", headers={"Cookie": "krait_session=%s; krait_session=%s" % (stale, sid)},
                         timeout=30)
        assert r.json()["n"] in (2, 3) and session_cookie(r) is None, stale


def test_the_store_is_private_in_an_existing_folder_and_its_failures_name_it(tmp_path, krait_server):
    files = dict(SITE)
    files[".py/init.py"] = INIT + "krait.config.session_store = '.private/sessions'\n"
    site = write_site(tmp_path / "site", files)
    folder = site / ".private" / "sessions"
    folder.mkdir(parents=True, mode=0o755)  # made beforehand, by mkdir -p under umask 022
    srv = krait_server(site, "--workers", "1")
    browser = client()
    assert browser.get(srv.url + "/count", timeout=30).json()["n"] == 1
    for name in os.listdir(folder):  # the database and its -wal and -shm files: session ids are credentials
        assert os.stat(folder / name).st_mode & 0o777 == 0o600, name
    assert srv.stop() == 0

    (folder / "sessions.sqlite3").write_bytes(b"not a database, " * 512)
    for extra in os.listdir(folder):
        if extra != "sessions.sqlite3":
            os.unlink(folder / extra)
    again = krait_server(site, "--workers", "1")
    assert browser.get(again.url + "/count", timeout=30).status_code == 500
    assert "the session store %s cannot be used (file is not a database)" % (folder / "sessions.sqlite3") in again.log()
    assert requests.get(again.url + "/peek", timeout=30).json() == {}  # pages without a session serve on
