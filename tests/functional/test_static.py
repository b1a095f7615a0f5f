"""Static files, URL resolution and caching headers through the real server (docs/routing.md, docs/configuration.md)."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import threading
import time

import pytest
import requests

from tests.helpers import write_site

pytestmark = pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)

INIT = """
import krait
krait.config.routes = [
    krait.config.Route("GET", regex=r"/user/(?P<name>[a-z]+)", target="/profile.py"),
    krait.config.Route("POST", url="/form"),
    krait.config.Route("PUT", url="/form"),
    krait.config.Route("OPTIONS", url="/opt.txt"),
    krait.config.Route("GET", regex=r"/files/(?P<rest>.+)", target="/pub/{rest}"),
    krait.config.Route(),
]
krait.config.cache_no_store = [r"nostore\\.txt"]
krait.config.cache_private = [r"private.*\\.txt"]
krait.config.cache_public = [r"public.*\\.txt", r"private-public\\.txt", r"public.*\\.py"]
krait.config.cache_long_term = [r".*long\\.txt", r"longpub\\.txt"]
"""

FILES = {
    ".py/init.py": INIT,
    "a.txt": "plain a",
    "page.html": "<p>page.html</p>",
    "only.htm": "<p>only.htm</p>",
    "swap.html": "<p>swap.html</p>",
    "t.pyml": "<p>t.pyml</p>",
    "s.py": "krait.response = krait.Response('HTTP/1.1', 200, [('Content-Type', 'text/plain')], 's.py')",
    "both": "bare both",
    "both.html": "<p>both.html</p>",
    "dir/index.html": "<p>dir index</p>",
    "dir2/index.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'dir2 index.py')",
    "shadow/index.html": "<p>shadow dir</p>",
    "shadow.html": "<p>shadow file</p>",
    "profile.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'hi ' + krait.url_params['name'])",
    "form.py": "krait.response = krait.Response('HTTP/1.1', 200, [], krait.request.http_method)",
    "opt.txt": "options target",
    "pub/x/y.txt": "nested pub",
    "nostore.txt": "n",
    "private.txt": "p",
    "public.txt": "q",
    "long.txt": "l",
    "privatelong.txt": "pl",
    "longpub.txt": "lp",
    "private-public.txt": "pp",
    "public.py": "krait.response = krait.Response('HTTP/1.1', 200, [], 'same for all')",
    "public-login.py": "krait.session['user'] = 'ana'\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'hi')",
    "style.css": "body { color: red }",
    "app.js": "console.log(1)",
    "data.json": "{}",
    "font.woff2": b"wOF2....",
    "img.png": b"\x89PNG\r\n",
    "unknown.zzz": b"?",
    "caf\u00e9.txt": "utf8 name",
    "space name.txt": "space",
    ".py/secret.py": "SECRET = 1",
    ".view/v.html": "view",
    ".private/db": "SECRET-DB",
    ".git/config": "SECRET-GIT",
    "sub/.hidden": "SECRET-HIDDEN",
    "big/.keep": "",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("static") / "site"
    write_site(root, FILES)
    outside = root.parent / "outside.txt"
    outside.write_text("SECRET-OUTSIDE")
    os.symlink(outside, root / "escape.txt")
    os.symlink(root / "a.txt", root / "inside-link.txt")
    return root


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    from tests.helpers import start_krait

    srv = start_krait(site, workdir=tmp_path_factory.mktemp("run"))
    yield srv
    srv.stop()


def get(server, path, **kw):
    return requests.get(server.url + path, timeout=10, **kw)


@pytest.mark.parametrize("path, body", [
    ("/a.txt", "plain a"),
    ("/page", "<p>page.html</p>"),
    ("/page.html", "<p>page.html</p>"),
    ("/only", "<p>only.htm</p>"),
    ("/only.html", "<p>only.htm</p>"),  # .html -> .htm swap
    ("/swap.htm", "<p>swap.html</p>"),  # .htm -> .html swap
    ("/t", "<p>t.pyml</p>"),
    ("/s", "s.py"),
    ("/both", "bare both"),  # F itself before F.html
    ("/dir", "<p>dir index</p>"),
    ("/dir/", "<p>dir index</p>"),
    ("/dir2", "dir2 index.py"),
    ("/shadow", "<p>shadow dir</p>"),  # a directory shadows x.html
    ("/user/ann", "hi ann"),
    ("/files/x/y.txt", "nested pub"),
    ("/caf%C3%A9.txt", "utf8 name"),
    ("/space%20name.txt", "space"),
    ("/inside-link.txt", "plain a"),
])
def test_resolution_order(server, path, body):
    r = get(server, path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    assert r.text == body


@pytest.mark.parametrize("path", [
    "/.py/init.py", "/.py/secret.py", "/.py/secret", "/.view/v.html", "/.private/db", "/.git/config",
    "/sub/.hidden", "/%2epy/init.py", "/%2Epy/secret.py", "/a/../.private/db", "/dir/../.git/config",
    "/%2e%2e/outside.txt", "/..%2foutside.txt", "/.private%2fdb", "/dir%2f..%2f.git%2fconfig", "/escape.txt",
    "/dir//index.html", "//.git/config", "/a.txt%00", "/%00", "/dir\\..\\.git\\config", "/dir%5c..%5c.git",
    "/./a.txt", "/dir/./index.html", "/nothing-here", "/user/ANN",
])
def test_hidden_and_traversal_are_404(server, path):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    assert r.status == 404, path
    assert b"SECRET" not in body
    assert r.getheader("Content-Type", "").startswith("text/html")


def test_raw_traversal_without_normalisation(server):
    raw = server.raw(b"GET /../outside.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404") and b"SECRET" not in raw


def test_invalid_utf8_path_is_400(server):
    assert get(server, "/%ff%fe.txt").status_code == 400


def test_methods(server):
    assert requests.post(server.url + "/form", data=b"x", timeout=10).text == "POST"
    assert requests.put(server.url + "/form", data=b"x", timeout=10).text == "PUT"
    r = requests.post(server.url + "/a.txt", data=b"x", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.request("OPTIONS", server.url + "/opt.txt", timeout=10)
    assert r.status_code == 200 and r.text == "options target"
    r = requests.request("BREW", server.url + "/a.txt", timeout=10)
    assert r.status_code == 501
    r = requests.post(server.url + "/nothing", timeout=10)  # GET would be routed (then 404): 405
    assert r.status_code == 405
    r = requests.request("PATCH", server.url + "/form", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST, PUT, GET, HEAD"


def test_head_matches_get(server):
    g = get(server, "/a.txt")
    h = requests.head(server.url + "/a.txt", timeout=10)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == g.headers["Content-Length"] == "7"
    assert h.headers["ETag"] == g.headers["ETag"]


@pytest.mark.parametrize("path, ctype", [
    ("/a.txt", "text/plain; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/data.json", "application/json; charset=utf-8"),
    ("/font.woff2", "font/woff2"),
    ("/img.png", "image/png"),
    ("/unknown.zzz", "application/octet-stream"),
    ("/page", "text/html; charset=utf-8"),
])
def test_content_types(server, path, ctype):
    assert get(server, path).headers["Content-Type"] == ctype


@pytest.mark.parametrize("path, cc", [
    ("/a.txt", "max-age=300, must-revalidate"),
    ("/s", "no-cache, no-store, must-revalidate"),
    ("/nostore.txt", "no-cache, no-store, must-revalidate"),
    ("/private.txt", "private, max-age=300, must-revalidate"),
    ("/public.txt", "public, max-age=300, must-revalidate"),
    ("/long.txt", "max-age=864000, must-revalidate"),
    ("/privatelong.txt", "private, max-age=864000, must-revalidate"),
    ("/longpub.txt", "max-age=864000, must-revalidate"),
    ("/private-public.txt", "public, max-age=300, must-revalidate"),
])
def test_cache_control_table(server, path, cc):
    r = get(server, path)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == cc


def test_a_response_that_sets_a_cookie_is_never_public(server):
    assert get(server, "/public").headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    login = get(server, "/public-login")
    assert login.headers["Set-Cookie"].startswith("krait_session=")  # a shared cache must not give it to all
    assert login.headers["Cache-Control"] == "private, max-age=300, must-revalidate"


def test_every_response_has_date_server_length(server):
    for path in ("/a.txt", "/s", "/nothing", "/page"):
        r = get(server, path)
        assert r.headers["Server"].startswith("Krait/")
        email.utils.parsedate_to_datetime(r.headers["Date"])
        assert int(r.headers["Content-Length"]) == len(r.content)


def test_conditional_requests(server):
    r = get(server, "/a.txt")
    etag, lm = r.headers["ETag"], r.headers["Last-Modified"]
    assert etag.startswith('"') and not etag.startswith('W/')
    for inm in (etag, "W/" + etag, '"nope", ' + etag, "*"):
        r2 = get(server, "/a.txt", headers={"If-None-Match": inm})
        assert r2.status_code == 304 and r2.content == b"", inm
        assert r2.headers["ETag"] == etag
    assert get(server, "/a.txt", headers={"If-None-Match": '"other"'}).status_code == 200
    assert get(server, "/a.txt", headers={"If-Modified-Since": lm}).status_code == 304
    old = email.utils.formatdate(time.time() - 10 * 365 * 86400, usegmt=True)
    assert get(server, "/a.txt", headers={"If-Modified-Since": old}).status_code == 200
    assert get(server, "/a.txt", headers={"If-Modified-Since": "garbage"}).status_code == 200
    huge_offset = "Mon, 01 Jan 2000 00:00:00 +99999999999999999"  # a date past what datetime holds
    assert get(server, "/a.txt", headers={"If-Modified-Since": huge_offset}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    assert get(server, "/a.txt", headers={"If-None-Match": '"x"', "If-Modified-Since": lm}).status_code == 200
    # dynamic responses are never 304 from the source file's tag
    assert get(server, "/s", headers={"If-None-Match": "*"}).status_code == 200


def test_file_change_changes_etag(server, site):
    p = site / "changing.txt"
    p.write_text("one")
    r1 = get(server, "/changing.txt")
    time.sleep(0.01)
    p.write_text("two!")
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    time.sleep(1.1)  # the resolution cache lives one second
    r2 = get(server, "/changing.txt")
    assert r1.text == "one" and r2.text == "two!"
    assert r1.headers["ETag"] != r2.headers["ETag"]


SAME_SIZE = {  # a file's two versions: same size, and given the same mtime below
    "stamp.txt": ("AAAA", "BBBB"),
    "stamp.bin": ("A" * (300 * 1024), "B" * (300 * 1024)),  # larger than the static cache takes: streamed
    "stamp.html": ("<p>AAAA</p>", "<p>BBBB</p>"),  # code-free: served by the server once rendered
    "stamp-code.html": ("<p>@('A' * 4)@</p>", "<p>@('B' * 4)@</p>"),  # compiled in the worker
    "stamp.py": ("krait.response = krait.Response('HTTP/1.1', 200, [], 'A' * 4)",
                 "krait.response = krait.Response('HTTP/1.1', 200, [], 'B' * 4)"),
}


@pytest.mark.parametrize("how", ["renamed over", "rewritten with its mtime put back"])
@pytest.mark.parametrize("name", sorted(SAME_SIZE))
def test_a_new_version_with_the_same_size_and_mtime_is_served(server, site, name, how):
    # A deploy that renames a new file over the old one, or a copy that puts the mtime back (`rsync
    # --inplace -t`, `touch -r`), can leave size and mtime as they were: the file's inode and change
    # time still tell the versions apart, for the server's caches and the worker's compiled code.
    old, new = SAME_SIZE[name]
    path = site / name
    path.write_text(old)
    before = get(server, "/" + name)
    assert before.status_code == 200 and "A" * 4 in before.text
    assert get(server, "/" + name).text == before.text  # the second one comes from what the first left
    st = os.stat(path)
    time.sleep(0.05)  # a change time on a coarse clock moves on
    if how == "renamed over":
        spare = site / ("new-" + name)
        spare.write_text(new)
        os.utime(spare, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(spare, path)
    else:
        path.write_text(new)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_mtime_ns, now.st_size) == (st.st_mtime_ns, st.st_size)
    after = get(server, "/" + name)
    assert after.status_code == 200 and "B" * 4 in after.text and "A" * 4 not in after.text
    if "ETag" in before.headers:  # a client's copy of the old version is not current
        assert after.headers["ETag"] != before.headers["ETag"]
        again = get(server, "/" + name, headers={"If-None-Match": before.headers["ETag"]})
        assert again.status_code == 200 and again.text == after.text


def test_ranges(server):
    r = get(server, "/a.txt", headers={"Range": "bytes=0-4"})
    assert r.status_code == 206 and r.content == b"plain"
    assert r.headers["Content-Range"] == "bytes 0-4/7" and r.headers["Accept-Ranges"] == "bytes"
    assert get(server, "/a.txt", headers={"Range": "bytes=-1"}).content == b"a"
    assert get(server, "/a.txt", headers={"Range": "bytes=6-"}).content == b"a"
    assert get(server, "/a.txt", headers={"Range": "bytes=3-100"}).content == b"in a"
    r = get(server, "/a.txt", headers={"Range": "bytes=7-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */7"
    assert get(server, "/a.txt", headers={"Range": "bytes=0-1,3-4"}).status_code == 200
    assert get(server, "/a.txt", headers={"Range": "items=0-1"}).status_code == 200
    # Positions of any length (int() refuses over 4,300 digits; the header line holds 8 KiB)
    many = "1" * 5000
    assert get(server, "/a.txt", headers={"Range": "bytes=0-" + many}).content == b"plain a"
    assert get(server, "/a.txt", headers={"Range": "bytes=" + many + "-"}).status_code == 416
    assert get(server, "/a.txt", headers={"Range": "bytes=-" + many}).content == b"plain a"
    assert get(server, "/a.txt", headers={"Range": "bytes=" + "0" * 5000 + "1-"}).content == b"lain a"
    etag = get(server, "/a.txt").headers["ETag"]
    assert get(server, "/a.txt", headers={"Range": "bytes=0-0", "If-Range": etag}).status_code == 206
    assert get(server, "/a.txt", headers={"Range": "bytes=0-0", "If-Range": '"old"'}).status_code == 200


def _rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_large_file_streams_with_flat_memory(server, site):
    size = 50 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with open(site / "big" / "big.bin", "wb") as f:
        for _ in range(50):
            f.write(block)
            digest.update(block)
    before = _rss_kb(server.proc.pid)
    got = hashlib.sha256()
    n = 0
    peak = before
    with requests.get(server.url + "/big/big.bin", stream=True, timeout=30) as r:
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == size
        for chunk in r.iter_content(1024 * 1024):
            got.update(chunk)
            n += len(chunk)
            peak = max(peak, _rss_kb(server.proc.pid))
    assert n == size and got.hexdigest() == digest.hexdigest()
    assert peak - before < 10 * 1024, "server RSS grew by %d KiB while sending 50 MiB" % (peak - before)
    r = get(server, "/big/big.bin", headers={"Range": "bytes=%d-%d" % (size - 10, size + 5)})
    assert r.status_code == 206 and r.content == block[-10:]


def test_dot_folder_in_site_root_path(tmp_path, krait_server):
    root = write_site(tmp_path / ".hidden-parent" / "site", {"index.html": "<p>root ok</p>"})
    srv = krait_server(root)
    assert requests.get(srv.url + "/", timeout=10).text == "<p>root ok</p>"


def test_code_free_template_is_cached_like_a_static_file(server, site):
    (site / "plain.html").write_text("<p>no code here, just a@@b.com</p>")
    r = get(server, "/plain.html")
    assert r.text == "<p>no code here, just a@b.com</p>"
    assert r.headers["Cache-Control"] == "max-age=300, must-revalidate" and r.headers["ETag"]
    r2 = get(server, "/plain.html", headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304 and r2.content == b""
    (site / "code.html").write_text("<p>@(1 + 1)@</p>")
    r = get(server, "/code.html")
    assert r.text == "<p>2</p>" and r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert "ETag" not in r.headers


HOLD = """import os, time
open(os.path.join(krait.site_root, "held"), "w").close()
while not os.path.exists(os.path.join(krait.site_root, "release")):
    time.sleep(0.01)
krait.response = krait.Response("HTTP/1.1", 200, [], "released")
"""


def _without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.startswith(b"Date: "))


def test_the_server_serves_a_code_free_template_once_a_worker_rendered_it(krait_server, make_site):
    # One worker and no queue: while hold.py keeps the worker busy, any job is refused with 503, so a 200
    # can only come from the server process itself.
    site = make_site({"plain.html": "<p>no code, just a@@b.com</p>\n" * 60, "hold.py": HOLD})
    srv = krait_server(site, "--workers", "1", "--max-queued", "0")
    ask = b"GET /plain.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    by_worker = srv.raw(ask)
    assert by_worker.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Encoding: gzip" in by_worker
    holder = threading.Thread(target=requests.get, args=(srv.url + "/hold.py",), kwargs={"timeout": 60})
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while not (site / "held").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert get(srv, "/hold.py").status_code == 503  # the worker is busy: a job would be refused
        assert _without_date(srv.raw(ask)) == _without_date(by_worker)
        plain = get(srv, "/plain.html")
        assert plain.text == "<p>no code, just a@b.com</p>\n" * 60
        assert get(srv, "/plain.html", headers={"If-None-Match": plain.headers["ETag"]}).status_code == 304
        assert get(srv, "/plain.html", headers={"Range": "bytes=0-2"}).content == b"<p>"
        (site / "plain.html").write_text("<p>@(1 + 1)@</p>")  # code now: back to the (busy) worker
        os.utime(site / "plain.html", ns=(1, 1))
        assert get(srv, "/plain.html").status_code == 503
    finally:
        (site / "release").touch()
        holder.join(60)
    r = get(srv, "/plain.html")
    assert r.text == "<p>2</p>" and "ETag" not in r.headers
    assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"


@pytest.mark.parametrize("path", ["/a.txt", "/page.html", "/kept.css", "/kept.bin"])
def test_a_request_asked_again_gets_the_same_response(server, site, path):
    # The second of each is answered from the reply kept for the first (krait/server/replies.py), the
    # third too: byte for byte the same, Date aside, for HTTP/1.1 and 1.0, GET and HEAD, with and
    # without gzip (kept.css is worth it; kept.bin is too large to keep and is streamed every time).
    if not (site / "kept.css").exists():
        (site / "kept.css").write_text("p { color: red }\n" * 200)
        (site / "kept.bin").write_bytes(bytes(range(256)) * 1200)
    for version in ("HTTP/1.1", "HTTP/1.0"):
        for method in ("GET", "HEAD"):
            for coding in ("", "Accept-Encoding: gzip\r\n"):
                ask = ("%s %s %s\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (method, path, version, coding)).encode()
                first = _without_date(server.raw(ask))
                assert first.startswith(b"HTTP/1.1 200 ")  # RFC 9110 section 2.5: our version
                assert _without_date(server.raw(ask)) == first == _without_date(server.raw(ask))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        bodies = []
        for _ in range(3):  # one connection: the kept reply keeps it alive as the first did
            conn.request("GET", path)
            response = conn.getresponse()
            bodies.append(response.read())
            assert response.status == 200 and not response.will_close
        assert bodies[0] == bodies[1] == bodies[2]
    finally:
        conn.close()


def test_an_upgrade_to_a_file_asked_for_before_is_not_answered_with_the_file(server):
    get(server, "/a.txt")
    get(server, "/a.txt")
    upgrade = (b"GET /a.txt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    answer = server.raw(upgrade)
    assert not answer.startswith(b"HTTP/1.1 200 ") and b"plain a" not in answer
