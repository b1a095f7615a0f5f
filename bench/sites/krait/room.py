# WEBSOCKET /room (see .py/init.py): accept the upgrade with a room member (bench/ws_scale.py).
from room_ctrl import RoomMember

import krait
import krait.websockets

if krait.websockets.request is not None:
    krait.websockets.response = krait.websockets.WebsocketsResponse(RoomMember())
else:
    krait.response = krait.ResponseBadRequest()
