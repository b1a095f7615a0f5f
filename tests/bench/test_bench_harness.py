"""bench/run.py's merging of rounds: each cell is its median round, and a failed round is noted."""

import importlib.util
import os

_SPEC = importlib.util.spec_from_file_location(
    "bench_run", os.path.join(os.path.dirname(__file__), "..", "..", "bench", "run.py"))
run = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run)


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
