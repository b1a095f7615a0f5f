"""krait/server/routing.py without sockets: a Router over files in a temp folder (docs/routing.md)."""

import os

import pytest

from krait.config import Route
from krait.errors import BadRequest, MethodNotAllowed, NotFound, NotImplementedMethod
from krait.server.routing import SCRIPT, STATIC, TEMPLATE, Router
from tests.helpers import write_site

FILES = {
    "index.html": "home",
    "about.htm": "about",
    "page.pyml": "page",
    "run.py": "",
    "style.css": "",
    "docs/index.py": "",
    "both": "plain",
    "both.html": "html",
    "swap.html": "swapped",
    ".py/init.py": "",
    ".view/v.html": "",
    ".git/config": "",
    "users/show.py": "",
}


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", FILES)


def router(site, routes=None):
    return Router(str(site), routes or [Route()], use_cache=False)


@pytest.mark.parametrize("path, kind, rel", [
    ("/", TEMPLATE, "index.html"),
    ("/index", TEMPLATE, "index.html"),
    ("/about", TEMPLATE, "about.htm"),
    ("/page", TEMPLATE, "page.pyml"),
    ("/run", SCRIPT, "run.py"),
    ("/run.py", SCRIPT, "run.py"),
    ("/style.css", STATIC, "style.css"),
    ("/docs", SCRIPT, "docs/index.py"),
    ("/docs/", SCRIPT, "docs/index.py"),
    ("/both", STATIC, "both"),  # the file itself comes before F.html
    ("/swap.htm", TEMPLATE, "swap.html"),  # .htm <-> .html
    ("/about.html", TEMPLATE, "about.htm"),
    ("/%73tyle.css", STATIC, "style.css"),  # percent-decoded once
])
def test_search_order_and_kinds(site, path, kind, rel):
    target = router(site).route("GET", path)
    assert (target.kind, target.rel_path) == (kind, rel)
    assert target.path == os.path.realpath(site / rel)


@pytest.mark.parametrize("path", ["/.py/init.py", "/.view/v.html", "/.git/config", "/docs/../run.py",
                                  "//run.py", "/a\\b", "/%2e%2e/x", "/run%2fpy", "/run%00", "/missing"])
def test_unsafe_or_missing_paths_are_404(site, path):
    with pytest.raises(NotFound):
        router(site).route("GET", path)


def test_links_out_of_the_root_or_into_a_dot_folder_are_404(site, tmp_path):
    (tmp_path / "secret.txt").write_text("x")
    os.symlink(tmp_path / "secret.txt", site / "out.txt")
    os.symlink(site / ".py" / "init.py", site / "init.txt")
    for path in ("/out.txt", "/init.txt"):
        with pytest.raises(NotFound):
            router(site).route("GET", path)


def test_invalid_utf8_is_400_and_unknown_methods_501(site):
    with pytest.raises(BadRequest):
        router(site).route("GET", "/%ff")
    with pytest.raises(NotImplementedMethod):
        router(site).route("BREW", "/")


def test_regex_groups_become_url_params_and_fill_the_target(site):
    routes = [Route("GET", regex=r"/users/(?P<id>[0-9]+)", target="/users/show.py"),
              Route("POST", url="/submit", target="/run.py"),
              Route("GET", regex=r"/p/(?P<name>\w+)", target="/{name}")]
    r = router(site, routes)
    target = r.route("GET", "/users/42")
    assert (target.kind, target.rel_path, target.url_params) == (SCRIPT, "users/show.py", (("id", "42"),))
    assert target.decoded_path == "/users/42"
    assert r.route("HEAD", "/users/7").url_params == (("id", "7"),)  # HEAD takes GET routes
    assert r.route("POST", "/submit").rel_path == "run.py"
    assert r.route("GET", "/p/about").rel_path == "about.htm"


def test_a_path_routed_for_another_verb_is_405_with_allow(site):
    r = router(site, [Route("GET", url="/x", target="/run.py"), Route("DELETE", url="/x", target="/run.py")])
    with pytest.raises(MethodNotAllowed) as info:
        r.route("POST", "/x")
    assert dict(info.value.headers)["Allow"] == "GET, HEAD, DELETE"
    with pytest.raises(NotFound):
        r.route("POST", "/y")


def test_a_head_route_answers_head_requests_only(site):
    r = router(site, [Route("HEAD", url="/ping", target="/run.py")])
    assert r.route("HEAD", "/ping").rel_path == "run.py"
    with pytest.raises(MethodNotAllowed) as info:
        r.route("GET", "/ping")
    assert dict(info.value.headers)["Allow"] == "HEAD"


def test_websocket_routes_are_their_own_verb(site):
    r = router(site, [Route("WEBSOCKET", url="/ws", target="/run.py"), Route("GET", url="/ws", target="/style.css")])
    assert r.route("GET", "/ws", websocket=True).kind == SCRIPT
    assert r.route("GET", "/ws").kind == STATIC
    with pytest.raises(NotFound):  # no WEBSOCKET route: 404, never 405
        r.route("GET", "/other", websocket=True)


def test_lookups_are_cached_briefly_unless_debugging(site):
    cached = Router(str(site), [Route()], use_cache=True)
    (site / "mix.pyml").write_text("")
    (site / "mix.py").write_text("")
    assert cached.route("GET", "/mix").rel_path == "mix.pyml"
    (site / "mix.pyml").unlink()
    assert cached.route("GET", "/mix").rel_path == "mix.pyml"  # remembered for RESOLVE_TTL
    assert router(site).route("GET", "/mix").rel_path == "mix.py"  # no cache (--debug): seen at once
    # A static file is stat()ed again: gone, the next candidate is found at once.
    assert cached.route("GET", "/both").rel_path == "both"
    (site / "both").unlink()
    assert cached.route("GET", "/both").rel_path == "both.html"


def test_a_link_swapped_in_for_a_cached_static_file_is_checked_again(site, tmp_path):
    cached = Router(str(site), [Route()], use_cache=True)
    (site / "swap.txt").write_text("harmless")
    (tmp_path / "outside.txt").write_text("outside the site")
    assert cached.route("GET", "/swap.txt").stat.st_size == len("harmless")
    (site / "swap.txt").unlink()
    os.symlink(tmp_path / "outside.txt", site / "swap.txt")
    with pytest.raises(NotFound):
        cached.route("GET", "/swap.txt")  # within RESOLVE_TTL, yet refused: another inode
    (site / "swap.txt").unlink()
    os.link(site / "run.py", site / "swap.txt")  # a hard link to site code
    with pytest.raises(NotFound):
        cached.route("GET", "/swap.txt")


def test_the_real_file_decides_the_kind_in_any_case(site):
    (site / "UPPER.PY").write_text("")
    (site / "Page.Html").write_text("")
    os.symlink("run.py", site / "run.txt")
    os.symlink("style.css", site / "style.py")
    r = router(site)
    assert r.route("GET", "/UPPER.PY").kind == SCRIPT
    assert r.route("GET", "/Page.Html").kind == TEMPLATE
    assert (r.route("GET", "/run.txt").kind, r.route("GET", "/run.txt").rel_path) == (SCRIPT, "run.py")
    assert r.route("GET", "/style.py").kind == STATIC  # a link named .py to a static file: static


def test_a_trailing_slash_needs_a_folder(site):
    r = router(site)
    assert r.route("GET", "/docs/").rel_path == "docs/index.py"
    for path in ("/style.css/", "/run/", "/run.py/"):
        with pytest.raises(NotFound):
            r.route("GET", path)


def test_hard_links_to_code_dot_files_or_dot_folders_are_404(site):
    (site / ".env").write_text("KEY=1")
    for source, link in (("run.py", "a.txt"), (".py/init.py", "b.txt"), (".git/config", "c.txt"), (".env", "d.txt"),
                         ("style.css", "e.css")):
        os.link(site / source, site / link)
    r = router(site)
    for path in ("/a.txt", "/b.txt", "/c.txt", "/d.txt"):
        with pytest.raises(NotFound):
            r.route("GET", path)
    assert r.route("GET", "/e.css").kind == STATIC  # two names of one static file
    assert r.route("GET", "/style.css").kind == STATIC
    os.link(site / "style.css", site / "style.html")  # now it is a template too: scanned again (its ctime moved)
    with pytest.raises(NotFound):
        r.route("GET", "/e.css")
