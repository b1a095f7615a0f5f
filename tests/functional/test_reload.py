"""Reloads while the server runs (docs/deployment.md, "Edits and reloads"): an edit under .py/ (a touched
file is one) or SIGHUP brings everything init.py sets (routes, cache rules) to the next request, every
request is answered by one configuration, and a broken edit leaves the running workers serving until it
is fixed."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from tests.helpers import needs_sighup, write_site

ECHO_INIT = """import krait
from krait.config import Route
krait.config.routes = [%s]
krait.config.cache_public = [%s]
"""
ECHO = "krait.response = krait.Response('HTTP/1.1', 200, [], 'echo ' + krait.request.body.decode())\n"


def eventually(check, timeout=20.0):
    """Poll `check()` until it returns something true (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "still false after %.0fs" % timeout
            return value
        time.sleep(0.1)


@pytest.mark.portable
def test_an_edit_of_init_py_brings_its_new_routes_and_cache_rules(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": ECHO_INIT % ("Route()", ""), "echo.py": ECHO,
                                          "style.css": "p {}"})
    srv = krait_server(root)
    r = requests.post(srv.url + "/echo", data="hi", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert requests.get(srv.url + "/style.css", timeout=10).headers["Cache-Control"] == "max-age=300, must-revalidate"
    (root / ".py" / "init.py").write_text(ECHO_INIT % ('Route("POST", url="/echo"), Route()', r'r"style\.css"'))
    eventually(lambda: requests.post(srv.url + "/echo", data="hi", timeout=10).status_code == 200)
    assert requests.post(srv.url + "/echo", data="again", timeout=10).text == "echo again"
    assert requests.get(srv.url + "/style.css", timeout=10).headers["Cache-Control"] == \
        "public, max-age=300, must-revalidate"
    assert "reloaded: generation 1 serves" in srv.log()


SLOW_INIT = """import time
import krait
from krait.config import Route
time.sleep(%s)
krait.config.routes = [Route(url="/tag", target="/tag.py"), Route()]
tag = %r
"""


def test_an_edit_made_while_krait_starts_is_loaded(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": SLOW_INIT % (2, "one"),
                                          "tag.py": "krait.response = krait.Response('HTTP/1.1', 200, [], tag)\n"})
    # Saved while the first init.py still runs (its sleep): the watcher must not take it as the start.
    editor = threading.Timer(0.7, lambda: (root / ".py" / "init.py").write_text(SLOW_INIT % (0, "two")))
    editor.start()
    srv = krait_server(root, "--workers", "1")
    editor.join()
    eventually(lambda: requests.get(srv.url + "/tag", timeout=10).text == "two")


TAG_INIT = """import krait
from krait.config import Route
krait.config.routes = [Route(url="/tag", target="/tag.py"), Route()]
tag = %r
"""


def test_a_broken_edit_leaves_the_running_workers_serving_until_it_is_fixed(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": TAG_INIT % "one",
                                          "tag.py": "krait.response = krait.Response('HTTP/1.1', 200, [], tag)\n"})
    srv = krait_server(root)
    init = root / ".py" / "init.py"
    assert requests.get(srv.url + "/tag", timeout=10).text == "one"
    init.write_text(TAG_INIT % "two" + "import no_such_module_here\n")
    eventually(lambda: "reload failed" in srv.log())
    for _ in range(20):  # the old generation and its routes serve on
        assert requests.get(srv.url + "/tag", timeout=10).text == "one"
    time.sleep(2.5)  # a few more scans of .py/: the same broken edit is not tried again
    log = srv.log()
    assert log.count("reload failed") == 1
    assert "init.py:5" in log and "Traceback (most recent call last)" in log
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in log
    init.write_text(TAG_INIT.replace("url=", "regex='(unclosed', url=") % "three")  # an invalid route
    eventually(lambda: srv.log().count("reload failed") == 2)
    assert "unclosed" in srv.log() and requests.get(srv.url + "/tag", timeout=10).text == "one"
    init.write_text(TAG_INIT % "four")  # fixed: the next edit is tried
    eventually(lambda: requests.get(srv.url + "/tag", timeout=10).text == "four")
    assert requests.get(srv.url + "/tag", timeout=10).status_code == 200


def test_an_edit_while_a_reload_hangs_in_init_py_is_loaded_at_once(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": TAG_INIT % "one",
                                          "tag.py": "krait.response = krait.Response('HTTP/1.1', 200, [], tag)\n"})
    srv = krait_server(root, "--workers", "1")
    init = root / ".py" / "init.py"
    hanging = tmp_path / "hanging"
    init.write_text("import time\nopen(%r, 'w').close()\ntime.sleep(600)\n" % str(hanging)
                    + TAG_INIT % "two")  # hangs (a database that is down)
    eventually(hanging.exists)  # its worker runs it (a fix saved sooner would be what that worker reads)
    assert requests.get(srv.url + "/tag", timeout=10).text == "one"  # served on meanwhile
    init.write_text(TAG_INIT % "three")  # the fix does not wait for the hung start to time out
    eventually(lambda: requests.get(srv.url + "/tag", timeout=10).text == "three", timeout=15)
    assert "reload abandoned: asked for again while init.py ran; starting over" in srv.log()
    assert "reload failed" not in srv.log()


def test_a_stop_during_a_reload_abandons_it_at_once(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": TAG_INIT % "one"})
    srv = krait_server(root, "--workers", "1")
    hanging = tmp_path / "hanging"
    (root / ".py" / "init.py").write_text("import time\nopen(%r, 'w').close()\ntime.sleep(600)\n" % str(hanging))
    eventually(hanging.exists)  # the reload's worker runs it
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 10
    log = srv.log()
    assert "reload abandoned: Krait is stopping" in log and "reload failed" not in log, log


def test_a_stop_just_after_a_reload_does_not_wait_for_the_new_websocket_worker(tmp_path, krait_server):
    # After a reload the WebSocket pool starts a worker of the new generation (init.py: 1 s here); a stop
    # meanwhile used to wait 5 s for it, then kill it.
    root = write_site(tmp_path / "site", {".py/init.py": SLOW_INIT % (1, "one")})
    srv = krait_server(root, "--workers", "1")
    (root / ".py" / "init.py").write_text(SLOW_INIT % (1, "two"))
    eventually(lambda: "reloaded: generation 1 serves" in srv.log())
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 1.5, srv.log()


WHICH_INIT = """import krait, os
from krait.config import Route
with open(os.path.join(krait.site_root, ".private", "version")) as f:
    version = int(f.read())
krait.config.routes = [Route(url="/which", target="/which%d.py" % version), Route()]
"""
WHICH = "krait.response = krait.Response('HTTP/1.1', 200, [], 'route%d init=%%d' %% version)\n"


@pytest.mark.portable
@pytest.mark.parametrize("trigger", [pytest.param("SIGHUP", marks=needs_sighup), "touching .py/init.py"])
def test_a_reload_by_hand_answers_every_request_with_one_configuration(tmp_path, krait_server, trigger):
    # The configuration comes from a file outside .py/, so the watcher does not see it change: a reload by
    # hand is SIGHUP, or (on Windows too) touching a file under .py/. Clients keep asking while it reloads;
    # a request routed with the old routes must run on a worker of the old init.py.
    root = write_site(tmp_path / "site", {".py/init.py": WHICH_INIT, ".private/version": "1",
                                          "which1.py": WHICH % 1, "which2.py": WHICH % 2})
    srv = krait_server(root, "--workers", "2")
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.get(srv.url + "/which", timeout=20)
                answers.append((r.status_code, r.text))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        eventually(lambda: len(answers) > 20)
        (root / ".private" / "version").write_text("2")
        if trigger == "SIGHUP":
            srv.signal(signal.SIGHUP)
        else:
            os.utime(root / ".py" / "init.py")  # its content is unchanged
        eventually(lambda: (200, "route2 init=2") in answers[-5:])
        time.sleep(0.3)
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    assert set(answers) == {(200, "route1 init=1"), (200, "route2 init=2")}
    assert answers.index((200, "route2 init=2")) > 0


def test_workers_recycled_by_max_requests_serve_on_while_init_py_is_broken(tmp_path, krait_server):
    # A recycled worker leaves once its replacement ran init.py; while init.py is broken none can, and the
    # old worker serves on instead of leaving the site without one.
    root = write_site(tmp_path / "site", {".py/init.py": TAG_INIT % "one",
                                          "tag.py": "krait.response = krait.Response('HTTP/1.1', 200, [], tag)\n"})
    srv = krait_server(root, "--workers", "1", "--max-requests", "3")
    (root / ".py" / "init.py").write_text("raise RuntimeError('broken edit')\n")
    eventually(lambda: "reload failed" in srv.log())
    with requests.Session() as s:
        answers = [(r.status_code, r.text) for r in (s.get(srv.url + "/tag", timeout=20) for _ in range(20))]
    assert answers == [(200, "one")] * 20
    eventually(lambda: "could not start a replacement worker" in srv.log())


WS_ECHO = """\
import krait
from krait import websockets


class Echo(websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.push_out_message("echo: " + message)


if websockets.request is None:
    krait.response = krait.ResponseBadRequest()
else:
    websockets.response = websockets.WebsocketsResponse(Echo(), None)
"""


@needs_sighup
def test_reloads_asked_for_during_a_reload_end_in_one_new_generation(tmp_path, krait_server):
    root = write_site(tmp_path / "site", {".py/init.py": SLOW_INIT % (2, "one"),
                                          "tag.py": "krait.response = krait.Response('HTTP/1.1', 200, [], tag)\n"})
    srv = krait_server(root, "--workers", "1")
    for _ in range(5):  # further apart than the server's signal polling, all within one init.py run
        srv.signal(signal.SIGHUP)
        time.sleep(0.2)

    eventually(lambda: "reloaded: generation" in srv.log(), timeout=30)
    time.sleep(2.5)  # more than one init.py run: time for another reload, had one been queued
    # Each ask abandoned the init.py still running for an out-of-date version; one new generation serves
    # (five reloads, one after another, before).
    log = srv.log()
    assert log.count("reloaded: generation") == 1, log
    assert log.count("reloading: starting") == log.count("reload abandoned") + 1, log
    assert "reload failed" not in log


@needs_sighup
def test_websockets_of_a_replaced_worker_closed_at_once_give_their_places_back(tmp_path, krait_server):
    import websocket  # websocket-client

    init = "import krait\nfrom krait.config import Route\n" \
        "krait.config.routes = [Route('WEBSOCKET', url='/echo', target='/echo_socket.py'), Route()]\n"
    root = write_site(tmp_path / "site", {".py/init.py": init, "echo_socket.py": WS_ECHO})
    srv = krait_server(root, "--ws-workers", "1", "--max-websockets", "12")
    url = srv.url.replace("http://", "ws://") + "/echo"

    def opened():
        c = websocket.create_connection(url, timeout=10)
        c.send("hi")
        assert c.recv() == "echo: hi"
        return c

    old = [opened() for _ in range(12)]
    srv.signal(signal.SIGHUP)
    eventually(lambda: "reloaded: generation" in srv.log())
    time.sleep(1)
    for c in old:  # dropped at the same moment (a browser tab closing): the old worker's ends come in one read
        c.sock.shutdown(2)
    for c in old:
        c.sock.close()
    # Every place was given back (one end of the old worker's used to be lost, and its place with it).
    new = eventually(lambda: _all_or_none(opened, 12), timeout=10)
    assert len(new) == 12
    for c in new:
        c.close()


def _all_or_none(open_one, n):
    got = []
    try:
        for _ in range(n):
            got.append(open_one())
    except Exception:
        for c in got:
            c.close()
        return None
    return got
