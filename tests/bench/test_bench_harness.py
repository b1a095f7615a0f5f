"""bench/run.py without running servers: merging rounds (each cell is its median round), the targets, the
servers at their defaults, and the venv's list of what Krait needs."""

import os
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
sys.path.insert(0, BENCH)
import bench_setup  # noqa: E402  (bench/bench_setup.py, found through BENCH)
import run  # noqa: E402  (bench/run.py)


def test_each_cell_is_its_median_round_with_the_spread_noted():
    rows = [run.Row("hello", "krait", "Krait", rps=r, p50=r / 1000, p99=r / 100) for r in (900.0, 1200.0, 1000.0)]
    rows.append(run.Row("hello", "waitress", "waitress", error="boom"))
    rows.append(run.Row("hello", "waitress", "waitress", rps=800.0, p50=1.0, p99=2.0))
    merged = {(r.test, r.server): r for r in run.median_rows(rows)}
    krait = merged["hello", "krait"]
    assert (krait.rps, krait.p50, krait.p99) == (1000.0, 1.0, 10.0)  # p50/p99 come from the same round
    assert krait.notes == ["median of 3: 900-1,200/s"]
    assert merged["hello", "waitress"].rps == 800.0
    assert merged["hello", "waitress"].notes == ["median of 1: 800-800/s, 1 failed"]


def test_a_cell_that_failed_in_every_round_keeps_its_error():
    rows = [run.Row("ws-small", "krait", "Krait", error="no server"),
            run.Row("ws-small", "krait", "Krait", error="again")]
    (row,) = run.median_rows(rows)
    assert row.error == "no server" and row.rps is None


def test_html_and_bin_rows_are_judged_against_waitress_and_the_stdlib_server():
    rows = [run.Row("html-1k", "krait", "Krait", rps=3000.0, p50=1.0, p99=5.0, settings="defaults"),
            run.Row("html-1k", "waitress", "waitress", rps=1900.0, p50=1.0, p99=9.0, settings="4 threads"),
            run.Row("html-1k", "stdlib", "stdlib", rps=3100.0, p50=1.0, p99=4.0)]
    ratios = run.judge(rows, run.TARGETS)
    assert round(ratios["html-1k", "waitress"], 2) == 1.58
    assert rows[1].notes == ["target >= 1.5x and lower p99: met"]
    assert rows[2].notes == ["target >= 1.0x and lower p99: MISSED"]
    header, lines = run.table(rows, ratios, run.TESTS, run.SERVER_KEYS)
    assert header[:3] == ["test", "server", "settings"]
    assert [line[:3] for line in lines] == [["static 1 KiB .html", "Krait", "defaults"],
                                            ["static 1 KiB .html", "waitress", "4 threads"],
                                            ["static 1 KiB .html", "stdlib", ""]]
    assert ("hello", "waitress") in run.TARGETS and run.TARGETS["hello", "waitress"][0] == 1.2


def test_servers_run_at_their_defaults_and_tuned_variants_only_when_asked():
    ctx = {"venv": "/v", "krait_cmd": ["/v/bin/python", "-m", "krait"], "krait_args": []}
    argv = {s.key: s.command(8000, ctx) for s in run.SERVERS}
    assert argv["krait"] == ["/v/bin/python", "-m", "krait", run.SITE, "--port", "8000"]
    assert argv["waitress"] == ["/v/bin/waitress-serve", "--listen=127.0.0.1:8000", "wsgi_apps:app"]
    assert "-k" not in argv["gunicorn"] and "-w" not in argv["gunicorn"]
    assert argv["krait-w1"][-2:] == ["--workers", "1"] and "--threads=8" in argv["waitress-t8"]
    default = run.parse_args([]).servers.split(",")
    assert default == ["krait", "waitress", "gunicorn", "stdlib", "websockets"]
    assert run.parse_args(["--servers", "krait,krait-w1"]).servers == "krait,krait-w1"
    settings = run.server_settings(None, "--log-level warning")
    assert settings["waitress"] == "defaults: 4 threads"
    assert settings["krait"] == "defaults: one worker per CPU it may use (1 when pinned); --log-level warning"


def test_the_venv_gets_what_krait_needs_from_pyproject(tmp_path):
    assert "ply>=3.11" in bench_setup.krait_requirements()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["ply>=3.11"]\n'
                         '[project.optional-dependencies]\nspeedups = ["fastmask==1.0"]\ntest = ["pytest"]\n')
    assert bench_setup.krait_requirements(str(pyproject)) == ["ply>=3.11", "fastmask==1.0"]
    assert [bench_setup.requirement_name(r) for r in ("ply>=3.11", "a.b-c_d[x]==1", "e")] == ["ply", "a.b-c_d", "e"]
