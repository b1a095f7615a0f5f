# Pace: a minimum transfer rate that a stalled peer cannot stretch.
#
# Design: the rate is a quota per window rather than an average since the start. Every `window` seconds
# must move `rate x window` bytes (the first window may be longer: a grace period); each time the quota is
# met, a new window starts. An average lets a client that sent a large part at once and then went silent
# keep its connection for hours (16 MiB at 1 KiB/s buys 4.5 h); with a quota, a burst buys no more than
# the window it filled. A transfer of N bytes therefore ends within first + N / rate seconds (plus one
# window), which is the total deadline. The channel uses one Pace for a request body it receives
# (--min-body-rate) and one for a response that does not fit the socket buffer at once (--min-send-rate).

from __future__ import annotations

import time


class Pace:
    """One transfer's quota: `due` is when the current window ends without its bytes."""

    __slots__ = ("need", "window", "due", "moved")

    def __init__(self, rate: float, window: float, first: float | None = None) -> None:
        self.need = max(1, int(rate * window))
        self.window = window
        self.due = time.monotonic() + (window if first is None else first)
        self.moved = 0

    def count(self, size: int) -> None:
        """`size` more bytes moved; a met quota starts the next window."""
        self.moved += size
        if self.moved >= self.need:
            self.moved = 0
            self.due = time.monotonic() + self.window

    def hold(self, seconds: float) -> None:
        """`seconds` during which the transfer waited on our side (a worker producing the next piece), not
        on the peer: they do not count against the window."""
        self.due += seconds

    def wanted(self) -> int:
        """The bytes that would meet the current window's quota."""
        return self.need - self.moved

    def left(self) -> float:
        """Seconds until the current window ends (0 or less: the peer is too slow)."""
        return self.due - time.monotonic()
