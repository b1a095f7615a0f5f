# One accepted WebSocket session in a worker: drive the site's controller (krait.websockets).
#
# Design: the route script accepted the upgrade by setting krait.websockets.response; run_session() then
# owns its controller for the connection's lifetime: on_start(), each client message to
# on_in_message_internal(), on_stop() and wait_stopped() at the end. Whichever thread pushes a message
# (the controller's own thread, or this one inside on_in_message) sends it at once through the
# controller's out-listener: items are taken and sent under the link's lock, so they leave in queue
# order and no thread hand-off delays a message. The controller's items ("text", bytes), ("binary",
# bytes) and ("close", code, reason) are the ones krait/pool/serve.py's SessionLink sends.
#
# Rules: an exception in on_in_message or in the controller's thread closes the connection with 1011
# and no details (RFC 6455 section 7.4.1); the traceback goes to the log (stderr).

from __future__ import annotations

import sys
import threading
import traceback
from typing import Any

import krait
from krait import limits
from krait.pool.serve import TEXT, SessionLink


def run_session(link: SessionLink, stop_timeout: float = limits.WS_STOP_TIMEOUT) -> bool:
    """Drive the accepted session's controller until the session closes; False when it would not stop."""
    controller = krait.websockets.response.controller

    def flush(pushed: Any = None) -> None:
        # The out-listener: send the item just pushed, or (None) everything queued.
        with link.lock:
            link.send(controller._take_out() if pushed is None else (pushed,))

    def thread_failed(args: Any) -> None:
        sys.stderr.write("".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))
        if args.thread is getattr(controller, "_thread", None):
            controller.close(1011, "")

    threading.excepthook = thread_failed
    controller._set_out_listener(flush)
    flush()  # anything pushed before the listener was set (e.g. in __init__), before any later push
    controller.on_start()
    try:
        for kind, payload in link.messages():
            try:
                # the server checked the UTF-8 (RFC 6455 section 8.1), so decoding cannot fail
                controller.on_in_message_internal(payload.decode("utf-8") if kind == TEXT else payload)
            except Exception:
                traceback.print_exc()
                controller.close(1011, "")
    finally:
        controller.on_stop()
        stopped = controller.wait_stopped(stop_timeout)
        flush()  # what the controller queued before stopping
        controller._set_out_listener(None)
    return stopped
