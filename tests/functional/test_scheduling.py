"""The scheduling policy of the server's threads on Linux (docs/architecture.md, "Fairness under load").

Connection threads and the pool's reader threads run SCHED_BATCH, so that a thread woken by a request or
an answer does not preempt the one that is running; the main thread and the worker processes, where site
code runs, keep the normal policy. Read from /proc and sched_getscheduler() of each thread."""

from __future__ import annotations

import http.client
import os
import signal
import time

import pytest
import requests

from krait import portable
from tests.functional.test_nginx import descendants

pytestmark = pytest.mark.skipif(not portable.batch_threads(), reason="SCHED_BATCH: Linux, not on portable paths")

POLICY = "import os\nkrait.response = krait.Response('HTTP/1.1', 200, [], str(os.sched_getscheduler(0)))\n"


def batch_threads(pid: int) -> set[int]:
    batch = set()
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            if os.sched_getscheduler(int(tid)) == os.SCHED_BATCH:
                batch.add(int(tid))
        except OSError:  # the thread ended meanwhile
            pass
    return batch


def settled(pid: int, count: int) -> set[int]:
    """The SCHED_BATCH threads of `pid` once there are `count` of them (a new thread sets its own)."""
    deadline = time.monotonic() + 10
    while len(found := batch_threads(pid)) != count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_connection_threads_and_pool_readers_are_batch_and_site_code_is_not(make_site, krait_server):
    server = krait_server(make_site({"policy.py": POLICY}), "--workers", "2")
    pid = server.proc.pid
    readers = settled(pid, 2)  # one reader thread per script worker
    assert len(readers) == 2 and pid not in readers
    conns = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(3)]
    try:
        for conn in conns:  # kept open: each has its thread
            conn.request("GET", "/policy.py")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == str(os.SCHED_OTHER).encode()  # site code: the normal policy
        assert len(settled(pid, 5) - readers) == 3
    finally:
        for conn in conns:
            conn.close()


def test_workers_started_again_from_a_batch_thread_keep_the_normal_policy(make_site, krait_server):
    # The fork server and the worker killed: a connection or reader thread (SCHED_BATCH) starts both
    # again, and a process inherits its parent's policy; site code must still run under the normal one.
    server = krait_server(make_site({"policy.py": POLICY}), "--workers", "1")
    assert requests.get(server.url + "/policy.py", timeout=10).text == str(os.SCHED_OTHER)
    for pid in descendants(server.proc.pid):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        response = requests.get(server.url + "/policy.py", timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.text == str(os.SCHED_OTHER)
    assert all(os.sched_getscheduler(pid) == os.SCHED_OTHER for pid in descendants(server.proc.pid))
