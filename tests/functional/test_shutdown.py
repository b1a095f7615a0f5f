"""Graceful stop: WebSockets get 1001 Going Away, requests in flight finish, the server exits promptly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
import websocket

from krait import portable
from tests.e2e_tools import free_port
from tests.helpers import start_krait, write_site

pytestmark = pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)

SITE = {
    ".py/init.py": "import krait\n"
                   "krait.config.routes = [krait.config.Route('WEBSOCKET', url='/ws'), krait.config.Route()]\n",
    ".py/tick.py": '''
import time
from krait.websockets import WebsocketsCtrlBase

class Tick(WebsocketsCtrlBase):
    def on_thread_start(self):
        while not self.should_stop():
            self.push_out_message("tick")
            time.sleep(0.05)
''',
    "ws.py": "from tick import Tick\nkrait.websockets.response = krait.websockets.WebsocketsResponse(Tick())\n",
}


def test_sigterm_closes_websockets_with_1001(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", SITE))
    ws = websocket.create_connection("ws://127.0.0.1:%d/ws" % srv.port, timeout=10)
    assert ws.recv() == "tick"
    t0 = time.monotonic()
    srv.proc.terminate()
    code = None
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big")
            ws.send_close(code)
            break
    assert code == 1001
    assert srv.proc.wait(15) == 0
    assert time.monotonic() - t0 < 10


def test_repeated_signals_never_deadlock_the_stop(tmp_path, krait_server):
    import signal

    srv = krait_server(write_site(tmp_path / "site2", {"a.txt": "a"}))
    hup = () if portable.ACTIVE else (signal.SIGHUP,)  # no SIGHUP on portable paths: it would kill
    for sig in (*hup, signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        srv.proc.send_signal(sig)
    assert srv.proc.wait(20) == 0


def test_a_spooled_upload_in_flight_is_served_during_a_graceful_stop(tmp_path, krait_server):
    # The body's spool file must outlive the listening socket: the request finishes within the grace time.
    site = write_site(tmp_path / "site3", {
        ".py/init.py": "import krait\nfrom krait.config import Route\n"
                       "krait.config.routes = [Route('POST', url='/slow.py', target='/slow.py'), Route()]\n",
        "slow.py": (
        "import time, krait\ntime.sleep(1.0)\n"
        "krait.response = krait.Response('HTTP/1.1', 200, [], str(len(krait.request.body_file.read())))\n")})
    srv = krait_server(site, "--max-body-size", str(8 << 20), env={"TMPDIR": str(tmp_path)})
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(
        r=requests.post(srv.url + "/slow.py", data=b"x" * (3 << 20), timeout=30)))
    thread.start()
    time.sleep(0.5)  # the body is spooled, the script sleeps
    srv.proc.send_signal(signal.SIGTERM)
    thread.join(30)
    assert (answer["r"].status_code, answer["r"].text) == (200, str(3 << 20))


def test_a_stop_signalled_to_every_process_of_the_server_still_finishes_in_flight_requests(tmp_path, krait_server):
    # What systemd does by default (KillMode=control-group): SIGTERM to the server and its workers at once.
    site = write_site(tmp_path / "site4", {
        "slow.py": "import time, krait\ntime.sleep(1.5)\n"
                   "krait.response = krait.Response('HTTP/1.1', 200, [], 'done')\n"})
    srv = krait_server(site)
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(r=requests.get(srv.url + "/slow", timeout=30)))
    thread.start()
    time.sleep(0.5)  # the script sleeps in its worker

    def tree(pid: int) -> list[int]:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [pid] + [p for child in children for p in tree(int(child))]

    for pid in tree(srv.proc.pid):
        os.kill(pid, signal.SIGTERM)
    thread.join(30)
    assert (answer["r"].status_code, answer["r"].text) == (200, "done")
    assert srv.proc.wait(20) == 0


@pytest.mark.parametrize("processes", [1, 2])
def test_a_stop_sent_while_the_ready_line_is_written_is_graceful(tmp_path, processes):
    # The ready line is what a supervisor or a client acts on, and the server already listens when it is
    # written: a SIGTERM that comes then must stop the server gracefully (the request in flight is
    # answered), not abandon start-up. The line's write is held here by a full stdout pipe.
    import fcntl  # not on Windows

    if processes > 1 and portable.ACTIVE:
        pytest.skip("--processes is Linux-only")
    site = write_site(tmp_path / "site5", {
        "slow.py": "import os, time, krait\nopen(os.path.join(krait.site_root, 'started'), 'w').close()\n"
                   "time.sleep(1.5)\nkrait.response = krait.Response('HTTP/1.1', 200, [], 'done')\n"})
    port = free_port()
    out_r, out_w = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        fcntl.fcntl(out_w, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(out_w, False)
    try:
        while True:
            os.write(out_w, b"." * 4096)
    except BlockingIOError:  # full: the server's first write to it blocks
        pass
    os.set_blocking(out_w, True)
    srv = start_krait(site, "--port", str(port), "--workers", "1", "--processes", str(processes),
                      workdir=tmp_path / "run", stdout=out_w)
    proc = srv.proc
    os.close(out_w)
    output = bytearray()
    try:
        deadline = time.monotonic() + 60
        while True:  # listening, and writing the ready line into the full pipe
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        answer: dict = {}
        thread = threading.Thread(target=lambda: answer.update(
            r=requests.get("http://127.0.0.1:%d/slow" % port, timeout=30)))
        thread.start()
        while not (site / "started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        _wait_blocked_writing_to_a_pipe(proc.pid)  # with --processes, the other server may still start
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # handled while the write still blocks; then the pipe is drained

        def drain() -> None:
            while chunk := os.read(out_r, 65536):
                output.extend(chunk)

        drained = threading.Thread(target=drain)
        drained.start()
        thread.join(30)
        assert (answer["r"].status_code, answer["r"].text) == (200, "done")
        assert proc.wait(20) == 0
        drained.join(10)
        assert b"serving" in output  # the ready line went out, then the graceful stop
        log = srv.log()
        assert "finishing requests in flight" in log and "stopped while starting" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(out_r)


def _wait_blocked_writing_to_a_pipe(pid: int) -> None:
    """Until Linux says the main thread of `pid` waits in a pipe write (or, where /proc does not say,
    for a second)."""
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/wchan" % pid) as wchan:
                if "pipe_write" in wchan.read():
                    return
        except OSError:
            pass
        time.sleep(0.01)
