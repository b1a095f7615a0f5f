"""krait.websockets: request/response objects and the controller's queues and thread."""

import threading
import time

import pytest

import krait
from krait import websockets as ws


def upgrade(protocol_header=None):
    headers = [("Upgrade", "websocket")]
    if protocol_header is not None:
        headers.append(("Sec-WebSocket-Protocol", protocol_header))
    return krait.Request("GET", "/ws", "", "HTTP/1.1", headers, b"")


@pytest.mark.parametrize("header, expected", [
    (None, []), ("", []), ("chat", ["chat"]), ("chat, superchat", ["chat", "superchat"]),
    ("a,b ,\tc,, ", ["a", "b", "c"]),
])
def test_protocols(header, expected):
    req = upgrade(header)
    wr = ws.WebsocketsRequest(req)
    assert wr.protocols == expected
    assert wr.http_request is req
    assert ws.WebsocketsRequest.extract_protocols(req) == expected
    assert "protocols" in repr(wr)


def test_response_and_globals():
    assert ws.request is None and ws.response is None
    ctrl = ws.WebsocketsCtrlBase()
    r = ws.WebsocketsResponse(ctrl, "chat")
    assert r.controller is ctrl and r.protocol == "chat"
    assert ws.WebsocketsResponse(ctrl).protocol is None
    assert "chat" in repr(r)


class Echo(ws.WebsocketsCtrlBase):
    def on_thread_start(self):
        while not self.should_stop():
            msg = self.pop_in_message()
            if msg is None:
                time.sleep(0.001)
                continue
            self.push_out_message(msg)


def test_in_queue_order_and_out_queue():
    c = ws.WebsocketsCtrlBase()
    assert c.pop_in_message() is None and c.pop_out_message() is None
    for m in ("a", b"b", "c"):
        c.on_in_message_internal(m)
    assert [c.pop_in_message() for _ in range(4)] == ["a", b"b", "c", None]
    c.push_out_message("x")
    c.push_out_message(b"\x00y")
    c.push_out_message(bytearray(b"z"))
    assert [c.pop_out_message() for _ in range(4)] == ["x", b"\x00y", b"z", None]
    with pytest.raises(TypeError):
        c.push_out_message(5)


def test_disabled_in_queue():
    got = []

    class Handler(ws.WebsocketsCtrlBase):
        def on_in_message(self, message):
            got.append(message)

    h = Handler(use_in_message_queue=False)
    h.on_in_message_internal("m")
    assert got == ["m"]
    with pytest.raises(RuntimeError):
        h.pop_in_message()
    plain = ws.WebsocketsCtrlBase(False)
    plain.on_in_message_internal("dropped")  # no queue, no override: ignored


def test_take_out_items_in_order():
    c = ws.WebsocketsCtrlBase()
    assert c._take_out() == []
    c.push_out_message("t")
    c.push_out_message(b"b")
    c.close(4000, "bye")
    c.push_out_message("after")
    assert c.pop_out_message() == "t"
    assert c._take_out() == [("binary", b"b"), ("close", 4000, "bye"), ("text", b"after")]
    assert c._take_out() == []
    d = ws.WebsocketsCtrlBase()
    d.close()
    assert d.pop_out_message() is None  # a close request is not a message
    assert d._take_out() == [("close", 1000, "")]


def test_text_is_encoded_when_pushed():
    c = ws.WebsocketsCtrlBase()
    c.push_out_message("h\u00e9 \u2603")
    assert c._take_out() == [("text", "h\u00e9 \u2603".encode("utf-8"))]  # the pipe's record, as is
    with pytest.raises(UnicodeEncodeError):
        c.push_out_message("\ud800")  # a lone surrogate has no UTF-8 form: refused in the controller
    assert c._take_out() == []
    c.push_out_message("\u00e9")
    assert c.pop_out_message() == "\u00e9"  # popped back as the str it was


def test_listener_called_by_the_pushing_thread():
    c = ws.WebsocketsCtrlBase()
    calls = []
    c._set_out_listener(lambda item: calls.append((threading.current_thread().name, item)))
    c.push_out_message("now")
    t = threading.Thread(target=c.push_out_message, args=("there",), name="other")
    t.start()
    t.join(5)
    main = threading.current_thread().name
    assert calls == [(main, ("text", b"now")), ("other", ("text", b"there"))]  # handed over, not queued
    c.close()
    assert calls[-1] == (main, ("close", 1000, ""))
    assert c._take_out() == []
    c._set_out_listener(None)
    c.push_out_message("unheard")  # no listener: just queued
    assert len(calls) == 3 and c._take_out() == [("text", b"unheard")]


def test_item_queued_behind_others_and_listener_runs_outside_lock():
    c = ws.WebsocketsCtrlBase()
    c.push_out_message("early")  # before the listener: queued
    seen = []
    # the listener takes the queued items itself: this deadlocks if it ran under the lock
    c._set_out_listener(lambda item: seen.append(item if item is not None else c._take_out()))
    c.push_out_message("x")  # something is queued: "x" goes behind it, and the listener sends both
    assert seen == [[("text", b"early"), ("text", b"x")]]
    c.close()
    assert seen[-1] == ("close", 1000, "")


def test_push_after_stop_still_reaches_listener():
    c = ws.WebsocketsCtrlBase()
    seen = []
    c._set_out_listener(seen.append)
    c.on_stop()
    assert c.should_stop()
    c.push_out_message("late")  # a message pushed while stopping still goes out
    assert seen == [("text", b"late")]


def test_the_input_queue_is_capped_by_the_memory_its_messages_take():
    # A str of 4-byte characters takes four times its len(): 5 MiB of them are past the 16 MiB cap.
    c = ws.WebsocketsCtrlBase()
    wide = "\U0001f600" * (1024 * 1024)
    for _ in range(5):
        c.on_in_message_internal(wide)
    assert c._take_out() == [("close", 1008, "messages sent faster than they are handled")]
    assert c.pop_in_message() is None


def test_close_validation_and_once():
    c = ws.WebsocketsCtrlBase()
    for bad in (999, 1004, 1005, 1006, 1015, 2999, 5000, True, "1000"):
        with pytest.raises(ValueError):
            c.close(bad)
    with pytest.raises(ValueError):
        c.close(1000, "\u00e9" * 62)
    c.close(1001, "x" * 123)
    c.close(1000)  # second request ignored
    assert c._take_out() == [("close", 1001, "x" * 123)]


def test_thread_lifecycle_echo_order():
    c = Echo()
    assert c.wait_stopped(0) is True  # never started: nothing to wait for
    c.on_start()
    msgs = [f"m{i}" for i in range(50)] + [b"bin"]
    for m in msgs:
        c.on_in_message_internal(m)
    out = []
    deadline = time.monotonic() + 5
    while len(out) < len(msgs) and time.monotonic() < deadline:
        out += c._take_out()
        time.sleep(0.001)
    assert out == [("text", m.encode()) for m in msgs[:-1]] + [("binary", b"bin")]
    assert c.wait_stopped(0.01) is False
    assert not c.should_stop()
    c.on_stop()
    assert c.should_stop()
    assert c.wait_stopped(None) is True
    assert c.wait_stopped() is True


def test_wait_stopped_none_waits_forever():
    release = threading.Event()

    class Slow(ws.WebsocketsCtrlBase):
        def on_thread_start(self):
            self_stop = self.should_stop
            while not self_stop():
                time.sleep(0.001)
            release.wait(5)

    c = Slow()
    c.on_start()
    c.on_stop()
    threading.Timer(0.05, release.set).start()
    t0 = time.monotonic()
    assert c.wait_stopped(None) is True
    assert time.monotonic() - t0 >= 0.04
    assert c._thread.daemon


def test_base_thread_start_is_noop():
    c = ws.WebsocketsCtrlBase()
    c.on_start()
    assert c.wait_stopped(5) is True


def test_a_controller_without_on_thread_start_costs_no_thread():
    # Many connections share a worker process: only a controller with its own on_thread_start gets a
    # thread (the 0.5.2 contract for those); the others run on the worker's threads.
    before = threading.active_count()
    quiet = [ws.WebsocketsCtrlBase(use_in_message_queue=False) for _ in range(50)]
    for c in quiet:
        c.on_start()
    assert threading.active_count() == before and all(c._thread is None for c in quiet)
    threaded = Echo()
    threaded.on_start()
    assert threaded._thread is not None and threaded._thread.is_alive()
    threaded.on_stop()
    assert threaded.wait_stopped(5)


def test_an_exception_in_the_handler_thread_closes_with_1011(capsys):
    class Broken(ws.WebsocketsCtrlBase):
        def on_thread_start(self):
            raise KeyError("boom")

    c = Broken()
    c.on_start()
    assert c.wait_stopped(5)
    assert c._take_out() == [("close", 1011, "")]
    assert "KeyError: 'boom'" in capsys.readouterr().err


class _Link:
    """What a worker gives a controller once its connection is open: records join/leave."""

    def __init__(self):
        self.told = []

    def join(self, room):
        self.told.append(("join", room))

    def leave(self, room):
        self.told.append(("leave", room))


def test_rooms_joined_before_the_connection_opens_are_told_when_it_does():
    c = ws.WebsocketsCtrlBase(use_in_message_queue=False)
    c.join("lobby")
    c.join("lobby")  # once is enough
    c.join("news")
    link = _Link()
    c._attach(link)
    assert sorted(link.told) == [("join", "lobby"), ("join", "news")]
    c.leave("lobby")
    c.leave("nowhere")  # not a member: nothing to tell
    c.join("café")
    assert link.told[2:] == [("leave", "lobby"), ("join", "café")]


@pytest.mark.parametrize("room, error", [("", TypeError), (3, TypeError), (None, TypeError),
                                         ("x" * 257, ValueError), ("é" * 129, ValueError)])
def test_room_names_are_checked(room, error):
    c = ws.WebsocketsCtrlBase()
    with pytest.raises(error):
        c.join(room)
    with pytest.raises(error):
        ws.publish(room, "hi")


def test_publish_hands_one_record_to_the_worker(monkeypatch):
    sent = []
    monkeypatch.setattr(ws, "_publisher", lambda room, kind, payload: sent.append((room, kind, payload)))
    ws.publish("lobby", "h\u00e9")
    ws.publish("lobby", b"\x00\x01")
    ws.publish("lobby", bytearray(b"z"))
    assert sent == [("lobby", "text", "h\u00e9".encode()), ("lobby", "binary", b"\x00\x01"),
                    ("lobby", "binary", b"z")]
    with pytest.raises(TypeError):
        ws.publish("lobby", 42)


def test_publish_outside_a_worker_says_so():
    with pytest.raises(RuntimeError, match="worker processes"):
        ws.publish("lobby", "hi")
