# WEBSOCKET route target (see .py/init.py): accept the upgrade with the echo controller.
from echo_ctrl import EchoController

import krait
import krait.websockets

if krait.websockets.request is not None:
    krait.websockets.response = krait.websockets.WebsocketsResponse(EchoController())
else:
    krait.response = krait.ResponseBadRequest()
