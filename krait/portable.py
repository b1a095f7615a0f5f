# Which code paths this process takes: the tuned POSIX ones, or the portable ones that Windows needs.
#
# Design: ACTIVE is decided once, when this module is first imported: True on Windows, and on any system
# whose environment has KRAIT_PORTABLE=1, so that the Windows paths run (and are tested) on Linux; worker
# processes inherit the environment and agree with their server. Every portable branch consults it and
# sits next to the code it replaces (docs/deployment.md, "Windows and macOS", lists them):
# - workers start with multiprocessing's spawn, not a forkserver (krait/pool/process.py);
# - WebSocket workers are reached over socketpairs, not os.pipe()s, worker pipes keep Python's timeouts,
#   and several buffers are written one send() at a time, not gathered by sendmsg() (krait/pool/pipe.py,
#   krait/server/websocket.py);
# - the WebSocket hub's selector is select(), which takes at most limits.SELECT_MAX_SOCKETS sockets
#   (krait/server/hub.py, krait/server/lifecycle.py);
# - no SIGHUP (an edit under SITE/.py reloads), no open-file rlimit, and the listening socket takes no
#   SO_REUSEADDR (krait/server/lifecycle.py, krait/server/listener.py).
# What follows the kernel's interface rather than a choice of path (the encoding of socket timeouts,
# Nagle's algorithm on Windows' TCP socketpairs, SO_EXCLUSIVEADDRUSE, batch scheduling) goes by the
# platform itself.

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
from collections.abc import Iterator

ACTIVE = sys.platform == "win32" or os.environ.get("KRAIT_PORTABLE") == "1"

# --processes N: the servers are forked and bind one port with SO_REUSEPORT, which spreads its connections
# across them on Linux only (on macOS and the BSDs one socket takes them all; Windows has neither).
SHARES_PORT = not ACTIVE and sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


@functools.cache
def batch_threads() -> bool:
    """Whether the server's busiest threads take Linux's SCHED_BATCH policy (see batch_scheduling()):
    not on portable paths, so that the request gate that stands in for it elsewhere
    (krait/server/gate.py) is tested too, and not where the kernel refuses it (a sandbox) or the server
    runs under another policy than the normal one (a real-time one, chosen by whoever started it).
    Tried once on the calling thread, whose policy is put back."""
    if ACTIVE or not hasattr(os, "SCHED_BATCH"):
        return False
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return False
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # 0: the calling thread
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        return False
    return True


def batch_scheduling() -> None:
    """Give the calling thread SCHED_BATCH where batch_threads() holds (elsewhere: nothing).

    A thread of that policy, woken, does not preempt the running one: it waits until that one sleeps or
    uses up its time slice (a few milliseconds at most; docs/architecture.md, "Fairness under load").
    Connection threads take it (krait/server/listener.py): a thread woken by its client's request waits
    for the running one to finish its request instead of taking the CPU from it and then waiting for the
    GIL, and the woken threads run in turn. The pool's reader threads take it too
    (krait/pool/answers.py): a worker that wrote an answer runs on to its next jobs, and the reader takes
    their answers with one wake-up. Threads that these threads start inherit the policy."""
    if batch_threads():
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:  # allowed when batch_threads() tried it: nothing to do but go on as we are
            pass


@contextlib.contextmanager
def normal_scheduling() -> Iterator[None]:
    """Run the block under the normal policy when the calling thread is SCHED_BATCH, then put it back: a
    process started there (or a fork server restarted there, which forks every later worker) would
    inherit the policy, and site code must not (krait/pool/process.py)."""
    batch = batch_threads() and os.sched_getscheduler(0) == os.SCHED_BATCH
    if batch:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    try:
        yield
    finally:
        if batch:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
