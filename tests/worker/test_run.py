"""krait/worker/run.py in this process, without a pipe: a Site built over files in a temp folder, and
handle() turning Jobs into Results (docs/scripts.md, docs/mvc.md, docs/pympl.md)."""

import os
import sys

import pytest

import krait
from krait import _store
from krait.pool import jobs
from krait.pympl.cache import stamp
from krait.worker.run import handle
from krait.worker.site import Site
from tests.helpers import write_site


@pytest.fixture
def make(tmp_path, monkeypatch):
    """make(files) -> a Site (its session store under tmp_path/state); the krait modules, the store's
    settings and sys.path are put back afterwards."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    saved_path = list(sys.path)
    for name in krait.__all__:
        getattr(krait, name)
    modules = [krait, krait.config, krait.mvc, krait.cookie, krait.websockets]
    saved = [dict(vars(m)) for m in modules]

    def build(files):
        return Site(str(write_site(tmp_path / "site", files)), 10)

    yield build
    sys.path[:] = saved_path
    for module, state in zip(modules, saved):
        vars(module).clear()
        vars(module).update(state)
    _store._config = _store._store = _store._key = None


def job(site, rel, query="", kind=None, method="GET", headers=None, body=b"", params=(), scheme="http"):
    kind = kind or (jobs.SCRIPT if rel.endswith(".py") else jobs.TEMPLATE)
    return jobs.Job(kind, site.root + "/" + rel, rel, method, "/" + rel, "/" + rel, query, "HTTP/1.1",
                    headers or {}, body, ("127.0.0.1", 9), scheme, params)


def test_a_script_sees_the_request_and_sets_the_response(make):
    site = make({"hi.py": "import krait\n"
                          "r = krait.request\n"
                          "body = '%s %s %s %s %s' % (r.http_method, r.path, r.query['a'], r.headers['x-h'], r.body)\n"
                          "krait.response = krait.Response('HTTP/1.1', 201, [('X-A', '1')], body)\n"})
    result = handle(site, job(site, "hi.py", "a=1", method="POST", headers={"x-h": "v"}, body=b"data"))
    assert (result.status, result.body, result.error) == (201, b"POST /hi.py 1 v b'data'", None)
    assert result.headers == (("X-A", "1"),) and result.code_free is None


def test_templates_render_and_code_free_ones_say_so(make):
    site = make({"page.html": "<p>@x@</p>", "plain.html": "<p>static</p>", ".py/init.py": "x = 41 + 1\n"})
    page = handle(site, job(site, "page.html"))
    assert (page.body, page.content_type, page.code_free) == (b"<p>42</p>", "text/html; charset=utf-8", None)
    plain = handle(site, job(site, "plain.html"))
    st = os.stat(site.root + "/plain.html")
    assert (plain.body, plain.code_free) == (b"<p>static</p>", stamp(st))


@pytest.mark.parametrize("source", [
    "<p>@!(lambda: krait.request.query_string)()@</p>",  # code in a lambda: its names are its own
    "@if [1 for _ in (0,) if krait.request.query]:<b>admin</b>@/if@",  # in a comprehension
])
def test_code_nested_in_a_lambda_or_a_comprehension_is_code(make, source):
    # Taken for code-free, the page's first rendering would be served to every later request.
    site = make({"page.html": source})
    assert handle(site, job(site, "page.html", "a=1")).code_free is None


def test_an_upper_case_pyml_extension_gives_the_type_of_the_name_before_it(make):
    site = make({"b.css.PYML": "p { color: red }", "c.js.Pyml": "let a = 1;"})
    assert handle(site, job(site, "b.css.PYML")).content_type == "text/css; charset=utf-8"
    assert handle(site, job(site, "c.js.Pyml")).content_type.startswith("text/javascript")


def test_nothing_a_request_assigns_is_seen_by_the_next(make):
    site = make({".py/init.py": "items = [1]\n",
                 "dirty.py": "import krait\nitems.append(2)\nkrait.extra_headers.append(('X-D', '1'))\n"
                             "krait.new_name = 1\nkrait.mvc.curr_ctrl = 'junk'\nkrait.set_content_type(ext='json')\n",
                 "clean.py": "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, [], "
                             "repr((items, hasattr(krait, 'new_name'), krait.mvc.curr_ctrl, krait._content_type)))\n"})
    dirty = handle(site, job(site, "dirty.py"))
    assert dirty.headers == (("X-D", "1"),) and dirty.content_type == "application/json; charset=utf-8"
    clean = handle(site, job(site, "clean.py"))
    assert clean.body == b"([1], False, None, None)" and clean.headers == ()


def test_mvc_renders_the_controllers_view(make):
    site = make({"ctrl.py": "import krait\nkrait.mvc.set_init_ctrl(krait.mvc.SimpleCtrl('.view/v.html', {'n': 3}))\n",
                 ".view/v.html": "n=@ctrl.n@",
                 "lost.py": "import krait\nkrait.mvc.set_init_ctrl(krait.mvc.SimpleCtrl('.view/none.html', {}))\n"})
    result = handle(site, job(site, "ctrl.py"))
    assert (result.status, result.body, result.content_type) == (200, b"n=3", "text/html; charset=utf-8")
    lost = handle(site, job(site, "lost.py"))  # a bug of the site, not a missing page
    assert lost.status == 500 and lost.error.type_name == "FileNotFoundError"
    assert lost.error.message == "view '.view/none.html' of controller krait.mvc.SimpleCtrl does not exist"


def test_an_exception_becomes_an_error_report_naming_the_site_line(make):
    site = make({"boom.py": "x = 1\n\ny = x / 0\n", "bad.html": "@{ x = }"})
    boom = handle(site, job(site, "boom.py"))
    assert boom.status == 500 and boom.body == b""
    report = boom.error
    assert report.type_name == "ZeroDivisionError" and report.where == site.root + "/boom.py:3"
    assert 'boom.py", line 3' in report.traceback and "krait/worker" not in report.traceback
    assert report.traceback.startswith("Traceback (most recent call last):\n")
    bad = handle(site, job(site, "bad.html"))
    assert bad.status == 500 and bad.error.type_name == "TemplateSyntaxError"
    assert bad.error.where == site.root + "/bad.html:1"


def test_a_header_with_a_line_break_is_refused(make):
    site = make({"inject.py": "import krait\nkrait.extra_headers.append(('X-A', 'v\\r\\nSet-Cookie: x=1'))\n"})
    result = handle(site, job(site, "inject.py"))
    assert result.status == 500 and "control character" in result.error.message


def test_url_params_and_the_websocket_route_script(make):
    site = make({"ws.py": "import krait\n"
                          "class C(krait.websockets.WebsocketsCtrlBase):\n    pass\n"
                          "assert krait.url_params == {'room': 'a'}\n"
                          "assert krait.websockets.request.protocols == ['chat', 'x']\n"
                          "krait.websockets.response = krait.websockets.WebsocketsResponse(C(), 'chat')\n"})
    result = handle(site, job(site, "ws.py", kind=jobs.WEBSOCKET, headers={"sec-websocket-protocol": "chat, x"},
                              params=(("room", "a"),)))
    assert (result.status, result.ws_protocol, result.error) == (101, "chat", None)


def test_init_py_runs_once_and_its_config_is_read(make):
    site = make({".py/init.py": "import krait\nkrait.config.routes = [krait.config.Route('POST', url='/x')]\n"
                                "counter = [0]\n",
                 "count.py": "import krait\ncounter[0] += 1\n"
                             "krait.response = krait.Response('HTTP/1.1', 200, [], str(counter[0]))\n"})
    assert krait.config.snapshot().routes == (("POST", "/x", None, None),)
    # the list is copied one level deep per request; the int inside it is rebound on the copy
    assert [handle(site, job(site, "count.py")).body for _ in range(2)] == [b"1", b"1"]


def test_invalid_json_uncaught_is_a_400_saying_what_was_wrong(make):
    site = make({"api.py": "import krait\nkrait.response = krait.ResponseJSON(krait.request.get_json())\n",
                 "careful.py": "import krait\ntry:\n    krait.request.get_json()\nexcept ValueError as exc:\n"
                               "    krait.response = krait.ResponseJSON({'error': str(exc)}, 422)\n"})
    result = handle(site, job(site, "api.py", method="POST", body=b'{"a": }'))
    assert (result.status, result.content_type, result.error) == (400, "text/plain; charset=utf-8", None)
    assert result.body == b"the request body is not valid JSON: Expecting value: line 1 column 7 (char 6)\n"
    ok = handle(site, job(site, "api.py", method="POST", body='{"a": "\u00e9"}'.encode()))
    assert (ok.status, ok.body) == (200, '{"a": "\u00e9"}'.encode())
    assert ok.headers == (("Content-Type", "application/json; charset=utf-8"),)
    caught = handle(site, job(site, "careful.py", method="POST", body=b"nope"))
    assert caught.status == 422 and b"not valid JSON" in caught.body


def test_the_session_is_stored_after_the_site_code_and_only_when_it_succeeds(make):
    site = make({"login.py": "import krait\nkrait.session['user'] = krait.request.query['user']\n"
                             "krait.session.regenerate()\nkrait.response = krait.ResponseRedirect('/')\n",
                 "page.html": "@krait.session.get('user', 'nobody')@",
                 "broken.py": "import krait\nkrait.session['user'] = 'mallory'\nraise RuntimeError('boom')\n",
                 "bad_header.py": "import krait\nkrait.session['user'] = 'trudy'\n"
                                  "krait.response = krait.Response('HTTP/1.1', 200, [('X-A', 'a\\nb')], 'x')\n",
                 "rebind.py": "import krait\nkrait.session['user'] = 'eve'\nkrait.session = {}\n"})
    assert handle(site, job(site, "page.html")).headers == ()  # read only: no cookie
    login = handle(site, job(site, "login.py", "user=ana", scheme="https"))
    [location, (name, value)] = login.headers
    assert (login.status, location, name) == (302, ("Location", "/"), "Set-Cookie")
    assert value.endswith("; Path=/; HttpOnly; SameSite=Lax; Secure")
    cookie = {"cookie": value.split(";")[0]}
    assert handle(site, job(site, "page.html", headers=cookie)).body == b"ana"
    broken = handle(site, job(site, "broken.py", headers=cookie))
    assert broken.status == 500 and broken.headers == ()
    assert handle(site, job(site, "page.html", headers=cookie)).body == b"ana", "a failed request stores nothing"
    bad_header = handle(site, job(site, "bad_header.py", headers=cookie))
    assert bad_header.status == 500 and bad_header.headers == ()
    assert handle(site, job(site, "page.html", headers=cookie)).body == b"ana", "nor does a refused response"
    handle(site, job(site, "rebind.py", headers=cookie))
    assert handle(site, job(site, "page.html", headers=cookie)).body == b"eve"


@pytest.mark.parametrize("header", [
    "('X-A', 'a\\x0bb')", "('X-A', 'a\\x0cb')", "('X-A', 'a\\x7fb')", "('X-A', 'a\\x85b')", "('X-A', 'a\\u2028b')",
    "('X A', 'v')", "('X-A:', 'v')", "('', 'v')",
])
def test_header_fields_follow_rfc_9110_or_the_job_fails(make, header):
    site = make({"h.py": "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, [%s], 'x')\n" % header})
    result = handle(site, job(site, "h.py"))
    assert result.status == 500 and result.headers == () and "refused to send header" in result.error.message


def test_header_values_are_trimmed_and_may_hold_tabs_and_latin_1(make):
    site = make({"h.py": "import krait\nkrait.extra_headers.append(('X-B', ' caf\\xe9\\tok \\t'))\n"
                         "krait.response = krait.Response('HTTP/1.1', 200, [('X-A', 'v')], 'x')\n"})
    assert handle(site, job(site, "h.py")).headers == (("X-A", "v"), ("X-B", "caf\xe9\tok"))


@pytest.mark.parametrize("headers, extra", [
    ("[('X-Big', 'v' * 70000)]", "[]"),
    ("[('X-%d' % i, 'v') for i in range(101)]", "[]"),
    ("[('X-%d' % i, 'v' * 1000) for i in range(60)]", "[('Set-Cookie', 'c=' + 'v' * 6000)]"),  # the whole block
])
def test_the_header_block_is_capped(make, headers, extra):
    site = make({"h.py": "import krait\nkrait.extra_headers.extend(%s)\n"
                         "krait.response = krait.Response('HTTP/1.1', 200, %s, 'x')\n" % (extra, headers)})
    result = handle(site, job(site, "h.py"))
    assert result.status == 500 and "more than 100 fields or 65536 bytes" in result.error.message


def test_large_and_iterable_bodies_stream_in_bounded_pieces(make):
    from krait import limits
    from krait.worker.run import run_job

    site = make({"big.py": "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, [], b'x' * 600000)\n",
                 "gen.py": "import krait\n"
                           "def pieces():\n"
                           "    yield 'a'\n"
                           "    yield b''\n"  # empty pieces are dropped (an empty chunk would end the body)
                           "    yield bytearray(b'b' * 300000)\n"
                           "krait.response = krait.Response('HTTP/1.1', 200, [], pieces())\n",
                 "small.py": "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'hi')\n"})
    result, stream = run_job(site, job(site, "big.py"))
    assert result.stream == 600000 and result.body == b"" and stream is not None
    pieces = [bytes(p) for p in stream]
    assert [len(p) for p in pieces] == [limits.STREAM_CHUNK, limits.STREAM_CHUNK, 600000 - 2 * limits.STREAM_CHUNK]
    result, stream = run_job(site, job(site, "gen.py"))
    assert result.stream == -1
    assert [len(p) for p in stream] == [1, limits.STREAM_CHUNK, 300000 - limits.STREAM_CHUNK]
    assert stream.error is None
    result, stream = run_job(site, job(site, "gen.py", method="HEAD"))
    assert result.stream == -1 and list(stream) == []
    assert run_job(site, job(site, "small.py")) == (handle(site, job(site, "small.py")), None)
    assert handle(site, job(site, "big.py")).body == b"x" * 600000  # joined for callers that want bytes


def test_a_failing_generator_ends_its_stream_with_a_report(make):
    from krait.worker.run import run_job

    site = make({"bad.py": "import krait\n"
                           "def pieces():\n"
                           "    yield 'ok'\n"
                           "    raise KeyError('lost')\n"
                           "krait.response = krait.Response('HTTP/1.1', 200, [], pieces())\n"})
    result, stream = run_job(site, job(site, "bad.py"))
    assert result.status == 200
    assert [bytes(p) for p in stream] == [b"ok"]
    assert stream.error.type_name == "KeyError" and "bad.py" in stream.error.where
    assert handle(site, job(site, "bad.py")).status == 500


def test_response_file_names_its_file_and_a_spooled_body_is_read_from_its_file(make, tmp_path):
    site = make({"f.py": "import krait\nkrait.response = krait.ResponseFile('data/x.csv')\n",
                 "data/x.csv": "a,b\n",
                 "echo.py": "import krait\n"
                            "with krait.request.body_file as f:\n"
                            "    head = f.read(3)\n"
                            "krait.response = krait.Response('HTTP/1.1', 200, [], head + krait.request.body[3:])\n"})
    result = handle(site, job(site, "f.py"))
    assert result.file == os.path.join(site.root, "data", "x.csv") and result.body == b""
    assert ("Content-Type", "text/csv; charset=utf-8") in result.headers
    spooled = tmp_path / "body.bin"
    spooled.write_bytes(b"spooled body")
    result = handle(site, job(site, "echo.py", method="POST")._replace(body_file=str(spooled)))
    assert result.body == b"spooled body"


def test_what_site_code_gives_as_a_status_or_type_crosses_the_pipe_as_plain_data(make):
    # An IntEnum status or a str subclass would make marshal fail (and the pipe fall back to pickle,
    # which the server must not unpickle); the Result carries int and str.
    import marshal

    site = make({"e.py": "import enum, krait\n"
                         "class S(enum.IntEnum):\n    CREATED = 201\n"
                         "class T(str):\n    pass\n"
                         "krait.set_content_type(T('text/x-thing'))\n"
                         "krait.response = krait.Response('HTTP/1.1', S.CREATED, [], 'x')\n"})
    result = handle(site, job(site, "e.py"))
    assert (result.status, type(result.status), result.content_type) == (201, int, "text/x-thing")
    assert type(result.content_type) is str
    marshal.dumps(jobs.result_to_wire(result))
