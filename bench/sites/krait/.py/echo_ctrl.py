# WebSocket echo controller for the benchmark: every message (text or binary) is sent straight
# back. Event model (no input queue, no polling thread), so an echo costs one hand-off.
from krait.websockets import WebsocketsCtrlBase


class EchoController(WebsocketsCtrlBase):
    """Echo each incoming message back to the client unchanged."""

    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.push_out_message(message)
