# WEBSOCKET /chat/socket (see the route in .py/init.py): accept the upgrade with a ChatController.
# The visitor's name comes from ?name= (letters, digits, - and _; at most 20), else a random guest name.
import re
import secrets

from ctrl.chat import ChatController

import krait

if krait.websockets.request is None:
    # Reached as GET /chat_socket through the default route: not a WebSocket upgrade.
    krait.response = krait.ResponseBadRequest()
else:
    name = re.sub(r"[^A-Za-z0-9_-]", "", krait.request.query.get("name", ""))[:20]
    name = name or "guest-" + secrets.token_hex(2)
    # Choose the "chat" subprotocol only if the client offered it (none is needed).
    protocol = "chat" if "chat" in krait.websockets.request.protocols else None
    krait.websockets.response = krait.websockets.WebsocketsResponse(ChatController(name), protocol)
