"""krait/server/dispatch.py without sockets or workers: an App over files in a temp folder, fed Incoming
records, answering Replies for static files and errors, Pending jobs for scripts, templates and the site's
error pages, and Replies for the Results a worker would send back."""

import gzip
import os

import pytest

from krait.config import Route, SiteConfig
from krait.errors import GatewayTimeout, ServiceUnavailable
from krait.pool import jobs
from krait.server.dispatch import App
from krait.server.records import Incoming, Pending, Reply
from krait.server.routing import Target
from krait.server.static import stamp
from krait.settings import Settings
from tests.helpers import write_site

CSS = "body { color: red }\n" * 100  # above the gzip threshold


@pytest.fixture
def site(tmp_path):
    return write_site(tmp_path / "site", {"style.css": CSS, "run.py": "", "page.html": "<p>hi</p>",
                                          "users/show.py": ""})


def app(site, debug=False, **config):
    return App(Settings(site_root=str(site), debug=debug), SiteConfig(**config))


def incoming(target="/", method="GET", headers=None, body=b""):
    path, _, query = target.partition("?")
    return Incoming(method, target, path, path, query, "1.1", headers or {}, body, ("10.0.0.1", 5), "http")


def test_static_files_are_answered_at_once(site):
    a = app(site)
    req = incoming("/style.css")
    reply = a.dispatch(req, a.route(req))
    assert type(reply) is Reply and reply.status == 200 and reply.body == CSS.encode()
    assert ("Vary", "Accept-Encoding") in reply.headers


def test_gzip_when_accepted_with_its_own_tag(site):
    a = app(site)
    req = incoming("/style.css", headers={"accept-encoding": "br, gzip"})
    reply = a.dispatch(req, a.route(req))
    h = dict(reply.headers)
    assert h["Content-Encoding"] == "gzip" and h["ETag"].endswith('-gz"')
    assert gzip.decompress(reply.body) == CSS.encode()
    again = incoming("/style.css", headers={"accept-encoding": "gzip", "if-none-match": h["ETag"]})
    not_modified = a.dispatch(again, a.route(again))
    assert not_modified.status == 304 and dict(not_modified.headers)["ETag"] == h["ETag"]
    assert "Content-Type" not in dict(not_modified.headers)  # RFC 9110 section 15.4.5


def test_no_gzip_setting(site):
    a = App(Settings(site_root=str(site), gzip=False), SiteConfig())
    req = incoming("/style.css", headers={"accept-encoding": "gzip"})
    assert "Content-Encoding" not in dict(a.dispatch(req, a.route(req)).headers)


def test_routing_errors_are_replies(site):
    a = app(site, routes=(("GET", "/x", None, "/run.py"),))
    missing = a.route(incoming("/nope"))
    assert type(missing) is Reply and missing.status == 404
    assert b"404 Not Found" in missing.body and dict(missing.headers)["Content-Type"].startswith("text/html")
    wrong_verb = a.route(incoming("/x", method="POST"))
    assert wrong_verb.status == 405 and dict(wrong_verb.headers)["Allow"] == "GET, HEAD"
    assert a.dispatch(incoming("/nope"), missing).status == 404


def test_scripts_and_templates_become_jobs_carrying_the_request(site):
    a = App(Settings(site_root=str(site)),
            SiteConfig(routes=(Route("GET", regex=r"/u/(?P<id>\d+)", target="/users/show.py").as_tuple(),
                               Route("ANY").as_tuple())))
    req = incoming("/u/7?x=1", headers={"cookie": "a=b"})
    pending = a.dispatch(req, a.route(req))
    assert type(pending) is Pending and pending.generation == a.generation
    job = pending.job
    assert (job.kind, job.rel_path, job.method, job.url, job.decoded_path, job.query_string) == \
        (jobs.SCRIPT, "users/show.py", "GET", "/u/7", "/u/7", "x=1")
    assert job.headers == {"cookie": "a=b"} and job.url_params == (("id", "7"),)
    assert (job.http_version, job.remote_addr, job.scheme) == ("HTTP/1.1", ("10.0.0.1", 5), "http")
    page = a.dispatch(incoming("/page.html", method="POST", body=b"data"), a.route(incoming("/page.html")))
    assert page.job.kind == jobs.TEMPLATE


def result(status=200, headers=(), body=b"hello", ctype="text/html; charset=utf-8", error=None, code_free=None):
    return jobs.Result(status, "", tuple(headers), body, ctype, error, None, code_free)


def version_of(path):
    st = os.stat(path)
    return stamp(st)


def target_of(a, path):
    return a.route(incoming(path))


def test_a_result_becomes_a_reply_with_default_headers(site):
    a = app(site)
    req = incoming("/run.py")
    reply = a.complete(req, target_of(a, "/run.py"), result(headers=[("X-A", "1"), ("Content-Length", "99")]))
    h = dict(reply.headers)
    assert reply.status == 200 and reply.body == b"hello"
    assert h["Cache-Control"] == "no-cache, no-store, must-revalidate"  # dynamic: never stored by default
    assert h["Content-Type"] == "text/html; charset=utf-8" and h["X-A"] == "1"
    assert "Content-Length" not in h  # the writer frames the body itself
    own = a.complete(req, target_of(a, "/run.py"), result(headers=[("Cache-Control", "max-age=5")]))
    assert dict(own.headers)["Cache-Control"] == "max-age=5"


def test_cache_lists_apply_to_dynamic_targets(site):
    a = app(site, cache_public=("run\\.py",))
    reply = a.complete(incoming("/run.py"), target_of(a, "/run.py"), result())
    assert dict(reply.headers)["Cache-Control"] == "public, max-age=300, must-revalidate"


@pytest.mark.parametrize("debug", [False, True])
def test_a_script_error_is_a_500_with_details_only_in_debug_mode(site, debug):
    a = app(site, debug=debug)
    report = jobs.ErrorReport(500, "ZeroDivisionError", "division by zero", "site/run.py:3",
                              "Traceback (most recent call last):\n  File \"run.py\", line 3\nZeroDivisionError\n")
    reply = a.complete(incoming("/run.py"), target_of(a, "/run.py"), result(500, body=b"", error=report))
    assert reply.status == 500 and "ZeroDivisionError at site/run.py:3" in reply.error
    assert reply.error.endswith('File "run.py", line 3\nZeroDivisionError')  # the log gets the traceback
    assert (b"ZeroDivisionError" in reply.body) is debug
    assert b"500 Internal Server Error" in reply.body


def test_pool_errors_keep_their_status(site):
    a = app(site)
    busy = a.complete(incoming("/run.py"), target_of(a, "/run.py"), ServiceUnavailable("busy"))
    assert busy.status == 503 and dict(busy.headers)["Retry-After"] == "1"
    late = a.complete(incoming("/run.py"), target_of(a, "/run.py"), GatewayTimeout("late"))
    assert late.status == 504


PAGE = "<p>hi</p>\n" * 200  # above the gzip threshold


def test_a_code_free_template_gets_validators_and_304(site):
    a = app(site)
    target = target_of(a, "/page.html")
    assert type(target) is Target
    source = version_of(target.path)
    reply = a.complete(incoming("/page.html"), target, result(body=b"<p>hi</p>", code_free=source))
    h = dict(reply.headers)
    assert "ETag" in h and "Last-Modified" in h and h["Cache-Control"] == "max-age=300, must-revalidate"
    req = incoming("/page.html", headers={"if-none-match": h["ETag"]})
    not_modified = a.complete(req, target, result(body=b"<p>hi</p>", code_free=source))
    assert (not_modified.status, not_modified.body) == (304, b"")
    dynamic = a.complete(req, target, result(body=b"<p>hi</p>"))  # a template with code: never 304
    assert dynamic.status == 200 and "ETag" not in dict(dynamic.headers)


def render(pending, result):
    """What the channel does with a Pending job: the worker's Result goes to its finish."""
    assert type(pending) is Pending
    return pending.finish(result)


@pytest.mark.parametrize("debug", [False, True])
def test_the_sites_own_error_page_is_a_job_for_any_status_but_503(site, debug):
    write_site(site, {".errors/404.html": "404 page", ".errors/500.html": "500 page",
                      ".errors/503.html": "503 page"})
    a = app(site, debug=debug)
    req = incoming("/nope?q=1", body=b"form")
    pending = a.dispatch(req, a.route(req))
    assert type(pending) is Pending and pending.generation is None  # any generation may render it
    page = pending.job
    assert (page.kind, page.rel_path, page.decoded_path, page.query_string, page.body) == \
        (jobs.TEMPLATE, ".errors/404.html", "/nope", "", b"")
    assert page.error_text == ("no file for /nope" if debug else "")
    reply = render(pending, result(body=b"<p>custom</p>"))
    assert (reply.status, reply.body) == (404, b"<p>custom</p>")
    report = jobs.ErrorReport(500, "KeyError", "'k'", "site/run.py:1", "Traceback...\nKeyError: 'k'\n")
    failed = a.complete(req, target_of(a, "/run.py"), result(500, body=b"", error=report))
    assert failed.job.rel_path == ".errors/500.html"
    assert failed.job.error_text == ("KeyError at site/run.py:1: 'k'\nTraceback...\nKeyError: 'k'" if debug else "")
    assert render(failed, result(body=b"sorry")).body == b"sorry"
    busy = a.complete(req, target_of(a, "/run.py"), ServiceUnavailable("busy"))
    assert type(busy) is Reply and busy.status == 503 and b"503 page" not in busy.body
    own = a.complete(req, target_of(a, "/run.py"), result(404, body=b"mine"))  # a script's own 404
    assert type(own) is Reply and own.body == b"mine"


def test_an_error_page_that_fails_gives_the_built_in_page_not_another_job(site):
    write_site(site, {".errors/500.html": "@{ 1 / 0 }"})
    a = app(site)
    late = a.complete(incoming("/run.py"), target_of(a, "/run.py"), GatewayTimeout("late"))
    assert type(late) is Reply and late.status == 504  # no .errors/504.html
    report = jobs.ErrorReport(500, "ZeroDivisionError", "division by zero", "", "")
    crashed = a.complete(incoming("/run.py"), target_of(a, "/run.py"), result(500, body=b"", error=report))
    for outcome in (result(500, body=b"", error=report), GatewayTimeout("the page timed out")):
        reply = render(crashed, outcome)
        assert type(reply) is Reply and reply.status == 500 and b"500 Internal Server Error" in reply.body


@pytest.mark.parametrize("headers", [{}, {"accept-encoding": "gzip"}, {"range": "bytes=3-9"}])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_server_serves_a_code_free_template_as_the_worker_did(site, headers, method):
    (site / "page.html").write_text(PAGE)
    a = app(site, cache_public=(r"page\.html",))
    req = incoming("/page.html", method, dict(headers))
    target = target_of(a, "/page.html")
    assert type(a.dispatch(req, target)) is Pending  # never rendered yet: a worker renders it
    worker = a.complete(req, target, result(body=PAGE.encode(), code_free=version_of(target.path)))
    served = a.dispatch(req, target)
    assert type(served) is Reply and served == worker  # byte-identical, headers and all
    h = dict(served.headers)
    assert h["Cache-Control"] == "public, max-age=300, must-revalidate" and h["Accept-Ranges"] == "bytes"
    if "range" in headers and method == "GET":
        assert (served.status, served.body) == (206, PAGE.encode()[3:10])
        assert h["Content-Range"] == "bytes 3-9/%d" % len(PAGE)
    elif "accept-encoding" in headers:
        assert gzip.decompress(served.body) == PAGE.encode() and h["ETag"].endswith('-gz"')
    else:
        assert (served.status, served.body, h["Content-Type"]) == (200, PAGE.encode(), "text/html; charset=utf-8")
    tag = a.dispatch(incoming("/page.html", method, {"if-none-match": h["ETag"], **headers}), target)
    assert tag.status == 304


def test_other_methods_still_go_to_the_workers(site):
    a = app(site)
    target = target_of(a, "/page.html")
    a.complete(incoming("/page.html"), target, result(body=b"<p>hi</p>", code_free=version_of(target.path)))
    assert type(a.dispatch(incoming("/page.html", method="POST"), target)) is Pending
    assert type(a.dispatch(incoming("/page.html"), target)) is Reply


def test_an_edit_sends_the_template_back_to_the_workers(site):
    a = app(site)
    target = target_of(a, "/page.html")
    path = site / "page.html"
    a.complete(incoming("/page.html"), target, result(body=b"<p>hi</p>", code_free=version_of(path)))
    path.write_text("<p>@(1 + 1)@</p>")
    os.utime(path, ns=(1, 1))  # another version even on a file system with coarse timestamps
    req = incoming("/page.html")
    assert type(a.dispatch(req, target)) is Pending  # the file changed
    a.complete(req, target, result(body=b"<p>2</p>"))  # now it has code
    assert type(a.dispatch(req, target)) is Pending
    assert a.pages.get(target.path) is None


def test_output_of_an_older_version_is_never_served_for_a_newer_file(site):
    # The file changed while the worker rendered it: the output it sends back names the version it read.
    a = app(site)
    target = target_of(a, "/page.html")
    old = version_of(target.path)
    os.utime(target.path, ns=(2, 2))
    a.complete(incoming("/page.html"), target, result(body=b"<p>old</p>", code_free=old))
    assert type(a.dispatch(incoming("/page.html"), target)) is Pending


def test_gzip_tells_apart_files_that_share_a_tag(site):
    # Unpacked from an archive: two files of one type, size and mtime get one entity tag.
    for name in ("a.css", "b.css"):
        (site / name).write_text(name[0] * 2000)
        os.utime(site / name, ns=(10**18, 10**18))
    a = app(site)
    for name in ("a.css", "b.css"):
        req = incoming("/" + name, headers={"accept-encoding": "gzip"})
        assert gzip.decompress(a.dispatch(req, a.route(req)).body) == name[0].encode() * 2000
