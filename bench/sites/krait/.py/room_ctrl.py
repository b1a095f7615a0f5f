# The room member of bench/ws_scale.py: every connection joins the room "bench"; a text message
# "pub ..." from any member is published to the whole room, as it is. Event model: no queue, no thread.
from krait import websockets


class RoomMember(websockets.WebsocketsCtrlBase):
    def __init__(self):
        super().__init__(use_in_message_queue=False)
        self.join("bench")

    def on_in_message(self, message):
        if isinstance(message, str) and message.startswith("pub "):
            websockets.publish("bench", message)
