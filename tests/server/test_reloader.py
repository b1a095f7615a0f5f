"""krait/server/reloader.py over a real folder: an edit under .py/ calls the reload once, and a scan that
fails is no edit (os.scandir is made to fail for one folder, as an unreadable one would)."""

import contextlib
import os
import threading
import time

from krait.server import reloader


@contextlib.contextmanager
def watching(folder, interval=0.02):
    """The watcher on `folder` while the block runs; yields the list of the times it asked to reload."""
    calls: list[float] = []
    stop = threading.Event()
    reloader.watch(str(folder), lambda: calls.append(time.monotonic()), stop, interval)
    try:
        yield calls
    finally:
        stop.set()


def settle(seconds=0.5):
    time.sleep(seconds)


def called(calls, times=1, timeout=10.0):
    """Wait until the reload was called `times` times (a loaded machine may be slow to run the watcher)."""
    deadline = time.monotonic() + timeout
    while len(calls) < times and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(calls) == times


def test_an_edit_reloads_once_and_a_failed_scan_is_no_edit(tmp_path, monkeypatch):
    py = tmp_path / ".py"
    (py / "pkg").mkdir(parents=True)
    (py / "init.py").write_text("x = 1\n")
    (py / "pkg" / "mod.py").write_text("y = 1\n")
    (py / "__pycache__").mkdir()
    with watching(py) as calls:
        settle()
        (py / "__pycache__" / "init.cpython-311.pyc").write_bytes(b"compiled")  # not an edit
        settle()
        assert calls == []
        (py / "init.py").write_text("x = 22\n")
        assert called(calls)
        real_scandir = os.scandir

        def failing(path="."):
            if os.fspath(path).endswith("pkg"):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", failing)  # pkg/ cannot be read: its files would seem deleted
        assert reloader.fingerprint(str(py)) is None
        settle()
        assert len(calls) == 1
        monkeypatch.setattr(os, "scandir", real_scandir)  # readable again, unchanged: still no edit
        settle()
        assert len(calls) == 1


def test_a_missing_folder_is_an_empty_one(tmp_path):
    assert reloader.fingerprint(str(tmp_path / "absent")) == ()
    with watching(tmp_path / ".py") as calls:
        settle()
        (tmp_path / ".py").mkdir()
        (tmp_path / ".py" / "init.py").write_text("")
        assert called(calls)


def test_editor_files_logs_and_databases_are_no_edit(tmp_path):
    py = tmp_path / ".py"
    py.mkdir()
    (py / "init.py").write_text("x = 1\n")
    with watching(py) as calls:
        settle()
        for name in (".init.py.swp", "init.py~", "4913", ".#init.py", "#init.py#", "init.py___jb_tmp___",
                     "site.log", "data.sqlite3", "data.sqlite3-wal", "data.db-journal", "x.tmp"):
            (py / name).write_text("written while the site runs")
        (py / ".git").mkdir()
        (py / ".git" / "index").write_text("a commit")
        settle()
        assert calls == []
        (py / "settings.json").write_text("{}")  # data the site's code may read at start: an edit
        assert called(calls)


def test_a_linked_folder_is_watched_and_a_link_cycle_ends(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "lib.py").write_text("v = 1\n")
    py = tmp_path / ".py"
    py.mkdir()
    (py / "lib").symlink_to(shared, target_is_directory=True)
    (shared / "loop").symlink_to(py, target_is_directory=True)  # .py/lib/loop/lib/loop/...
    first = reloader.fingerprint(str(py))
    assert [os.path.basename(entry[0]) for entry in first] == ["lib.py"]
    with watching(py) as calls:
        settle()
        (shared / "lib.py").write_text("v = 22\n")
        assert called(calls)
