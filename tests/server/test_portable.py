"""Portable code paths (krait/portable.py): on Windows, and anywhere with KRAIT_PORTABLE=1, Krait takes the
paths Windows needs; otherwise the tuned POSIX ones. scripts/test runs this module twice, as the whole
suite runs it and again with KRAIT_PORTABLE=1 (with the functional tests marked `portable`), and each
test checks the choices of the mode it runs in."""

from __future__ import annotations

import os
import pkgutil
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import krait
from krait import limits, portable, sockopt
from krait.pool import jobs
from krait.pool.pipe import MessagePipe, PipeWriter
from krait.pool.process import context
from krait.server import lifecycle
from krait.server.hub import WebSocketHub
from krait.server.listener import Server
from krait.server.websocket import InputBudget, WsClient
from krait.settings import Settings

pytestmark = pytest.mark.portable

ROOT = Path(__file__).resolve().parents[2]
POSIX_ONLY = ("fcntl", "resource", "termios", "pwd", "grp", "pty", "tty", "syslog")  # none on Windows


class CountingSocket(socket.socket):
    """A socket that counts its sendmsg() calls (Windows sockets have no sendmsg)."""

    sendmsg_calls = 0

    def sendmsg(self, *args, **kwargs):  # type: ignore[override]
        CountingSocket.sendmsg_calls += 1
        return super().sendmsg(*args, **kwargs)


@pytest.fixture
def counting_pair():
    a, b = socket.socketpair()
    CountingSocket.sendmsg_calls = 0
    ours = CountingSocket(fileno=a.detach())
    yield ours, b
    ours.close()
    b.close()


def run_python(code: str, portable_paths: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KRAIT_PORTABLE"}
    if portable_paths:
        env["KRAIT_PORTABLE"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("portable_paths", [False, True])
def test_krait_portable_1_switches_to_the_paths_of_windows(portable_paths):
    out = run_python("from krait import portable; print(portable.ACTIVE, portable.SHARES_PORT)", portable_paths)
    active = portable_paths or sys.platform == "win32"
    assert out.stdout.split() == [str(active), str(not active and sys.platform.startswith("linux"))], out.stderr


def test_no_module_needs_a_posix_only_module_to_import():
    code = ("import importlib, pkgutil, sys\nfor name in %r:\n    sys.modules[name] = None\n"
            "import krait\nfor info in pkgutil.walk_packages(krait.__path__, 'krait.'):\n"
            "    importlib.import_module(info.name)\nprint('ok')\n" % (POSIX_ONLY,))
    out = run_python(code, portable_paths=True)
    assert out.stdout.strip() == "ok", out.stderr
    assert len(list(pkgutil.walk_packages(krait.__path__, "krait."))) > 50


def test_workers_are_spawned_on_portable_paths_and_forked_by_a_forkserver_otherwise():
    assert context().get_start_method() == ("spawn" if portable.ACTIVE else "forkserver")


def test_websocket_worker_pipes_are_socketpairs_on_portable_paths(monkeypatch):
    if portable.ACTIVE:
        for name in POSIX_ONLY:
            monkeypatch.setitem(sys.modules, name, None)
    ours, theirs = MessagePipe.pair(pipes=True)
    try:
        ends = (ours.sock, ours.out, *theirs)
        assert all(isinstance(end, socket.socket) for end in ends) == portable.ACTIVE
    finally:
        ours.close()
        for end in theirs:
            end.close()


def test_buffers_go_out_one_send_at_a_time_on_portable_paths_and_gathered_otherwise(counting_pair):
    ours, peer = counting_pair
    big = bytes(range(256)) * 1024  # past the size that MessagePipe gathers behind its header
    received = []
    reader = threading.Thread(target=lambda: received.extend(MessagePipe(peer, peer).recv(10) for _ in range(3)))
    reader.start()
    MessagePipe(ours, ours).send_message(jobs.WS_BINARY, 7, big)  # blocking, like a worker
    writer = PipeWriter(ours)  # non-blocking, like the hub
    writer.send_message(jobs.WS_TEXT, 8, big)
    writer.send((jobs.WS_DONE, 9))
    with selectors.DefaultSelector() as selector:
        selector.register(ours, selectors.EVENT_WRITE)
        while not writer.flush():
            selector.select(5)
    reader.join(20)
    assert received == [(jobs.WS_BINARY, 7, big), (jobs.WS_TEXT, 8, big), (jobs.WS_DONE, 9)]
    assert (CountingSocket.sendmsg_calls == 0) == portable.ACTIVE


def test_websocket_clients_get_one_send_per_frame_on_portable_paths(counting_pair):
    ours, peer = counting_pair
    client = WsClient(1, None, InputBudget(limits.MAX_WS_MESSAGE), None)
    client.attach(ours, lambda: None)
    for frame in (b"a" * 10, b"b" * 20, b"c" * 30):
        client.out.append(frame)
        client.unsent += len(frame)
    assert client.flush() and client.unsent == 0
    assert peer.recv(100) == b"a" * 10 + b"b" * 20 + b"c" * 30
    assert CountingSocket.sendmsg_calls == (0 if portable.ACTIVE else 1)


def test_the_hub_selects_with_select_on_portable_paths(tmp_path):
    hub = WebSocketHub(Settings(site_root=str(tmp_path)))
    try:
        assert isinstance(hub._selector, selectors.SelectSelector) == portable.ACTIVE
    finally:
        hub._selector.close()
        hub._wake_r.close()
        hub._wake_w.close()


def test_the_port_is_not_bound_with_so_reuseaddr_on_portable_paths(tmp_path):
    server = Server(Settings(site_root=str(tmp_path), port=0))
    try:
        assert bool(server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)) != portable.ACTIVE
    finally:
        server.server_close()


@pytest.mark.skipif(not portable.ACTIVE, reason="the open-file limit on POSIX: tests/functional/test_ws_scale.py")
def test_select_bounds_max_websockets_on_portable_paths(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "resource", None)  # Windows has no open-file rlimit
    settings = Settings(site_root=str(tmp_path), max_websockets=100_000, ws_workers=3)
    assert lifecycle.fit_to_open_files(settings).max_websockets == limits.SELECT_MAX_SOCKETS - 1 - 4 * 3
    few = Settings(site_root=str(tmp_path), max_websockets=100, ws_workers=3)
    assert lifecycle.fit_to_open_files(few) == few


class MacResource:
    """The open-file limits of macOS, as its setrlimit(2) manual gives them: the hard limit is unlimited,
    and no soft limit above OPEN_MAX is taken."""

    RLIMIT_NOFILE = 8
    RLIM_INFINITY = 2**63 - 1

    def __init__(self) -> None:
        self.limits = (256, self.RLIM_INFINITY)  # as a Terminal starts programs

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if limits[0] > 10240:
            raise ValueError("current limit exceeds maximum limit")
        self.limits = limits


@pytest.mark.skipif(portable.ACTIVE, reason="no open-file limit on portable paths")
def test_the_open_file_limit_of_macos_is_raised_to_open_max(tmp_path, monkeypatch):
    mac = MacResource()
    monkeypatch.setitem(sys.modules, "resource", mac)
    settings = lifecycle.fit_to_open_files(Settings(site_root=str(tmp_path)))
    assert mac.limits == (10240, mac.RLIM_INFINITY)
    assert settings.max_connections + settings.max_websockets == 10240 - limits.FD_RESERVE
    assert settings.max_websockets > 8000


def test_sighup_reloads_only_off_portable_paths():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        lifecycle._SignalFlags()
        assert (signal.getsignal(signal.SIGHUP) == before[signal.SIGHUP]) == portable.ACTIVE
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_windows_socket_timeouts_are_whole_milliseconds():
    assert sockopt._milliseconds(None) == 0 and sockopt._milliseconds(0) == 0  # 0: wait forever
    assert sockopt._milliseconds(2.5) == 2500
    assert sockopt._milliseconds(0.0001) == 1  # a tiny deadline must not become "wait forever"
    assert sockopt._milliseconds(1e12) == 0xFFFFFFFF  # a DWORD
