"""krait.http is sans-IO: importing it pulls in no networking, threading or process modules.

Two checks in fresh interpreters started with -S (site hooks such as .pth files can import
threading before any of our code runs): krait.http loaded under a bare `krait` package (so the
script-API modules that krait/__init__.py imports do not count), and the modules krait.http adds
on top of a normal `import krait`.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("socket", "selectors", "threading", "multiprocessing", "asyncio", "ssl",
             "krait.settings", "krait.channel", "krait.server")


def run(code):
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_krait_http_alone_imports_no_io_modules():
    code = ("import sys, types; pkg = types.ModuleType('krait'); pkg.__path__ = ['krait']; "
            "sys.modules['krait'] = pkg; "
            "import krait.http, krait.http.readers, krait.http.writers, krait.http.state; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules), end='|'); "
            "print(sorted(m for m in sys.modules if m.startswith('krait')))")
    forbidden, krait_modules = run(code).split("|")
    assert forbidden == ""
    assert all(m.startswith("krait.http") or m in ("krait", "krait.errors", "krait.limits")
               for m in eval(krait_modules))


def test_krait_http_adds_no_io_modules_to_krait():
    code = ("import sys, krait; before = set(sys.modules); import krait.http; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in set(sys.modules) - before))")
    assert run(code) == ""


def test_sources_import_only_allowed_krait_modules():
    for path in (ROOT / "krait" / "http").glob("*.py"):
        if path.stem in ("handshake", "frames", "websocket"):
            continue  # another engineer's modules
        text = path.read_text()
        for name in ("socket", "selectors", "threading", "multiprocessing", "time", "settings"):
            assert f"import {name}" not in text, (path, name)
        for line in text.splitlines():
            if line.startswith(("from krait", "import krait")):
                assert line.split()[1] in ("krait", "krait.errors", "krait.limits"), line
