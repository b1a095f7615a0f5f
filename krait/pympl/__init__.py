# Pympl, Krait's template language: template text -> Python code object -> output.
#
# Pipeline (one stage per module, data flowing one way):
#   lexer.py (ply lexer) -> parser.py (ply grammar) -> nodes.py (syntax tree)
#   -> codegen.py (Python ast with template positions, compile) -> cache.py (per-process cache)
#   runtime.py runs the code object in the shared request namespace.
# `python -m krait.pympl --show-code FILE` prints the generated Python.
# This package is independent of the script API and of I/O: it imports no socket, threading or
# multiprocessing, and nothing from krait but errors and limits.

from krait.pympl.cache import CodeCache, TemplateCache, decode_template
from krait.pympl.codegen import compile_template, show_code
from krait.pympl.runtime import escape, render, render_into

__all__ = [
    "CodeCache",
    "TemplateCache",
    "compile_template",
    "decode_template",
    "escape",
    "render",
    "render_into",
    "show_code",
]
