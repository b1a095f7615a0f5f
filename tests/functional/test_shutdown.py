"""Graceful stop with WebSockets open: clients get 1001 Going Away and the server exits promptly."""

from __future__ import annotations

import time

import pytest
import websocket

from krait import portable
from tests.helpers import write_site

pytestmark = pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)

SITE = {
    ".py/init.py": "import krait\n"
                   "krait.config.routes = [krait.config.Route('WEBSOCKET', url='/ws'), krait.config.Route()]\n",
    ".py/tick.py": '''
import time
from krait.websockets import WebsocketsCtrlBase

class Tick(WebsocketsCtrlBase):
    def on_thread_start(self):
        while not self.should_stop():
            self.push_out_message("tick")
            time.sleep(0.05)
''',
    "ws.py": "from tick import Tick\nkrait.websockets.response = krait.websockets.WebsocketsResponse(Tick())\n",
}


def test_sigterm_closes_websockets_with_1001(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", SITE))
    ws = websocket.create_connection("ws://127.0.0.1:%d/ws" % srv.port, timeout=10)
    assert ws.recv() == "tick"
    t0 = time.monotonic()
    srv.proc.terminate()
    code = None
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big")
            ws.send_close(code)
            break
    assert code == 1001
    assert srv.proc.wait(15) == 0
    assert time.monotonic() - t0 < 10


def test_repeated_signals_never_deadlock_the_stop(tmp_path, krait_server):
    import signal

    srv = krait_server(write_site(tmp_path / "site2", {"a.txt": "a"}))
    hup = () if portable.ACTIVE else (signal.SIGHUP,)  # no SIGHUP on portable paths: it would kill
    for sig in (*hup, signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        srv.proc.send_signal(sig)
    assert srv.proc.wait(20) == 0
