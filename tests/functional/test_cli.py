"""The krait command line: ready line, --version, --help and the start-up errors (docs/configuration.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.helpers import ROOT, write_site


def run_krait(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "krait", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_default_workers_are_one_per_cpu_krait_may_use():
    one = min(os.sched_getaffinity(0))
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    r = subprocess.run([sys.executable, "-m", "krait", "--help"], capture_output=True, text=True, timeout=60, env=env,
                       preexec_fn=lambda: os.sched_setaffinity(0, {one}))  # as under `taskset -c N`
    assert "one per CPU it may use) (default: 1)" in " ".join(r.stdout.split())


def test_version_and_help():
    from krait import __version__

    r = run_krait("--version")
    assert r.returncode == 0 and r.stdout.strip() == "Krait " + __version__
    r = run_krait("--help")
    assert r.returncode == 0
    for option in ("--host", "--port", "--workers", "--timeout", "--debug", "--max-body-size", "--access-log",
                   "--log-level", "--certfile", "--keyfile", "--processes", "--forwarded-allow-ips"):
        assert option in r.stdout


def test_missing_site_folder_exits_1(tmp_path):
    r = run_krait(str(tmp_path / "nope"), "--port", "0")
    assert r.returncode == 1
    assert "does not exist" in r.stderr and r.stderr.count("\n") <= 2


def test_busy_port_exits_1_before_running_site_code(tmp_path):
    marker = tmp_path / "init-ran"
    site = write_site(tmp_path / "site", {".py/init.py": "open(%r, 'w').close()\n" % str(marker)})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_krait(str(site), "--port", str(port))
    assert r.returncode == 1
    assert "cannot listen on 127.0.0.1:%d" % port in r.stderr
    assert not marker.exists()


def test_ready_line_names_the_real_port_and_sigterm_exits_0(tmp_path, krait_server):
    srv = krait_server(write_site(tmp_path / "site", {"index.html": "home"}))
    assert srv.port != 0
    assert srv.stdout().startswith("Krait ") and " serving " in srv.stdout()
    assert requests.get(srv.url + "/", timeout=10).text == "home"
    assert srv.stop() == 0


def test_python_dash_m_and_console_script_agree():
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["krait"] == "krait.server.cli:main"
    script = os.path.join(os.path.dirname(sys.executable), "krait")
    if not os.path.exists(script):
        pytest.skip("the krait console script is not installed next to this Python (scripts/test installs it)")
    r = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == run_krait("--version").stdout
