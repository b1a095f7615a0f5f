"""Site code is run, never shown (issue 20, docs/site-layout.md): the kind of a target comes from the real
file, in any case; symbolic and hard links cannot turn a script, a template or a dot folder's file into
a static download; a file is not a folder; a 206 varies like its 200. Against the real server."""

# Strategy: one server per test over a temp site; the links are made while it runs (the routing cache
# lives RESOLVE_TTL seconds, so a path is asked for only after its link exists). Every script and
# template holds a SOURCE marker that only its source contains, never its output.

from __future__ import annotations

import http.client
import os
import time

import pytest

from krait.server.routing import RESOLVE_TTL
from tests.helpers import write_site

SITE = {
    ".py/init.py": "# SOURCE of init.py\nimport krait\n",
    ".private/secret.txt": "SOURCE private data\n",
    "hello.py": "# SOURCE of hello.py\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'ran hello.py')\n",
    "index.html": "@{ note = 'SOURCE of index.html' }<p>@1+1@</p>\n",
    "SCRIPT.PY": "# SOURCE of SCRIPT.PY\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'ran SCRIPT.PY')\n",
    "PAGE.HTML": "@{ note = 'SOURCE of PAGE.HTML' }<p>@2+3@</p>\n",
    "Mixed.Py": "# SOURCE\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'ran Mixed.Py')\n",
    "notes.txt": "plain notes\n",
    "style.css": "body { color: black; }\n" * 100,  # 2.4 KB: gzipped when accepted, so its 200 varies
    "dir/index.html": "<p>dir</p>\n",
}


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", SITE)


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_no_source(port: int, path: str, expected: tuple[int, bytes] | int) -> None:
    status, _, body = get(port, path)
    assert b"SOURCE" not in body, (path, body[:200])
    if isinstance(expected, int):
        assert status == expected, (path, status, body[:200])
    else:
        assert (status, body) == expected, (path, status, body[:200])


def test_symbolic_links_to_site_code_run_it(site, krait_server):
    srv = krait_server(site)
    os.symlink("hello.py", site / "hello_src.txt")
    os.symlink(site / "index.html", site / "page.txt")
    os.symlink("hello.py", site / "noext")
    assert_no_source(srv.port, "/hello_src.txt", (200, b"ran hello.py"))
    assert_no_source(srv.port, "/noext", (200, b"ran hello.py"))
    assert_no_source(srv.port, "/page.txt", (200, b"<p>2</p>\n"))
    assert get(srv.port, "/page.txt")[1]["content-type"].startswith("text/html")  # the real file's type
    assert get(srv.port, "/notes.txt")[::2] == (200, b"plain notes\n")


def test_links_into_dot_folders_stay_unreachable(site, krait_server):
    srv = krait_server(site)
    os.symlink(".private/secret.txt", site / "secret.txt")
    os.symlink(".private", site / "pub")
    os.symlink(site / ".py", site / "code")
    for path in ("/secret.txt", "/pub/secret.txt", "/code/init.py", "/code/init"):
        assert_no_source(srv.port, path, 404)


def test_hard_links_to_site_code_or_dot_folders_are_refused(site, krait_server):
    srv = krait_server(site)
    assert get(srv.port, "/notes.txt")[0] == 200
    os.link(site / "hello.py", site / "hello_copy.txt")
    os.link(site / "index.html", site / "index_copy.txt")
    os.link(site / ".py" / "init.py", site / "init.txt")
    os.link(site / ".private" / "secret.txt", site / "data.bin")
    os.link(site / "notes.txt", site / "notes2.txt")  # a hard link between two static files is fine
    for path in ("/hello_copy.txt", "/index_copy.txt", "/init.txt", "/data.bin"):
        assert_no_source(srv.port, path, 404)
    assert get(srv.port, "/notes2.txt")[::2] == (200, b"plain notes\n")
    assert get(srv.port, "/hello.py")[::2] == (200, b"ran hello.py")  # the script itself still runs
    assert "a hard link to site code" in srv.log()
    # A static file that gains a code name later is refused from then on (its ctime moved).
    os.link(site / "notes.txt", site / "notes.py")
    time.sleep(RESOLVE_TTL + 0.2)
    assert_no_source(srv.port, "/notes2.txt", 404)


def test_the_kind_comes_from_the_real_name_in_any_case(site, krait_server):
    srv = krait_server(site)
    assert_no_source(srv.port, "/SCRIPT.PY", (200, b"ran SCRIPT.PY"))
    assert_no_source(srv.port, "/Mixed.Py", (200, b"ran Mixed.Py"))
    assert_no_source(srv.port, "/PAGE.HTML", (200, b"<p>5</p>\n"))
    os.symlink("SCRIPT.PY", site / "script.txt")
    assert_no_source(srv.port, "/script.txt", (200, b"ran SCRIPT.PY"))


def test_a_file_is_not_a_folder(site, krait_server):
    srv = krait_server(site)
    for path in ("/notes.txt/", "/hello.py/", "/hello/", "/index.html/", "/style.css/"):
        assert_no_source(srv.port, path, 404)
    assert get(srv.port, "/dir/")[::2] == (200, b"<p>dir</p>\n")
    assert get(srv.port, "/notes.txt")[::2] == (200, b"plain notes\n")


def test_a_range_of_a_file_varies_like_its_whole(site, krait_server):
    # RFC 9110 section 15.3.7: a 206 carries the Vary its 200 would.
    srv = krait_server(site)
    whole = get(srv.port, "/style.css")
    assert whole[0] == 200 and whole[1]["vary"] == "Accept-Encoding"
    for accept in ("identity", "gzip"):
        status, headers, body = get(srv.port, "/style.css", {"Range": "bytes=0-3", "Accept-Encoding": accept})
        assert (status, body) == (206, b"body")
        assert headers["vary"] == "Accept-Encoding" and "content-encoding" not in headers
    status, headers, _ = get(srv.port, "/notes.txt", {"Range": "bytes=0-4"})  # too small to gzip: no Vary
    assert status == 206 and "vary" not in headers
