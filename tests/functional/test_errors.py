"""Errors a site author can act on (docs/scripts.md, docs/site-layout.md): the whole traceback of failing
scripts, templates and controllers in the log and, with --debug, on the page; a missing view is a 500
naming it; the site's own error pages for any status, rendered outside the request gate; print() goes
to standard error."""

from __future__ import annotations

import html
import threading
import time

import pytest
import requests

from tests.helpers import write_site

FILES = {
    ".py/helpers.py": "def ratio(a, b):\n    return a / b\n",
    ".py/ctrl.py": "import krait\n\nclass Page(krait.mvc.CtrlBase):\n    def __init__(self):\n"
                   "        self.rows = {}['rows']\n\n    def get_view(self):\n        return '.view/page.html'\n\n"
                   "class Lost(krait.mvc.CtrlBase):\n    def get_view(self):\n        return '.view/nowhere.html'\n\n"
                   "class Outside(krait.mvc.CtrlBase):\n    def get_view(self):\n        return '../outside.html'\n",
    "boom.py": "from helpers import ratio\n\nratio(1, 0)\n",
    "page.py": "import krait, ctrl\nkrait.mvc.set_init_ctrl(ctrl.Page())\n",
    "lost.py": "import krait, ctrl\nkrait.mvc.set_init_ctrl(ctrl.Lost())\n",
    "outside.py": "import krait, ctrl\nkrait.mvc.set_init_ctrl(ctrl.Outside())\n",
    "bad.html": "<p>\n@{ n = undefined_name + 1 }\n</p>\n",
    "nomodule.py": "import module_that_is_not_there\n",
    "broken.py": "import broken_module\n",
    ".py/broken_module.py": "def f(:\n    pass\n",
    "index.html": "home",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_site(tmp_path_factory.mktemp("errors") / "site", FILES)


def test_the_log_has_the_whole_traceback_of_scripts_templates_and_controllers(site, krait_server):
    srv = krait_server(site)
    for path in ("/boom", "/page", "/bad.html", "/nomodule", "/broken"):
        assert requests.get(srv.url + path, timeout=10).status_code == 500, path
    assert requests.get(srv.url + "/", timeout=10).text == "home"  # and the server carries on
    log = srv.log()
    boom = log[log.index("GET /boom -> 500: ZeroDivisionError at "):]
    # the site's frames, outermost first, down to the library line that raised; no Krait plumbing
    assert boom.index('boom.py", line 3, in <module>') < boom.index('helpers.py", line 2, in ratio') \
        < boom.index("ZeroDivisionError: division by zero")
    assert 'ctrl.py", line 5, in __init__' in log and "KeyError: 'rows'" in log
    assert 'bad.html", line 2' in log and "NameError: name 'undefined_name' is not defined" in log
    assert "ModuleNotFoundError: No module named 'module_that_is_not_there'" in log
    assert 'broken_module.py", line 1' in log and "SyntaxError" in log
    assert "krait/worker" not in log and "krait/pympl" not in log


def test_debug_pages_show_the_same_traceback(site, krait_server):
    srv = krait_server(site, "--debug")
    page = requests.get(srv.url + "/boom", timeout=10).text
    log = srv.log()
    traceback = log[log.index("Traceback (most recent call last):"):log.index("ZeroDivisionError: division by zero")]
    assert html.escape(traceback) in page


def test_a_missing_view_is_a_500_naming_the_view_and_the_controller(site, krait_server):
    srv = krait_server(site)
    r = requests.get(srv.url + "/lost", timeout=10)
    assert r.status_code == 500
    assert "GET /lost -> 500: FileNotFoundError: view '.view/nowhere.html' of controller ctrl.Lost does not exist" \
        in srv.log()
    assert requests.get(srv.url + "/outside", timeout=10).status_code == 500  # not the client's 403
    assert "ValueError: view '../outside.html' of controller ctrl.Outside is not inside the site root" in srv.log()


ODD = {
    "pid.py": "import os, krait\nkrait.response = krait.Response('HTTP/1.1', 200, [], str(os.getpid()))\n",
    # An exception whose str() fails, as a __str__ with a bug of its own does.
    "badstr.py": "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('str fails')\n\nraise E()\n",
    # A file name os.listdir() could not decode, in the message.
    "surrogate.py": "import os\nraise ValueError('cannot read ' + os.fsdecode(b'report-\\xff.csv'))\n",
    "status700.py": "import krait\nr = krait.Response('HTTP/1.1', 200, [], 'x')\nr.status_code = 700\n"
                    "krait.response = r\n",
    "reset.py": "import krait\nkrait.response = krait.Response('HTTP/1.1', 205, [], 'form cleared')\n",
    "a.html": "A(@import 'b.html'@)",
    "b.html": "B(@import 'a.html'@)",
    "tree.html": "@{ depth = globals().get('depth', 0) + 1 }@depth@@if depth < 5:@import 'tree.html'@@/if@",
    "UPPER.PY": "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'upper')\n",
}


def test_site_code_that_breaks_the_rules_gets_a_500_naming_what_and_the_worker_lives(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", ODD), "--workers", "1", "--debug")
    pid = requests.get(srv.url + "/pid", timeout=10).text
    for path in ("/badstr", "/surrogate", "/status700", "/reset", "/a.html"):
        assert requests.get(srv.url + path, timeout=10).status_code == 500, path
    assert requests.get(srv.url + "/pid", timeout=10).text == pid, "the worker was not lost"
    log = srv.log()
    assert "GET /badstr -> 500: E at " in log and ": <exception str() failed>" in log
    assert "cannot read report-\\udcff.csv" in requests.get(srv.url + "/surrogate", timeout=10).text
    assert "refused to send status 700: a status code is 100-599" in log
    assert "refused to send a 205 response with a body" in log
    assert "@import and views nest more than 64 deep (a cycle?): a.html -> b.html -> a.html -> ..." in log
    assert requests.get(srv.url + "/tree.html", timeout=10).text == "12345"  # recursion that ends is fine
    upper = requests.get(srv.url + "/UPPER.PY", timeout=10)
    assert (upper.text, upper.headers["Content-Type"]) == ("upper", "application/octet-stream")


PAGES = {
    ".errors/500.html": "<h1>Oops @status@ at @path@</h1>@if traceback:<pre>@traceback@</pre>@/if@",
    ".errors/501.html": "<h1>No such verb (@status@)</h1>",
    ".errors/405.html": "@{ raise RuntimeError('the 405 page is broken') }",
    "boom.py": "1 / 0\n",
    ".py/init.py": "import krait\nkrait.config.routes = [krait.config.Route('GET', url='/get-only', target='/boom.py'),"
                   " krait.config.Route()]\n",
}


@pytest.mark.parametrize("debug", [False, True])
def test_the_sites_error_pages_serve_any_status(tmp_path, krait_server, debug):
    srv = krait_server(write_site(tmp_path / "site", PAGES), *(["--debug"] if debug else []))
    r = requests.get(srv.url + "/boom?x=1", timeout=10)
    assert r.status_code == 500 and r.text.startswith("<h1>Oops 500 at /boom</h1>")
    assert ("ZeroDivisionError: division by zero" in r.text) is debug
    assert "ZeroDivisionError: division by zero" in srv.log()  # logged all the same
    r = requests.request("BREW", srv.url + "/", timeout=10)
    assert (r.status_code, r.text) == (501, "<h1>No such verb (501)</h1>")
    assert "BREW" not in srv.log()  # the client's doing: no error line for it
    r = requests.post(srv.url + "/get-only", timeout=10)  # its page fails: the built-in one, not a 500 page
    assert r.status_code == 405 and "405 Method Not Allowed" in r.text and r.headers["Allow"] == "GET, HEAD"
    assert "error page .errors/405.html failed: RuntimeError" in srv.log()


def test_an_error_page_waits_for_a_worker_outside_the_request_gate(tmp_path, krait_server):
    # One worker, busy with a script until the test lets it go. Two 404s with the site's page wait for it,
    # as many as the gate has slots; a static file must not wait behind them.
    flag = tmp_path / "go"
    root = write_site(tmp_path / "site", {
        ".errors/404.html": "custom 404",
        "hold.py": "import os, time\nwhile not os.path.exists(%r):\n    time.sleep(0.01)\n" % str(flag),
        "static.txt": "static",
    })
    srv = krait_server(root, "--workers", "1")
    answers: dict = {}

    def get(path):
        answers[path] = requests.get(srv.url + path, timeout=30)

    held = threading.Thread(target=get, args=("/hold",))
    held.start()
    time.sleep(0.5)
    missing = [threading.Thread(target=get, args=("/missing-%d" % i,)) for i in range(2)]
    for t in missing:
        t.start()
    time.sleep(0.5)
    try:
        assert requests.get(srv.url + "/static.txt", timeout=5).text == "static"
        assert not any(path.startswith("/missing") for path in answers)  # still waiting for the worker
    finally:
        flag.touch()
        for t in [held, *missing]:
            t.join(30)
    assert [(answers["/missing-%d" % i].status_code, answers["/missing-%d" % i].text) for i in range(2)] == \
        [(404, "custom 404")] * 2


def test_print_goes_to_standard_error(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": "print('printed by init.py')\n",
                                          "say.py": "import sys\nprint('printed by a script')\n"
                                                    "sys.stdout.write('written to stdout\\n')\n"})
    srv = krait_server(root)
    assert requests.get(srv.url + "/say", timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while "written to stdout" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    for text in ("printed by init.py", "printed by a script", "written to stdout"):
        assert text in srv.log() and text not in srv.stdout()
    assert srv.stdout().count("\n") == 1  # the ready line only


def test_a_large_error_page_is_sent_whole_and_frees_its_worker(tmp_path, krait_server):
    # A page of 256 KiB or more comes from the worker in pieces, like any large response.
    big = "<p>" + "lost " * 60000 + "</p>"
    root = write_site(tmp_path / "site", {".errors/404.html": big, "hi.py": "print('x')\n"})
    srv = krait_server(root, "--workers", "1", "--timeout", "5")
    for _ in range(3):  # one worker: each page must have let it go
        r = requests.get(srv.url + "/missing", timeout=30)
        assert (r.status_code, r.text) == (404, big)
    assert requests.get(srv.url + "/hi.py", timeout=30).status_code == 200
