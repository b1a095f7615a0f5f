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


def test_a_tls_client_closed_for_not_reading_gets_whole_frames_then_the_close(tmp_path, cert, krait_server):
    # Over TLS a frame OpenSSL took part of must be offered whole again: it goes out before the Close.
    import socket
    import struct
    import time

    from tests.functional.test_ws_conformance import BINARY, CLOSE, SITE_FILES, TEXT, frame, upgrade_request

    crt, key = cert
    srv = krait_server(write_site(tmp_path / "site", SITE_FILES), "--certfile", str(crt), "--keyfile", str(key))
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", srv.port))
    with ssl.create_default_context(cafile=str(crt)).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(upgrade_request("/ws/cmd", "dGhlIHNhbXBsZSBub25jZQ=="))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        del buf[:buf.index(b"\r\n\r\n") + 4]
        s.sendall(frame(TEXT, b"burst 200000 100"))  # 20 MB in small messages, past WS_MAX_UNSENT
        time.sleep(3)

        def take(n):
            while len(buf) < n:
                chunk = s.recv(262144)
                assert chunk, "the connection ended without a Close"
                buf.extend(chunk)
            out = bytes(buf[:n])
            del buf[:n]
            return out

        while True:
            b0, b1 = take(2)
            size = b1 & 0x7F
            payload = take(struct.unpack("!H", take(2))[0] if size == 126 else size)
            if b0 & 0x0F == CLOSE:
                break
            assert (b0 & 0x0F, payload) == (BINARY, b"b" * 100)
        assert payload == struct.pack("!H", 1008) + b"too slow"
