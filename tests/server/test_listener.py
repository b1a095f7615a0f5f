"""krait/server/listener.py in process: the connection counts (--max-connections, --max-connections-per-ip)
when a connection cannot be given its thread."""

import socket
import threading

from krait.server.listener import Server
from krait.settings import Settings


def test_a_connection_no_thread_can_be_started_for_is_refused_and_its_place_given_back(tmp_path, monkeypatch):
    server = Server(Settings(site_root=str(tmp_path), port=0, max_connections_per_ip=5))
    ours, theirs = socket.socketpair()
    try:
        def no_thread(self):
            raise RuntimeError("can't start new thread")  # what a thread or memory limit gives

        monkeypatch.setattr(threading.Thread, "start", no_thread)
        server.process_request(theirs, ("127.0.0.1", 40000))
        monkeypatch.undo()
        assert server.open_count == 0 and server.per_address == {}
        ours.settimeout(5)
        assert ours.recv(4096).startswith(b"HTTP/1.1 503 ")
    finally:
        ours.close()
        server.bodies.close()
        server.server_close()
