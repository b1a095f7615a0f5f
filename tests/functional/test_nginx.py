"""Scale-out behind a real nginx (issue 8): examples/deploy/nginx.conf load-balances two Krait instances,
proxies WebSocket upgrades, sets X-Forwarded-*, and keeps GETs succeeding when one instance is killed."""

# Strategy: Debian's nginx is installed when missing (tests/e2e_tools.py). Two copies of a tiny site
# differ only in .py/init.py (NAME = "a" / "b"); who.py answers with NAME, the client address and scheme
# Krait believed, and the proxy headers it received. The shipped config is used as is, with only its
# documented placeholders filled in (ports, and a prefix inside tmp_path); nginx runs in the foreground
# and is stopped by PID. 1,000 GETs go through nginx from 8 threads; after 300 have completed, the
# instance that does NOT carry the open WebSocket session is SIGKILLed. Every GET must still get a 200
# (nginx retries idempotent requests on the other upstream), and the WebSocket must keep working.

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.e2e_tools import ensure_program, free_port, stop_process, wait_until
from tests.helpers import ROOT, write_site

pytestmark = pytest.mark.external

CONF = ROOT / "examples" / "deploy" / "nginx.conf"
REQUESTS = 1000
KILL_AFTER = 300
THREADS = 8

INIT = '''
import krait
from krait.config import Route

NAME = %r
krait.config.routes = [Route("WEBSOCKET", url="/ws", target="/ws.py"), Route()]
'''

WHO = '''
import json
import krait

r = krait.request
body = json.dumps({"name": NAME, "addr": list(r.remote_addr) if r.remote_addr else None, "scheme": r.scheme,
                   "xff": r.headers.get("x-forwarded-for"), "xfp": r.headers.get("x-forwarded-proto"),
                   "host": r.headers.get("host")})
krait.response = krait.Response("HTTP/1.1", 200, [("Content-Type", "application/json")], body)
'''

ECHO = '''
from krait.websockets import WebsocketsCtrlBase


class Echo(WebsocketsCtrlBase):
    def __init__(self, name):
        super().__init__(use_in_message_queue=False)
        self.name = name

    def on_in_message(self, message):
        self.push_out_message("%s:%s" % (self.name, message))
'''

WS = '''
import krait
import krait.websockets
from echo_ctrl import Echo

krait.websockets.response = krait.websockets.WebsocketsResponse(Echo(NAME))
'''


def make_site(root: Path, name: str) -> Path:
    return write_site(root, {".py/init.py": INIT % name, ".py/echo_ctrl.py": ECHO, "who.py": WHO, "ws.py": WS})


def descendants(pid: int) -> list[int]:
    """PIDs of every process below `pid` (read from /proc), e.g. Krait's forkserver and workers."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def nginx(tmp_path):
    """Start nginx with examples/deploy/nginx.conf; yields a function(upstream1, upstream2) -> port."""
    binary = ensure_program(("nginx",), "nginx")
    procs: list[subprocess.Popen] = []
    prefix = tmp_path / "nginx"

    def start(upstream1: str, upstream2: str) -> int:
        prefix.mkdir()
        port = free_port()
        text = CONF.read_text()
        for key, value in (("LISTEN_PORT", str(port)), ("UPSTREAM1", upstream1), ("UPSTREAM2", upstream2),
                           ("PREFIX", str(prefix))):
            text = text.replace("{{%s}}" % key, value)
        assert "{{" not in text, "a placeholder of nginx.conf was not documented/filled"
        (prefix / "nginx.conf").write_text(text)
        # As root, nginx's workers would run as "nobody", who cannot enter pytest's 0700 tmp_path.
        directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        cmd = [binary, "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
        check = subprocess.run(cmd + ["-t", "-g", directives], capture_output=True, text=True, timeout=30,
                               check=False)
        assert check.returncode == 0, check.stderr
        with open(prefix / "nginx.out", "wb") as out:
            proc = subprocess.Popen(cmd + ["-g", directives], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        procs.append(proc)
        url = "http://127.0.0.1:%d/who.py" % port

        def ready() -> bool:
            assert proc.poll() is None, (prefix / "error.log").read_text(errors="replace")
            return requests.get(url, timeout=2).status_code == 200

        wait_until(ready, 15, what="nginx to proxy its first request")
        return port

    yield start
    for proc in procs:
        stop_process(proc)  # SIGTERM: fast shutdown of the master and its workers
    if procs and (prefix / "error.log").exists():
        errors = (prefix / "error.log").read_text(errors="replace")
        retried = [line for line in errors.splitlines() if "while connecting to upstream" in line
                   or "while reading response header from upstream" in line]
        print("\n[e2e] nginx error.log: %d upstream errors (retried on the other instance)" % len(retried))


def test_two_instances_behind_nginx_survive_a_kill(tmp_path, krait_server, nginx):
    started = time.monotonic()
    a = krait_server(make_site(tmp_path / "site-a", "a"), "--forwarded-allow-ips", "127.0.0.1")
    b = krait_server(make_site(tmp_path / "site-b", "b"), "--forwarded-allow-ips", "127.0.0.1")
    instances = {"a": a, "b": b}
    port = nginx("127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port)
    base = "http://127.0.0.1:%d" % port

    # 1. Proxy headers. The client connects from 127.0.0.2 (still loopback) and claims a forged
    #    X-Forwarded-For; nginx appends the real address, and Krait believes only that last entry. A forged
    #    Forwarded (which Krait would prefer) is removed by nginx.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
    conn.request("GET", "/who.py", headers={"X-Forwarded-For": "203.0.113.9",
                                            "Forwarded": "for=198.51.100.7;proto=https"})
    resp = conn.getresponse()
    assert resp.status == 200
    who = json.loads(resp.read())
    conn.close()
    assert who["xff"] == "203.0.113.9, 127.0.0.2" and who["xfp"] == "http", who
    assert who["addr"][0] == "127.0.0.2" and who["scheme"] == "http", who  # not nginx's own 127.0.0.1
    assert who["host"] == "127.0.0.1", who

    # 2. A WebSocket session through nginx (Upgrade/Connection passed on); it stays open throughout.
    import websocket

    ws = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=10)
    ws.send("hello")
    owner, _, text = ws.recv().partition(":")
    assert text == "hello" and owner in instances
    survivor, victim = owner, ("b" if owner == "a" else "a")
    victim_children = descendants(instances[victim].proc.pid)

    # 3. 1,000 GETs from 8 threads; the instance without the WebSocket is SIGKILLed after 300 of them.
    local = threading.local()
    sessions: list[requests.Session] = []  # one keep-alive session per thread (Session is not thread-safe)
    killed_at: list[float] = []

    def fetch(i: int) -> tuple[int, int, str | None, float, float]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)
        t0 = time.monotonic()
        try:
            r = session.get(base + "/who.py?i=%d" % i, timeout=15)
            name = r.json()["name"] if r.status_code == 200 else None
            return i, r.status_code, name, t0, time.monotonic()
        except requests.RequestException as exc:
            return i, -1, repr(exc), t0, time.monotonic()

    results = []
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(fetch, i) for i in range(REQUESTS)]
        for future in concurrent.futures.as_completed(futures):
            results.append(future.result())
            if len(results) == KILL_AFTER:
                instances[victim].signal(signal.SIGKILL)
                killed_at.append(time.monotonic())
    instances[victim].proc.wait(10)
    for session in sessions:
        session.close()

    failures = [r for r in results if r[1] != 200]
    assert not failures, "%d of %d requests failed, e.g. %s" % (len(failures), REQUESTS, failures[:5])
    served = {name: sum(1 for r in results if r[2] == name) for name in instances}
    assert served["a"] > 0 and served["b"] > 0, served  # both were balanced before the kill
    after = [r for r in results if r[3] > killed_at[0]]  # sent after the kill
    assert after and all(r[2] == survivor for r in after), "requests reached the killed instance"

    # 4. The WebSocket on the survivor never noticed; a new session lands on the survivor too.
    ws.send("still here")
    assert ws.recv() == survivor + ":still here"
    ws.close()
    ws2 = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=10)
    ws2.send("again")
    assert ws2.recv() == survivor + ":again"
    ws2.close()

    # 5. The killed instance's forkserver and workers notice their parent is gone and exit.
    assert victim_children, "expected the killed Krait to have a forkserver and workers"
    try:
        wait_until(lambda: not [pid for pid in victim_children if alive(pid)], 10,
                   what="the killed instance's workers to exit")
    finally:
        for pid in [pid for pid in victim_children if alive(pid)]:
            os.kill(pid, signal.SIGKILL)  # only processes this test started (descendants of its Krait)
    print("\n[e2e] nginx test: served %s; %d sent after the kill, all by %s; %.1f s"
          % (served, len(after), survivor, time.monotonic() - started))
