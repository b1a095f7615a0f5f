"""krait.mvc controllers and stack; krait package globals, get_full_path, set_content_type."""

import os

import pytest

import krait
from krait import mvc
from krait.errors import Forbidden


@pytest.fixture(autouse=True)
def fresh_state():
    krait._begin_request(None)
    yield
    krait._begin_request(None)


def test_ctrl_base_is_abstract():
    with pytest.raises(NotImplementedError):
        mvc.CtrlBase().get_view()


def test_simple_ctrl():
    c = mvc.SimpleCtrl(".view/x.html", {"title": "T", "items": [1, 2]})
    assert c.view == c.get_view() == ".view/x.html"
    assert (c.title, c.items) == ("T", [1, 2])
    assert isinstance(c, mvc.CtrlBase)


def test_set_init_ctrl():
    assert mvc.init_ctrl is None
    c = mvc.SimpleCtrl("v", {})
    mvc.set_init_ctrl(c)
    assert mvc.init_ctrl is c


def test_push_pop_stack():
    a, b, c = object(), object(), object()
    assert mvc.push_ctrl(a) is a and mvc.curr_ctrl is a and mvc.ctrl_stack == []
    assert mvc.push_ctrl(b) is b and mvc.ctrl_stack == [a]
    assert mvc.push_ctrl(c) is c and mvc.ctrl_stack == [a, b]
    assert mvc.pop_ctrl() is b and mvc.curr_ctrl is b
    assert mvc.pop_ctrl() is a and mvc.curr_ctrl is a
    assert mvc.pop_ctrl() is None and mvc.curr_ctrl is None
    assert mvc.pop_ctrl() is None


# --- package globals ----------------------------------------------------------------------------

def test_version_matches_pyproject():
    text = open(os.path.join(os.path.dirname(krait.__file__), "..", "pyproject.toml")).read()
    assert f'version = "{krait.__version__}"' in text


def test_defaults_and_reexports():
    for name in ("Request", "Response", "ResponseNotFound", "ResponseBadRequest", "ResponseRedirect"):
        assert hasattr(krait, name)
    for mod in ("config", "mvc", "cookie", "websockets"):
        assert getattr(krait, mod).__name__ == "krait." + mod


def test_begin_request_resets_everything_with_fresh_objects():
    old_headers, old_params, old_stack = krait.extra_headers, krait.url_params, mvc.ctrl_stack
    krait.response = krait.ResponseNotFound()
    krait.extra_headers.append(("X", "1"))
    krait.url_params["a"] = "1"
    krait.set_content_type(raw="text/x")
    mvc.set_init_ctrl(object())
    mvc.push_ctrl(object())
    mvc.push_ctrl(object())
    krait.websockets.request = object()
    krait.websockets.response = object()
    krait.cookie._cookies_cpt = (None, [])
    req = krait.Request("GET", "/", "", "HTTP/1.1", {}, b"")
    krait._begin_request(req, {"id": "7"})
    assert krait.request is req and krait.response is None and krait._content_type is None
    assert krait.extra_headers == [] and krait.extra_headers is not old_headers
    assert krait.url_params == {"id": "7"} and krait.url_params is not old_params
    assert mvc.init_ctrl is None and mvc.curr_ctrl is None
    assert mvc.ctrl_stack == [] and mvc.ctrl_stack is not old_stack
    assert krait.websockets.request is None and krait.websockets.response is None
    assert krait.cookie._cookies_cpt is None
    params = {"x": "1"}
    krait._begin_request(req, params)
    assert krait.url_params == params and krait.url_params is not params


def test_set_content_type():
    krait.set_content_type(raw="application/json")
    assert krait._content_type == "application/json"
    krait.set_content_type(ext="html")
    assert krait._content_type == "ext/html"
    krait.set_content_type(ext=".css")
    assert krait._content_type == "ext/css"
    krait.set_content_type(raw="text/x-foo", ext="html")
    assert krait._content_type == "text/x-foo"
    krait.set_content_type()
    assert krait._content_type is None


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    (root / ".view").mkdir(parents=True)
    (root / ".view" / "x.html").write_text("x")
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", root / "link-out")
    os.symlink(root / ".view" / "x.html", root / "link-in")
    monkeypatch.setattr(krait, "site_root", str(root))
    return root


def test_get_full_path_inside(site):
    assert krait.get_full_path(".view/x.html") == os.path.join(str(site), ".view/x.html")
    assert krait.get_full_path("a/../.view/x.html") == os.path.join(str(site), "a/../.view/x.html")
    assert krait.get_full_path("missing/file") == os.path.join(str(site), "missing/file")
    assert krait.get_full_path("link-in") == os.path.join(str(site), "link-in")
    assert krait.get_full_path("") == os.path.join(str(site), "")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../secret", ".view/../../secret", "link-out", "a\0b", ".."])
def test_get_full_path_refuses_escapes(site, bad):
    with pytest.raises(Forbidden):
        krait.get_full_path(bad)


def test_get_full_path_relative_root(site, monkeypatch):
    monkeypatch.chdir(site.parent)
    monkeypatch.setattr(krait, "site_root", "site")
    assert krait.get_full_path(".view/x.html") == os.path.join("site", ".view/x.html")
    with pytest.raises(Forbidden):
        krait.get_full_path("../secret")


def test_get_full_path_needs_site_root(monkeypatch):
    monkeypatch.setattr(krait, "site_root", None)
    with pytest.raises(RuntimeError):
        krait.get_full_path("x")
