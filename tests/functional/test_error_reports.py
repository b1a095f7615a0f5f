"""What the log (and a --debug error page) says when site code fails: how a worker that died ended, and
where a template's syntax error is, each said once."""

from __future__ import annotations

import os
import re
import signal

import requests

from tests.helpers import run_krait, wait_for, write_site

DYING = {
    "exit3.py": "import os\nos._exit(3)\n",
    "kill9.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "pid.py": "import os\nkrait.response = krait.Response('HTTP/1.1', 200, [], str(os.getpid()))\n",
}


def test_a_dead_worker_is_logged_with_its_exit_code_or_signal(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", DYING), "--workers", "1")
    assert requests.get(srv.url + "/exit3", timeout=10).status_code == 500
    assert wait_for(lambda: "died while running exit3.py (exit code 3)" in srv.log(), 5), srv.log()
    assert requests.get(srv.url + "/kill9", timeout=10).status_code == 500
    assert wait_for(lambda: "died while running kill9.py (killed by signal 9)" in srv.log(), 5), srv.log()
    # Killed between two requests (an OOM kill, say): the next request finds it dead.
    pid = int(requests.get(srv.url + "/pid", timeout=10).text)
    os.kill(pid, signal.SIGKILL)  # a worker of the server this test started
    assert wait_for(lambda: _gone(pid), 5)  # a request sent sooner would still reach its pipe
    assert requests.get(srv.url + "/pid", timeout=10).status_code == 200
    assert wait_for(lambda: re.search(r"worker %d .*\(killed by signal 9\); replaced" % pid, srv.log()), 5), srv.log()
    assert "exit code None" not in srv.log()


def _gone(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # dead, not reaped yet
    except FileNotFoundError:
        return True


def test_a_template_syntax_error_gives_its_location_once(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", {"bad.html": "<p>ok</p>\n<p>@{ x = 1\n</p>\n"}), "--debug")
    r = requests.get(srv.url + "/bad.html", timeout=10)
    assert r.status_code == 500
    assert r.text.count("line 2, column 4") == 1 and r.text.count("@{ x = 1") == 1, r.text
    assert wait_for(lambda: "GET /bad.html -> 500" in srv.log(), 5)
    log = srv.log()
    assert log.count("line 2, column 4") == 1 and log.count("@{ x = 1") == 1, log
    assert "TemplateSyntaxError at %s:2: unterminated" % (tmp_path / "site" / "bad.html") in log


def test_a_dead_websocket_worker_is_logged_with_its_exit_code(tmp_path, krait_server):
    import websocket

    site = write_site(tmp_path / "site", {
        ".py/init.py": "from krait.config import Route\nimport krait\n"
                       "krait.config.routes = [Route('WEBSOCKET', url='/die', target='/die.py'), Route()]\n",
        "die.py": "import os, krait\n"
                  "class Dying(krait.websockets.WebsocketsCtrlBase):\n"
                  "    def __init__(self):\n        super().__init__(use_in_message_queue=False)\n"
                  "    def on_in_message(self, message):\n        os._exit(3)\n"
                  "krait.websockets.response = krait.websockets.WebsocketsResponse(Dying())\n",
    })
    srv = krait_server(site)
    ws = websocket.create_connection("ws://127.0.0.1:%d/die" % srv.port, timeout=10)
    try:
        ws.send("now")
        assert wait_for(lambda: re.search(r"WebSocket worker \d+ died \(exit code 3\); its 1 connections",
                                          srv.log()), 10), srv.log()
    finally:
        ws.close()
    assert "exit code None" not in srv.log()


def test_a_worker_dying_in_init_py_is_logged_with_its_exit_code(tmp_path):
    site = write_site(tmp_path / "site", {".py/init.py": "import os\nos._exit(4)\n"})
    r = run_krait(str(site), "--port", "0", "--workers", "1")
    assert r.returncode == 1
    assert "a worker process died while starting (exit code 4; see the log above)" in r.stderr, r.stderr
