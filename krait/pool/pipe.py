# A message pipe between the server and one worker process: length-prefixed frames.
#
# Design:
# - A frame is a 5-byte header (4-byte big-endian length, 1 tag byte) and its payload, written with one
#   sendall. The records of krait/pool/jobs.py are tuples of str, bytes, ints, dicts and None, which
#   `marshal` encodes several times faster than pickle (tag b"m"); anything else (the start-up report
#   carrying krait.config's snapshot) falls back to pickle (b"p"). WebSocket messages, the one record
#   sent once per message in both directions, and the pieces of a streamed response body skip the codec
#   (send_message(): tag b"t", b"b" or b"d", the connection's number in 4 bytes, and the payload as it is).
# - Reading is buffered: one recv takes every frame already waiting (a worker with pipelined jobs, or a
#   reader thread with several answers, gets them with one system call), and pending() says whether a
#   whole frame is already buffered. A frame larger than _BIG_FRAME is read straight into a buffer of
#   its own. A timeout keeps what was read, so the next recv() carries on from the middle of a frame.
# - Two channels, one per direction: over one socketpair, every read wakes whoever sleeps in recv() at
#   the other end (the freed buffer space wakes all sleepers on that socket).
# - Script workers are reached over socketpairs, so the deadline of every answer is the kernel's
#   SO_RCVTIMEO (use_kernel_timeouts()); WebSocket workers over os.pipe()s, which cost the kernel less
#   per message and whose rare deadline is a poll() before the read. Why, measured: bench/README.md
#   ("The worker pipe").
# - Portable paths (krait/portable.py, as on Windows, whose selectors take sockets only and which has no
#   sendmsg()): every worker is reached over socketpairs, deadlines stay Python's (a select() before the
#   call: after a kernel timeout, Windows leaves a socket in an undefined state, and a pool's reader
#   thread times out routinely), and several buffers go out one send() at a time.
#
# - MessagePipe blocks (a worker's loop, a request thread waiting for its answer). A selector loop that
#   serves many pipes (the server's WebSocket hub) uses PipeReader and PipeWriter instead: the same
#   frames, read and written without ever blocking, with the unsent rest kept in order.
#
# - send_some() writes only what the pipe takes at once and hands back the rest for send_rest(): for a
#   thread that must not wait on the peer because the peer may be waiting for it (a pool's reader,
#   krait/pool/scheduler.py).
#
# Rules: one thread may send while another receives; two senders must hold a lock. After
# use_kernel_timeouts() the receive deadline is the kernel's, so the reader's changing timeouts never
# apply to a sender. EOF raises EOFError.

from __future__ import annotations

import marshal
import os
import pickle
import select
import socket
import struct
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from krait import portable, sockopt
from krait.pool import jobs

_HEADER = struct.Struct("!IB")
_CONN = struct.Struct("!I")  # the connection number at the start of a WebSocket message's payload
_MSG_HEADER = struct.Struct("!IBI")  # _HEADER + _CONN
_MARSHAL, _PICKLE = ord("m"), ord("p")
# send_message(): a payload as it is (WebSocket messages, pieces of a streamed response body)
_TAG_OF = {jobs.WS_TEXT: ord("t"), jobs.WS_BINARY: ord("b"), jobs.STREAM_DATA: ord("d")}
_RECORD_OF = {tag: kind for kind, tag in _TAG_OF.items()}
_GATHER = 65536  # payloads this large are sent with sendmsg() behind their header, not copied
_CHUNK = 65536  # bytes asked of one recv (larger ones would be mmap-allocated by malloc on every call)
_BIG_FRAME = 1 << 18  # frames at least this large get a buffer of their own (no copying behind the header)
# Capacity asked for each os.pipe(): about a socketpair's, so a 1 MiB message crosses in as few wake-ups
# (the default 64 KiB took four times as many).
_PIPE_SIZE = 1 << 18
_SENDMSG = not portable.ACTIVE  # several buffers with one sendmsg() (see the module comment)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # a send that never waits (send_some()); not on Windows


class MessagePipe:
    __slots__ = ("sock", "out", "_timeout", "_kernel", "_buf", "_big", "_big_got", "_big_tag")

    def __init__(self, sock: Any, out: Any) -> None:
        self.sock = sock = _PipeEnd.adopt(sock)  # messages arrive here
        self.out = out = _PipeEnd.adopt(out)  # and leave here
        self._timeout: float | None = None
        self._kernel = False  # see use_kernel_timeouts()
        self._buf = bytearray()
        self._big: bytearray | None = None
        self._big_got = 0
        self._big_tag = 0
        sock.settimeout(None)
        out.settimeout(None)

    @classmethod
    def pair(cls, pipes: bool = False) -> tuple[MessagePipe, tuple[Any, Any]]:
        """A pipe for this process, and the two ends to hand to the worker: MessagePipe(*theirs).
        Two socketpairs, or with `pipes` two os.pipe()s (the worker's ends then travel as
        multiprocessing Connection objects, which a worker process can be given), except on portable
        paths."""
        if not pipes or portable.ACTIVE:
            to_worker, worker_in = sockopt.socketpair()
            try:
                worker_out, from_worker = sockopt.socketpair()
            except OSError:  # out of descriptors, say: the first pair must not leak
                to_worker.close()
                worker_in.close()
                raise
            return cls(from_worker, to_worker), (worker_in, worker_out)
        import fcntl  # POSIX only, like os.pipe() ends in a selector

        read_in, write_in = os.pipe()
        try:
            read_out, write_out = os.pipe()
        except OSError:
            os.close(read_in)
            os.close(write_in)
            raise
        for fd in (read_in, read_out):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            except (OSError, AttributeError):  # over the user's pipe quota, or not Linux: the default size
                pass
        pipe_ends = (Connection(read_in, writable=False), Connection(write_out, readable=False))
        return cls(_PipeEnd(read_out), _PipeEnd(write_in)), pipe_ends

    def use_kernel_timeouts(self, send_timeout: float) -> None:
        """Keep the socket blocking and enforce deadlines with SO_RCVTIMEO / SO_SNDTIMEO.

        A Python-level timeout polls before every recv and send, and is one setting shared by all
        threads using the socket object. Kernel timeouts cost nothing per call, and the receive and
        send deadlines are separate, so a reader thread may change its own while another thread sends.
        On portable paths the deadlines stay Python's (see the module comment): the send socket gets its
        own settimeout(send_timeout), which no reader changes.
        """
        self.sock.settimeout(None)
        if portable.ACTIVE:
            self.out.settimeout(send_timeout)
            return
        sockopt.set_send_timeout(self.out, send_timeout)
        self._kernel = True
        self._timeout = None

    def send(self, obj: Any) -> None:
        header, data = _encode(obj)
        if len(data) < _GATHER:
            self.out.sendall(header + data)
        else:
            self._write_large(header, data)

    def send_message(self, kind: str, conn: int, payload: bytes) -> None:
        """Send the record (kind, conn, payload), kind jobs.WS_TEXT, WS_BINARY or STREAM_DATA, without a
        codec; recv() gives back that tuple."""
        header = _MSG_HEADER.pack(len(payload) + 4, _TAG_OF[kind], conn)
        if len(payload) < _GATHER:
            self.out.sendall(header + payload)
        else:
            self._write_large(header, payload)

    def _write_large(self, header: bytes, data: bytes) -> None:
        # Large payloads (WebSocket messages): gather-write instead of copying them behind the header.
        sent = self.out.sendmsg([header, data]) if _SENDMSG else self.out.send(header)
        if sent < len(header) + len(data):
            rest = memoryview(header + data)[sent:] if sent < len(header) else memoryview(data)[sent - len(header):]
            self.out.sendall(rest)

    def send_many(self, objs: list) -> None:
        """Several messages with one system call (large payloads gathered behind their headers, not copied)."""
        self.send_rest(_frames(objs))

    def send_some(self, objs: list) -> deque:
        """Write what the pipe takes now of several messages, without waiting: returns the parts left, in
        order (empty when all went), for send_rest(). For a thread that must never wait on the peer,
        because the peer may be waiting for it (krait/pool/scheduler.py). Script workers' pipes only
        (sockets)."""
        parts = _frames(objs)
        out = self.out
        try:
            if self._kernel and _DONTWAIT:  # a blocking socket: one flag, no system call more
                while parts:
                    sockopt.send_queued(out, parts, _SENDMSG, _DONTWAIT)
                return parts
            saved = out.gettimeout()  # Python's deadline (portable paths) would wait: none for this write
            out.settimeout(0.0)
            try:
                while parts:
                    sockopt.send_queued(out, parts, _SENDMSG)
            finally:
                out.settimeout(saved)
        except (BlockingIOError, InterruptedError):  # full
            pass
        return parts

    def send_rest(self, parts: deque) -> None:
        """Write `parts` (what send_some() left), in order, waiting as long as the pipe needs."""
        out = self.out
        while parts:
            sockopt.send_queued(out, parts, _SENDMSG)

    def buffered(self) -> bytes:
        """What was read and not yet returned, for a PipeReader that takes over this pipe's read end."""
        return bytes(self._buf)

    def pending(self) -> bool:
        """Whether a whole frame is already buffered (recv() would not wait)."""
        buf = self._buf
        return len(buf) >= 5 and len(buf) >= 5 + _HEADER.unpack_from(buf)[0] and self._big is None

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; TimeoutError when none arrives in time, EOFError when the peer is gone."""
        if timeout != self._timeout:
            self._set_timeout(timeout)
        buf = self._buf
        try:
            while True:
                if self._big is not None:
                    big = self._big
                    if self._big_got < len(big):
                        with memoryview(big) as view:
                            count = self.sock.recv_into(view[self._big_got:])
                        if not count:
                            raise EOFError("worker pipe closed")
                        self._big_got += count
                        continue
                    self._big = None
                    return _decode(self._big_tag, big)
                if len(buf) >= 5:
                    size, tag = _HEADER.unpack_from(buf)
                    end = 5 + size
                    if len(buf) >= end:
                        data = buf[5:end]  # marshal and pickle read a bytearray as they read bytes
                        del buf[:end]
                        return _decode(tag, data)
                    if size >= _BIG_FRAME:
                        self._big = bytearray(size)
                        self._big[:len(buf) - 5] = buf[5:]
                        self._big_got = len(buf) - 5
                        self._big_tag = tag
                        buf.clear()
                        continue
                chunk = self.sock.recv(_CHUNK)
                if not chunk:
                    raise EOFError("worker pipe closed")
                if not buf and len(chunk) > 5:
                    # The common case (one job, one answer, one WebSocket message): the recv brought
                    # exactly one whole frame, decoded from where it is instead of through the buffer.
                    size, tag = _HEADER.unpack_from(chunk)
                    if len(chunk) == 5 + size:
                        kind = _RECORD_OF.get(tag)
                        if kind is not None:  # a WebSocket message: its payload, copied once
                            return kind, _CONN.unpack_from(chunk, 5)[0], chunk[9:]
                        return _decode(tag, memoryview(chunk)[5:])
                buf += chunk
        except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO ran out
            raise TimeoutError("no message within %ss" % timeout) from None
        except (ConnectionResetError, BrokenPipeError):
            raise EOFError("worker pipe closed") from None

    def _set_timeout(self, timeout: float | None) -> None:
        if self._kernel:
            sockopt.set_recv_timeout(self.sock, timeout)
        else:
            self.sock.settimeout(timeout)
        self._timeout = timeout

    def close(self) -> None:
        for sock in (self.sock, self.out):
            try:
                sock.close()
            except OSError:
                pass


class _PipeEnd:
    """One end of an os.pipe() with the socket methods MessagePipe uses; a receive deadline
    (settimeout) is a poll() before each read."""

    __slots__ = ("fd", "_timeout", "_poll")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._timeout: float | None = None
        self._poll: Any = None

    @classmethod
    def adopt(cls, end: Any) -> Any:
        """A socket as it is; a multiprocessing Connection (a worker's end of pair(pipes=True)) as a
        _PipeEnd owning its descriptor."""
        if not isinstance(end, Connection):
            return end
        fd = os.dup(end.fileno())
        end.close()
        return cls(fd)

    def settimeout(self, seconds: float | None) -> None:
        self._timeout = seconds
        if seconds is not None and self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.fd, select.POLLIN)

    def _wait(self) -> None:
        if not self._poll.poll(max(self._timeout or 0.0, 0.0) * 1000.0):
            raise TimeoutError("timed out")

    def recv(self, size: int) -> bytes:
        if self._timeout is not None:
            self._wait()
        return os.read(self.fd, size)

    def recv_into(self, view: memoryview) -> int:
        if self._timeout is not None:
            self._wait()
        return os.readv(self.fd, [view])

    def sendall(self, data: Any) -> None:
        sent = os.write(self.fd, data)
        if sent < len(data):
            view = memoryview(data)[sent:]
            while view:
                view = view[os.write(self.fd, view):]

    def send(self, data: Any) -> int:
        return os.write(self.fd, data)

    def sendmsg(self, parts: list) -> int:
        return os.writev(self.fd, parts)

    def setblocking(self, flag: bool) -> None:
        os.set_blocking(self.fd, flag)
        self._timeout = None  # as for a socket: a non-blocking end waits for nothing

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _frames(objs: list) -> deque:
    """The frames of several messages as the parts to write, in order: small ones copied together, a large
    payload as it is behind its header."""
    parts: deque = deque()
    frames = bytearray()
    for obj in objs:
        header, data = _encode(obj)
        if len(data) >= _GATHER:
            if frames:
                parts.append(frames)
                frames = bytearray()
            parts.append(header)
            parts.append(data)
            continue
        frames += header
        frames += data
    if frames:
        parts.append(frames)
    return parts


def _encode(obj: Any) -> tuple[bytes, bytes]:
    """A message's frame header and payload."""
    try:
        data = marshal.dumps(obj)
        tag = _MARSHAL
    except ValueError:  # not plain data: the rare start-up report
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        tag = _PICKLE
    return _HEADER.pack(len(data), tag), data


def _decode(tag: int, data: Any) -> Any:
    """A message's record. One that cannot be decoded (corrupt, or a pickle naming what this process
    cannot import) raises EOFError: every reader then treats the peer as gone, as it would after a crash,
    instead of dying of an unexpected exception."""
    try:
        if tag == _MARSHAL:
            return marshal.loads(data)
        kind = _RECORD_OF.get(tag)
        if kind is not None:
            return kind, _CONN.unpack_from(data)[0], bytes(memoryview(data)[4:])
        return pickle.loads(data)
    except Exception as exc:
        raise EOFError("a message that cannot be decoded (%s: %s)" % (type(exc).__name__, exc)) from None


def encode_message(kind: str, conn: int, payload: bytes) -> list[bytes]:
    """The frame of a WebSocket record, as the pieces to write (the payload is not copied)."""
    return [_MSG_HEADER.pack(len(payload) + 4, _TAG_OF[kind], conn), payload]


class PipeReader:
    """The read side of a pipe for a selector loop: read() takes what is there, never waits, and
    returns every whole message (EOFError when the peer is gone).

    It reads into one buffer of its own, allocated once: a fresh buffer of the pipe's size for every
    read cost malloc an mmap, an mremap and a munmap per message. Whole frames are decoded where they
    lie; only the start of an unfinished frame is kept, in `_rest`, until the reads that complete it.
    """

    __slots__ = ("end", "_rest", "_view")

    def __init__(self, end: Any, buffered: bytes = b"") -> None:
        self.end = end
        end.setblocking(False)
        self._rest = bytearray(buffered)  # what a MessagePipe on the same end read ahead (MessagePipe.buffered())
        self._view = memoryview(bytearray(_PIPE_SIZE))

    def fileno(self) -> int:
        return self.end.fileno()

    def read(self) -> list:
        rest = self._rest
        try:
            count = self.end.recv_into(self._view)
        except (BlockingIOError, InterruptedError):
            if not rest:
                return []
            count = -1  # nothing new, but whole messages may wait in `rest` (see __init__)
        except (ConnectionResetError, BrokenPipeError):
            raise EOFError("pipe closed") from None
        if not count:
            raise EOFError("pipe closed")
        if rest:
            if count > 0:
                rest += self._view[:count]
            data: Any = memoryview(rest)
            count = len(rest)
        else:
            data = self._view[:count]
        messages = []
        start = 0
        with data:
            while count - start >= 5:
                size, tag = _HEADER.unpack_from(data, start)
                end = start + 5 + size
                if end > count:
                    break
                messages.append(_decode(tag, data[start + 5:end]))
                start = end
        if rest:
            del rest[:start]
        elif start < count:
            rest += self._view[start:count]
        return messages


class PipeWriter:
    """The write side of a pipe for a selector loop: messages are queued in order and written as far
    as the pipe takes them now; flush() writes more once the loop sees the pipe writable. A peer that
    is gone raises nothing here: what was queued is dropped, `gone` is set and later messages are
    ignored (the loop learns of the end from the read side's EOF)."""

    __slots__ = ("end", "_parts", "pending", "gone")

    def __init__(self, end: Any) -> None:
        self.end = end
        end.setblocking(False)
        self._parts: deque[bytes | memoryview] = deque()
        self.pending = 0  # bytes queued and not written yet
        self.gone = False

    def fileno(self) -> int:
        return self.end.fileno()

    def send(self, obj: Any) -> None:
        header, data = _encode(obj)
        self._queue((header, data))

    def send_message(self, kind: str, conn: int, payload: bytes) -> None:
        if len(payload) < _GATHER:  # a short one is copied behind its header and written at once
            self._write(_MSG_HEADER.pack(len(payload) + 4, _TAG_OF[kind], conn) + payload)
        else:
            self._queue(encode_message(kind, conn, payload))

    def _write(self, frame: bytes) -> None:
        # The usual case for a selector loop: nothing waits before this frame, so it goes out with one
        # write and no queue (what the pipe does not take now is queued for flush()). Behind others, a
        # short frame joins the last one queued if that is a buffer of such frames: a flood of tiny
        # messages for a worker that reads nothing then takes the memory its bytes count (`pending`,
        # what WS_MAX_TO_WORKER bounds), not an object each.
        parts = self._parts
        if parts or self.gone:
            tail = parts[-1] if parts else None
            if type(tail) is bytearray and len(tail) < _GATHER:  # never the head partly written (a view)
                tail += frame
                self.pending += len(frame)
            else:
                self._queue((bytearray(frame),))
            return
        try:
            sent = self.end.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # EPIPE, ECONNRESET: the peer is gone
            self._lost()
            return
        if sent < len(frame):
            self._queue((memoryview(frame)[sent:],))

    def _queue(self, parts: Any) -> None:
        if self.gone:
            return
        for part in parts:
            if part:  # an empty part would be "written" forever
                self._parts.append(part)
                self.pending += len(part)
        self.flush()

    def flush(self) -> bool:
        """Write what the pipe takes without waiting; True when nothing is left to write."""
        parts = self._parts
        while parts:
            try:
                self.pending -= sockopt.send_queued(self.end, parts, _SENDMSG)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self._lost()
        return True

    def _lost(self) -> None:
        self.gone = True
        self._parts.clear()
        self.pending = 0
