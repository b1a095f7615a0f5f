# Shared test fixtures (the helpers behind them are in tests/helpers.py).
#
# `krait_server(site, *args)` starts `python -m krait SITE --port 0 ...` in a subprocess, waits for its
# ready line, and returns a KraitProcess with .url, .port, .log() and .stop(). Every server started in a
# test is stopped (by PID) when the test ends. `make_site(files)` writes a small site into tmp_path.

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import KraitProcess, start_krait, write_site


@pytest.fixture
def krait_server(tmp_path):
    started: list[KraitProcess] = []

    def start(site, *args: str, **kw) -> KraitProcess:
        server = start_krait(site, *args, workdir=tmp_path / "run", **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_site(tmp_path):
    def make(files: dict[str, str | bytes], name: str = "site") -> Path:
        return write_site(tmp_path / name, files)

    return make
