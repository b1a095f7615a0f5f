# WebSocket sessions in a worker: run the upgrade's route script, then drive the site's controller.
#
# Design: krait/pool/wsserve.py hosts many connections in this process and calls open_session() for
# each upgrade (one at a time), then the session's start(), message() and close() (never two at once
# for one connection). The route script accepted the upgrade by setting krait.websockets.response; the
# ControllerSession owns its controller from then on: on_start(), each client message to
# on_in_message_internal(), on_stop() and wait_stopped() at the end. Whichever thread pushes a message
# (the controller's own thread, or the one running on_in_message) sends it at once through the
# controller's out-listener: items are taken and sent under the link's lock, so they leave in queue
# order and no thread hand-off delays a message.
#
# Rules: an exception in on_start or on_in_message closes the connection with 1011 and no details (RFC
# 6455 section 7.4.1); the traceback goes to the log (stderr). So does one in the controller's thread
# (krait/websockets.py). Site code may break the controller itself (an __init__ that skips
# WebsocketsCtrlBase's, a close() overridden with another meaning): the 1011 then goes out through the
# link directly, and nothing a controller raises ever leaves a session's start(), message() or close().

from __future__ import annotations

import traceback
from typing import Any

import krait
from krait.pool import jobs
from krait.pool.wsserve import SessionLink
from krait.worker.run import handle
from krait.worker.site import Site


class ControllerSession:
    """One accepted connection's controller, driven by the worker's session host."""

    __slots__ = ("controller", "link")

    def __init__(self, controller: Any, link: SessionLink) -> None:
        self.controller = controller
        self.link = link

    def _flush(self, pushed: Any = None) -> None:
        # The out-listener: send the item just pushed, or (None) everything queued.
        link = self.link
        with link.lock:
            link.send(self.controller._take_out() if pushed is None else (pushed,))

    def start(self) -> None:
        controller = self.controller
        try:  # the controller's own parts are site code too: its __init__ may have skipped the base's
            controller._set_out_listener(self._flush)
            self._flush()  # anything pushed before (e.g. in __init__), before any later push
            controller._attach(self.link)
            controller.on_start()
        except BaseException:  # SystemExit from site code is a controller error too
            self._failed()

    def message(self, text: bool, payload: bytes) -> None:
        try:
            # the server checked the UTF-8 (RFC 6455 section 8.1), so decoding cannot fail
            self.controller.on_in_message_internal(payload.decode("utf-8") if text else payload)
        except BaseException:
            self._failed()

    def _failed(self) -> None:
        # 1011 behind what the controller pushed before; at once when its close() fails (see Rules)
        traceback.print_exc()
        try:
            self.controller.close(1011, "")
        except BaseException:
            pass
        self.link.close(1011)  # nothing when the controller's close went out

    def ending(self) -> None:
        """The connection ended while a callback of this controller runs: should_stop() turns True now,
        on_stop() runs once the callback returns (close())."""
        try:
            self.controller._exit_event.set()
        except BaseException:  # a controller whose __init__ skipped the base's: close() reports it
            pass

    def close(self, code: int, reason: str, timeout: float) -> bool:
        """The connection ended (the client closed, or it was lost): stop the controller; False when it
        did not stop within `timeout`."""
        controller = self.controller
        try:
            controller.on_stop()
            stopped = controller.wait_stopped(timeout)
        except BaseException:
            traceback.print_exc()
            stopped = True
        try:
            self._flush()  # what the controller queued before stopping
            controller._set_out_listener(None)
        except BaseException:  # both ran in start() too, where such a failure was printed
            pass
        return stopped


def open_session(site: Site, job: jobs.Job, link: SessionLink) -> tuple[jobs.Result, ControllerSession | None]:
    """Run an upgrade's route script: its Result, and the session when it accepted (status 101)."""
    result = handle(site, job)
    if result.status != 101:
        return result, None
    return result, ControllerSession(krait.websockets.response.controller, link)
