# The package's promises: no I/O or script-API imports, nothing written next to the code, the
# command line.

import subprocess
import sys
from pathlib import Path

import krait.pympl

PACKAGE = Path(krait.pympl.__file__).parent
ROOT = PACKAGE.parent.parent


FORBIDDEN = {"socket", "threading", "multiprocessing", "selectors", "krait.mvc", "krait.config"}


def test_imports_no_io_or_script_api():
    # Statically: no module of the package names a forbidden import ...
    import ast

    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN and name not in FORBIDDEN, (path, name)
    # ... and dynamically: importing it on top of the `krait` package pulls none in.
    code = (
        "import sys, krait; before = set(sys.modules); import krait.pympl, krait.pympl.__main__; "
        f"print(sorted({FORBIDDEN!r} & (set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_no_ply_tables_written():
    krait.pympl.compile_template("@if x:@/if", "t")
    names = {p.name for p in PACKAGE.iterdir()}
    assert not names & {"parser.out", "parsetab.py", "lextab.py"}


def test_show_code_command(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<p>@name@</p>\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "krait.pympl", "--show-code", str(page)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "__pympl_w(f'<p>{__pympl_e(name)}</p>\\n')\n"


def test_render_command_and_syntax_error(tmp_path):
    (tmp_path / "inc.html").write_text("[@x@]", encoding="utf-8")
    (tmp_path / "page.html").write_text("@{ x = 1 }a@import 'inc.html'@b", encoding="utf-8")
    (tmp_path / "bad.html").write_text("\n@if x", encoding="utf-8")
    ok = subprocess.run(
        [sys.executable, "-m", "krait.pympl", "page.html"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert (ok.returncode, ok.stdout) == (0, "a[1]b")
    bad = subprocess.run(
        [sys.executable, "-m", "krait.pympl", "bad.html"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert bad.returncode == 1
    assert 'File "bad.html", line 2, column 1' in bad.stderr


def test_main_in_process(tmp_path, capsys, monkeypatch):
    from krait.pympl.__main__ import main

    page = tmp_path / "p.html"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inc.html").write_text("<@x@>", encoding="utf-8")
    page.write_text("@{ x = 1; inc = 'inc.html' }@import inc@", encoding="utf-8")
    assert main([str(page)]) == 0
    assert capsys.readouterr().out == "<1>"
    page.write_text("@@", encoding="utf-8")
    assert main([str(page)]) == 0
    assert main(["--show-code", str(page)]) == 0
    assert capsys.readouterr().out == "@__pympl_w('@')\n"
    page.write_text("@/if", encoding="utf-8")
    assert main(["--show-code", str(page)]) == 1
