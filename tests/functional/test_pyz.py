"""krait.pyz (scripts/build-pyz): one file that serves a site with nothing installed but Python 3.11+.

Strategy: the real script builds the archive into a temporary folder (from PyPI, or offline from
the ply of this test environment). The server is then started as `python -I -S krait.pyz`: -I drops
the environment (PYTHONPATH), the user's site-packages and the working directory from sys.path, -S
the site-packages, so Krait and ply can only come from the archive (checked first: this interpreter
cannot import them that way). It serves a copy of examples/demo with two worker processes, which
must import Krait from the archive too: static, script, template and guestbook pages, a template
the test adds, and a WebSocket round trip. A second run uses `python -S krait.pyz` from a folder
holding a decoy `krait` package: the fork server that preloads the worker modules must take them
from the archive, not from the decoy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipapp
import zipfile
from pathlib import Path

import pytest
import requests
import websocket

from tests.helpers import READY, ROOT

DEMO = ROOT / "examples" / "demo"


def build(output: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-pyz"), "--output", str(output)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pyz") / "krait.pyz"
    r = build(path)
    assert str(path) in r.stdout and ("%d bytes" % path.stat().st_size) in r.stdout, r.stdout
    return path


def clean_env() -> dict:
    """The environment without Python's own variables (PYTHONPATH would put the checkout on sys.path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and not k.startswith("COV")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Pyz:
    """`python FLAGS krait.pyz SITE --port 0 --workers 2` in cwd, stopped by PID."""

    def __init__(self, pyz: Path, site: Path, cwd: Path, flags: list[str]) -> None:
        self.out = cwd / "pyz.out"
        self.err = cwd / "pyz.err"
        cmd = [sys.executable, *flags, str(pyz), str(site), "--port", "0", "--workers", "2"]
        with open(self.out, "wb") as fo, open(self.err, "wb") as fe:
            self.proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, cwd=cwd,
                                         env=clean_env())
        deadline = time.monotonic() + 30
        while True:
            m = READY.search(self.out.read_text(errors="replace"))
            if m:
                self.port = int(m.group(3))
                self.url = "http://127.0.0.1:%d" % self.port
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("krait.pyz did not start (exit %s):\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.05)

    def log(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a graceful stop
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def copy_demo(tmp_path: Path) -> Path:
    site = tmp_path / "demo"
    shutil.copytree(DEMO, site, ignore=shutil.ignore_patterns("*.sqlite3*", "__pycache__"))
    return site


def test_archive_contents(pyz, tmp_path):
    assert zipapp.get_interpreter(str(pyz)) == "/usr/bin/env python3"
    assert os.access(pyz, os.X_OK)
    assert pyz.stat().st_size < 400_000
    with zipfile.ZipFile(pyz) as z:
        names = z.namelist()
        main = z.read("__main__.py").decode()
        licence = z.read("ply/LICENSE").decode()
        assert z.testzip() is None
    assert "__main__.py" in names and "krait/__init__.py" in names and "krait/__main__.py" in names
    assert "ply/__init__.py" in names and "ply/lex.py" in names and "ply/yacc.py" in names
    expected = sorted("krait/" + p.relative_to(ROOT / "krait").as_posix() for p in (ROOT / "krait").rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert sorted(n for n in names if n.startswith("krait/")) == expected
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/")]
    assert [n for n in names if not n.startswith(("krait/", "ply/"))] == ["__main__.py"]
    # The archive's entry point runs the package (`python -m krait`), naming no module inside it.
    assert 'runpy.run_module("krait", run_name="__main__", alter_sys=True)' in main
    assert "from krait" not in main and "import krait" not in main
    # ply's BSD licence, as its sources state it.
    assert licence.startswith("Copyright (C) 2001-2018\nDavid M. Beazley (Dabeaz LLC)\nAll rights reserved.\n")
    assert "Redistribution and use in source and binary forms" in licence
    assert licence.rstrip().endswith("EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.")
    # Built again, the archive is the same, byte for byte.
    again = tmp_path / "again.pyz"
    build(again)
    assert again.read_bytes() == pyz.read_bytes()


def test_isolated_python_cannot_import_krait_or_ply(tmp_path):
    for module in ("ply", "krait"):
        r = subprocess.run([sys.executable, "-I", "-S", "-c", "import " + module], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "No module named" in r.stderr, (module, r.stderr)


def test_pyz_serves_the_demo_without_site_packages(pyz, tmp_path):
    site = copy_demo(tmp_path)
    (site / "from-zip.html").write_text("@{ answer = 6 * 7 }<p>answer @answer@</p>\n")
    run = tmp_path / "run"
    run.mkdir()
    server = Pyz(pyz, site, run, ["-I", "-S"])
    try:
        s = requests.Session()
        # A static file.
        r = s.get(server.url + "/css/site.css", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/css")
        assert r.content == (site / "css" / "site.css").read_bytes()
        # Scripts rendering Pympl templates (compiled with ply from the archive), with a regex route.
        r = s.get(server.url + "/", timeout=10)
        assert r.status_code == 200 and "Krait Demo" in r.text, r.text[:500]
        r = s.get(server.url + "/hello/Ana", timeout=10)
        assert r.status_code == 200 and "Hello, Ana!" in r.text, r.text[:500]
        # The site's own modules (SITE/.py/store.py) and the standard library's sqlite3.
        r = s.get(server.url + "/guestbook", timeout=10)
        assert r.status_code == 200 and "Leave a message below." in r.text, r.text[:500]
        # A script that answers by itself: the request echo.
        r = s.put(server.url + "/request?from=pyz", data=b"x", timeout=10)
        assert r.status_code == 200 and "<td>PUT</td>" in r.text, r.text[:500]
        assert "<th>from</th><td>pyz</td>" in r.text, r.text
        # A template served by itself (one this test adds to the copy of the demo).
        r = s.get(server.url + "/from-zip.html", timeout=10)
        assert r.status_code == 200 and r.text == "<p>answer 42</p>\n", r.text
        # A WebSocket round trip with the demo's chat controller.
        ws = websocket.create_connection("ws://127.0.0.1:%d/chat/socket?name=zip" % server.port, timeout=10,
                                         subprotocols=["chat"])
        try:
            assert ws.getsubprotocol() == "chat"
            assert ws.recv() == "welcome, zip"
            assert ws.recv() == "* zip joined"
            ws.send("hello from a zip")
            assert ws.recv() == "zip: hello from a zip"  # the room delivers it to everyone, us too
            ws.send_binary(b"\x00\x01\xfe\xff")
            assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00\x01\xfe\xff")
            ws.send("/quit")
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
            assert data == b"\x03\xe8bye"  # 1000, "bye"
        finally:
            ws.close()
    finally:
        code = server.stop()
    log = server.log()
    assert code == 0, log
    assert "Traceback" not in log, log


def test_fork_server_imports_from_the_archive(pyz, tmp_path):
    # Without -I, the fork server starts with the working directory first on sys.path: Krait must keep it
    # from preloading this decoy (krait/pool/process.py).
    site = copy_demo(tmp_path)
    run = tmp_path / "run"
    (run / "krait").mkdir(parents=True)
    (run / "krait" / "__init__.py").write_text("")  # imports fine; the workers would find no module in it
    server = Pyz(pyz, site, run, ["-S"])
    try:
        r = requests.get(server.url + "/hello/Bo", timeout=10)
        assert r.status_code == 200 and "Hello, Bo!" in r.text, (r.text[:500], server.log())
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert "Traceback" not in server.log(), server.log()
