# WEBSOCKET /chat/socket (see the route in .py/init.py): accept the upgrade with a ChatController.
from ctrl.chat import ChatController

import krait

if krait.websockets.request is None:
    # Reached as GET /chat_socket through the default route: not a WebSocket upgrade.
    krait.response = krait.ResponseBadRequest()
else:
    # Choose the "chat" subprotocol only if the client offered it (none is needed).
    offered = krait.websockets.request.protocols
    protocol = "chat" if "chat" in offered else None
    krait.websockets.response = krait.websockets.WebsocketsResponse(ChatController(), protocol)
