"""krait/server/replies.py and its use by the App: the finished reply of a plain GET or HEAD for a static
file or a code-free page is kept, and answers the same request again only while the file is unchanged,
for RESOLVE_TTL at most, never for a request that is not plain, and never in --debug."""

import os

import pytest

from krait.config import SiteConfig
from krait.server import replies
from krait.server.dispatch import App
from krait.server.records import Reply
from krait.server.replies import PlainReplies, plain_key
from krait.server.static import StaticFiles
from krait.settings import Settings
from tests.helpers import write_site
from tests.server.test_dispatch import CSS, incoming


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", {"style.css": CSS, "run.py": ""})


def served(a, req):
    reply = a.dispatch(req, a.route(req))
    assert type(reply) is Reply and reply.status == 200
    return reply


def test_a_plain_request_is_answered_again_with_the_reply_built_for_it(site):
    a = App(Settings(site_root=str(site)), SiteConfig())
    for method in ("GET", "HEAD"):
        for headers in ({}, {"accept-encoding": "gzip"}):
            req = incoming("/style.css", method, headers)
            assert a.plain_reply(req.method, req.target, req.headers) is None
            reply = served(a, req)
            assert a.plain_reply(req.method, req.target, req.headers) is reply
    gzipped = a.plain_reply("GET", "/style.css", {"accept-encoding": "gzip"})
    assert dict(gzipped.headers)["Content-Encoding"] == "gzip"  # each Accept-Encoding its own reply
    assert "Content-Encoding" not in dict(a.plain_reply("GET", "/style.css", {}).headers)


@pytest.mark.parametrize("headers", [{"if-none-match": '"x"'}, {"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"},
                                     {"range": "bytes=0-1"}, {"upgrade": "websocket"}, {"if-match": '"x"'},
                                     {"if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}])
def test_requests_that_are_not_plain_are_neither_kept_nor_answered_from_what_is(site, headers):
    a = App(Settings(site_root=str(site)), SiteConfig())
    served(a, incoming("/style.css"))
    assert plain_key("GET", "/style.css", headers) is None
    assert a.plain_reply("GET", "/style.css", headers) is None
    assert plain_key("POST", "/style.css", {}) is None


def test_an_edited_file_is_served_anew_at_once(site):
    a = App(Settings(site_root=str(site)), SiteConfig())
    req = incoming("/style.css")
    served(a, req)
    path = os.path.join(site, "style.css")
    with open(path, "w") as f:
        f.write("p { }\n")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new version even on a coarse clock
    assert a.plain_reply(req.method, req.target, req.headers) is None
    assert served(a, req).body == b"p { }\n"


def test_a_kept_reply_lasts_resolve_ttl_at_most(site, monkeypatch):
    a = App(Settings(site_root=str(site)), SiteConfig())
    req = incoming("/style.css")
    served(a, req)
    now = replies.time.monotonic()
    monkeypatch.setattr(replies.time, "monotonic", lambda: now + replies.RESOLVE_TTL + 0.01)
    assert a.plain_reply(req.method, req.target, req.headers) is None


def test_debug_keeps_nothing(site):
    a = App(Settings(site_root=str(site), debug=True), SiteConfig())
    req = incoming("/style.css")
    served(a, req)
    assert a.plain_reply(req.method, req.target, req.headers) is None


def test_the_kept_replies_are_bounded_in_bytes(site):
    static = StaticFiles(lambda rel: "")
    path = os.path.join(site, "style.css")
    kept = PlainReplies(max_bytes=3 * (len(CSS) + 512))
    for n in range(10):
        version = static.version(path, "style.css")
        kept.put(("GET", "/style.css?%d" % n, None), lambda: static.version(path, "style.css"), version,
                 Reply(200, [], version.data, None))
        assert kept._bytes <= 3 * (len(CSS) + 512)
    assert kept.get(("GET", "/style.css?9", None)) is not None
    assert kept.get(("GET", "/style.css?0", None)) is None


def test_the_clients_target_and_accept_encoding_count_against_the_bound(site):
    # A body of a few bytes under ever-new long targets: without counting the key, the table would hold
    # thousands of them (megabytes of targets) under a bound meant for bodies.
    static = StaticFiles(lambda rel: "")
    path = os.path.join(site, "style.css")
    kept = PlainReplies(max_bytes=1024 * 1024)
    version = static.version(path, "style.css")
    for n in range(40):
        key = ("GET", "/style.css?%d&%s" % (n, "x" * 60_000), "gzip, " + "y" * 20_000)
        kept.put(key, lambda: static.version(path, "style.css"), version, Reply(200, [], version.data, None))
        assert kept._bytes <= 1024 * 1024
        assert sum(len(k[1]) + len(k[2]) for k in kept._entries) <= 1024 * 1024


def test_an_old_version_held_by_a_gzipped_reply_counts_against_the_bound(site):
    # A gzipped reply's body is not the version's content, yet its entry keeps that version (and its
    # content) alive after the file changes: rewritten under ever-new query strings, the table would
    # hold every old version while counting only the small gzipped bodies.
    path = os.path.join(site, "style.css")
    bound = 64 * 1024
    kept = PlainReplies(max_bytes=bound)
    for n in range(40):
        with open(path, "wb") as f:
            f.write(b"%d " % n + b"p { margin: 0 }\n" * 1000)  # 16 kB, gzips to a few hundred bytes
        version = StaticFiles(lambda rel: "").version(path, "style.css")
        key = ("GET", "/style.css?%d" % n, "gzip")
        kept.put(key, lambda: None, version, Reply(200, [], b"gzipped", None))
        held = sum(len(e[3].body) + len(e[2].data) for e in kept._entries.values())
        assert held <= kept._bytes <= bound
