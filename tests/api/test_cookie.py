"""krait.cookie: building, rendering and parsing cookies."""

import datetime as dt

import pytest

import krait
from krait import cookie as kc


@pytest.fixture(autouse=True)
def fresh_request():
    krait._begin_request(None)
    yield
    krait._begin_request(None)


def with_cookie_header(value):
    headers = [] if value is None else [("Cookie", value)]
    krait._begin_request(krait.Request("GET", "/", "", "HTTP/1.1", headers, b""))


# --- rendering -------------------------------------------------------------------------------

def test_plain_cookie():
    c = kc.Cookie("a", "1")
    assert (c.name, c.value, c.attributes) == ("a", "1", [])
    assert str(c) == "a=1"


def test_all_attributes_rfc6265_names_and_zero_padded_date():
    c = kc.Cookie("sid", "x=y")
    c.set_expires(dt.datetime(2017, 7, 5, 9, 3, 7))
    c.set_max_age(60)
    c.set_path("/app")
    c.set_domain("example.com")
    c.set_secure(True)
    c.set_http_only(True)
    c.set_same_site("lax")
    assert str(c) == ("sid=x=y; Expires=Wed, 05 Jul 2017 09:03:07 GMT; Max-Age=60; Path=/app; "
                      "Domain=example.com; Secure; HttpOnly; SameSite=Lax")


def test_aware_datetime_converted_to_utc():
    tz = dt.timezone(dt.timedelta(hours=2))
    attr = kc.CookieExpiresAttribute(dt.datetime(2024, 1, 1, 1, 2, 3, tzinfo=tz))
    assert attr.value == "Sun, 31 Dec 2023 23:02:03 GMT"
    assert attr.expire_datetime.tzinfo is tz
    with pytest.raises(TypeError):
        kc.CookieExpiresAttribute("tomorrow")


def test_set_and_remove_attributes_case_insensitive():
    c = kc.Cookie("a", "1", [kc.CookieAttribute("path", "/old")])
    c.set_path("/new")
    assert str(c) == "a=1; Path=/new"
    c.add_attribute(kc.CookieAttribute("X-Custom", "v"))
    c.add_attribute(kc.CookieAttribute("Flag"))
    assert str(c) == "a=1; Path=/new; X-Custom=v; Flag"
    c.remove_attribute("x-custom")
    c.set_path(None)
    c.set_secure(True)
    c.set_secure(False)
    c.set_http_only(True)
    c.set_http_only(False)
    c.set_max_age(5)
    c.set_max_age(None)
    c.set_expires(dt.datetime(2020, 1, 1))
    c.set_expires(None)
    c.set_domain("d")
    c.set_domain(None)
    c.set_same_site("STRICT")
    assert str(c) == "a=1; Flag; SameSite=Strict"
    c.set_same_site(None)
    assert str(c) == "a=1; Flag"


def test_attribute_classes():
    assert str(kc.CookieMaxAgeAttribute(0)) == "Max-Age=0"
    assert kc.CookieMaxAgeAttribute(9).max_age == 9
    assert kc.CookiePathAttribute("/p").path == "/p"
    assert kc.CookieDomainAttribute("d.org").domain == "d.org"
    assert str(kc.CookieHttpOnlyAttribute()) == "HttpOnly"
    assert str(kc.CookieSecureAttribute()) == "Secure"
    assert kc.CookieSecureAttribute().value is None
    assert str(kc.CookieSameSiteAttribute("none")) == "SameSite=None"
    assert kc.CookieAttribute("Path", "/p") == kc.CookiePathAttribute("/p")
    assert kc.CookieAttribute("a", "1").__eq__(3) is NotImplemented
    assert len({kc.CookieAttribute("PATH", "/"), kc.CookiePathAttribute("/")}) == 1
    for bad in (lambda: kc.CookieMaxAgeAttribute("5"), lambda: kc.CookieMaxAgeAttribute(True)):
        with pytest.raises(TypeError):
            bad()
    with pytest.raises(ValueError):
        kc.CookieSameSiteAttribute("sometimes")


def test_reprs_work():
    c = kc.Cookie("a", "1", [kc.CookieSecureAttribute(), kc.CookieAttribute("x", "y")])
    assert "Cookie" in repr(c) and "Secure" in repr(c)
    assert repr(kc.CookiePathAttribute("/")) == "<CookiePathAttribute Path='/'>"


@pytest.mark.parametrize("name", ["", "a b", "a;b", "a=b", "caf\u00e9", "a\r\n", None])
def test_bad_names(name):
    with pytest.raises(ValueError):
        kc.Cookie(name, "v")


@pytest.mark.parametrize("value", ["a;b", "a\r\nSet-Cookie: x=1", "a\x00", "a\x7f", "\n"])
def test_bad_values(value):
    with pytest.raises(ValueError):
        kc.Cookie("a", value)
    with pytest.raises(ValueError):
        kc.CookiePathAttribute(value)
    with pytest.raises(ValueError):
        kc.CookieDomainAttribute(value)


def test_value_must_be_str():
    with pytest.raises(TypeError):
        kc.Cookie("a", 1)


def test_ok_values():
    assert str(kc.Cookie("a", 'Jane Doe, "x"')) == 'a=Jane Doe, "x"'
    assert str(kc.Cookie("a", "")) == "a="


# --- request cookies ---------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ("a=1; b=x=y; c=", [("a", "1"), ("b", "x=y"), ("c", "")]),
    ("a=1;b=2", [("a", "1"), ("b", "2")]),
    ('  a = "quoted" ;; junk; =nameless; b="', [("a", "quoted"), ("b", '"')]),
    ("", []),
    (None, []),
])
def test_get_cookies(header, expected):
    with_cookie_header(header)
    assert [(c.name, c.value) for c in kc.get_cookies()] == expected


def test_get_cookie_and_default():
    with_cookie_header("a=1; b=2; a=3")
    assert kc.get_cookie("b") == "2"
    assert kc.get_cookie("a") == "1"
    assert kc.get_cookie("zz") is None
    assert kc.get_cookie("zz", "d") == "d"


def test_no_request_means_no_cookies():
    assert kc.get_cookies() == []


def test_cache_is_per_request():
    with_cookie_header("a=1")
    assert kc.get_cookie("a") == "1"
    kc.get_cookies().clear()  # a copy: the cache is unaffected
    assert kc.get_cookie("a") == "1"
    with_cookie_header("a=2")
    assert kc.get_cookie("a") == "2"
    # even without the reset, a different request object is never served the old cache
    kc._cookies_cpt = (object(), [kc.Cookie("a", "stale")])
    assert kc.get_cookie("a") == "2"


def test_bad_bytes_in_request_cookies_are_kept():
    with_cookie_header("a=\x01b")
    assert kc.get_cookie("a") == "\x01b"


# --- response cookies --------------------------------------------------------------------------

def test_set_cookie_appends_header():
    c = kc.Cookie("count", "3")
    c.set_http_only(True)
    kc.set_cookie(c)
    kc.set_cookie(kc.Cookie("b", "2"))
    assert krait.extra_headers == [("Set-Cookie", "count=3; HttpOnly"), ("Set-Cookie", "b=2")]


def test_set_cookie_when_extra_headers_is_none():
    krait.extra_headers = None
    kc.set_cookie(kc.Cookie("a", "1"))
    assert krait.extra_headers == [("Set-Cookie", "a=1")]
    krait.extra_headers = None
    assert kc.get_response_cookies() == []


def test_get_response_cookies_parses_attributes():
    c = kc.Cookie("sid", "v=1")
    c.set_expires(dt.datetime(2017, 7, 5, 9, 3, 7))
    c.set_max_age(10)
    c.set_path("/")
    c.set_domain("example.org")
    c.set_secure(True)
    c.set_http_only(True)
    c.set_same_site("Strict")
    kc.set_cookie(c)
    krait.extra_headers.append(("X-Other", "a=b"))
    krait.extra_headers.append(("set-cookie", "b=2; Max-Age=soon; Expires=never; Priority=High; Flag"))
    first, second = kc.get_response_cookies()
    assert first == c
    assert [type(a).__name__ for a in first.attributes] == [
        "CookieExpiresAttribute", "CookieMaxAgeAttribute", "CookiePathAttribute", "CookieDomainAttribute",
        "CookieSecureAttribute", "CookieHttpOnlyAttribute", "CookieSameSiteAttribute"]
    assert first.attributes[0].expire_datetime == dt.datetime(2017, 7, 5, 9, 3, 7, tzinfo=dt.UTC)
    assert str(first) == str(c)
    assert (second.name, second.value) == ("b", "2")
    assert [type(a) for a in second.attributes] == [kc.CookieAttribute] * 4
    assert str(second) == "b=2; Max-Age=soon; Expires=never; Priority=High; Flag"
    assert kc.Cookie("a", "1").__eq__(None) is NotImplemented


# --- signed cookies --------------------------------------------------------------------------

@pytest.fixture
def key(tmp_path, monkeypatch):
    """krait.config.secret_key set to a known key; put back afterwards."""
    from krait import _store, config

    monkeypatch.setattr(config, "secret_key", "k" * 32)
    monkeypatch.setattr(krait, "site_root", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    _store.configure(str(tmp_path))
    yield b"k" * 32
    _store._config = _store._store = _store._key = None


def signed_header(c):
    krait.extra_headers = []
    kc.set_signed_cookie(c)
    [(name, value)] = krait.extra_headers
    assert name == "Set-Cookie"
    return value


def test_a_signed_cookie_carries_an_hmac_sha256_of_its_name_and_value(key):
    import base64
    import hashlib
    import hmac

    c = kc.Cookie("user", "ana.b=1")
    c.set_path("/")
    c.set_http_only(True)
    header = signed_header(c)
    digest = hmac.new(key, b"user=ana.b=1", hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert header == "user=ana.b=1.%s; Path=/; HttpOnly" % signature
    assert str(c) == "user=ana.b=1; Path=/; HttpOnly", "the cookie given is left as it is"


def test_an_intact_signed_cookie_reads_back_and_a_forged_one_reads_as_default(key):
    good = signed_header(kc.Cookie("user", "ana")).split(";")[0].partition("=")[2]
    value, _, signature = good.rpartition(".")
    with_cookie_header("user=" + good)
    assert kc.get_signed_cookie("user") == "ana"
    assert kc.get_cookie("user") == good  # the raw value keeps its signature
    forged = [
        "user=admin." + signature,  # value changed, signature kept
        "user=ana." + signature[:-1] + ("A" if signature[-1] != "A" else "B"),  # signature altered
        "user=ana",  # no signature
        "user=ana.\u00e9" + signature[1:],  # not even ASCII
        "other=" + good,  # a value signed for another cookie
    ]
    for header in forged:
        with_cookie_header(header)
        assert kc.get_signed_cookie("user") is None, header
        assert kc.get_signed_cookie("user", "guest") == "guest"
        assert kc.get_signed_cookie("other") is None
    with_cookie_header("user=forged.xyz; user=" + good)  # the first cookie of that name with a valid signature
    assert kc.get_signed_cookie("user") == "ana"


def test_reading_a_signed_cookie_before_any_key_exists_creates_nothing(tmp_path, monkeypatch):
    # With no secret_key set and no key generated yet, nothing was ever signed here: the cookie reads
    # as the default, and no store folder or key file appears (docs/sessions.md).
    from krait import _store

    monkeypatch.setattr(krait, "site_root", str(tmp_path / "site"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    _store.configure(str(tmp_path / "site"))
    try:
        with_cookie_header("user=ana.c2lnbmF0dXJl")
        assert kc.get_signed_cookie("user", "guest") == "guest"
        assert not (tmp_path / "state").exists()
        krait.extra_headers = []
        kc.set_signed_cookie(kc.Cookie("user", "ana"))  # signing makes the key, once
        with_cookie_header(krait.extra_headers[0][1].split(";")[0])
        assert kc.get_signed_cookie("user") == "ana"
    finally:
        _store._config = _store._store = _store._key = None
