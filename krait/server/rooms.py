# Which WebSocket clients of this server process are in which room (krait.websockets.join(), leave()
# and publish(); docs/websockets.md).
#
# Design: a room is the set of its members, and each client also keeps the names of its own rooms
# (WsClient.rooms), so a connection that ends leaves all of them in one call; a room without members is
# forgotten. The hub (krait/server/hub.py) owns the one instance and uses it from its thread alone, so
# nothing here locks; a publish builds its frame once there and queues it to members().

from __future__ import annotations

from krait.server.websocket import WsClient


class Rooms:
    def __init__(self) -> None:
        self._members: dict[str, set[WsClient]] = {}

    def join(self, client: WsClient, room: str) -> None:
        client.rooms.add(room)
        self._members.setdefault(room, set()).add(client)

    def leave(self, client: WsClient, room: str) -> None:
        client.rooms.discard(room)
        members = self._members.get(room)
        if members is not None:
            members.discard(client)
            if not members:
                del self._members[room]

    def leave_all(self, client: WsClient) -> None:
        for room in list(client.rooms):
            self.leave(client, room)

    def members(self, room: str) -> list[WsClient]:
        """The room's members now (a copy: queueing to one may drop it from the room)."""
        members = self._members.get(room)
        return list(members) if members else []
