"""Large request bodies and responses (docs/scripts.md "Large request bodies", "Large responses";
docs/configuration.md): spooled uploads, the body and send paces, streamed and file responses, and a
template whose compilation takes longer than --timeout."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time

import pytest
import requests

from tests.helpers import read_all, wait_for
from tests.idle_clients import rss_kib

MiB = 1024 * 1024
INIT = ('import krait\nfrom krait.config import Route\n'
        'krait.config.routes = [Route("POST", regex=r"^/.*$"), Route()]\n')

SITE = {
    ".py/init.py": INIT,
    # What a spooled body looks like from the script: its file, read in pieces, and `body` read once.
    "upload.py": (
        "import hashlib\n"
        "f = krait.request.body_file\n"
        "digest = hashlib.sha256(f.read()).hexdigest()\n"
        "name = getattr(f, 'name', '')\n"
        "f.close()\n"
        "krait.response = krait.Response('HTTP/1.1', 200, [('X-Spool', str(name))],\n"
        "    '%d %s' % (len(krait.request.body), digest))\n"
    ),
    "form.py": (
        "parts = krait.request.get_multipart_form() or []\n"
        "fields = krait.request.get_post_form() if not parts else {}\n"
        "krait.response = krait.Response('HTTP/1.1', 200, [], ' '.join(\n"
        "    ['%s=%s' % (p.name, __import__('hashlib').sha256(p.data).hexdigest()[:16]) for p in parts]\n"
        "    + ['%s:%d' % (k, len(v)) for k, v in fields.items()]))\n"
    ),
    "gen.py": (
        "n = int(krait.request.query.get('n', '4'))\n"
        "def pieces():\n"
        "    open(krait.get_full_path('ran.flag'), 'w').close()\n"
        "    for i in range(n):\n"
        "        yield ('%08d' % i) * 65536\n"  # 512 KiB of text each
        "krait.response = krait.Response('HTTP/1.1', 200, [('Content-Type', 'text/plain')], pieces())\n"
    ),
    "big.py": "krait.response = krait.Response('HTTP/1.1', 200, [], bytes(range(256)) * (12 * 4096))\n",  # 12 MiB
    "fails.py": (
        "def pieces():\n"
        "    yield 'a' * 300000\n"
        "    raise ValueError('broken half-way')\n"
        "krait.response = krait.Response('HTTP/1.1', 200, [], pieces())\n"
    ),
    "stalls.py": (
        "import time\n"
        "def pieces():\n"
        "    yield 'first piece\\n'\n"
        "    time.sleep(30)\n"
        "    yield 'never'\n"
        "krait.response = krait.Response('HTTP/1.1', 200, [], pieces())\n"
    ),
    "file.py": "krait.response = krait.ResponseFile('.private/export.bin', content_type='application/x-export')\n",
    "nofile.py": "krait.response = krait.ResponseFile('.private/missing.bin')\n",
    ".private/export.bin": bytes(range(256)) * 12000,
    "hello.txt": "hello\n",
    "drip.py": (
        "import time\n"
        "def pieces():\n"
        "    for i in range(6):\n"
        "        time.sleep(0.5)\n"
        "        yield 'x' * 100\n"
        "krait.response = krait.Response('HTTP/1.1', 200, [], pieces())\n"
    ),
}


def _expected_gen(n: int) -> bytes:
    return b"".join(("%08d" % i).encode() * 65536 for i in range(n))


@pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)
def test_a_large_upload_is_spooled_to_a_file_the_script_reads_and_deleted_after(krait_server, make_site, tmp_path):
    spool = tmp_path / "tmp"
    spool.mkdir()
    srv = krait_server(make_site(SITE), "--max-body-size", str(64 * MiB), env={"TMPDIR": str(spool)})
    data = os.urandom(5 * MiB)
    r = requests.post(srv.url + "/upload.py", data=data, timeout=30)
    assert r.status_code == 200
    assert r.text == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
    name = r.headers["X-Spool"]
    assert name.startswith(str(spool)), name  # a real file in the server's spool folder, not memory
    assert wait_for(lambda: not os.path.exists(name), 5)  # deleted once answered (just after it is sent)
    # A small body stays in memory: the script's body_file is no file.
    r = requests.post(srv.url + "/upload.py", data=b"small", timeout=10)
    assert r.text == "5 %s" % hashlib.sha256(b"small").hexdigest() and r.headers["X-Spool"] == ""
    # Chunked uploads (no Content-Length) move to a file once they grow past the threshold.
    r = requests.post(srv.url + "/upload.py", data=iter([data[:MiB], data[MiB:]]), timeout=30)
    assert r.text == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
    assert r.headers["X-Spool"].startswith(str(spool))
    assert wait_for(lambda: not any(spool.rglob("*.body")), 5)
    # A chunked upload that breaks off with a bad chunk line past the threshold: 400, and its spool file
    # goes too.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"POST /upload.py HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n" % (2 * MiB) + data[:2 * MiB] + b"\r\nnot-hex\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")
    assert not any(spool.rglob("*.body"))


def test_multipart_and_urlencoded_forms_work_on_spooled_bodies(krait_server, make_site):
    srv = krait_server(make_site(SITE), "--max-body-size", str(64 * MiB))
    blob = os.urandom(3 * MiB)
    r = requests.post(srv.url + "/form.py", files={"file": ("a.bin", blob)}, data={"note": "hi"}, timeout=30)
    assert r.status_code == 200
    assert sorted(r.text.split()) == ["file=" + hashlib.sha256(blob).hexdigest()[:16],
                                      "note=" + hashlib.sha256(b"hi").hexdigest()[:16]]
    r = requests.post(srv.url + "/form.py", data={"text": "x" * (2 * MiB)}, timeout=30)
    assert r.text == "text:%d" % (2 * MiB)


def _stalled_upload(srv, sent: int, length: int) -> socket.socket:
    s = srv.connect(timeout=60)
    s.sendall(b"POST /upload.py HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length)
    s.sendall(b"z" * sent)
    return s


def test_a_burst_then_silence_buys_no_time_the_body_is_cut_after_one_window(krait_server, make_site):
    # 4 MiB at once at --min-body-rate 1024 used to buy over an hour; the quota gives one 10 s window.
    srv = krait_server(make_site(SITE), "--max-body-size", str(64 * MiB))
    s = _stalled_upload(srv, 4 * MiB, 16 * MiB)
    started = time.monotonic()
    answer = read_all(s)
    waited = time.monotonic() - started
    s.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert waited < 25, waited
    assert requests.get(srv.url + "/hello.txt", timeout=10).text == "hello\n"


@pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)
def test_a_streamed_generator_body_is_chunked_and_head_does_not_run_it(krait_server, make_site, tmp_path):
    root = make_site(SITE)
    srv = krait_server(root)
    r = requests.head(srv.url + "/gen.py?n=3", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain"
    assert not (root / "ran.flag").exists()  # the generator never ran
    r = requests.get(srv.url + "/gen.py?n=6", timeout=30)
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.headers
    assert r.content == _expected_gen(6)
    assert (root / "ran.flag").exists()
    # HTTP/1.0 has no chunked framing: the body ends with the connection.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
    conn.request("GET", "/gen.py?n=2")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == _expected_gen(2)
    conn.close()


def test_a_large_bytes_body_streams_with_its_length(krait_server, make_site):
    srv = krait_server(make_site(SITE))
    r = requests.get(srv.url + "/big.py", timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(12 * MiB)
    assert r.content == bytes(range(256)) * (12 * 4096)
    head = requests.head(srv.url + "/big.py", timeout=10)
    assert head.headers["Content-Length"] == str(12 * MiB) and head.content == b""
    # Keep-alive goes on after a streamed response.
    with requests.Session() as session:
        assert len(session.get(srv.url + "/big.py", timeout=30).content) == 12 * MiB
        assert session.get(srv.url + "/hello.txt", timeout=10).text == "hello\n"


def test_a_generator_failing_mid_way_cuts_the_connection_and_is_logged(krait_server, make_site):
    srv = krait_server(make_site(SITE))
    s = srv.connect(timeout=20)
    s.sendall(b"GET /fails.py HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in data.lower()
    assert not data.endswith(b"0\r\n\r\n")  # no last chunk: the client knows the body is incomplete
    deadline = time.monotonic() + 10
    while "broken half-way" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ValueError: broken half-way" in srv.log() and "fails.py" in srv.log()
    assert requests.get(srv.url + "/gen.py?n=1", timeout=10).content == _expected_gen(1)


def test_a_piece_slower_than_the_timeout_cuts_the_response(krait_server, make_site):
    srv = krait_server(make_site(SITE), "--timeout", "2", "--workers", "1")
    s = srv.connect(timeout=20)
    s.sendall(b"GET /stalls.py HTTP/1.1\r\nHost: x\r\n\r\n")
    started = time.monotonic()
    data = read_all(s)
    s.close()
    assert b"first piece" in data and b"never" not in data
    assert time.monotonic() - started < 15
    assert requests.get(srv.url + "/gen.py?n=1", timeout=20).content == _expected_gen(1)  # a fresh worker


def test_a_client_that_leaves_mid_stream_frees_the_worker(krait_server, make_site):
    srv = krait_server(make_site(SITE), "--workers", "1")
    s = srv.connect(timeout=20)
    s.sendall(b"GET /gen.py?n=100000 HTTP/1.1\r\nHost: x\r\n\r\n")  # about 50 GB: it never ends by itself
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset on close
    s.close()
    r = requests.get(srv.url + "/gen.py?n=1", timeout=30)  # the only worker is free again
    assert r.content == _expected_gen(1)
    deadline = time.monotonic() + 10
    while "given up" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "a streamed response of gen.py was given up" in srv.log()


def test_a_client_reading_too_slowly_is_dropped_by_the_total_send_deadline(krait_server, make_site):
    # Each read makes progress, so no single send ever times out; the pace still ends it.
    srv = krait_server(make_site(SITE), "--send-timeout", "2", "--min-send-rate", str(4 * MiB))
    s = srv.connect(timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big.py HTTP/1.1\r\nHost: x\r\n\r\n")
    started = time.monotonic()
    got = 0
    while True:
        try:
            chunk = s.recv(16384 if time.monotonic() - started < 5 else 1 << 20)
        except ConnectionError:
            break
        if not chunk:
            break
        got += len(chunk)
        if time.monotonic() - started < 5:
            time.sleep(0.05)  # about 320 KiB/s, far below 4 MiB/s: dropped after a window or two (2-4 s)
        # then what the buffers still hold is read at once; a connection not dropped would give all 12 MiB
    s.close()
    assert got < 12 * MiB
    assert requests.get(srv.url + "/hello.txt", timeout=10).text == "hello\n"


def test_a_client_that_never_reads_a_large_static_file_is_let_go_after_one_send_timeout(krait_server, make_site,
                                                                                          tmp_path):
    # sendfile(2) on a blocking socket started its SO_SNDTIMEO wait again whenever a few bytes got in: such
    # a client held its thread and two descriptors about three send timeouts (90 s by default).
    size = 48 * MiB
    site = make_site({"hello.txt": "hello\n"})
    with open(site / "big.bin", "wb") as f:
        f.write(os.urandom(MiB) * 48)
    srv = krait_server(site, "--send-timeout", "3")
    s = srv.connect(timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(7.5)  # one send timeout after the buffers filled, with room to spare; three would be 9 s
    got = 0
    while True:  # read now, at full speed: a connection still held would deliver the whole file
        try:
            chunk = s.recv(1 << 20)
        except ConnectionError:
            break
        if not chunk:
            break
        got += len(chunk)
    s.close()
    assert got < size
    assert requests.get(srv.url + "/hello.txt", timeout=10).text == "hello\n"


@pytest.mark.portable  # run again on portable paths (tests/server/test_portable.py)
def test_response_file_is_sent_by_the_server(krait_server, make_site):
    srv = krait_server(make_site(SITE))
    r = requests.get(srv.url + "/file.py", timeout=20)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-export"
    assert r.headers["Content-Length"] == str(256 * 12000)
    assert "Content-Encoding" not in r.headers
    assert r.content == bytes(range(256)) * 12000
    head = requests.head(srv.url + "/file.py", timeout=10)
    assert head.headers["Content-Length"] == str(256 * 12000) and head.content == b""
    r = requests.get(srv.url + "/nofile.py", timeout=10)
    assert r.status_code == 500
    assert "FileNotFoundError: ResponseFile: no such file" in srv.log()


def test_a_template_compiling_longer_than_the_timeout_is_served(krait_server, make_site):
    # About 2 s to compile (more under load) against a 1 s --timeout: compilation does not count.
    page = "".join("<p>@(%d + 1)@</p>\n" % i for i in range(20000))
    srv = krait_server(make_site({**SITE, "huge.html": page}), "--timeout", "1", "--workers", "1")
    r = requests.get(srv.url + "/huge.html", timeout=120)
    assert r.status_code == 200, srv.log()[-2000:]
    assert "<p>20000</p>" in r.text
    assert requests.get(srv.url + "/huge.html", timeout=30).status_code == 200  # cached now


def test_streams_queued_behind_each_other_on_one_worker_all_complete(krait_server, make_site):
    # The later jobs wait in the queue and their answers are read by the worker's reader thread, which
    # hands the pipe to each stream's own request thread.
    from concurrent.futures import ThreadPoolExecutor

    srv = krait_server(make_site(SITE), "--workers", "1")
    paths = ["/gen.py?n=3", "/big.py", "/gen.py?n=2", "/upload.py", "/gen.py?n=1"] * 2
    with ThreadPoolExecutor(len(paths)) as pool:
        bodies = list(pool.map(lambda p: requests.get(srv.url + p, timeout=60).content, paths))
    for path, body in zip(paths, bodies):
        if path.startswith("/gen.py"):
            assert body == _expected_gen(int(path[-1])), path
        elif path == "/big.py":
            assert body == bytes(range(256)) * (12 * 4096)
        else:
            assert body.startswith(b"0 ")


def test_a_slowly_produced_stream_is_not_cut_while_the_client_keeps_up(krait_server, make_site):
    # 100 bytes every 0.5 s for 3 s: far below --min-send-rate, but the wait is the worker's (--timeout
    # counts it), not the client's, who takes every piece at once.
    srv = krait_server(make_site(SITE), "--send-timeout", "2")
    r = requests.get(srv.url + "/drip.py", timeout=20)
    assert r.status_code == 200 and r.content == b"x" * 600


def test_a_chunked_body_of_tiny_chunks_costs_its_bytes_not_an_object_each(krait_server, make_site):
    # 400,000 chunks of 2 bytes (800 KB, under the spool threshold, so held in memory): a list of the
    # pieces cost about 22 MB of the server's memory.
    srv = krait_server(make_site(SITE), "--workers", "1")
    payload = b"ab" * 400_000
    request = (b"POST /upload.py HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               + b"2\r\nab\r\n" * 400_000 + b"0\r\n\r\n")
    before = peak = rss_kib(srv.proc.pid)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as sock:
        sock.sendall(request)
        sock.settimeout(0.02)
        reply = b""
        while not reply.endswith(hashlib.sha256(payload).hexdigest().encode()):
            peak = max(peak, rss_kib(srv.proc.pid))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert (peak - before) * 1024 < 10_000_000, "the server grew by %d KiB" % (peak - before)
