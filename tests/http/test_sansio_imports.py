"""krait.http and krait.pympl are sans-IO: no module of theirs imports networking, threading or
process modules, nor any part of Krait but krait.errors and krait.limits.

Each module is imported alone in a fresh interpreter started with -S (site hooks such as .pth files can
import threading before any of our code runs), with the real `krait` package: importing it loads no
script API, so nothing needs faking. ply, which Pympl uses, is put on the path by PYTHONPATH.
"""

import os
import subprocess
import sys
from pathlib import Path

import ply
import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("socket", "selectors", "threading", "multiprocessing", "asyncio", "ssl", "subprocess")
ALLOWED_KRAIT = ("krait", "krait.errors", "krait.limits")
MODULES = sorted(
    "krait.%s.%s" % (package, path.stem) if path.stem != "__init__" else "krait." + package
    for package in ("http", "pympl")
    for path in (ROOT / "krait" / package).glob("*.py")
)


def imported_by(module: str) -> tuple[list[str], list[str]]:
    """(forbidden modules, krait modules outside its own package) loaded by importing `module`."""
    code = ("import sys, %s; "
            "print(','.join(m for m in %r if m in sys.modules)); "
            "print(','.join(sorted(m for m in sys.modules if m.startswith('krait'))))") % (module, FORBIDDEN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT), str(Path(ply.__file__).parent.parent))))
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    package = ".".join(module.split(".")[:2])
    outside = [m for m in out[1].split(",") if m not in ALLOWED_KRAIT and not m.startswith(package)]
    return [m for m in out[0].split(",") if m], outside


def test_every_module_is_listed():
    assert "krait.http.frames" in MODULES and "krait.pympl.cache" in MODULES and "krait.http" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_io_and_no_other_part_of_krait(module):
    forbidden, outside = imported_by(module)
    assert forbidden == [], module
    assert outside == [], module


def test_import_krait_loads_no_script_api():
    code = "import sys, krait; print(sorted(m for m in sys.modules if m.startswith('krait')))"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['krait', 'krait.errors']"
