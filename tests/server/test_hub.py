"""krait/server/hub.py in this process, with a real WebSocket worker: orders of events that a
functional test cannot reach on purpose."""

from __future__ import annotations

import time

from krait.pool import jobs
from krait.server.hub import WebSocketHub, _Opening
from krait.settings import Settings

ROUTE = """import krait


class Quiet(krait.websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)


krait.websockets.response = krait.websockets.WebsocketsResponse(Quiet())
"""


def test_an_upgrade_accepted_just_after_its_thread_gave_up_waiting_is_released(tmp_path):
    # open() waits for the route script with a deadline; when the deadline passes just before the
    # worker's 101 arrives, the HTTP thread sends no 101 and hands over no socket. The session the
    # worker started must still end, or it holds one of --max-websockets for ever.
    (tmp_path / "ws.py").write_text(ROUTE)
    hub = WebSocketHub(Settings(site_root=str(tmp_path)))
    hub.start()
    try:
        job = jobs.Job(jobs.WEBSOCKET, str(tmp_path / "ws.py"), "ws.py", "GET", "/ws", "/ws", "", "HTTP/1.1",
                       {}, b"", ("127.0.0.1", 1), "http", ())
        opening = _Opening(job)
        hub.call(hub._open, opening)
        assert opening.done.wait(30) and opening.result is not None and opening.result.status == 101
        assert hub.count() == 1
        hub.call(hub._abandon, opening)  # what open() does once its wait has run out
        deadline = time.monotonic() + 10
        while hub.count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hub.count() == 0
    finally:
        hub.stop()
