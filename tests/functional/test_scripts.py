"""Python scripts in the worker pool: the krait script API over HTTP, isolation and faults (docs/scripts.md)."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.helpers import ROOT, needs_sighup, start_krait, wait_for, write_site

pytestmark = pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)

INIT = '''
import os, sqlite3, krait
from krait.config import Route
krait.config.routes = [
    Route("POST", url="/guestbook-post"),
    Route("POST", url="/echo"),
    Route("POST", url="/upload"),
    Route("GET", regex=r"/item/(?P<id>[0-9]+)", target="/item.py"),
    Route(),
]
sqlite_db = os.path.join(krait.site_root, ".private", "guestbook.sqlite")
os.makedirs(os.path.dirname(sqlite_db), exist_ok=True)
with sqlite3.connect(sqlite_db) as _c:
    _c.execute("CREATE TABLE IF NOT EXISTS messages (name TEXT, message TEXT)")
shared_list = []
counter = 0
'''

FILES = {
    ".py/init.py": INIT,
    ".py/ctrl/__init__.py": "",
    ".py/ctrl/guestbook.py": '''
import sqlite3, krait
from krait import mvc

class GuestbookController(mvc.CtrlBase):
    def __init__(self, db):
        with sqlite3.connect(db) as c:
            self.rows = c.execute("SELECT name, message FROM messages").fetchall()
        self.count = int(krait.cookie.get_cookie("posts", "0"))

    def get_view(self):
        return ".view/guestbook.html"
''',
    ".view/guestbook.html": "<h1>Guestbook</h1><p>You posted @ctrl.count@ times.</p>"
                            "@for name, message in ctrl.rows:<div><b>@name@</b>: @message@</div>@/for@",
    "guestbook.py": "from ctrl.guestbook import GuestbookController\n"
                    "krait.mvc.set_init_ctrl(GuestbookController(sqlite_db))\n",
    "guestbook-post.py": '''
import sqlite3
form = krait.request.get_post_form()
with sqlite3.connect(sqlite_db) as c:
    c.execute("INSERT INTO messages VALUES (?, ?)", (form["name"], form["text"]))
count = int(krait.cookie.get_cookie("posts", "0")) + 1
cookie = krait.cookie.Cookie("posts", str(count))
cookie.set_http_only(True)
cookie.set_same_site("Lax")
krait.cookie.set_cookie(cookie)
krait.response = krait.ResponseRedirect("/guestbook")
''',
    "echo.py": '''
import json
r = krait.request
krait.set_content_type(ext="json")
krait.extra_headers.append(("X-Echo", "yes"))
print("echo.py ran for", r.url)
body = {"method": r.http_method, "url": r.url, "path": r.path, "query": r.query,
        "version": r.http_version, "headers": r.headers, "body": r.body.decode("latin-1"),
        "form": r.get_post_form() if r.http_method == "POST" else None,
        "addr": list(r.remote_addr) if r.remote_addr else None, "scheme": r.scheme,
        "root": krait.site_root == krait.get_full_path("").rstrip("/")}
krait.response = krait.Response("HTTP/1.1", 200, [], json.dumps(body))
''',
    "upload.py": '''
import hashlib, json
parts = krait.request.get_multipart_form()
out = [{"name": p.name, "filename": p.filename, "ctype": p.content_type,
        "sha": hashlib.sha256(p.data).hexdigest(), "len": len(p.data)} for p in parts]
krait.response = krait.Response("HTTP/1.1", 200, [("Content-Type", "application/json")], json.dumps(out))
''',
    "item.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'item ' + krait.url_params['id'])",
    "empty.py": "x = 1",
    "notfound.py": "krait.response = krait.ResponseNotFound()",
    "bad.py": "krait.response = krait.ResponseBadRequest()",
    "redirect.py": "krait.response = krait.ResponseRedirect('/guestbook?x=1')",
    "ctype.py": "krait.set_content_type(raw='text/x-foo')\nkrait.response = None\n",
    "mutate.py": '''
global counter
counter += 1
shared_list.append(1)
krait.extra_headers.append(("X-Counter", str(counter)))
krait.extra_headers.append(("X-List", str(len(shared_list))))
import krait.mvc
krait.mvc.ctrl_stack.append("junk")
krait.extra_headers.append(("X-Stack", str(len(krait.mvc.ctrl_stack))))
krait.site_root_marker = getattr(krait, "site_root_marker", 0) + 1
krait.extra_headers.append(("X-Marker", str(krait.site_root_marker)))
''',
    "inject.py": "krait.extra_headers.append(('X-Bad', 'a\\r\\nSet-Cookie: evil=1'))",
    "raise.py": "def f():\n    raise ValueError('boom-detail')\nf()\n",
    "sleep.py": "import time\ntime.sleep(float(krait.request.query.get('s', '60')))\n"
                "krait.response = krait.Response('HTTP/1.1', 200, [], 'slept')",
    "crash.py": "import os\nos._exit(7)",
    "escape.py": "krait.get_full_path('/etc/passwd')",
    "cc.py": "krait.extra_headers.append(('Cache-Control', 'max-age=60'))",
    "mvcpage.py": "krait.mvc.set_init_ctrl(krait.mvc.SimpleCtrl('.view/simple.html', {'title': 'Hi <there>'}))",
    ".view/simple.html": "<title>@ctrl.title@</title>",
    "unicode.py": "krait.response = krait.Response('HTTP/1.1', 200, [('Content-Type', 'text/plain; charset=utf-8')], "
                  "'h\\u00e9llo \\u2603')",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = write_site(tmp_path_factory.mktemp("scripts") / "site", FILES)
    srv = start_krait(root, "--workers", "2", "--timeout", "3", workdir=tmp_path_factory.mktemp("run"))
    yield srv
    srv.stop()


def test_request_api(server):
    r = requests.post(server.url + "/echo?a=1&b=x+y&c&d=%C3%A9", data={"name": "J\u00fcrgen", "t": "a&b"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["X-Echo"] == "yes"
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    d = r.json()
    assert d["method"] == "POST" and d["url"] == "/echo" and d["path"] == "/echo"
    assert d["query"] == {"a": "1", "b": "x y", "c": "", "d": "\u00e9"}
    assert d["version"] == "HTTP/1.1"
    assert d["headers"]["host"].startswith("127.0.0.1")
    assert d["form"] == {"name": "J\u00fcrgen", "t": "a&b"}
    assert d["addr"][0] == "127.0.0.1" and d["scheme"] == "http" and d["root"]
    assert "echo.py ran for /echo" in server.stdout() + server.log()


def test_multipart_upload_is_byte_exact(server):
    import hashlib

    blob = bytes(range(256)) * 100 + b"\r\n--\0\r\n"
    r = requests.post(server.url + "/upload", files={"f": ("x.bin", blob, "application/octet-stream")},
                      data={"note": "h\u00e9"}, timeout=10)
    parts = {p["name"]: p for p in r.json()}
    assert parts["f"]["sha"] == hashlib.sha256(blob).hexdigest() and parts["f"]["filename"] == "x.bin"
    assert parts["f"]["ctype"] == "application/octet-stream"
    assert parts["note"]["len"] == len("h\u00e9".encode())


def test_responses(server):
    r = requests.get(server.url + "/empty", timeout=10)
    assert r.status_code == 200 and r.content == b"" and "ETag" not in r.headers
    r = requests.get(server.url + "/notfound", timeout=10)
    assert r.status_code == 404 and "404 Not Found" in r.text
    r = requests.get(server.url + "/bad", timeout=10)
    assert r.status_code == 400 and "400 Bad Request" in r.text and "404" not in r.text
    r = requests.get(server.url + "/redirect", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/guestbook?x=1"
    r = requests.get(server.url + "/item/42", timeout=10)
    assert r.text == "item 42"
    r = requests.get(server.url + "/cc", timeout=10)
    assert r.headers["Cache-Control"] == "max-age=60"
    r = requests.get(server.url + "/unicode", timeout=10)
    assert r.text == "h\u00e9llo \u2603"
    r = requests.get(server.url + "/mvcpage", timeout=10)
    assert r.text == "<title>Hi &lt;there&gt;</title>"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"


def test_header_injection_refused(server):
    r = requests.get(server.url + "/inject", timeout=10)
    assert r.status_code == 500
    assert "evil" not in r.headers.get("Set-Cookie", "")
    assert "refused" in server.log() or "CR, LF" in server.log()


def test_script_error_is_500_without_detail(server):
    r = requests.get(server.url + "/raise", timeout=10)
    assert r.status_code == 500 and "boom-detail" not in r.text
    assert "boom-detail" in server.log() and "raise.py" in server.log()


def test_get_full_path_refuses_escape(server):
    assert requests.get(server.url + "/escape", timeout=10).status_code == 403


def test_guestbook_flow(server):
    s = requests.Session()
    evil = "<script>alert('x')</script> & na\u00efve \u00fcml\u00e4ut"
    r = s.post(server.url + "/guestbook-post", data={"name": "Zo\u00eb", "text": evil}, allow_redirects=False,
               timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/guestbook"
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Lax" in r.headers["Set-Cookie"]
    r = s.get(server.url + "/guestbook", timeout=10)
    assert r.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; na\u00efve \u00fcml\u00e4ut" in r.text
    assert "<script>" not in r.text and "Zo\u00eb" in r.text
    assert "You posted 1 times." in r.text
    s.post(server.url + "/guestbook-post", data={"name": "a", "text": "b"}, timeout=10)
    assert "You posted 2 times." in s.get(server.url + "/guestbook", timeout=10).text


def test_isolation_across_requests_and_workers(server):
    for _ in range(50):
        r = requests.get(server.url + "/mutate", timeout=10)
        assert r.status_code == 200
        assert (r.headers["X-Counter"], r.headers["X-List"], r.headers["X-Stack"], r.headers["X-Marker"]) == \
            ("1", "1", "1", "1")


def test_deleted_and_rebound_module_attributes_come_back(tmp_path, krait_server):
    # One worker, so the second request runs where the first one vandalised the krait modules.
    root = write_site(tmp_path / "site", {
        # krait.mvc loses one name and gains another: the same number of names, other keys
        "vandal.py": "import krait.mvc\ndel krait.mvc.SimpleCtrl\nkrait.mvc.swapped_in = 1\nkrait.Response = None\n"
                     "krait.new_name = 1\nkrait.response = krait.mvc and 'HTTP/1.1 200 OK\\r\\n\\r\\ndone'",
        "check.py": "import krait.mvc\nkrait.response = krait.Response('HTTP/1.1', 200, [], '%s %s %s' % ("
                    "krait.mvc.SimpleCtrl.__name__, hasattr(krait, 'new_name'), hasattr(krait.mvc, 'swapped_in')))",
    })
    srv = krait_server(root, "--workers", "1")
    assert requests.get(srv.url + "/vandal", timeout=10).text == "done"
    assert requests.get(srv.url + "/check", timeout=10).text == "SimpleCtrl False False"


def test_init_functions_share_the_requests_namespace_and_leave_nothing_behind(tmp_path, krait_server):
    # As in 0.5.2 (init.py and the script share one __main__ per request): a global that an init.py
    # function sets is the calling script's, and the next visitor of the same worker starts from what
    # init.py left, including containers of dict subclasses.
    root = write_site(tmp_path / "site", {
        ".py/init.py": "import collections\nimport krait\n"
                       "current_user = None\naudit = []\nby_user = collections.defaultdict(list)\n"
                       "ordered = collections.OrderedDict()\n"
                       "def identify():\n"
                       "    global current_user\n"
                       "    current_user = krait.request.query.get('user')\n"
                       "    audit.append(current_user)\n"
                       "    by_user[current_user].append(1)\n"
                       "    ordered[current_user] = 1\n",
        "who.py": "identify()\nkrait.response = krait.Response('HTTP/1.1', 200, [], '%s %s %s %s %s' % (\n"
                  "    current_user, audit, dict(by_user), list(ordered), type(by_user).__name__))",
        "peek.py": "krait.response = krait.Response('HTTP/1.1', 200, [], '%s %s %s %s' % (\n"
                   "    current_user, audit, dict(by_user), list(ordered)))",
    })
    srv = krait_server(root, "--workers", "1")
    assert requests.get(srv.url + "/who?user=ana", timeout=10).text == \
        "ana ['ana'] {'ana': [1]} ['ana'] defaultdict"
    assert requests.get(srv.url + "/peek", timeout=10).text == "None [] {} []"
    assert requests.get(srv.url + "/who", timeout=10).text == "None [None] {None: [1]} [None] defaultdict"


def test_init_threads_share_data_updated_in_place_and_a_requests_thread_keeps_its_own(tmp_path, krait_server):
    # What a thread that init.py started updates in place is seen by every later request (a global it
    # rebinds is put back, as any global init.py's functions set). A request's namespace is its own: a
    # thread it started still reads that request's globals once a later request has set the same name.
    marker = tmp_path / "seen"
    root = write_site(tmp_path / "site", {
        ".py/init.py": "import threading, time\nDATA = {'state': 'initial'}\n"
                       "def _refresh():\n    time.sleep(0.3)\n    DATA['state'] = 'refreshed'\n"
                       "threading.Thread(target=_refresh, daemon=True).start()\n",
        "show.py": "user = krait.request.query.get('user')\n"
                   "krait.response = krait.Response('HTTP/1.1', 200, [], DATA['state'])\n",
        "later.py": "import threading, time\nuser = krait.request.query['user']\n"
                    "def look():\n    time.sleep(0.5)\n"
                    "    open(%r, 'w').write(str(globals().get('user')))\n"
                    "threading.Thread(target=look, daemon=True).start()\n" % str(marker),
    })
    srv = krait_server(root, "--workers", "1")
    time.sleep(0.6)
    assert [requests.get(srv.url + "/show", timeout=10).text for _ in range(2)] == ["refreshed"] * 2
    assert requests.get(srv.url + "/later?user=ana", timeout=10).status_code == 200
    assert requests.get(srv.url + "/show?user=bob", timeout=10).text == "refreshed"
    assert wait_for(marker.exists, 5) and wait_for(lambda: marker.read_text() == "ana", 2), marker.read_text()


def test_no_global_that_init_code_sets_for_a_visitor_reaches_the_next(tmp_path, krait_server):
    # A decorated function, a method and a function held in a dict keep init.py's globals; what they
    # set with `global` during one request is put back before the next.
    root = write_site(tmp_path / "site", {
        ".py/init.py": "import functools, krait\n"
                       "def logged(f):\n    @functools.wraps(f)\n    def wrapper():\n        return f()\n"
                       "    return wrapper\n"
                       "@logged\ndef identify():\n    global user\n    user = krait.request.query.get('u')\n"
                       "class Auth:\n    def login(self):\n        global role\n        role = 'admin'\n"
                       "auth = Auth()\n"
                       "def _greet():\n    global greeting\n    greeting = 'hi ' + krait.request.query.get('u')\n"
                       "HANDLERS = {'greet': _greet}\nuser = role = None\n",
        "set.py": "identify()\nauth.login()\nHANDLERS['greet']()\n"
                  "krait.response = krait.Response('HTTP/1.1', 200, [], 'ok')\n",
        "peek.py": "krait.response = krait.Response('HTTP/1.1', 200, [], repr((user, role, "
                   "globals().get('greeting'))))\n",
    })
    srv = krait_server(root, "--workers", "1")
    assert requests.get(srv.url + "/set?u=ana", timeout=10).text == "ok"
    assert requests.get(srv.url + "/peek", timeout=10).text == "(None, None, None)"


def test_a_finished_requests_globals_are_freed_at_once(tmp_path, krait_server):
    # A script's functions (and init.py's, bound to the request) point back at its globals: the request's
    # objects must go when it ends, not at some later garbage collection (disabled here to show it).
    freed = tmp_path / "freed"
    root = write_site(tmp_path / "site", {
        ".py/init.py": "import gc\ngc.disable()\ndef helper():\n    return 1\n",
        ".py/tracked.py": "class Tracked:\n    def __init__(self, path):\n        self.path = path\n"
                          "    def __del__(self):\n        open(self.path, 'a').write('x')\n",
        "page.py": "import tracked\nbig = tracked.Tracked(%r)\ndef mine():\n    return helper()\n"
                   "krait.response = krait.Response('HTTP/1.1', 200, [], str(mine()))\n" % str(freed),
        "stream.py": "import tracked\nbig = tracked.Tracked(%r)\ndef parts():\n    yield 'a'\n    yield 'b'\n"
                     "krait.response = krait.Response('HTTP/1.1', 200, [], parts())\n" % str(freed),
    })
    srv = krait_server(root, "--workers", "1")
    assert requests.get(srv.url + "/page", timeout=10).text == "1"
    assert wait_for(lambda: freed.exists() and freed.read_text() == "x", 3)
    assert requests.get(srv.url + "/stream", timeout=10).text == "ab"
    assert wait_for(lambda: freed.read_text() == "xx", 3)


def test_what_a_request_hands_on_keeps_its_globals(tmp_path, krait_server):
    # Work given to a thread pool that init.py started, and a function kept in a module's registry, still
    # find the request's globals once it is over (they are emptied only when nothing else holds them).
    outbox = tmp_path / "outbox"
    root = write_site(tmp_path / "site", {
        ".py/init.py": "import concurrent.futures, time\npool = concurrent.futures.ThreadPoolExecutor(1)\n"
                       "def send_mail(to):\n    time.sleep(0.3)\n    with open(%r, 'a') as f:\n"
                       "        f.write(GREETING + ' ' + to + '\\n')\nGREETING = 'mail for'\n" % str(outbox),
        ".py/registry.py": "hooks = []\n",
        "send.py": "pool.submit(send_mail, krait.request.query['to'])\n"
                   "krait.response = krait.Response('HTTP/1.1', 200, [], 'queued')\n",
        "register.py": "import json, registry\ndef dump():\n    return json.dumps({'a': 1})\n"
                       "if not registry.hooks:\n    registry.hooks.append(dump)\n"
                       "krait.response = krait.Response('HTTP/1.1', 200, [], registry.hooks[0]())\n",
    })
    srv = krait_server(root, "--workers", "1")
    for to in ("alice", "bob", "carol"):
        assert requests.get(srv.url + "/send?to=" + to, timeout=10).text == "queued"
    assert wait_for(lambda: outbox.exists() and len(outbox.read_text().splitlines()) == 3, 5)
    assert outbox.read_text().splitlines() == ["mail for alice", "mail for bob", "mail for carol"]
    assert [requests.get(srv.url + "/register", timeout=10).text for _ in range(2)] == ['{"a": 1}'] * 2
    assert "NameError" not in srv.log()


def test_a_script_that_sets_its_own_etag_gets_its_reply_as_it_made_it(tmp_path, krait_server):
    # gzip would turn "v1" into "v1-gz", which the script never sees again: a script's own validator
    # and its 304 go out as the script made them; a script reply without one is still gzipped.
    page = "<p>" + "tagged " * 400 + "</p>"
    root = write_site(tmp_path / "site", {
        "tagged.py": "import krait\n"
                     "if krait.request.headers.get('if-none-match') == '\"v1\"':\n"
                     "    krait.response = krait.Response('HTTP/1.1', 304, [('ETag', '\"v1\"')], '')\n"
                     "else:\n"
                     "    krait.response = krait.Response('HTTP/1.1', 200, [('ETag', '\"v1\"'),\n"
                     "        ('Content-Type', 'text/html')], %r)\n" % page,
        "plain.py": "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, "
                    "[('Content-Type', 'text/html')], %r)\n" % page,
    })
    srv = krait_server(root)
    gz = {"Accept-Encoding": "gzip"}
    r = requests.get(srv.url + "/tagged", headers=gz, timeout=10)
    assert (r.status_code, r.headers["ETag"], r.text) == (200, '"v1"', page)
    assert "Content-Encoding" not in r.headers
    r = requests.get(srv.url + "/tagged", headers={**gz, "If-None-Match": r.headers["ETag"]}, timeout=10)
    assert (r.status_code, r.headers["ETag"]) == (304, '"v1"')
    r = requests.get(srv.url + "/plain", headers=gz, timeout=10)
    assert (r.status_code, r.headers["Content-Encoding"], r.text) == (200, "gzip", page)


def test_a_script_or_template_deleted_since_it_was_routed_is_a_404(tmp_path, krait_server):
    # The server keeps a lookup up to a second: a request routed to a file deleted meanwhile reaches a
    # worker that cannot find it, which is the client's 404 (as for a static file), not a script error.
    root = write_site(tmp_path / "site", {
        "old.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'old')\n",
        "page.html": "<p>@krait.request.path@</p>",
    })
    srv = krait_server(root, "--workers", "1")
    assert requests.get(srv.url + "/old", timeout=10).text == "old"
    assert requests.get(srv.url + "/page.html", timeout=10).text == "<p>/page.html</p>"
    (root / "old.py").unlink()
    (root / "page.html").unlink()
    assert requests.get(srv.url + "/old", timeout=10).status_code == 404
    assert requests.get(srv.url + "/page.html", timeout=10).status_code == 404
    assert "FileNotFoundError" not in srv.log()


def test_a_request_queued_longer_than_the_timeout_is_still_served(tmp_path, krait_server):
    # --timeout bounds a script's run, not the wait in the queue: two 1.2 s scripts ahead of it on the
    # only worker, a page waits past --timeout 2 and is then run, not refused with 503.
    root = write_site(tmp_path / "site", {
        "report.py": "import time\ntime.sleep(1.2)\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'report')\n",
        "fast.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'fast')\n",
    })
    srv = krait_server(root, "--workers", "1", "--timeout", "2")
    assert requests.get(srv.url + "/fast", timeout=10).text == "fast"
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        reports = [pool.submit(requests.get, srv.url + "/report", timeout=20) for _ in range(2)]
        time.sleep(0.2)
        fast = pool.submit(requests.get, srv.url + "/fast", timeout=20)
        assert [r.result().status_code for r in reports] == [200, 200]
        assert (fast.result().status_code, fast.result().text) == (200, "fast")


def test_a_worker_that_dies_is_noticed_though_a_process_it_forked_lives_on(tmp_path, krait_server):
    # A process that site code forks must not hold the worker's pipe: the server learns of the worker's
    # death from its EOF, and the request gets its 500 at once, not a 504 after --timeout.
    bg_pid, running = tmp_path / "bg.pid", tmp_path / "running"
    root = write_site(tmp_path / "site", {
        "bg.py": "import os, time\nif os.fork() == 0:\n    open(%r, 'w').write(str(os.getpid()))\n"
                 "    time.sleep(30)\n    os._exit(0)\n" % str(bg_pid),
        "work.py": "import os, time\nopen(%r, 'w').write(str(os.getpid()))\ntime.sleep(5)\n" % str(running),
    })
    srv = krait_server(root, "--workers", "1", "--timeout", "20")
    try:
        assert requests.get(srv.url + "/bg", timeout=10).status_code == 200
        answer: dict = {}
        thread = threading.Thread(target=lambda: answer.update(r=requests.get(srv.url + "/work", timeout=30)))
        thread.start()
        assert wait_for(running.exists, 10) and wait_for(lambda: running.read_text(), 2)
        started = time.monotonic()
        os.kill(int(running.read_text()), signal.SIGKILL)
        thread.join(30)
        assert answer["r"].status_code == 500 and time.monotonic() - started < 5
    finally:
        if bg_pid.exists():
            try:
                os.kill(int(bg_pid.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


@needs_sighup
def test_programs_and_forks_of_site_code_can_be_terminated_and_hold_no_worker_pipe(tmp_path, krait_server):
    # The worker shrugs off SIGTERM/SIGINT/SIGHUP (the server stops it). What site code runs ignores
    # SIGINT too (Ctrl-C reaches the whole process group, and a request in flight finishes), but can be
    # terminated: SIGTERM and SIGHUP are at their defaults. Nor may they hold the worker's pipe
    # (os.system passes on inheritable descriptors), which would hide the worker's death from the server.
    handlers = "[str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]"
    root = write_site(tmp_path / "site", {
        "run.py": "import os, signal, subprocess, sys\n"
                  "child = subprocess.run([sys.executable, '-c', 'import signal; print(%s)'], capture_output=True,"
                  " text=True).stdout\n"
                  "r, w = os.pipe()\n"
                  "if os.fork() == 0:\n"
                  "    os.write(w, repr(%s).encode())\n"
                  "    os._exit(0)\n"
                  "os.close(w)\nforked = os.read(r, 1000).decode()\nos.wait()\n"
                  "os.system('ls /proc/$$/fd > %s')\n"
                  "krait.response = krait.Response('HTTP/1.1', 200, [], child.strip() + '|' + forked)\n"
                  % (handlers, handlers, tmp_path / "fds"),
    })
    srv = krait_server(root, "--workers", "1")
    r = requests.get(srv.url + "/run", timeout=20)
    assert r.status_code == 200, r.text
    defaults = str([str(signal.SIG_IGN), str(signal.SIG_DFL), str(signal.SIG_DFL)])
    assert r.text == defaults + "|" + defaults
    # the shell holds 0, 1, 2 and the copy of 1 it keeps across the redirection: nothing of the worker
    assert len((tmp_path / "fds").read_text().split()) <= 4


@needs_sighup
def test_ctrl_c_lets_a_program_that_a_request_runs_finish(tmp_path):
    # Ctrl-C signals the terminal's whole process group: the server stops gracefully, and the request
    # in flight finishes, with the program it runs.
    root = write_site(tmp_path / "site", {
        "convert.py": "import subprocess\nstatus = subprocess.run(['sleep', '1.5']).returncode\n"
                      "krait.response = krait.Response('HTTP/1.1', 200, [], 'status %d' % status)\n",
    })
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen([sys.executable, "-m", "krait", str(root), "--port", "0", "--workers", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                          stdin=subprocess.DEVNULL, start_new_session=True) as proc:
        try:
            port = int(re.search(r":(\d+)/", proc.stdout.readline()).group(1))
            answer: dict = {}
            thread = threading.Thread(target=lambda: answer.update(
                r=requests.get("http://127.0.0.1:%d/convert" % port, timeout=20)))
            thread.start()
            time.sleep(0.7)
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the group of the server it started
            thread.join(20)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert (answer["r"].status_code, answer["r"].text) == (200, "status 0")


def test_timeout_gives_504_and_server_recovers(server):
    t0 = time.monotonic()
    r = requests.get(server.url + "/sleep?s=30", timeout=20)
    assert r.status_code == 504 and time.monotonic() - t0 < 10
    assert requests.get(server.url + "/item/1", timeout=10).text == "item 1"


def test_crash_gives_500_and_worker_is_replaced(server):
    for _ in range(3):
        assert requests.get(server.url + "/crash", timeout=10).status_code == 500
    for _ in range(5):
        assert requests.get(server.url + "/item/2", timeout=20).text == "item 2"


def test_queue_full_gives_503(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {"sleep.py": FILES["sleep.py"], "ok.txt": "ok"})
    srv = krait_server(root, "--workers", "1", "--max-queued", "1", "--timeout", "5")
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        futures = [ex.submit(requests.get, srv.url + "/sleep?s=1.5", timeout=20) for _ in range(6)]
        codes = sorted(f.result().status_code for f in futures)
    assert 503 in codes and 200 in codes
    r503 = [f.result() for f in futures if f.result().status_code == 503][0]
    assert r503.headers["Retry-After"] == "1"
    assert requests.get(srv.url + "/ok.txt", timeout=10).text == "ok"
    assert requests.get(srv.url + "/sleep?s=0", timeout=10).text == "slept"


@needs_sighup
def test_sighup_reload_while_requests_in_flight(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {
        ".py/init.py": "import os\nstarted_by = os.getpid()\n",
        "sleep.py": FILES["sleep.py"],
        "pid.py": "krait.response = krait.Response('HTTP/1.1', 200, [], str(started_by))",
    })
    srv = krait_server(root, "--workers", "2")
    before = {requests.get(srv.url + "/pid", timeout=10).text for _ in range(6)}
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        slow = [ex.submit(requests.get, srv.url + "/sleep?s=1", timeout=20) for _ in range(2)]
        time.sleep(0.3)
        srv.signal(signal.SIGHUP)
        fast = [ex.submit(requests.get, srv.url + "/pid", timeout=20) for _ in range(20)]
        assert all(f.result().status_code == 200 for f in slow + fast)
    time.sleep(2)
    after = {requests.get(srv.url + "/pid", timeout=10).text for _ in range(6)}
    assert before.isdisjoint(after)


def test_failing_init_exits_1_with_location(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": "x = 1\n\nraise RuntimeError('init exploded')\n"})
    srv = krait_server(root, expect_ready=False)
    assert srv.proc.wait(60) == 1
    log = srv.log()
    assert "init exploded" in log and "init.py:3" in log


def test_bad_route_is_a_startup_error(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": "import krait\nkrait.config.routes = "
                                          "[krait.config.Route('GET', regex='(unclosed')]\n"})
    srv = krait_server(root, expect_ready=False)
    assert srv.proc.wait(60) == 1
    assert "unclosed" in srv.log()


def test_edit_under_dot_py_restarts_workers(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {
        ".py/init.py": "from settings import GREETING\n",
        ".py/settings.py": "GREETING = 'one'\n",
        "g.py": "krait.response = krait.Response('HTTP/1.1', 200, [], GREETING)",
        "t.html": "v1",
    })
    srv = krait_server(root, "--workers", "1")
    assert requests.get(srv.url + "/g", timeout=10).text == "one"
    (root / "t.html").write_text("v2 longer")
    assert requests.get(srv.url + "/t.html", timeout=10).text == "v2 longer"  # templates: next request
    (root / ".py" / "settings.py").write_text("GREETING = 'two!'\n")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if requests.get(srv.url + "/g", timeout=10).text == "two!":
            break
        time.sleep(0.2)
    assert requests.get(srv.url + "/g", timeout=10).text == "two!"


def test_debug_pages_show_template_file_and_line(tmp_path, krait_server):
    files = {"bad.html": "<p>ok</p>\n<p>@{ x = 1\n</p>\n", "rt.html": "<p>\n@undefined_name@\n</p>\n",
             "boom.py": "def f():\n    raise KeyError('secret-key')\nf()\n"}
    root = write_site(tmp_path / "site", files)
    debug = krait_server(root, "--debug")
    r = requests.get(debug.url + "/bad.html", timeout=10)
    assert r.status_code == 500
    assert "bad.html&quot;, line 2, column 4" in r.text and "TemplateSyntaxError" in r.text
    r = requests.get(debug.url + "/rt.html", timeout=10)
    assert "rt.html&quot;, line 2" in r.text and "@undefined_name@" in r.text and "worker.py" not in r.text
    r = requests.get(debug.url + "/boom", timeout=10)
    assert "boom.py&quot;, line 2" in r.text and "secret-key" in r.text
    quiet = krait_server(write_site(tmp_path / "site2", files))
    for path in ("/bad.html", "/rt.html", "/boom"):
        r = requests.get(quiet.url + path, timeout=10)
        assert r.status_code == 500 and "line" not in r.text and "secret-key" not in r.text
    assert "rt.html:2" in quiet.log() and "secret-key" in quiet.log()


def test_max_requests_recycles_workers(tmp_path, krait_server):
    root = write_site(tmp_path / "site",
                      {"pid.py": "import os\nkrait.response = krait.Response('HTTP/1.1', 200, [], str(os.getpid()))"})
    srv = krait_server(root, "--workers", "1", "--max-requests", "3")
    pids: list[str] = []
    deadline = time.monotonic() + 30
    while len(set(pids)) < 3 and time.monotonic() < deadline:
        r = requests.get(srv.url + "/pid", timeout=20)
        assert r.status_code == 200  # no request fails, nor waits for a new worker to start
        pids.append(r.text)
        time.sleep(0.05)
    assert len(set(pids)) >= 3
    # Each worker is replaced once it served 3 requests, as soon as its successor ran init.py.
    assert all(pids.count(p) >= 3 for p in list(dict.fromkeys(pids))[:-1])
