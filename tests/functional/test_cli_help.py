"""`krait --help` gives each option's default where it has one, and none for an on/off flag."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_help_shows_no_misleading_default_for_flags():
    out = subprocess.run([sys.executable, "-m", "krait", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60).stdout
    text = " ".join(out.split())  # however argparse wrapped it
    assert "--no-gzip never gzip responses --version" in text, out  # not "(default: True)"
    assert "--debug tracebacks in error pages, no lookup caching --max-body-size" in text, out
    assert "default: True" not in text and "default: False" not in text and "default: None" not in text, out
    assert "port (0 picks a free port) (default: 8080)" in text and "log level (default: info)" in text, out
