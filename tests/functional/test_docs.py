"""Every code sample in docs/ runs (the convention is described at the top of docs/index.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import requests

from krait.errors import TemplateSyntaxError
from krait.pympl import compile_template, render
from tests.helpers import ROOT, start_krait, write_site

DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
CHECK = re.compile(r"<!--\s*check:\s*(\w+)\s+(\S+)(?:\s+\"([^\"]*)\")?\s*->\s*(\d{3})(?:\s+\"(.*)\")?\s*-->")


def blocks(page: Path) -> list[tuple[str, str]]:
    text = page.read_text(encoding="utf-8")
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def samples(kind: str) -> list:
    out = []
    for page in pages():
        found = blocks(page)
        for i, (info, body) in enumerate(found):
            if info == kind:
                nxt = found[i + 1] if i + 1 < len(found) else ("", "")
                out.append(pytest.param(body, nxt, id="%s#%d" % (page.name, i)))
    return out


@pytest.mark.parametrize("code, _next", samples("python"))
def test_python_samples(code, _next, tmp_path):
    script = tmp_path / "sample.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("template, following", samples("pympl"))
def test_pympl_samples(template, following):
    code = compile_template(template, "<doc>")
    if following[0] == "output":
        assert render(code, {}) == following[1]


@pytest.mark.parametrize("template, _next", samples("pympl-fails"))
def test_pympl_failing_samples(template, _next):
    # Either the compiler refuses it, or rendering fails inside the template's own code.
    try:
        code = compile_template(template, "<doc>")
    except TemplateSyntaxError:
        return
    with pytest.raises(Exception) as info:
        render(code, {})
    assert any(entry.path == "<doc>" for entry in info.traceback), info.value


def site_pages() -> list:
    out = []
    for page in pages():
        files = {info[len("site:"):]: body for info, body in blocks(page) if info.startswith("site:")}
        if files:
            out.append(pytest.param(page, files, id=page.name))
    return out


@pytest.mark.parametrize("page, files", site_pages())
def test_site_samples(page, files, tmp_path):
    root = write_site(tmp_path / "site", files)
    srv = start_krait(root, workdir=tmp_path / "run")
    try:
        for m in CHECK.finditer(page.read_text(encoding="utf-8")):
            method, path, body, status, substring = m.groups()
            data = urllib.parse.parse_qsl(body, keep_blank_values=True) if body is not None else None
            r = requests.request(method, srv.url + path, data=data, allow_redirects=False, timeout=20)
            assert r.status_code == int(status), (m.group(0), r.text[:500], srv.log()[-2000:])
            if substring is not None:
                assert substring in r.content.decode("utf-8"), (m.group(0), r.text[:1000])
    finally:
        assert srv.stop() == 0
