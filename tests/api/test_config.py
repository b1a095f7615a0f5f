"""krait.config: Route, snapshot() and cache_control()."""

import pickle

import pytest

from krait import config
from krait.config import Route, SiteConfig, cache_control


@pytest.fixture
def restore_config():
    saved = {n: getattr(config, n) for n in ("routes", "cache_no_store", "cache_private", "cache_public",
                                             "cache_long_term", "cache_max_age_default",
                                             "cache_max_age_long_term")}
    yield
    for name, value in saved.items():
        setattr(config, name, value)


# --- Route -----------------------------------------------------------------------------------

def test_route_defaults():
    r = Route()
    assert (r.verb, r.url, r.regex, r.target) == ("GET", None, None, None)
    assert r.match("GET", "/anything") == {}
    assert r.match("HEAD", "/anything") == {}
    assert r.match("POST", "/anything") is None
    assert r.match("WEBSOCKET", "/x") is None
    assert r.format_target({}) is None


def test_route_verbs():
    assert Route.route_verbs[:9] == ['GET', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'ANY',
                                     'WEBSOCKET']
    assert "PATCH" in Route.route_verbs and "HEAD" in Route.route_verbs
    for verb in Route.route_verbs:
        assert Route(verb).verb == verb
    assert Route("post").verb == "POST"
    with pytest.raises(ValueError, match="FETCH"):
        Route("FETCH")
    with pytest.raises(ValueError):
        Route(3)


@pytest.mark.parametrize("route_verb, request_verb, matches", [
    ("ANY", "DELETE", True), ("ANY", "WEBSOCKET", True), ("OPTIONS", "OPTIONS", True),
    ("PATCH", "PATCH", True), ("HEAD", "HEAD", True), ("HEAD", "GET", False),
    ("GET", "HEAD", True), ("WEBSOCKET", "GET", False), ("WEBSOCKET", "WEBSOCKET", True),
    ("POST", "GET", False),
])
def test_verb_matching(route_verb, request_verb, matches):
    assert (Route(route_verb).match(request_verb, "/") is not None) is matches


def test_url_and_regex_matching():
    assert Route(url="/a").match("GET", "/a") == {}
    assert Route(url="/a").match("GET", "/a/") is None
    assert Route(url="").match("GET", "/") is None
    r = Route(regex=r"/user/(?P<id>\d+)(?:/(?P<tab>\w+))?", target="/user.py?{id}")
    assert r.match("GET", "/user/42") == {"id": "42", "tab": ""}
    assert r.match("GET", "/user/42/posts") == {"id": "42", "tab": "posts"}
    assert r.match("GET", "/user/42x") is None  # fullmatch
    assert r.match("GET", "/x/user/42") is None
    both = Route(url="/exact", regex=r"/r\d")
    assert both.match("GET", "/exact") == {} and both.match("GET", "/r1") == {}
    assert both.match("GET", "/r") is None
    # one argument: the path only (the router checks verbs itself)
    assert Route("POST", url="/a").match("/a") == {}
    assert r.match("/user/7") == {"id": "7", "tab": ""}
    assert r.match("/nope") is None


def test_format_target():
    r = Route(regex=r"/(?P<a>\w+)/(?P<b>\w+)", target="/pages/{a}-{b}.py")
    assert r.format_target({"a": "x", "b": "y"}) == "/pages/x-y.py"
    assert r.format_target({"a": "x"}) == "/pages/x-{b}.py"
    assert Route(url="/x", target="/y.py").format_target({}) == "/y.py"
    assert Route(target="").format_target({}) == ""


def test_route_errors_name_the_route():
    with pytest.raises(ValueError, match=r"invalid regex '\(' in Route\(verb='GET'"):
        Route(regex="(")
    with pytest.raises(ValueError, match="placeholder {id}"):
        Route(url="/x", target="/{id}.py")
    with pytest.raises(ValueError, match="placeholder {nope}"):
        Route(regex="/(?P<id>.*)", target="/{nope}")


def test_route_repr_eq():
    r = Route("POST", url="/a", target="/b.py")
    assert repr(r) == "Route(verb='POST', url='/a', regex=None, target='/b.py')"
    assert r == Route("POST", url="/a", target="/b.py") and r != Route()
    assert len({r, Route("POST", url="/a", target="/b.py")}) == 1
    assert r.as_tuple() == ("POST", "/a", None, "/b.py")


# --- snapshot ----------------------------------------------------------------------------------

def test_snapshot_defaults(restore_config):
    cfg = config.snapshot()
    assert cfg == SiteConfig()
    assert cfg.routes is None
    assert cfg.build_routes() == [Route()]
    assert (cfg.cache_max_age_default, cfg.cache_max_age_long_term) == (300, 864000)


def test_snapshot_values_and_pickle(restore_config):
    config.routes = [Route("POST", url="/c"), Route(regex=r"/u/(?P<id>\d+)", target="/u.py"), Route()]
    config.cache_no_store = [r".*\.py"]
    config.cache_private = None
    config.cache_public = (r"css/.*",)
    config.cache_long_term = [r"fonts/.*"]
    config.cache_max_age_default = 60
    config.cache_max_age_long_term = 3600
    cfg = config.snapshot()
    assert cfg.routes == (("POST", "/c", None, None), ("GET", None, r"/u/(?P<id>\d+)", "/u.py"),
                          ("GET", None, None, None))
    assert cfg.cache_no_store == (r".*\.py",) and cfg.cache_private == () and cfg.cache_public == ("css/.*",)
    clone = pickle.loads(pickle.dumps(cfg))
    assert clone == cfg
    assert cache_control("fonts/a.woff", False, clone) == "max-age=3600, must-revalidate"
    assert clone.build_routes() == config.routes
    with pytest.raises(AttributeError):
        cfg.cache_max_age_default = 1
    config.cache_no_store.append("x")  # later changes do not reach the snapshot
    assert cfg.cache_no_store == (r".*\.py",)


@pytest.mark.parametrize("name, value, message", [
    ("cache_public", ["ok", "(bad"], r"krait.config.cache_public: .*'\(bad'|'\(bad' in krait.config.cache_public"),
    ("cache_private", "not-a-list", "cache_private must be a list"),
    ("cache_long_term", [3], "cache_long_term holds 3"),
    ("cache_max_age_default", -1, "cache_max_age_default"),
    ("cache_max_age_long_term", "10", "cache_max_age_long_term"),
    ("cache_max_age_default", True, "cache_max_age_default"),
    ("routes", Route(), "routes must be a list"),
    ("routes", [Route(), "x"], "routes holds 'x'"),
])
def test_snapshot_validation(restore_config, name, value, message):
    setattr(config, name, value)
    with pytest.raises(ValueError, match=message):
        config.snapshot()


# --- cache_control: every row of the 0.5.2 pragma table, plus `public` ----------------------------

CFG = SiteConfig(cache_no_store=(r"nostore/.*",), cache_private=(r"priv/.*", r"both/.*"),
                 cache_public=(r"pub/.*", r"both/.*", r"nostore/pub.*"), cache_long_term=(r"(priv|pub)/long.*",))


@pytest.mark.parametrize("path, dynamic, expected", [
    ("index.py", True, "no-cache, no-store, must-revalidate"),
    ("css/site.css", False, "max-age=300, must-revalidate"),
    ("nostore/a.css", False, "no-cache, no-store, must-revalidate"),
    ("nostore/a.py", True, "no-cache, no-store, must-revalidate"),
    ("priv/a.py", True, "private, max-age=300, must-revalidate"),
    ("priv/a.css", False, "private, max-age=300, must-revalidate"),
    ("pub/a.py", True, "public, max-age=300, must-revalidate"),
    ("pub/long.css", False, "public, max-age=864000, must-revalidate"),
    ("priv/long.css", True, "private, max-age=864000, must-revalidate"),
    ("both/a.css", False, "public, max-age=300, must-revalidate"),
    ("nostore/pub.css", False, "public, max-age=300, must-revalidate"),
    ("/css/site.css", False, "max-age=300, must-revalidate"),
    ("xpriv/a.css", False, "max-age=300, must-revalidate"),
])
def test_cache_control_table(path, dynamic, expected):
    assert cache_control(path, dynamic, CFG) == expected


def test_cache_control_long_term_only_and_custom_ages():
    cfg = SiteConfig(cache_long_term=(r"img/.*",), cache_max_age_default=10, cache_max_age_long_term=99)
    assert cache_control("img/a.png", True, cfg) == "max-age=99, must-revalidate"
    assert cache_control("a.png", False, cfg) == "max-age=10, must-revalidate"


def test_siteconfig_rejects_bad_pattern_directly():
    with pytest.raises(ValueError, match="cache_no_store"):
        SiteConfig(cache_no_store=("[",))
