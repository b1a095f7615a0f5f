# POST /chat/post (a plain HTTP request, not a WebSocket): announce the form's `text` to everyone in
# the chat room. Any script or template can publish to a room the same way.
from ctrl.chat import ROOM

import krait

text = krait.request.get_post_form().get("text", "").strip()[:500]
if text:
    krait.websockets.publish(ROOM, "[announcement] " + text)
krait.response = krait.Response("HTTP/1.1", 204, [], b"")
