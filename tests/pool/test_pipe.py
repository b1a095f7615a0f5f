# MessagePipe (krait/pool/pipe.py) between two ends in one process, over socketpairs and over os.pipe()s:
# messages of every kind arrive whole and in order, and a reader asleep on one end is not woken when the
# other end reads what it sent.
import fcntl
import os
import signal
import stat
import threading
import time
import tracemalloc

import pytest

from krait.pool.pipe import MessagePipe, PipeReader, PipeWriter, _encode, encode_message


@pytest.fixture(params=[False, True], ids=["socketpairs", "pipes"])
def ends(request):
    def make():
        server, theirs = MessagePipe.pair(pipes=request.param)
        return server, MessagePipe(*theirs)
    return make


def test_pipes_are_pipes():
    server, theirs = MessagePipe.pair(pipes=True)
    worker = MessagePipe(*theirs)  # the worker's ends arrive as multiprocessing Connections
    for end in (server.sock, server.out, worker.sock, worker.out):
        assert stat.S_ISFIFO(os.fstat(end.fd).st_mode)
    server.close()
    worker.close()


def test_messages_arrive_whole_and_in_order(ends):
    server, worker = ends()
    big = os.urandom(1 << 20)  # above the gather and big-frame thresholds: more than the socket holds

    def send():
        server.send(("job", 1, None, b"x"))
        server.send_many([("a",), ("b", big), ("c",)])

    sender = threading.Thread(target=send)
    sender.start()
    assert worker.recv(5) == ("job", 1, None, b"x")
    assert worker.recv(5) == ("a",)
    assert worker.recv(5) == ("b", big)
    assert worker.recv(5) == ("c",)
    sender.join(5)
    worker.send({1, 2})  # a set is not a job record: sent with pickle
    assert server.recv(5) == {1, 2}
    server.close()
    with pytest.raises(EOFError):
        worker.recv(5)
    worker.close()


def test_websocket_messages_travel_without_a_codec(ends):
    server, worker = ends()
    big = os.urandom(1 << 20)
    cases = [("text", 7, "h\u00e9llo".encode()), ("binary", 0, b""), ("binary", 2**32 - 1, b"m" + b"\x00" * 8),
             ("binary", 12, big)]

    def send():
        for kind, conn, payload in cases:
            server.send_message(kind, conn, payload)
        server.send(("close", 1000, ""))

    sender = threading.Thread(target=send)
    sender.start()
    assert [worker.recv(5) for _ in cases] == cases  # the same records send() would give
    assert worker.recv(5) == ("close", 1000, "")
    sender.join(5)
    # what goes down the pipe: length, tag, the connection's number and the payload
    server.out.sendall(b"\x00\x00\x00\x07t" + b"\x00\x00\x01\x02" + b"abc")
    assert worker.recv(5) == ("text", 258, b"abc")
    server.close()
    worker.close()


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux pipe sizes")
def test_a_pipe_write_cut_short_by_a_signal_is_completed():
    # os.write() on a blocking pipe only comes back short when a signal arrives mid-write; the rest must
    # still go, or the reader would wait for the end of a frame forever.
    server, theirs = MessagePipe.pair(pipes=True)
    worker = MessagePipe(*theirs)
    fcntl.fcntl(server.out.fd, fcntl.F_SETPIPE_SZ, 4096)
    payload = os.urandom(60000)  # under the gather threshold: one os.write of header and payload
    got = []
    reader = threading.Thread(target=lambda: (time.sleep(0.3), got.append(worker.recv(5))), daemon=True)
    previous = signal.signal(signal.SIGALRM, lambda *args: None)
    try:
        reader.start()
        signal.setitimer(signal.ITIMER_REAL, 0.1)  # while the write waits for the reader
        server.send_message("binary", 1, payload)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    reader.join(5)
    assert got == [("binary", 1, payload)]
    server.close()
    worker.close()


def test_recv_times_out_and_keeps_what_it_read(ends):
    server, worker = ends()
    with pytest.raises(TimeoutError):
        worker.recv(0.05)
    server.send(("late",))
    assert worker.recv(5) == ("late",)
    server.close()
    worker.close()


def test_frames_cut_anywhere_by_the_socket(ends):
    # One recv() usually brings exactly one frame (decoded in place); the others go through the buffer.
    server, worker = ends()
    first, second = (b"".join(_encode(obj)) for obj in (("one", "\u00e9" * 40), ("two", 2)))
    one, two = ("one", "\u00e9" * 40), ("two", 2)
    message = b"\x00\x00\x00\x07t\x00\x00\x00\x04abc"  # a WebSocket message (raw record): its payload, copied once
    cases = [([first], [one]), ([first[:3], first[3:]], [one]), ([first + second[:4], second[4:]], [one, two]),
             ([first[:-1], first[-1:] + second], [one, two]), ([message], [("text", 4, b"abc")]),
             ([message[:6], message[6:] + first], [("text", 4, b"abc"), one])]
    for pieces, expected in cases:
        for piece in pieces:
            server.out.sendall(piece)
            time.sleep(0.01)  # each piece arrives on its own
        assert [worker.recv(5) for _ in expected] == expected
    assert not worker.pending()
    server.close()
    worker.close()


def _voluntary_switches(tid):
    with open("/proc/self/task/%d/status" % tid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


def _sleeping(tid):
    with open("/proc/self/task/%d/stat" % tid) as f:
        return f.read().rpartition(")")[2].split()[0] == "S"


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_reading_an_answer_does_not_wake_the_idle_worker(ends):
    # Over one socketpair, the server reading the worker's answer frees the worker's send buffer, and
    # Linux wakes every sleeper on that socket, the worker's pending recv() included.
    server, worker = ends()
    worker.send(("answer",))
    got = []
    ready = threading.Event()

    def idle_worker():
        got.append(threading.get_native_id())
        ready.set()
        got.append(worker.recv(None))  # a plain blocking recv(), as in the worker (a timeout would poll)

    thread = threading.Thread(target=idle_worker, daemon=True)
    thread.start()
    ready.wait(5)
    tid = got[0]
    deadline = time.monotonic() + 5
    while not _sleeping(tid) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    before = _voluntary_switches(tid)
    assert server.recv(5) == ("answer",)
    time.sleep(0.1)
    woken = _voluntary_switches(tid) - before
    server.send(("next job",))
    thread.join(5)
    assert got[1] == ("next job",)
    server.close()
    worker.close()
    assert woken == 0, "the idle worker was woken %d times by the server's read" % woken


def test_tiny_messages_queued_for_a_worker_that_reads_nothing_take_the_memory_they_count(ends):
    # The hub bounds what waits for a worker by `pending` (WS_MAX_TO_WORKER): 200,000 empty messages
    # behind a full pipe must take about that many bytes, not an object each; and all arrive in order.
    server, worker = ends()
    writer = PipeWriter(server.out)
    writer.send_message("binary", 1, os.urandom(3 << 20))  # fills the pipe: the rest is queued
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200_000):
            writer.send_message("text", 2 + i % 2, b"")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    queued = 200_000 * len(encode_message("text", 2, b"")[0])
    assert grown < 2 * queued
    got: list = []
    reading = threading.Thread(target=lambda: got.extend(worker.recv(5) for _ in range(200_001)))
    reading.start()
    while not writer.flush():
        time.sleep(0.001)
    reading.join(30)
    assert got[1:4] == [("text", 2, b""), ("text", 3, b""), ("text", 2, b"")] and len(got) == 200_001


def test_a_selector_loop_reads_and_writes_whole_messages_without_waiting(ends):
    # The hub's side: PipeWriter queues what the pipe does not take now, PipeReader returns only whole
    # messages, both in order, and neither ever blocks.
    import selectors

    server, worker = ends()
    writer, reader = PipeWriter(server.out), PipeReader(server.sock)
    assert reader.read() == []  # nothing there: no wait
    big = os.urandom(3 << 20)  # more than the pipe holds: the rest waits in the writer
    writer.send(("open", 1, ("job",)))
    writer.send_message("binary", 5, big)
    writer.send_message("text", 6, b"after")
    assert writer.pending > 0
    got = []
    reading = threading.Thread(target=lambda: got.extend(worker.recv(5) for _ in range(3)))
    reading.start()
    with selectors.DefaultSelector() as sel:
        sel.register(writer, selectors.EVENT_WRITE)
        while not writer.flush():
            sel.select(5)
    reading.join(5)
    assert writer.pending == 0
    assert got == [("open", 1, ("job",)), ("binary", 5, big), ("text", 6, b"after")]
    for i in range(3):
        worker.send(("close", i, 1000, ""))
    worker.send_message("text", 9, b"x" * 100000)
    messages = []
    with selectors.DefaultSelector() as sel:
        sel.register(reader, selectors.EVENT_READ)
        while len(messages) < 4:
            sel.select(5)
            messages += reader.read()
    assert messages == [("close", 0, 1000, ""), ("close", 1, 1000, ""), ("close", 2, 1000, ""),
                        ("text", 9, b"x" * 100000)]
    worker.close()
    with pytest.raises(EOFError):
        while True:
            reader.read()
    server.close()


def test_an_empty_message_through_the_non_blocking_writer(ends):
    # An empty payload is a frame of its own; the writer must not spin on it forever.
    server, worker = ends()
    writer = PipeWriter(server.out)
    writer.send_message("binary", 7, b"")
    writer.send_message("text", 8, b"next")
    assert writer.pending == 0
    assert worker.recv(5) == ("binary", 7, b"")
    assert worker.recv(5) == ("text", 8, b"next")
    server.close()
    worker.close()


def test_the_non_blocking_reader_ignores_an_earlier_deadline(ends):
    # A worker's pipe is first read with a deadline (its start-up report); the hub's reader later
    # takes the same end and must never wait on it.
    server, worker = ends()
    with pytest.raises(TimeoutError):
        server.recv(0.01)
    reader = PipeReader(server.sock)
    started = time.monotonic()
    assert reader.read() == []
    assert time.monotonic() - started < 0.5
    worker.send_message("text", 3, b"one")
    worker.send(("close", 3, 1000, ""))
    deadline = time.monotonic() + 5
    messages: list = []
    while len(messages) < 2 and time.monotonic() < deadline:
        messages += reader.read()
    assert messages == [("text", 3, b"one"), ("close", 3, 1000, "")]
    server.close()
    worker.close()


def test_the_non_blocking_writer_outlives_its_peer(ends):
    # A worker that died: writing to its pipe is EPIPE. The hub's loop must not see an exception; the
    # writer drops what it held and ignores what comes after, and the read side reports the EOF.
    server, worker = ends()
    writer, reader = PipeWriter(server.out), PipeReader(server.sock)
    worker.close()
    writer.send_message("text", 1, b"x")
    writer.send_message("binary", 2, b"y" * 300000)
    writer.send(("close", 1, 1000, ""))
    assert writer.gone and writer.pending == 0 and writer.flush()
    with pytest.raises(EOFError):
        reader.read()
    server.close()


def test_a_message_that_cannot_be_decoded_is_the_peer_gone(ends):
    # A pickle naming a module this process cannot import, and a marshal frame cut short: EOFError,
    # which every reader handles as a worker that died.
    import pickle
    import struct

    server, worker = ends()
    broken = pickle.dumps(int).replace(b"builtins", b"nowhere_x")
    for data, tag in ((broken, b"p"), (b"\xe9", b"m")):
        worker.out.sendall(struct.pack("!I", len(data)) + tag + data)
        with pytest.raises(EOFError):
            server.recv(5)
    server.close()
    worker.close()


def test_a_reader_taking_over_gets_what_the_blocking_pipe_read_ahead(ends):
    # A WebSocket worker's first records can arrive in the same read as its start-up report.
    server, worker = ends()
    worker.send(("ready",))
    worker.send_message("text", 4, b"right after")
    worker.send(("half",))
    time.sleep(0.1)
    assert server.recv(5) == ("ready",)
    reader = PipeReader(server.sock, server.buffered())
    got = reader.read()
    assert got[0] == ("text", 4, b"right after")
    got += [] if len(got) > 1 else reader.read()
    assert got == [("text", 4, b"right after"), ("half",)]
    server.close()
    worker.close()
