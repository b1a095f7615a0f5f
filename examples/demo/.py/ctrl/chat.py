# The chat room: one ChatController per open connection, all of them members of the room "chat".
#
# Controllers of many visitors live in a few WebSocket worker processes; the room is what connects
# them: krait.websockets.publish("chat", text) reaches every connection that joined it, whichever
# worker or server process holds it. The protocol (deterministic, so that a browser test can check it):
#   - a visitor who connects gets "welcome, NAME", and everyone in the room sees "* NAME joined";
#   - every text message X is delivered to everyone in the room (the sender too) as "NAME: X";
#   - binary messages are echoed to their sender only;
#   - "/quit" makes the server close that connection (code 1000, reason "bye");
#   - when a visitor leaves, the others see "* NAME left";
#   - chat_post.py (a plain HTTP POST) announces "[announcement] TEXT" to the room.
from krait import websockets

ROOM = "chat"


class ChatController(websockets.WebsocketsCtrlBase):
    def __init__(self, name):
        # No input queue and no on_thread_start: Krait calls on_in_message as messages arrive, and the
        # connection costs no thread of its own.
        super().__init__(use_in_message_queue=False)
        self.name = name
        self.join(ROOM)  # takes effect when the connection opens

    def on_start(self):
        super().on_start()
        self.push_out_message("welcome, " + self.name)
        websockets.publish(ROOM, "* %s joined" % self.name)

    def on_in_message(self, message):
        if isinstance(message, bytes):
            self.push_out_message(message)
        elif message == "/quit":
            self.close(1000, "bye")
        else:
            websockets.publish(ROOM, "%s: %s" % (self.name, message))

    def on_stop(self):
        super().on_stop()
        websockets.publish(ROOM, "* %s left" % self.name)
