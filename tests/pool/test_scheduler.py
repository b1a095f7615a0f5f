"""The pipelined script pool (krait/pool/scheduler.py) with real worker processes.

A job only waits in a busy worker's pipe when it arrives within PIPELINE_STALL of the running job's
start, which HTTP clients cannot time reliably; these tests drive JobPool directly and widen that
window, so the jobs behind a fault are certainly in the dying worker's pipe. The HTTP-level fault
tests (504, 500, 503, reload, --max-requests) are in test_scripts.py and test_hardening.py.
Marked `portable`: scripts/test runs them again on portable paths (spawned workers, Python's timeouts).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from krait import limits, portable
from krait.errors import ConfigError, GatewayTimeout, InternalError, Reloaded, ServiceUnavailable
from krait.pool import jobs
from krait.pool.scheduler import JobPool
from krait.pool.sessions import WsWorkers
from krait.settings import Settings

pytestmark = pytest.mark.portable

SCRIPTS = {
    "hello.py": 'krait.response = krait.Response("HTTP/1.1", 200, [], "hi " + krait.request.query_string)\n',
    # Fast unless asked to fail: only a job whose file is known to be fast gets jobs queued behind it,
    # so the fault tests run each file fast once first.
    "loop.py": "while krait.request.query_string == 'loop':\n    pass\n",
    "crash.py": "import os, time\nif krait.request.query_string == 'crash':\n    time.sleep(0.3)\n    os._exit(7)\n",
    "sleep.py": 'import time\ntime.sleep(float(krait.request.query_string))\n'
                'krait.response = krait.Response("HTTP/1.1", 200, [], "slept")\n',
    "pause.py": 'import time\ntime.sleep(float(krait.request.query_string))\n',
    "tag.py": 'krait.response = krait.Response("HTTP/1.1", 200, [], tag)\n',  # `tag` comes from init.py
    "hold.py": 'import os, time\nwhile not os.path.exists(krait.request.query_string):\n    time.sleep(0.01)\n'
               'krait.response = krait.Response("HTTP/1.1", 200, [], "held")\n',  # until the file exists
}


@pytest.fixture
def pool(tmp_path, monkeypatch):
    for name, text in SCRIPTS.items():
        (tmp_path / name).write_text("import krait\n" + text)
    monkeypatch.setattr(limits, "PIPELINE_STALL", 60.0)  # queue behind the running job, whatever its age
    started = []

    def make(**settings):
        p = JobPool(Settings(site_root=str(tmp_path), **settings), settings.get("workers", 1))
        p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.close()


def job(pool_site: str, name: str, query: str = "") -> jobs.Job:
    path = pool_site + "/" + name
    return jobs.Job("script", path, name, "GET", "/" + name, "/" + name, query, "HTTP/1.1", {}, b"",
                    ("127.0.0.1", 1), "http", ())


def run_in_thread(pool, j, timeout, out, key):
    def go():
        started = time.monotonic()
        try:
            out[key] = (pool.run(j, timeout), time.monotonic() - started)
        except Exception as exc:  # the test checks which error
            out[key] = (exc, time.monotonic() - started)

    t = threading.Thread(target=go)
    t.start()
    return t


def teach(pool, *names):
    """Run each file once, fast, so that the pool knows jobs may queue behind it."""
    for name in names:
        pool.run(job(pool.settings.site_root, name, ""), 5)


def pipelined_behind(pool, first, timeout=2.0, count=3):
    """Start `first`, then `count` hello jobs that queue in the same worker's pipe; return results."""
    site = pool.settings.site_root
    teach(pool, first[0], "hello.py")
    out: dict = {}
    threads = [run_in_thread(pool, job(site, first[0], first[1]), timeout, out, "first")]
    time.sleep(0.1)
    for i in range(count):
        threads.append(run_in_thread(pool, job(site, "hello.py", str(i)), timeout, out, i))
    deadline = time.monotonic() + 2
    while pool._lanes and len(pool._lanes[0].inflight) < count + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    depth = len(pool._lanes[0].inflight) if pool._lanes else 0
    for t in threads:
        t.join(30)
    return out, depth


def test_jobs_queued_behind_a_timed_out_job_run_on_the_replacement(pool):
    p = pool(workers=1, timeout=1.0)
    out, depth = pipelined_behind(p, ("loop.py", "loop"), timeout=1.0)
    assert depth == 4  # the looping job and three behind it, all in the one worker's pipe
    assert isinstance(out["first"][0], GatewayTimeout)
    for i in range(3):
        result, _ = out[i]
        assert isinstance(result, jobs.Result), result
        assert (result.status, result.body) == (200, b"hi %d" % i)
    # Pool still healthy afterwards.
    assert p.run(job(p.settings.site_root, "hello.py", "after"), 5).body == b"hi after"


def test_jobs_queued_behind_a_crashing_job_run_on_the_replacement(pool):
    p = pool(workers=1, timeout=5.0)
    out, depth = pipelined_behind(p, ("crash.py", "crash"))
    assert depth == 4
    assert isinstance(out["first"][0], InternalError)
    assert [out[i][0].body for i in range(3)] == [b"hi 0", b"hi 1", b"hi 2"]


def test_an_answer_never_waits_for_a_slow_job_queued_behind_it(pool):
    p = pool(workers=1, timeout=5.0)
    site = p.settings.site_root
    p.run(job(site, "sleep.py", "0"), 5)
    teach(p, "hello.py")
    out: dict = {}
    a = run_in_thread(p, job(site, "sleep.py", "0.3"), 5, out, "a")
    time.sleep(0.05)
    b = run_in_thread(p, job(site, "hello.py", "b"), 5, out, "b")  # queued behind a
    time.sleep(0.05)
    c = run_in_thread(p, job(site, "sleep.py", "1.0"), 5, out, "c")  # queued behind b
    for t in (a, b, c):
        t.join(10)
    assert out["b"][0].body == b"hi b"
    # b ran right after a (0.3 s); its answer did not wait for c's 1 s sleep.
    assert out["b"][1] < 0.9, out["b"][1]
    assert out["c"][0].body == b"slept"


def test_slow_running_job_gets_nothing_queued_behind_it_when_another_worker_is_free(pool, monkeypatch):
    monkeypatch.setattr(limits, "PIPELINE_STALL", 0.005)
    p = pool(workers=2, timeout=5.0)
    site = p.settings.site_root
    p.run(job(site, "sleep.py", "0"), 5)  # known to be fast: only the stall rule can keep jobs off it
    out: dict = {}
    slow = run_in_thread(p, job(site, "sleep.py", "1.0"), 5, out, "slow")
    time.sleep(0.1)
    fast = [run_in_thread(p, job(site, "hello.py", str(i)), 5, out, i) for i in range(5)]
    for t in fast:
        t.join(10)
    assert all(out[i][1] < 0.8 for i in range(5)), [out[i][1] for i in range(5)]
    slow.join(10)
    assert out["slow"][0].body == b"slept"


def test_max_requests_recycles_a_pipelined_worker_without_losing_jobs(pool):
    p = pool(workers=1, timeout=5.0, max_requests=3)
    site = p.settings.site_root
    out: dict = {}
    threads = [run_in_thread(p, job(site, "hello.py", str(i)), 10, out, i) for i in range(12)]
    for t in threads:
        t.join(30)
    assert sorted(out[i][0].body for i in range(12)) == sorted(b"hi %d" % i for i in range(12))


def test_a_new_generation_serves_from_its_commit_and_jobs_routed_for_the_old_one_come_back(pool, tmp_path):
    init = tmp_path / ".py" / "init.py"
    init.parent.mkdir()
    init.write_text("tag = 'one'\n")
    p = pool(workers=1, timeout=30.0)
    site, first = p.settings.site_root, p.generation
    out: dict = {}
    flag = tmp_path / "go"
    held = run_in_thread(p, job(site, "hold.py", str(flag)), 30, out, "held")  # holds the only worker
    time.sleep(0.2)
    queued = run_in_thread(p, job(site, "tag.py"), 30, out, "queued")  # waits in the queue for it
    queued_for_one = threading.Thread(target=lambda: out.__setitem__("routed", _run(p, "tag.py", first)))
    queued_for_one.start()
    init.write_text("tag = 'two'\n")
    new = p.prepare()  # a complete generation ran init.py; the old one still serves
    assert p.generation == first and new.number != first and len(new.workers) == 1
    published = []
    p.commit(new, lambda: published.append(p.generation))
    assert published == [new.number]
    for t in (queued, queued_for_one):
        t.join(30)
    assert out["queued"][0].body == b"two"  # a job of no generation runs on the serving one at once
    assert isinstance(out["routed"], Reloaded)  # routed for the old configuration: handed back, never run
    flag.touch()
    held.join(30)
    assert out["held"][0].body == b"held"  # already running: finished by the old worker
    assert isinstance(_run(p, "tag.py", first), Reloaded)
    assert _run(p, "tag.py", new.number).body == b"two"
    init.write_text("tag = 'three'\nraise ValueError('broken edit')\n")
    with pytest.raises(ConfigError, match="init.py:2.*broken edit"):
        p.prepare()
    init.write_text("tag = 'four'\n")
    unused = p.prepare()
    p.discard(unused)
    assert not any(proc.process.is_alive() for proc in unused.workers)
    assert p.generation == new.number and _run(p, "tag.py", new.number).body == b"two"


def _run(p, name, generation):
    try:
        return p.run(job(p.settings.site_root, name), 5, generation)
    except Reloaded as exc:
        return exc


def test_a_worker_killed_while_idle_costs_no_request_an_error(pool):
    import os
    import signal

    p = pool(workers=1, timeout=5.0)
    site = p.settings.site_root
    assert p.run(job(site, "hello.py", "1"), 5).body == b"hi 1"
    os.kill(p._lanes[0].proc.pid, signal.SIGKILL)  # an OOM kill, say, between two requests
    time.sleep(0.3)
    assert p.run(job(site, "hello.py", "2"), 5).body == b"hi 2"  # run on the replacement
    assert p.run(job(site, "hello.py", "3"), 5).body == b"hi 3"



def test_every_caller_gets_its_own_answer_when_answers_arrive_in_batches(pool):
    # 30 threads keep one worker's pipe full: answers come back several per read and queued jobs are fed
    # several per write; each must still reach the thread that asked.
    p = pool(workers=1)
    site = p.settings.site_root
    wrong = []

    def client(n):
        for i in range(20):
            query = "%d-%d" % (n, i)
            text = p.run(job(site, "hello.py", query), 10).body
            if text != ("hi " + query).encode():
                wrong.append((query, text))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong


def test_no_job_overtakes_the_direct_job_of_an_idle_worker(pool):
    # The caller that finds a worker idle takes the first answer as its own. A job placed on that worker
    # between the choice and the write must reach the pipe after it, whichever thread writes first, or
    # its answer would go to the wrong caller. The direct caller is held in that window here, so the
    # other caller's choice (and its write) falls in it every time.
    p = pool(workers=1)
    site = p.settings.site_root
    p.run(job(site, "hello.py", "warm"), 5)  # hello.py is now known to be fast: it may be pipelined
    write = p._write
    answers = {}
    second = threading.Thread(target=lambda: answers.__setitem__("b", p.run(job(site, "hello.py", "b"), 5).body),
                              daemon=True)
    held = []

    def held_write(lane, *args):
        if not held:  # the direct caller's write
            held.append(lane)
            second.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not p._queue and len(lane.inflight) < 2:
                time.sleep(0.001)  # until the second caller has chosen: queued, or placed behind
            time.sleep(0.05)  # and, when placed behind, has written both jobs itself
        return write(lane, *args)

    p._write = held_write
    answers["a"] = p.run(job(site, "hello.py", "a"), 5).body
    second.join(10)
    assert answers == {"a": b"hi a", "b": b"hi b"}


def write_note(root, slow_query: str, seconds: float):
    """note.py: logs each run's query string to ran.log (returned), and takes `seconds` for `slow_query`."""
    ran = root / "ran.log"
    (root / "note.py").write_text(
        "import krait, time\nopen(%r, 'a').write(krait.request.query_string + '\\n')\n"
        "time.sleep(%r if krait.request.query_string == %r else 0)\n" % (str(ran), seconds, slow_query))
    return ran


def test_a_finished_job_is_never_timed_for_the_next_one_nor_that_one_run_twice(pool, tmp_path):
    # Three jobs in one worker's pipe, all of files known to be fast; the third is slow this time. The
    # first two finished long before: their answers must not wait for the third (a held answer was timed
    # for its overrun and got 504), and the third, which had started, must not run again elsewhere.
    p = pool(workers=1, timeout=1.0)
    site = p.settings.site_root
    ran = write_note(tmp_path, "slow", 1.5)
    gate = tmp_path / "gate"
    teach(p, "hello.py", "note.py")
    p.run(job(site, "hold.py", site), 5)  # the folder exists: hold.py is fast too
    out: dict = {}
    threads = [run_in_thread(p, job(site, "hold.py", str(gate)), 1.0, out, "held")]
    time.sleep(0.05)
    threads.append(run_in_thread(p, job(site, "hello.py", "a"), 1.0, out, "a"))
    time.sleep(0.02)
    threads.append(run_in_thread(p, job(site, "note.py", "slow"), 1.0, out, "slow"))
    deadline = time.monotonic() + 2
    while len(p._lanes[0].inflight) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(p._lanes[0].inflight) == 3
    gate.touch()
    for t in threads:
        t.join(10)
    assert out["held"][0].body == b"held"
    assert out["a"][0].body == b"hi a" and out["a"][1] < 0.8, out["a"]
    assert isinstance(out["slow"][0], GatewayTimeout)
    assert ran.read_text().splitlines() == ["", "slow"]  # teach() ran it once, with no query


def test_an_answer_sent_as_the_deadline_passes_is_delivered_and_the_next_job_not_run_again(pool, tmp_path):
    # The worker answers just after the reader's wait for that answer ran out, and starts the next job;
    # the reader then kills it. Held back here for 0.3 s at that instant, so the answer is certainly sent.
    p = pool(workers=1, timeout=1.0)
    site = p.settings.site_root
    ran = write_note(tmp_path, "next", 1.0)
    teach(p, "sleep.py", "note.py")
    timed_out = p._timed_out

    def late(lane, running):
        time.sleep(0.3)
        timed_out(lane, running)

    p._timed_out = late
    out: dict = {}
    first = run_in_thread(p, job(site, "sleep.py", "1.05"), 1.0, out, "first")
    time.sleep(0.1)
    after = run_in_thread(p, job(site, "note.py", "next"), 1.0, out, "next")
    for t in (first, after):
        t.join(10)
    assert out["first"][0].body == b"slept"
    assert isinstance(out["next"][0], InternalError)
    assert ran.read_text().splitlines() == ["", "next"]  # teach() ran it once, with no query


def test_a_file_known_to_be_slow_gets_nothing_queued_behind_it(pool, monkeypatch):
    monkeypatch.setattr(limits, "PIPELINE_STALL", 0.05)  # a young job: only the file's record keeps jobs off
    p = pool(workers=1, timeout=5.0)
    site = p.settings.site_root
    teach(p, "hello.py")
    p.run(job(site, "sleep.py", "0.3"), 5)  # sleep.py is now known to take 0.3 s
    out: dict = {}
    slow = run_in_thread(p, job(site, "sleep.py", "0.3"), 5, out, "slow")
    time.sleep(0.01)
    fast = run_in_thread(p, job(site, "hello.py", "x"), 5, out, "fast")
    time.sleep(0.05)
    assert len(p._lanes[0].inflight) == 1 and len(p._queue) == 1  # it waits in the shared queue, not the pipe
    for t in (slow, fast):
        t.join(10)
    assert out["fast"][0].body == b"hi x" and out["slow"][0].body == b"slept"


def test_script_workers_use_socketpairs_and_websocket_workers_pipes(pool, tmp_path):
    # Script workers wait for answers with deadlines (kernel socket timeouts); a WebSocket worker's
    # messages have none, and a pipe costs the kernel less per message (krait/pool/pipe.py). On portable
    # paths (Windows selects sockets only), WebSocket workers get socketpairs too.
    assert isinstance(pool(workers=1)._lanes[0].proc.pipe.sock, socket.socket)
    workers = WsWorkers(Settings(site_root=str(tmp_path)), 1, lambda worker, generation: None)
    worker = workers.start()
    try:
        pipe = worker.proc.pipe
        if portable.ACTIVE:
            assert all(isinstance(end, socket.socket) for end in (pipe.sock, pipe.out))
        else:
            assert all(stat.S_ISFIFO(os.fstat(end.fd).st_mode) for end in (pipe.sock, pipe.out))
    finally:
        worker.kill()


def test_a_replacement_that_fails_to_start_is_tried_again_and_meanwhile_requests_get_503(pool, tmp_path,
                                                                                        monkeypatch):
    # init.py fails while the flag file exists (a database that is down for a while, say): the dead
    # worker's replacement cannot start, and is tried again until it can.
    monkeypatch.setattr(limits, "WORKER_RESTART_DELAY", 3.0)
    flag = tmp_path / "refuse"
    init = tmp_path / ".py" / "init.py"
    init.parent.mkdir()
    init.write_text("import os\nif os.path.exists(%r):\n    raise RuntimeError('not now')\n" % str(flag))
    p = pool(workers=1, timeout=5.0)
    site = p.settings.site_root
    flag.touch()
    with pytest.raises(InternalError):
        p.run(job(site, "crash.py", "crash"), 5)
    deadline = time.monotonic() + 30
    while p._starting:  # until the first start has failed (the next comes 3 s later)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="no script worker"):
        p.run(job(site, "hello.py", "x"), 5)
    assert time.monotonic() - started < 1.5  # at once, not when the next start fails
    flag.unlink()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert p.run(job(site, "hello.py", "back"), 5).body == b"hi back"
            break
        except ServiceUnavailable:
            assert time.monotonic() < deadline, "the replacement was never tried again"
            time.sleep(0.05)


def test_workers_started_before_one_fails_to_start_are_killed(tmp_path, monkeypatch):
    from krait.pool import process

    real = process.WorkerProcess.start.__func__
    started = []

    def start(cls, *args, **kwargs):
        if len(started) == 2:
            raise OSError(24, "Too many open files")  # what fork or socketpair says when out of descriptors
        started.append(real(cls, *args, **kwargs))
        return started[-1]

    monkeypatch.setattr(process.WorkerProcess, "start", classmethod(start))
    with pytest.raises(OSError):
        process.start_all(Settings(site_root=str(tmp_path)), 3, 0)
    assert len(started) == 2
    assert not any(worker.process.is_alive() for worker in started)


def test_a_retired_worker_that_does_not_exit_is_killed_after_its_grace(pool, tmp_path, monkeypatch):
    # init.py starts a thread that is not a daemon: after the stop message the worker's interpreter waits
    # for it, and the worker would never exit (nor close its pipe).
    monkeypatch.setattr(limits, "WORKER_STOP_GRACE", 0.5, raising=False)
    init = tmp_path / ".py" / "init.py"
    init.parent.mkdir()
    init.write_text("import threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()\n")
    p = pool(workers=1, timeout=5.0)
    site = p.settings.site_root
    old = p._lanes[0].proc
    try:
        assert p.run(job(site, "hello.py", "1"), 5).body == b"hi 1"
        p.commit(p.prepare())  # a reload: the old worker is retired, and stopped at once (its pipe is empty)
        assert p.run(job(site, "hello.py", "2"), 5).body == b"hi 2"
        deadline = time.monotonic() + 3
        while old.process.is_alive() and time.monotonic() < deadline:  # (the reader thread reaps it)
            time.sleep(0.05)
        assert not old.process.is_alive()
    finally:
        old.kill()


BIG = "import krait\nkrait.response = krait.Response('HTTP/1.1', 200, [], b'x' * 250000)\n"


def _post_big(p, count, out, first=0):
    post = job(p.settings.site_root, "big.py")._replace(method="POST", body=b"b" * 30000)
    return [run_in_thread(p, post, 5.0, out, first + i) for i in range(count)]


def _all_answered(p, threads, out):
    deadline = time.monotonic() + 8
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0))
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        p._lanes[0].proc.process.kill()  # lets the threads go
    assert not stuck
    assert [len(out[i][0].body) for i in out if isinstance(i, int)] == [250000] * (len(threads) - ("first" in out))


def test_a_worker_whose_pipe_is_full_both_ways_is_still_served(pool, tmp_path):
    # Jobs with 30 KB bodies fill the worker's side of the pipe while 250 KB answers fill the server's:
    # request threads that write jobs behind the running one wait for the worker, which waits for the
    # server to read its answers. The reader thread waited for their send lock to feed the worker.
    # Here fifteen of them wait in the pipe behind a job held at a gate, and their writers with them.
    (tmp_path / "big.py").write_text(BIG)
    p = pool(workers=1, timeout=5.0, max_queued_jobs=1000)
    site = p.settings.site_root
    teach(p, "big.py")
    p.run(job(site, "hold.py", site), 5)  # the folder exists: hold.py is known to be fast
    gate = tmp_path / "gate"
    out: dict = {}
    first = run_in_thread(p, job(site, "hold.py", str(gate)), 5.0, out, "first")
    time.sleep(0.1)
    threads = _post_big(p, 40, out)
    deadline = time.monotonic() + 2
    while len(p._queue) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(p._lanes[0].inflight) == 16 and len(p._queue) == 25
    gate.touch()
    _all_answered(p, threads + [first], out)


def test_the_thread_that_reads_answers_never_waits_to_write_jobs(pool, tmp_path):
    # Twenty such jobs wait in the queue behind a job of a file not known to be fast. Its answer is read by
    # its caller, which feeds the worker sixteen of them (480 KB): more than the pipe takes while the
    # worker, on the first of them, waits for its answer to be read. That write waited for ever.
    (tmp_path / "big.py").write_text(BIG)
    p = pool(workers=1, timeout=5.0, max_queued_jobs=1000)
    teach(p, "big.py")
    gate = tmp_path / "gate"
    out: dict = {}
    first = run_in_thread(p, job(p.settings.site_root, "hold.py", str(gate)), 5.0, out, "first")
    time.sleep(0.1)
    threads = _post_big(p, 20, out)
    deadline = time.monotonic() + 2
    while len(p._queue) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(p._queue) == 20
    gate.touch()
    _all_answered(p, threads + [first], out)
    assert out["first"][0].body == b"held"
