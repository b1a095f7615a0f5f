"""The layers import one way (docs/architecture.md): the server process never loads the worker side,
the script API or ply, and the worker never loads the server."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(module: str) -> set[str]:
    code = "import sys, %s; print(' '.join(sorted(sys.modules)))" % module
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_server_process_loads_no_worker_side_no_script_api_and_no_ply():
    loaded = loaded_after("krait.server.lifecycle, krait.server.cli")
    assert not {m for m in loaded if m.startswith(("krait.worker", "krait.pympl", "ply"))}
    assert not loaded & {"krait._request", "krait._response", "krait.cookie", "krait.mvc", "krait.websockets",
                         "krait._session", "krait._store", "krait.pool.serve"}


def test_the_worker_loads_no_server_and_no_scheduler():
    loaded = loaded_after("krait.worker.main")
    assert not {m for m in loaded if m.startswith("krait.server")}
    assert not loaded & {"krait.pool.scheduler", "krait.pool.sessions", "krait.pool.process"}
