"""wss:// with reads and writes overlapping on one TLS socket (the server serialises SSL I/O)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading

import pytest
import websocket

from tests.helpers import write_site

SITE = {
    ".py/init.py": "import krait\n"
                   "krait.config.routes = [krait.config.Route('WEBSOCKET', url='/ws'), krait.config.Route()]\n",
    ".py/busy.py": '''
import time
from krait.websockets import WebsocketsCtrlBase

class Busy(WebsocketsCtrlBase):
    """Echoes every message and, meanwhile, pushes a tick every millisecond from its own thread."""

    def __init__(self):
        super().__init__(use_in_message_queue=False)

    def on_in_message(self, message):
        self.push_out_message("echo:" + message)

    def on_thread_start(self):
        while not self.should_stop():
            self.push_out_message("tick")
            time.sleep(0.001)
''',
    "ws.py": "from busy import Busy\nkrait.websockets.response = krait.websockets.WebsocketsResponse(Busy())\n",
}


@pytest.fixture
def cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


def test_wss_full_duplex_under_load(tmp_path, cert, krait_server):
    crt, key = cert
    srv = krait_server(write_site(tmp_path / "site", SITE), "--certfile", str(crt), "--keyfile", str(key))
    sockets = []
    for _ in range(4):
        ws = websocket.create_connection("wss://127.0.0.1:%d/ws" % srv.port, timeout=20,
                                         sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(crt)})
        sockets.append(ws)

    def exchange(ws, results):
        echoes = 0
        for i in range(300):
            ws.send("m%d" % i)
        while echoes < 300:
            if ws.recv().startswith("echo:"):
                echoes += 1
        results.append(echoes)

    results: list[int] = []
    threads = [threading.Thread(target=exchange, args=(ws, results)) for ws in sockets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [300] * 4
    for ws in sockets:
        ws.close()
    assert srv.proc.poll() is None
    r = websocket.create_connection("wss://127.0.0.1:%d/ws" % srv.port, timeout=20,
                                    sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(crt)})
    r.send("again")
    while not r.recv().startswith("echo:"):
        pass
    r.close()
