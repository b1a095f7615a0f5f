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


def test_where_the_kernel_refuses_sched_batch_the_request_gate_stands_in(tmp_path, monkeypatch):
    # A sandbox may refuse SCHED_BATCH (krait/portable.py): connection threads then keep the normal
    # policy, and the FairGate keeps the tail latency low instead.
    import os

    from krait import portable
    from krait.server.gate import FairGate

    def refused(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refused, raising=False)
    portable.batch_threads.cache_clear()
    try:
        server = Server(Settings(site_root=str(tmp_path), port=0))
        try:
            assert isinstance(server.gate, FairGate)
        finally:
            server.bodies.close()
            server.server_close()
    finally:
        monkeypatch.undo()
        portable.batch_threads.cache_clear()
