# The live socket: one WebsocketsCtrlBase subclass per connection, running in a worker process.
#
# Each connection has its own worker, so there is no broadcast between visitors (that would need a
# shared medium such as a database or a message broker). The protocol is deterministic so that a
# browser test can check it:
#   - right after connecting the server sends "welcome";
#   - then "tick 1", "tick 2", ... once per second;
#   - every text message X is answered with "you said: X"; binary messages are echoed unchanged;
#   - the text message "/quit" makes the server close the connection (code 1000, reason "bye").
import time

from krait import websockets

TICK_SECONDS = 1.0


class ChatController(websockets.WebsocketsCtrlBase):
    def __init__(self):
        # No input queue: Krait calls on_in_message for each message as it arrives.
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        if isinstance(message, bytes):
            self.push_out_message(message)
        elif message == "/quit":
            self.close(1000, "bye")
        else:
            self.push_out_message("you said: " + message)

    def on_thread_start(self):
        # The controller's own thread: greet, then tick until Krait says the connection is over.
        self.push_out_message("welcome")
        ticks = 0
        next_tick = time.monotonic() + TICK_SECONDS
        while not self.should_stop():
            now = time.monotonic()
            if now >= next_tick:
                ticks += 1
                self.push_out_message(f"tick {ticks}")
                next_tick += TICK_SECONDS
            time.sleep(min(0.05, max(0.0, next_tick - now)))
