# The classic "bigtable" template benchmark: a 1000 x 10 table of ints rendered to HTML, each
# cell escaped, in Pympl, Jinja2 and Mako. Prints ms per render (the best of --rounds, the engines timed
# in turn), the ratios to Pympl, and the target of issue 23: Pympl at 0.4x Jinja2's time or better.
#
#   python bench/bigtable.py [--rounds N] [--peers DIR]
#
# It runs in bench/.venv (made when missing, with Jinja2 among bench/run.py's peers) unless this python
# has Krait's requirements. Peers are never project dependencies; Mako is optional: install it into a
# throwaway place, e.g. `pip install --target /tmp/benchpeers mako`, and pass --peers /tmp/benchpeers
# (the default). A missing peer is skipped with a message.
# Every engine's output is checked to be the same page (whitespace aside) before timing.

from __future__ import annotations

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_setup import use_bench_venv  # noqa: E402

use_bench_venv()  # a fresh clone's system python has no ply: go on in bench/.venv

from krait.pympl import compile_template, render  # noqa: E402

TABLE = [{f"c{col}": row * 10 + col for col in range(10)} for row in range(1000)]
ROWS = [list(row.values()) for row in TABLE]

PYMPL = """<table>
@for row in table:
<tr>@for cell in row:<td>@cell@</td>@/for@</tr>
@/for@
</table>
"""

JINJA = """<table>
{% for row in table %}
<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}
</table>
"""

MAKO = """<table>
% for row in table:
<tr>\\
% for cell in row:
<td>${cell}</td>\\
% endfor
</tr>
% endfor
</table>
"""


def best_ms(funcs: list, rounds: int) -> list[float]:
    """The best ms per render of each function, timed in turn, round after round: the machine's drift
    (bench/README.md) then hits every engine alike."""
    for func in funcs:
        func()  # warm-up
    best = [float("inf")] * len(funcs)
    for _ in range(rounds):
        for i, func in enumerate(funcs):
            start = time.perf_counter()
            func()
            best[i] = min(best[i], time.perf_counter() - start)
    return [b * 1000 for b in best]


def engines():
    code = compile_template(PYMPL, "bigtable.html")
    yield "Pympl", lambda: render(code, {"table": ROWS})
    try:
        import jinja2
    except ImportError:
        print("Jinja2 not installed: skipped (pip install --target /tmp/benchpeers jinja2)")
    else:
        template = jinja2.Environment(autoescape=True).from_string(JINJA)
        yield f"Jinja2 {jinja2.__version__}", lambda: template.render(table=ROWS)
    try:
        import mako
        from mako.template import Template
    except ImportError:
        print("Mako not installed: skipped (pip install --target /tmp/benchpeers mako)")
    else:
        template = Template(MAKO, default_filters=["h"])
        yield f"Mako {mako.__version__}", lambda: template.render(table=ROWS)


def main() -> None:
    parser = argparse.ArgumentParser(description="bigtable: Pympl vs Jinja2 vs Mako")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--peers", default="/tmp/benchpeers", help="extra sys.path entry for peers")
    args = parser.parse_args()
    if os.path.isdir(args.peers):
        sys.path.append(args.peers)
    squash = re.compile(r"\s+")
    reference = None
    names, funcs = [], []
    for name, func in engines():
        page = squash.sub("", func())
        if reference is None:
            reference = page
        elif page != reference:
            print(f"warning: {name} renders a different page")
        names.append(name)
        funcs.append(func)
    times = best_ms(funcs, args.rounds)
    print(f"{'engine':<16} {'ms/render':>10} {'vs Pympl':>9}")
    for name, ms in zip(names, times):
        print(f"{name:<16} {ms:>10.2f} {ms / times[0]:>8.2f}x")
    for name, ms in zip(names, times):
        if name.startswith("Jinja2"):
            ratio = times[0] / ms
            print(f"Pympl takes {ratio:.2f}x Jinja2's time: target <= 0.4x {'met' if ratio <= 0.4 else 'MISSED'}")

if __name__ == "__main__":
    main()
