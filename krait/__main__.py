# `python -m krait SITE`: the same as the `krait` console script.
import sys

from krait.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
