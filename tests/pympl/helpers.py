# Shared helpers for the Pympl tests.

from krait.pympl import compile_template, render

PATH = "site/.view/page.html"


def run(source, namespace=None, path=PATH, **callbacks):
    """Compile `source` and render it in a copy of `namespace`."""
    code = compile_template(source, path)
    return render(code, dict(namespace or {}), **callbacks)
