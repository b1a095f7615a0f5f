# Restart the workers when the site's own Python code changes (docs/deployment.md).
#
# Design: a daemon thread in the server process takes a fingerprint of SITE/.py (every file's path,
# mtime and size) once per interval; when it differs from the last one, it calls the restart callback,
# which starts a fresh generation of workers (re-running init.py) while the old ones finish their
# requests. Scripts and templates outside .py/ need no restart: workers re-check them on every use.

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("krait")

INTERVAL = 1.0  # seconds between scans; a site's .py folder is small


def fingerprint(folder: str) -> tuple:
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            entries.append((path, st.st_mtime_ns, st.st_size))
    entries.sort()
    return tuple(entries)


def watch(folder: str, restart: Callable[[], None], stop: threading.Event,
          interval: float = INTERVAL) -> threading.Thread:
    """Start the watcher thread; it ends when `stop` is set."""

    def loop() -> None:
        last = fingerprint(folder)
        while not stop.wait(interval):
            now = fingerprint(folder)
            if now != last:
                last = now
                log.info("%s changed: restarting the workers", folder)
                restart()

    thread = threading.Thread(target=loop, name="krait-reloader", daemon=True)
    thread.start()
    return thread
