# Shared helpers of the end-to-end tests that drive real third-party programs (Chromium, nginx).
#
# Strategy:
# - ensure_program() finds a program on PATH, or installs its Debian package with apt-get when it is
#   missing (running `apt-get update` once and retrying when the first install fails). Installs are
#   serialised by an flock on a file in the temp folder (several pytest processes may ask at once) and
#   remembered per session, so a second test asking for the same program costs nothing. Without apt-get
#   or without root the calling test is skipped with the reason.
# - Chromium is started headless with a fresh --user-data-dir and --remote-debugging-port=0; the port it
#   picked is read from the DevToolsActivePort file it writes there (or from its stderr line
#   "DevTools listening on ws://..."). CdpPage speaks the DevTools protocol over one WebSocket
#   (websocket-client): numbered commands, replies matched by id, events kept in a list.
# - Every process started here is stopped by its own PID (SIGTERM, then SIGKILL).

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

_installed: dict[str, str] = {}
_apt_updated = False
APT_TIMEOUT = 900.0
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://[^\s]+)")

# Flags from the machine notes: no sandbox (root), no GPU, and no background traffic to Google's hosts.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-dev-shm-usage", "--no-default-browser-check",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=APT_TIMEOUT, check=False)


def ensure_program(names: tuple[str, ...], package: str) -> str:
    """Return the path of the first of `names` on PATH, installing Debian `package` if none is there.

    Skips the calling test when the program is missing and cannot be installed (no apt-get, not root).
    """
    global _apt_updated
    key = package + ":" + ",".join(names)
    if key in _installed:
        return _installed[key]

    def find() -> str | None:
        for name in names:
            path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
            if path:
                return path
        return None

    path = find()
    if path is None:
        if shutil.which("apt-get") is None:
            pytest.skip("%s is missing and there is no apt-get to install %s" % (names[0], package))
        if os.geteuid() != 0:
            pytest.skip("%s is missing and installing %s needs root" % (names[0], package))
        lock_path = Path(tempfile.gettempdir()) / "krait-e2e-apt.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing right now
            try:
                path = find()
                if path is None:
                    started = time.monotonic()
                    result = _apt("install", "-y", package)
                    if result.returncode != 0 and not _apt_updated:
                        _apt_updated = True
                        _apt("update")
                        result = _apt("install", "-y", package)
                    path = find()
                    if path is None:
                        pytest.fail("apt-get install %s failed (exit %s):\n%s" % (
                            package, result.returncode, (result.stdout + result.stderr)[-3000:]))
                    print("\n[e2e] installed %s in %.1f s" % (package, time.monotonic() - started))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    _installed[key] = path
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    except ProcessLookupError:
        pass


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Call `predicate` until it returns something truthy; return that, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a page in the middle of a navigation, a port not open yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last error: %r)" % (timeout, what, last_error))


class Chromium:
    """A headless Chromium process with its DevTools HTTP endpoint on 127.0.0.1."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.profile = workdir / "chromium-profile"
        self.profile.mkdir(parents=True)
        self.err_path = workdir / "chromium.err"
        cmd = [binary, *CHROMIUM_FLAGS, "--user-data-dir=%s" % self.profile, "about:blank"]
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.port = wait_until(self._port, 30, what="Chromium's DevTools port (stderr: %s)" % self.err_path)

    def _port(self) -> int | None:
        if self.proc.poll() is not None:
            raise RuntimeError("chromium exited with %s:\n%s" % (self.proc.returncode, self.log()[-3000:]))
        active = self.profile / "DevToolsActivePort"
        if active.exists():
            first = active.read_text().split("\n", 1)[0].strip()
            if first.isdigit():
                return int(first)
        m = DEVTOOLS_LINE.search(self.log())
        return int(m.group(1).split(":")[2].split("/")[0]) if m else None

    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def targets(self) -> list[dict]:
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port, timeout=5) as resp:
            return json.loads(resp.read())

    def page(self) -> CdpPage:
        """Attach to the first page tab (the about:blank it was started with)."""
        target = wait_until(lambda: next((t for t in self.targets() if t.get("type") == "page"), None), 10,
                            what="a page target")
        return CdpPage(target["webSocketDebuggerUrl"])

    def new_page(self) -> CdpPage:
        """Open another tab (about:blank) and attach to it."""
        request = urllib.request.Request("http://127.0.0.1:%d/json/new?about:blank" % self.port, method="PUT")
        with urllib.request.urlopen(request, timeout=10) as resp:
            target = json.loads(resp.read())
        return CdpPage(target["webSocketDebuggerUrl"])

    def stop(self) -> None:
        stop_process(self.proc)


class CdpPage:
    """A minimal DevTools protocol client for one page target."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # test dependency: websocket-client

        # No Origin header: Chromium refuses DevTools clients with an Origin it was not told to allow.
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        """Run one command and return its result; raise RuntimeError on a protocol error."""
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError("%s failed: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
            if time.monotonic() > deadline:
                raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JavaScript expression in the page and return its value (JSON-able values only)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError("JavaScript error: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 15.0) -> None:
        """Load `url` and wait until the document has finished loading."""
        self.mark_page()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError("navigation to %s failed: %s" % (url, result["errorText"]))
        self.wait_for_new_page(timeout)

    def wait_for_new_page(self, timeout: float = 15.0) -> None:
        """Wait until the page marked by navigate()/mark_page() is replaced by a fully loaded one."""
        wait_until(lambda: self.evaluate("!window.__krait_old_page && document.readyState === 'complete'"),
                   timeout, what="the next page to load")

    def mark_page(self) -> None:
        """Tag the current document so that wait_for_new_page() sees when it has been replaced."""
        self.evaluate("window.__krait_old_page = true")

    def close(self) -> None:
        try:
            self.ws.close()
        except OSError:
            pass
