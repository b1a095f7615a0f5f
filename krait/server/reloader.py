# Reload the site when its own Python code changes (docs/deployment.md).
#
# Design: a daemon thread in the server process takes a fingerprint of SITE/.py (every file's path,
# mtime and size) once per interval; when it differs from the last one, it calls the reload callback
# (krait/server/lifecycle.py) in a thread of its own, which starts a fresh generation of workers
# (re-running init.py) while the old ones serve on; the next edit, even while that init.py still runs,
# asks for another. A scan that fails (a folder that cannot be read) is no edit:
# it is skipped, and the next one compares with the last good one. A missing SITE/.py is an empty one.
# The first fingerprint is taken before init.py runs, so an edit saved while Krait starts reloads too.
# Scripts and templates outside .py/ need no reload: workers re-check them on every use.
# Files that change while the site runs without being its code are left out (docs/deployment.md lists
# them): compiled files, editors' swap, lock and backup files, logs and databases, which a site may keep
# under .py/ because it is never served; a reload on each of their writes would replace the workers
# endlessly. Symbolic links to folders are followed, each folder scanned once (a link cycle ends).

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("krait")

INTERVAL = 1.0  # seconds between scans; a site's .py folder is small

_SKIPPED_FOLDERS = frozenset(("__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache"))
_SKIPPED_SUFFIXES = (".pyc", ".pyo", "~", ".swp", ".swo", ".swx", ".tmp", "___jb_tmp___", "___jb_old___",
                     ".log", ".db", ".sqlite", ".sqlite3", "-journal", "-wal", "-shm")
_SKIPPED_PREFIXES = (".#", ".goutputstream-")  # emacs's lock links, gedit's temporary copies


def is_code(name: str) -> bool:
    """Whether a change of the file `name` (no folder) under .py/ is an edit of the site's code."""
    return not (name.endswith(_SKIPPED_SUFFIXES) or name.startswith(_SKIPPED_PREFIXES) or name == "4913"
                or (name.startswith("#") and name.endswith("#")))  # vim's write test, emacs's auto-save


def fingerprint(folder: str) -> tuple | None:
    """(path, mtime, size) of every file under `folder`, sorted; () without the folder; None when the
    scan failed."""
    if not os.path.isdir(folder):
        return ()
    failed: list[OSError] = []
    entries = []
    scanned: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, onerror=failed.append, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) in scanned:  # reached again through a link
            dirnames[:] = []
            continue
        scanned.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_FOLDERS]
        for name in filenames:
            if not is_code(name):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:  # deleted since the folder was listed: gone
                continue
            except OSError:
                return None
            entries.append((path, st.st_mtime_ns, st.st_size))
    if failed:
        return None
    entries.sort()
    return tuple(entries)


def watch(folder: str, reload: Callable[[], None], stop: threading.Event,
          interval: float = INTERVAL, baseline: tuple | None = None) -> threading.Thread:
    """Start the watcher thread; it ends when `stop` is set. `baseline`: the fingerprint taken before the
    site was loaded (an edit made while Krait started is then one), else one taken now."""

    def loop() -> None:
        last = baseline if baseline is not None else fingerprint(folder)
        while not stop.wait(interval):
            now = fingerprint(folder)
            if now is None or now == last:
                continue
            if last is not None:
                log.info("%s changed: reloading", folder)
                threading.Thread(target=run, name="krait-reload", daemon=True).start()
            last = now

    def run() -> None:  # in a thread of its own: the watcher goes on looking while init.py runs (or hangs)
        try:
            reload()
        except Exception:  # reload() logs its own failures
            log.exception("reload failed")

    thread = threading.Thread(target=loop, name="krait-reloader", daemon=True)
    thread.start()
    return thread
