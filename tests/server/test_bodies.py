"""krait/server/bodies.py and krait/server/pace.py: where request bodies are held, and the transfer
quota (docs/configuration.md)."""

import os
import time

from krait.server.bodies import BodySpool
from krait.server.pace import Pace


def test_small_bodies_stay_in_memory_and_large_ones_go_to_a_file():
    spool = BodySpool(memory=1000, threshold=100)
    try:
        small = spool.body(None)
        small.write(b"a" * 60)
        small.write(b"b" * 40)
        assert spool.held == 100
        assert small.finish() == (b"a" * 60 + b"b" * 40, "")
        small.close()
        assert spool.held == 0
        grown = spool.body(None)  # chunked: moves to a file once past the threshold
        grown.write(b"c" * 80)
        grown.write(b"d" * 80)
        data, path = grown.finish()
        assert data == b"" and os.path.dirname(path) == spool.folder
        with open(path, "rb") as f:
            assert f.read() == b"c" * 80 + b"d" * 80
        assert spool.held == 0
        grown.close()
        assert not os.path.exists(path)
        announced = spool.body(101)  # a Content-Length above the threshold: a file from the first byte
        assert announced.path and spool.held == 0
        announced.close()
    finally:
        spool.close()
    assert not os.path.exists(spool.folder)


def test_the_memory_budget_is_shared_and_past_it_bodies_are_spooled():
    spool = BodySpool(memory=150, threshold=100)
    try:
        first, second = spool.body(None), spool.body(None)
        first.write(b"x" * 100)
        second.write(b"y" * 100)  # only 50 bytes of budget left
        assert first.path == "" and second.path != "" and spool.held == 100
        first.close()
        second.close()
        assert spool.held == 0
    finally:
        spool.close()


def test_pace_is_a_quota_per_window_that_a_burst_cannot_stretch():
    pace = Pace(rate=100, window=10, first=15)
    assert 14 < pace.left() <= 15
    pace.count(10_000_000)  # a huge burst meets one quota: the next window starts now, no later
    assert 9 < pace.left() <= 10
    pace.count(999)
    assert pace.left() <= 10  # not met yet: the window does not move
    due = pace.due
    time.sleep(0.01)
    pace.count(1)  # met: a new window from now
    assert pace.due > due
