# `python -m krait.pympl --show-code FILE`: print the Python a template compiles to.
# `python -m krait.pympl FILE`: render FILE with an empty namespace to stdout; `@import` paths
# are read relative to the current directory (a debugging aid, not the server's resolution).
# A TemplateSyntaxError is printed to stderr and the exit status is 1.

from __future__ import annotations

import argparse
import sys

from krait.errors import TemplateSyntaxError
from krait.pympl.cache import TemplateCache, decode_template
from krait.pympl.codegen import show_code
from krait.pympl.runtime import render_into


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m krait.pympl", description=__doc__)
    parser.add_argument("file", help="template file (UTF-8)")
    parser.add_argument("--show-code", action="store_true", help="print the generated Python instead of rendering")
    args = parser.parse_args(argv)
    try:
        if args.show_code:
            with open(args.file, "rb") as handle:
                print(show_code(decode_template(handle.read(), args.file), args.file))
            return 0
        cache = TemplateCache()
        namespace: dict = {}
        out: list[str] = []

        def include(value) -> None:
            render_into(cache.get(str(value)), namespace, out, include)

        render_into(cache.get(args.file), namespace, out, include)
        sys.stdout.write("".join(out))
        return 0
    except TemplateSyntaxError as exc:
        print(f"TemplateSyntaxError: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
