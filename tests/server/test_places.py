"""krait/server/websocket.py Places: which connection gives a --max-websockets place up, and the counts
kept while the controllers of those given up have not finished yet (no worker involved here)."""

from __future__ import annotations

from krait.server.websocket import InputBudget, Places, WsClient

BUDGET = InputBudget(1 << 20)


def take(places: Places, clients: dict[int, WsClient], conn: int, address: str) -> WsClient:
    client = clients[conn] = WsClient(conn, None, BUDGET, None)
    client.address = address
    client.sock = object()  # attached: only attached connections give their place up
    places.take(client)
    return client


def test_a_connection_given_up_stops_counting_for_its_address_at_once():
    places = Places(4)
    clients: dict[int, WsClient] = {}
    oldest = [take(places, clients, conn, "A") for conn in range(4)]
    assert places.full(len(clients))
    # Two upgrades from B accepted one after the other, before any closed controller has finished: the
    # second must see A holding 3, not 4.
    for conn in (4, 5):
        take(places, clients, conn, "B")
        victim = places.victim(clients.values(), "B", counted=True)
        assert victim is oldest[conn - 4]
        places.evict(victim)
    assert places.held == {"A": 2, "B": 2} and places.full(len(clients))
    assert places.victim(clients.values(), "B") is None  # even shares: a third from B gets no place
    assert places.victim(clients.values(), "C") is oldest[2]  # one holding none does
    for client in oldest[:2]:  # their controllers finish
        del clients[client.conn]
        places.give_back(client)
    assert places.held == {"A": 2, "B": 2} and places.leaving == 0
    for client in list(clients.values()):
        places.give_back(client)
    assert places.held == {}
