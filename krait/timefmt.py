# HTTP dates (RFC 9110 section 5.6.7, IMF-fixdate), formatted at most once per second.
#
# Every response carries a Date header; formatting it costs more than the rest of a small static
# response's headers, so the string is cached and rebuilt only when the second changes.

from __future__ import annotations

import email.utils
import time

_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The current time as an IMF-fixdate string, e.g. "Tue, 24 Nov 2026 01:02:03 GMT"."""
    global _cache
    now = int(time.time())
    stamp, text = _cache
    if stamp != now:
        text = email.utils.formatdate(now, usegmt=True)
        _cache = (now, text)
    return text
