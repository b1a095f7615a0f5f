"""The krait command line: ready line, --version, --help and the start-up errors (docs/configuration.md)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.helpers import READY, ROOT, needs_shared_port, needs_sighup, run_krait, wait_for, write_site


def test_version_and_help():
    from krait import __version__

    r = run_krait("--version")
    assert r.returncode == 0 and r.stdout.strip() == "Krait " + __version__
    r = run_krait("--help")
    assert r.returncode == 0
    for option in ("--host", "--port", "--workers", "--timeout", "--debug", "--max-body-size", "--access-log",
                   "--log-level", "--certfile", "--keyfile", "--processes", "--forwarded-allow-ips"):
        assert option in r.stdout
    help_text = " ".join(r.stdout.split())
    for shown in ("(default: 8080)", "(default: 127.0.0.1)", "(default: 30.0)", "(default: 16777216)"):
        assert shown in help_text


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
    assert srv.stdout().rstrip().endswith("/ (2 workers)")  # what tests.helpers.start_krait asks for
    assert requests.get(srv.url + "/", timeout=10).text == "home"
    assert srv.stop() == 0


@needs_sighup
def test_a_sighup_during_start_up_reloads_once_ready(tmp_path):
    # A `systemctl reload` while init.py still runs reloads once the server is ready (it killed Krait).
    site = write_site(tmp_path / "site", {".py/init.py": "import time\ntime.sleep(1.5)\n", "a.txt": "a"})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen([sys.executable, "-m", "krait", str(site), "--port", "0", "--workers", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          stdin=subprocess.DEVNULL) as proc:
        log: list[str] = []
        threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
        try:
            time.sleep(0.5)
            proc.send_signal(signal.SIGHUP)
            port = int(re.search(r":(\d+)/", proc.stdout.readline()).group(1))
            assert requests.get("http://127.0.0.1:%d/a.txt" % port, timeout=10).text == "a"
            assert wait_for(lambda: any("reloaded: generation" in line for line in log), 20), log
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=needs_shared_port)])
def test_a_stop_during_start_up_ends_krait_at_once_with_its_workers(tmp_path, processes):
    # SIGTERM while init.py still runs: nothing to finish, so Krait stops now (exit status 0), not when
    # init.py is done, and takes the workers it started with it.
    pids = tmp_path / "pids"
    site = write_site(tmp_path / "site", {
        ".py/init.py": "import os, time\nwith open(%r, 'a') as f:\n    f.write('%%d\\n' %% os.getpid())\n"
                       "time.sleep(60)\n" % str(pids),
    })
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen([sys.executable, "-m", "krait", str(site), "--port", "0", "--workers", "2",
                           "--processes", str(processes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, stdin=subprocess.DEVNULL) as proc:
        try:
            assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2 * processes, 20)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0 and time.monotonic() - started < 10
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "stopped while starting" in proc.stderr.read()
    workers = [int(pid) for pid in pids.read_text().split()]
    assert wait_for(lambda: not any(map(_alive, workers)), 10), "a worker still runs"


@needs_shared_port
def test_a_second_krait_with_processes_is_refused_while_the_first_still_starts(tmp_path):
    # Neither listens before init.py has run, and both bind with SO_REUSEPORT: without a claim on the
    # port the two would end up sharing it, each taking some of the other's connections.
    started = tmp_path / "started"
    site = write_site(tmp_path / "site", {
        ".py/init.py": "import time\nopen(%r, 'a').close()\ntime.sleep(3)\n" % str(started),
        "who.txt": "first",
    })
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen([sys.executable, "-m", "krait", str(site), "--port", str(port), "--workers", "1",
                           "--processes", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, stdin=subprocess.DEVNULL) as first:
        try:
            assert wait_for(started.exists, 20)
            second = run_krait(str(write_site(tmp_path / "other", {"who.txt": "second"})), "--port", str(port),
                               "--processes", "2")
            assert second.returncode == 1
            assert second.stderr == ("krait: error: cannot listen on 127.0.0.1:%d: another Krait with --processes "
                                     "is starting on that port\n" % port)
            assert " serving " in first.stdout.readline()
            assert requests.get("http://127.0.0.1:%d/who.txt" % port, timeout=10).text == "first"
            # Once it serves, the claim is gone and the port itself refuses a second Krait.
            second = run_krait(str(tmp_path / "other"), "--port", str(port), "--processes", "2")
            assert second.returncode == 1 and "cannot listen on 127.0.0.1:%d: Address already in use" % port in \
                second.stderr, second.stderr
            first.send_signal(signal.SIGTERM)
            assert first.wait(30) == 0
        finally:
            if first.poll() is None:
                first.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_python_dash_m_and_console_script_agree():
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["krait"] == "krait.server.cli:main"
    script = os.path.join(os.path.dirname(sys.executable), "krait")
    if not os.path.exists(script):
        pytest.skip("the krait console script is not installed next to this Python (scripts/test installs it)")
    r = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == run_krait("--version").stdout


@pytest.mark.parametrize("args, message", [
    (["--port", "99999"], "argument --port/-p: expected a whole number from 0 to 65535, not '99999'"),
    (["--port", "eighty"], "argument --port/-p: expected a whole number from 0 to 65535, not 'eighty'"),
    (["--workers", "0"], "argument --workers: expected a whole number of at least 1, not '0'"),
    (["--timeout", "-1"], "argument --timeout: expected a number above 0, not '-1'"),
    (["--timeout", "nan"], "argument --timeout: expected a number above 0, not 'nan'"),
    (["--keepalive-timeout", "inf"], "argument --keepalive-timeout: expected a number above 0, not 'inf'"),
    (["--max-body-size", "-5"], "argument --max-body-size: expected a whole number of at least 0, not '-5'"),
    (["--min-body-rate", "0"], "argument --min-body-rate: expected a whole number of at least 1, not '0'"),
    (["--access-log", "/no/such/folder/access.log"], "cannot open the access log '/no/such/folder/access.log'"),
    (["--keyfile", "key.pem"], "--keyfile needs --certfile"),
    (["--forwarded-allow-ips", "127.0.0.1,proxy.lan"],
     "--forwarded-allow-ips: expected addresses or networks (10.0.0.0/8) or '*', not 'proxy.lan'"),
])
def test_an_invalid_option_value_is_one_line_and_status_2(tmp_path, args, message):
    r = run_krait(str(tmp_path), *args)
    assert r.returncode == 2
    assert r.stderr.startswith("krait: error: " + message) and r.stderr.count("\n") == 1, r.stderr


def test_processes_are_refused_in_one_line_where_a_port_cannot_be_shared(tmp_path):
    # Portable paths stand for Windows; macOS is refused the same way (krait/portable.py SHARES_PORT).
    marker = tmp_path / "init-ran"
    site = write_site(tmp_path / "site", {".py/init.py": "open(%r, 'w').close()\n" % str(marker)})
    r = run_krait(str(site), "--port", "0", "--processes", "2", env={"KRAIT_PORTABLE": "1"})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("krait: error: --processes is refused with KRAIT_PORTABLE=1: only Linux spreads the "
                        "connections of one port across processes (SO_REUSEPORT); run one process\n")
    assert not marker.exists()


def _installed_krait_env() -> dict:
    """The environment of a user who installed this Krait: no PYTHONPATH leading to it (it would hide
    what the working directory does to the import path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", "import krait; print(krait.__file__)"], capture_output=True, text=True,
                       env=env, cwd="/", timeout=60)
    if r.stdout.strip() != str(ROOT / "krait" / "__init__.py"):
        pytest.skip("this Krait is not installed for %s (scripts/test installs it)" % sys.executable)
    return env


def _serve_from(cwd, command: list[str], site, env: dict) -> tuple[str, str]:
    """Start Krait from `cwd`, fetch a script and a static page, stop it: (the pages, its stderr)."""
    out, err = cwd / "krait.out", cwd / "krait.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(command + [str(site), "--port", "0", "--workers", "1"], stdout=fo, stderr=fe,
                                stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 60
        while not READY.search(out.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        m = READY.search(out.read_text())
        assert m, err.read_text()
        url = "http://127.0.0.1:%s" % m.group(3)
        pages = requests.get(url + "/hi", timeout=10).text + " " + requests.get(url + "/", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(30)
    return pages, err.read_text()


@pytest.mark.portable  # spawned workers import the same Krait (krait/pool/process.py)
@pytest.mark.parametrize("holding", ["an empty krait folder", "a clone of this repository"])
def test_krait_runs_from_a_folder_holding_a_folder_named_krait(tmp_path, holding):
    env = _installed_krait_env()
    # The page also shows that site code sees the server's environment, not the one its fork server
    # was started with (krait/pool/process.py).
    site = write_site(tmp_path / "site", {"hi.py": "import krait, os\nkrait.response = krait.Response("
                                          "'HTTP/1.1', 200, [], 'dynamic %s' % os.environ.get('PYTHONSAFEPATH'))\n",
                                          "index.html": "static"})
    cwd = tmp_path / "here"
    (cwd / "krait").mkdir(parents=True)
    if holding != "an empty krait folder":
        shutil.copytree(ROOT / "krait", cwd / "krait" / "krait", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "README.md", cwd / "krait")
    commands = [[sys.executable, "-m", "krait"]]
    script = os.path.join(os.path.dirname(sys.executable), "krait")
    if os.path.exists(script):
        commands.append([script])
    for command in commands:
        pages, log = _serve_from(cwd, command, site, env)
        assert pages == "dynamic %s static" % env.get("PYTHONSAFEPATH"), (command, log)
        assert "Traceback" not in log, (command, log)


def test_the_default_worker_count_is_the_cpus_this_process_may_use(tmp_path):
    cpu = min(os.sched_getaffinity(0))
    out = tmp_path / "out"
    with open(out, "wb") as fo:
        proc = subprocess.Popen([sys.executable, "-m", "krait", str(write_site(tmp_path / "site", {"a": "a"})),
                                 "--port", "0"], stdout=fo, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))  # as under taskset -c CPU
    try:
        deadline = time.monotonic() + 60
        while not READY.search(out.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
    assert re.search(r" serving .* \(1 worker\)$", out.read_text().strip()), out.read_text()
