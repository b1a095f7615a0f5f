# Warnings that a hostile client could repeat at will (refused connections, connections closed to make
# room, running out of descriptors) are logged at most once per limits.WARNING_INTERVAL each, with the
# count of those left out: a flood of connections must not become a flood of log lines.

from __future__ import annotations

import logging
import time
from typing import Any

from krait import limits


class Throttled:
    """One warning, `template` % what, logged at most once per limits.WARNING_INTERVAL."""

    __slots__ = ("log", "template", "last", "since")

    def __init__(self, log: logging.Logger, template: str) -> None:
        self.log = log
        self.template = template
        self.last = -limits.WARNING_INTERVAL
        self.since = 0  # occurrences not logged since the last line

    def warn(self, what: Any) -> None:
        now = time.monotonic()
        if now - self.last >= limits.WARNING_INTERVAL:
            more = " (and %d more since the last such line)" % self.since if self.since else ""
            self.log.warning(self.template + more, what)
            self.last, self.since = now, 0
        else:
            self.since += 1
