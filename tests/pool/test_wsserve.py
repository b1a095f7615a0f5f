"""krait/pool/wsserve.py in this process: a SessionHost reading a real pipe, with small sessions that
record what they are asked to do. Messages of one connection stay in order; a callback that blocks
holds up only its own connection; route scripts run one at a time; a stop stops every session."""

from __future__ import annotations

import threading
import time

import pytest

from krait import limits
from krait.pool import jobs
from krait.pool.pipe import MessagePipe
from krait.pool.wsserve import SessionHost

JOB = jobs.Job(jobs.WEBSOCKET, "/site/ws.py", "ws.py", "GET", "/ws", "/ws", "", "HTTP/1.1", {}, b"", None, "http", ())
ACCEPTED = jobs.Result(101, "Switching Protocols", (), b"", None)


class Echoing:
    """A session that echoes; b"block" makes its callback sleep for a second first."""

    closed: list[tuple[int, int]] = []
    ended: set[int] = set()
    routes_at_once = 0
    most_routes_at_once = 0

    def __init__(self, link):
        self.link = link

    def _send(self, item):
        with self.link.lock:
            self.link.send([item])

    def start(self):
        if self.link.conn >= 100:  # a slow on_start
            time.sleep(0.3)
        self._send(("text", b"started"))

    def message(self, text, payload):
        if payload == b"raise":
            raise RuntimeError("a bug in the session")
        if payload == b"block":
            time.sleep(1.0)
        elif payload == b"until stopped":  # the loop a controller may run in on_in_message
            deadline = time.monotonic() + 10
            while self.link.conn not in Echoing.ended and time.monotonic() < deadline:
                time.sleep(0.01)
            return
        elif payload.startswith((b"join ", b"leave ")):
            verb, room = payload.decode().split()
            getattr(self.link, verb)(room)
            return
        self._send(("text" if text else "binary", payload))

    def ending(self):
        Echoing.ended.add(self.link.conn)

    def close(self, code, reason, timeout):
        if self.link.conn == 7:  # an on_stop that takes a while and says goodbye
            time.sleep(0.5)
            self._send(("text", b"goodbye"))
        Echoing.closed.append((self.link.conn, code))
        if code == 4000:
            raise RuntimeError("a bug while stopping")
        return True


def open_session(job, link):
    Echoing.routes_at_once += 1
    Echoing.most_routes_at_once = max(Echoing.most_routes_at_once, Echoing.routes_at_once)
    time.sleep(0.05)  # a route script takes a moment
    Echoing.routes_at_once -= 1
    if job.query_string == "refuse":
        return jobs.Result(403, "Forbidden", (), b"", None), None
    return ACCEPTED, Echoing(link)


@pytest.fixture
def host():
    Echoing.closed = []
    Echoing.ended = set()
    ours, theirs = MessagePipe.pair(pipes=True)
    worker_end = MessagePipe(*theirs)
    host = SessionHost(worker_end, threading.Lock(), open_session, stall=0.05)
    thread = threading.Thread(target=host.run, daemon=True)
    thread.start()
    yield ours
    ours.send(None)
    thread.join(10)
    ours.close()
    worker_end.close()


def receive(pipe, count):
    return [pipe.recv(5) for _ in range(count)]


def open_conns(pipe, *conns):
    for conn in conns:
        pipe.send((jobs.WS_OPEN, conn, jobs.job_to_wire(JOB)))
    got = receive(pipe, 2 * len(conns))
    for conn in conns:
        assert (jobs.WS_RESULT, conn) == next(r[:2] for r in got if r[0] == jobs.WS_RESULT and r[1] == conn)
        assert (jobs.WS_TEXT, conn, b"started") in got


def test_messages_of_each_connection_arrive_in_order(host):
    open_conns(host, 1, 2)
    for i in range(50):
        host.send_message(jobs.WS_TEXT, 1 + i % 2, b"m%d" % i)
    got = receive(host, 50)
    for conn in (1, 2):
        assert [r[2] for r in got if r[1] == conn] == [b"m%d" % i for i in range(50) if 1 + i % 2 == conn]


def test_a_blocking_callback_holds_up_only_its_own_connection(host):
    open_conns(host, 1, 2)
    host.send_message(jobs.WS_TEXT, 1, b"block")
    host.send_message(jobs.WS_TEXT, 1, b"after the block")  # waits in 1's mailbox
    time.sleep(0.2)  # the watchdog has made another thread read the pipe
    started = time.monotonic()
    host.send_message(jobs.WS_BINARY, 2, b"quick")
    assert host.recv(5) == (jobs.WS_BINARY, 2, b"quick")
    assert time.monotonic() - started < 0.5
    assert receive(host, 2) == [(jobs.WS_TEXT, 1, b"block"), (jobs.WS_TEXT, 1, b"after the block")]


def test_route_scripts_run_one_at_a_time_and_a_refusal_hosts_nothing(host):
    Echoing.most_routes_at_once = 0
    open_conns(host, *range(1, 6))
    assert Echoing.most_routes_at_once == 1
    host.send((jobs.WS_OPEN, 9, jobs.job_to_wire(JOB._replace(query_string="refuse"))))
    record = host.recv(5)
    assert record[:2] == (jobs.WS_RESULT, 9) and jobs.result_from_wire(record[2]).status == 403
    host.send_message(jobs.WS_TEXT, 9, b"nobody")  # no session: dropped
    host.send_message(jobs.WS_TEXT, 1, b"still")
    assert host.recv(5) == (jobs.WS_TEXT, 1, b"still")


def test_a_close_stops_the_session_and_a_stop_stops_them_all(host):
    open_conns(host, 1, 2, 3)
    host.send((jobs.WS_CLOSE, 2, 1000, ""))
    assert host.recv(5) == (jobs.WS_DONE, 2)
    assert Echoing.closed == [(2, 1000)]
    host.send(None)  # the server stops this worker
    deadline = time.monotonic() + 5
    while len(Echoing.closed) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(Echoing.closed[1:]) == [(1, 1001), (3, 1001)]


def test_rooms_travel_as_records(host):
    open_conns(host, 7)
    host.send_message(jobs.WS_TEXT, 7, b"join lobby")
    host.send_message(jobs.WS_TEXT, 7, b"leave lobby")
    assert receive(host, 2) == [(jobs.WS_JOIN, 7, "lobby"), (jobs.WS_LEAVE, 7, "lobby")]


def test_nothing_reaches_a_session_before_its_start(host):
    # The client may send as soon as it has the 101, while on_start() still runs: that message waits.
    host.send((jobs.WS_OPEN, 100, jobs.job_to_wire(JOB)))
    assert host.recv(5)[:2] == (jobs.WS_RESULT, 100)
    host.send_message(jobs.WS_TEXT, 100, b"early")
    assert receive(host, 2) == [(jobs.WS_TEXT, 100, b"started"), (jobs.WS_TEXT, 100, b"early")]


def test_a_failing_session_closes_only_its_own_connection(host):
    open_conns(host, 1, 2)
    host.send_message(jobs.WS_TEXT, 1, b"raise")
    assert host.recv(5) == (jobs.WS_CLOSE, 1, 1011, "")
    host.send((jobs.WS_CLOSE, 1, 4000, ""))  # its close() fails too: the connection still ends
    assert host.recv(5) == (jobs.WS_DONE, 1)
    host.send_message(jobs.WS_TEXT, 2, b"on")
    assert host.recv(5) == (jobs.WS_TEXT, 2, b"on")
    open_conns(host, 3)  # the upgrade thread goes on too


def test_a_connection_that_ends_while_its_callback_runs_is_told_at_once(host):
    # The callback loops until should_stop() (ending() here): the end reaches it while it runs, and
    # close() (on_stop) follows once it returns.
    open_conns(host, 1)
    host.send_message(jobs.WS_TEXT, 1, b"until stopped")
    time.sleep(0.2)
    started = time.monotonic()
    host.send((jobs.WS_CLOSE, 1, 1000, ""))
    assert host.recv(5) == (jobs.WS_DONE, 1)
    assert time.monotonic() - started < 1
    assert Echoing.ended == {1} and Echoing.closed == [(1, 1000)]


def test_a_callback_that_does_not_return_after_the_end_is_given_up(host, monkeypatch):
    monkeypatch.setattr(limits, "WS_STOP_TIMEOUT", 0.3)
    open_conns(host, 1, 2)
    host.send_message(jobs.WS_TEXT, 1, b"block")  # a second, deaf to the end
    host.send_message(jobs.WS_TEXT, 1, b"after the block")
    time.sleep(0.1)
    host.send((jobs.WS_CLOSE, 1, 1000, ""))
    assert host.recv(5) == (jobs.WS_DONE, 1)  # the server may count the slot free again
    host.send_message(jobs.WS_TEXT, 2, b"still here")
    assert host.recv(5) == (jobs.WS_TEXT, 2, b"still here")
    time.sleep(1.2)  # the block ended: nothing it sends reaches the server, nor a second WS_DONE
    host.send_message(jobs.WS_TEXT, 2, b"and here")
    assert host.recv(5) == (jobs.WS_TEXT, 2, b"and here")
    assert Echoing.closed == [(1, 1000)]  # on_stop still ran once the callback returned


def test_a_callback_that_returned_in_time_is_not_given_up_while_it_stops(host, monkeypatch):
    # The give-up counts the running callback only: stopping has its own WS_STOP_TIMEOUT.
    monkeypatch.setattr(limits, "WS_STOP_TIMEOUT", 0.3)
    open_conns(host, 7)
    host.send_message(jobs.WS_TEXT, 7, b"until stopped")
    time.sleep(0.1)
    host.send((jobs.WS_CLOSE, 7, 1000, ""))
    assert receive(host, 2) == [(jobs.WS_TEXT, 7, b"goodbye"), (jobs.WS_DONE, 7)]
