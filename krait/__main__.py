# `python -m krait SITE`: the same as the `krait` console script.
#
# `python -m` puts the working directory first on sys.path before any of Krait loads, so a folder named
# krait there (an empty one, or a clone of this repository) may be imported as the package `krait`, while
# this file is still found through an editable install's finder. Then this file loads the package it
# belongs to in its place, before anything imports from it. (A regular Python package named krait in the
# working directory is another program: `python -m krait` runs that one; docs/deployment.md.)
import importlib.util
import os
import sys

_HOME = os.path.dirname(os.path.abspath(__file__))
if os.path.abspath(getattr(sys.modules.get("krait"), "__file__", None) or "") != os.path.join(_HOME, "__init__.py"):
    _spec = importlib.util.spec_from_file_location("krait", os.path.join(_HOME, "__init__.py"),
                                                   submodule_search_locations=[_HOME])
    _package = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
    sys.modules["krait"] = _package
    _spec.loader.exec_module(_package)  # type: ignore[union-attr]

from krait.server.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
