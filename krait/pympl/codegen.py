# Pympl code generator: nodes.Template -> Python `ast.Module` -> code object.
#
# Strategy:
# - The generated module runs with globals = locals = the shared request namespace, so template
#   variables, `@{ }` assignments and `@for` targets are ordinary names in that dict (5.6).
#   `@if` and `@for` become real Python `if`/`elif`/`else` and `for` statements, so every loop
#   has its own iterator and nesting across includes cannot clobber anything.
# - Output: each run of adjacent text and `@expr@`/`@!expr@` nodes becomes ONE call
#   `__pympl_w(f"text{__pympl_e(expr)}text{raw!s}")` (one append per run, a single string
#   build, no intermediate concatenation). A run of pure text is a string constant.
# - Helper names start with `__pympl_` so they cannot collide with template names; runtime.py
#   binds them (WRITE, ESCAPE, IMPORT, IMPORT_CTRL below) before exec.
# - Python code in a construct is parsed with ast.parse on its own (mode "eval" for expressions
#   and conditions, "exec" for `@{ }` and `for` headers), then every node is moved to template
#   coordinates: snippet line k -> template line (first_line + k - 1), and columns shifted by
#   what stripping/dedenting removed (ast counts columns in UTF-8 bytes, Source converts).
#   Nodes we create get all four positions too, so compile() accepts the tree (CPython 3.11
#   rejects a node whose end precedes its start) and tracebacks name the template file, line
#   and even underline the failing expression.
# - `@{ }` bodies: leading blank lines are dropped and the rest dedented like textwrap.dedent.
#   When code starts on the `@{` line, that line is taken at column 0 and the following lines
#   are dedented on their own (`@{ x = 1` / `    y = 2 }` runs); if that does not parse, the
#   lines are tried at their visual columns instead (`@{ if a:` / `       b = 1 }`).
# - Every Python syntax error (also those compile() finds, like `return` outside a function)
#   becomes a TemplateSyntaxError at the template line and column of the bad code. Warnings
#   ast.parse gives (invalid escape sequences...) are re-issued at the template line.

from __future__ import annotations

import ast
import os
import re
import types
import warnings
from typing import Any

from krait.errors import TemplateSyntaxError
from krait.pympl.nodes import (
    Code,
    Exec,
    For,
    If,
    Import,
    Output,
    Source,
    Template,
    Text,
)
from krait.pympl.parser import parse

WRITE = "__pympl_w"
ESCAPE = "__pympl_e"
IMPORT = "__pympl_import"
IMPORT_CTRL = "__pympl_import_ctrl"

_INDENT = re.compile(r"[ \t\f]*")
_ON_LINE = re.compile(r"\bon line (\d+)")
_FOR_PARTS = re.compile(r"(.*?)\bin\b(.*)", re.DOTALL)
_CONVERSION_STR = ord("s")


def _end_of(line: int, col: int, text: str) -> tuple[int, int]:
    # Template position just after `text`, which starts at (line, col).
    newlines = text.count("\n")
    if newlines:
        return line + newlines, len(text) - text.rfind("\n") - 1
    return line, col + len(text)


def _margin(lines: list[str]) -> str:
    # Longest whitespace prefix shared by the non-blank lines (textwrap.dedent's margin).
    return os.path.commonprefix([_INDENT.match(text).group() for text in lines if text.strip()])  # type: ignore[union-attr]


class _Snippet:
    # Python source cut from a template, with the map back to template positions:
    # shifts[k] = (chars, bytes) to add to a column on snippet line k + 1.
    __slots__ = ("line", "shifts", "text")

    def __init__(self, text: str, line: int, shifts: list[tuple[int, int]]) -> None:
        self.text = text
        self.line = line
        self.shifts = shifts


class CodeGenerator:
    """Turns one template's node tree into a Python module with template positions."""

    def __init__(self, source: Source) -> None:
        self.source = source

    # --- positions -------------------------------------------------------------------------

    def _at(self, node, line: int, col: int, end_line: int, end_col: int):
        # Stamp all four positions (columns given in characters) on a node we create.
        src = self.source
        node.lineno = line
        node.col_offset = src.byte_col(line, col)
        node.end_lineno = end_line
        node.end_col_offset = src.byte_col(end_line, end_col)
        return node

    def _relocate(self, tree: ast.AST, snippet: _Snippet) -> None:
        first, shifts = snippet.line, snippet.shifts
        node: Any
        for node in ast.walk(tree):
            line = getattr(node, "lineno", None)
            if line is None:
                continue
            node.lineno = first + line - 1
            node.col_offset = max(0, node.col_offset + shifts[line - 1][1])
            end = node.end_lineno  # ast.parse always sets end positions
            node.end_lineno = first + end - 1
            node.end_col_offset = max(0, node.end_col_offset + shifts[end - 1][1])

    # --- Python snippets -------------------------------------------------------------------

    def _snippet(self, code: Code, prefix: str = "") -> _Snippet | None:
        # Whitespace-stripped single-piece code (expressions, conditions, headers).
        text = code.text
        body = text.lstrip()
        if not body:
            return None
        lead = text[: len(text) - len(body)]
        newlines = lead.count("\n")
        line = code.line + newlines
        col = len(lead) - lead.rfind("\n") - 1 if newlines else code.col + len(lead)
        body = prefix + body.rstrip()
        lines = body.count("\n")
        first = (col - len(prefix), self.source.byte_col(line, col) - len(prefix))
        return _Snippet(body, line, [first] + [(0, 0)] * lines)

    def _parse(self, snippet: _Snippet, mode: str, what: str):
        text = snippet.text
        if "\r" in text:
            # Python reads a lone CR as a line break, templates count only LF: keep the line
            # numbering ours (CRLF loses nothing, a lone CR becomes a space).
            text = text.replace("\r\n", "\n").replace("\r", " ")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                tree = ast.parse(text, self.source.path, mode)
            except (SyntaxError, ValueError) as exc:
                raise self._python_error(exc, snippet, what) from None
        for warning in caught:  # re-issue at the template line ("invalid escape sequence"...)
            line = snippet.line + min(warning.lineno, len(snippet.shifts)) - 1
            try:
                warnings.warn_explicit(warning.message, warning.category, self.source.path, line)
            except Warning as exc:  # warnings are configured as errors
                raise self.source.error(f"{type(exc).__name__} in {what}: {exc}", line, 0) from None
        self._relocate(tree, snippet)
        return tree

    def _python_error(self, exc, snippet: _Snippet, what: str):
        message = getattr(exc, "msg", None) or str(exc)
        # "expected an indented block after 'if' statement on line 1": template lines, please
        message = _ON_LINE.sub(lambda m: f"on line {snippet.line + int(m.group(1)) - 1}", message)
        line = min(getattr(exc, "lineno", None) or 1, len(snippet.shifts))
        col = max(0, (getattr(exc, "offset", None) or 1) - 1 + snippet.shifts[line - 1][0])
        return self.source.error(f"invalid Python in {what}: {message}", snippet.line + line - 1, col)

    def _expr(self, code: Code, what: str, line: int, col: int) -> ast.expr:
        snippet = self._snippet(code)
        if snippet is None:
            raise self.source.error(f"empty {what}", line, col)
        return self._parse(snippet, "eval", what).body

    def _block(self, code: Code) -> list[ast.stmt]:
        lines = code.text.split("\n")
        line = code.line
        candidates = []
        if not lines[0].strip():
            while lines and not lines[0].strip():
                lines.pop(0)
                line += 1
            if not lines:
                return []  # `@{ }`: nothing to run
            indent = len(_margin(lines))
            body = [text[indent:] if text.strip() else "" for text in lines]
            candidates.append(_Snippet("\n".join(body), line, [(indent, indent)] * len(body)))
        else:
            first = lines[0].lstrip(" \t\f")
            col = code.col + len(lines[0]) - len(first)
            byte_col = self.source.byte_col(line, col)
            rest = lines[1:]
            margin = _margin(rest)
            cut = len(margin)
            body = [first] + [text[cut:] if text.strip() else "" for text in rest]
            shifts = [(col, byte_col)] + [(cut, cut)] * len(rest)
            candidates.append(_Snippet("\n".join(body), line, shifts))
            if rest and "\t" not in margin:
                cut = min(col, cut)
                pad = col - cut
                body = [" " * pad + first] + [text[cut:] if text.strip() else "" for text in rest]
                shifts = [(col - pad, byte_col - pad)] + [(cut, cut)] * len(rest)
                candidates.append(_Snippet("\n".join(body), line, shifts))
            if rest:
                # 0.5.2's own dedent: the margin shared by every line, the first one's spaces after `@{`
                # included (`@{ for i in x:` over a body indented by two)
                cut = len(_margin(lines))
                body = [text[cut:] if text.strip() else "" for text in lines]
                first_col = code.col + cut
                shifts = [(first_col, self.source.byte_col(line, first_col))] + [(cut, cut)] * len(rest)
                candidates.append(_Snippet("\n".join(body), line, shifts))
        try:
            return self._parse(candidates[0], "exec", "'@{ ... }' block").body
        except TemplateSyntaxError:
            for other in candidates[1:]:
                try:
                    return self._parse(other, "exec", "'@{ ... }' block").body
                except TemplateSyntaxError:
                    pass
            raise

    # --- statements ------------------------------------------------------------------------

    def generate(self, template: Template) -> ast.Module:
        """The ast.Module for a parsed template."""
        return ast.Module(self._body(template.body), [])

    def _body(self, nodes: list) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        run: list = []
        for node in nodes:
            if type(node) is Text or type(node) is Output:
                run.append(node)
                continue
            if run:
                out.append(self._write(run))
                run = []
            stmt = getattr(self, "visit_" + type(node).__name__)(node)
            if isinstance(stmt, list):
                out.extend(stmt)
            else:
                out.append(stmt)
        if run:
            out.append(self._write(run))
        return out

    def _suite(self, nodes: list, owner) -> list[ast.stmt]:
        # A block body; Python needs at least one statement.
        body = self._body(nodes)
        if not body:
            body = [self._at(ast.Pass(), owner.line, owner.col, owner.line, owner.col + 1)]
        return body

    def _write(self, run: list) -> ast.stmt:
        # One __pympl_w(...) call for a run of text and output nodes.
        parts: list[ast.expr] = []
        text_parts: list[str] = []
        text_start: Any = None
        for node in run:
            if type(node) is Text:
                if not text_parts:
                    text_start = node
                text_parts.append(node.value)
                continue
            if text_parts:
                parts.append(self._text(text_start, "".join(text_parts)))
                text_parts = []
            parts.append(self.visit_Output(node))
        if text_parts:
            parts.append(self._text(text_start, "".join(text_parts)))
        first: Any = parts[0]
        last = parts[-1]
        if len(parts) == 1 and (type(first) is ast.Constant or first.conversion == -1):
            arg = first if type(first) is ast.Constant else first.value  # no f-string needed
        else:
            arg = ast.JoinedStr(parts)
            arg.lineno, arg.col_offset = first.lineno, first.col_offset
            arg.end_lineno, arg.end_col_offset = last.end_lineno, last.end_col_offset
        call = ast.Call(ast.Name(WRITE, ast.Load()), [arg], [])
        stmt = ast.Expr(call)
        for node in (call.func, call, stmt):
            node.lineno, node.col_offset = arg.lineno, arg.col_offset
            node.end_lineno, node.end_col_offset = arg.end_lineno, arg.end_col_offset
        return stmt

    def _text(self, node: Text, value: str) -> ast.Constant:
        end_line, end_col = _end_of(node.line, node.col, value)
        return self._at(ast.Constant(value), node.line, node.col, end_line, end_col)

    def visit_Output(self, node: Output) -> ast.FormattedValue:
        what = "'@...' expression" if node.escape else "'@!...' expression"
        expr = self._expr(node.code, what, node.line, node.col)
        pos = (expr.lineno, expr.col_offset, expr.end_lineno, expr.end_col_offset)
        if node.escape:
            func = ast.Name(ESCAPE, ast.Load())
            expr = ast.Call(func, [expr], [])
            for item in (func, expr):
                item.lineno, item.col_offset, item.end_lineno, item.end_col_offset = pos
            value = ast.FormattedValue(expr, -1, None)
        else:
            value = ast.FormattedValue(expr, _CONVERSION_STR, None)
        value.lineno, value.col_offset, value.end_lineno, value.end_col_offset = pos
        return value

    def visit_Exec(self, node: Exec) -> list[ast.stmt]:
        return self._block(node.code)

    def visit_Import(self, node: Import) -> ast.stmt:
        what = "'@import-ctrl' expression" if node.ctrl else "'@import' expression"
        expr = self._expr(node.code, what, node.line, node.col)
        name = ast.Name(IMPORT_CTRL if node.ctrl else IMPORT, ast.Load())
        func = self._at(name, node.line, node.col, node.line, node.col + 1)
        call = ast.Call(func, [expr], [])
        stmt = ast.Expr(call)
        for item in (call, stmt):
            item.lineno, item.col_offset = func.lineno, func.col_offset
            item.end_lineno, item.end_col_offset = expr.end_lineno, expr.end_col_offset
        return stmt

    def _header_end(self, code: Code) -> tuple[int, int]:
        line, col = _end_of(code.line, code.col, code.text)
        return line, col + 1  # the ':'

    def visit_If(self, node: If) -> ast.stmt:
        orelse = self._suite(node.orelse, node) if node.orelse is not None else []
        for branch in reversed(node.branches):
            tag = "'@if'" if branch is node.branches[0] else "'@elif'"
            test = self._expr(branch.cond, f"{tag} condition", branch.line, branch.col)
            stmt = ast.If(test, self._suite(branch.body, branch), orelse)
            self._at(stmt, branch.line, branch.col, *self._header_end(branch.cond))
            orelse = [stmt]
        return stmt

    def visit_For(self, node: For) -> ast.stmt:
        usage = "'@for' needs a target and an iterable: '@for TARGET in ITERABLE:'"
        parts = _FOR_PARTS.match(node.header.text)
        if parts is None or not parts.group(1).strip() or not parts.group(2).strip():
            raise self.source.error(usage, node.line, node.col)
        snippet = self._snippet(node.header, prefix="for ")
        assert snippet is not None  # the header matched _FOR_PARTS, so it holds code
        snippet.text += ":\n pass"
        snippet.shifts.append((0, 0))
        loop = self._parse(snippet, "exec", "'@for' header").body[0]
        stmt = ast.For(loop.target, loop.iter, self._suite(node.body, node), [])
        return self._at(stmt, node.line, node.col, *self._header_end(node.header))


def compile_template(source: str, path: str) -> types.CodeType:
    """Compile Pympl template text into a code object for runtime.render_into().

    Args:
        source: the template text.
        path: the template's file name; tracebacks and errors name it.

    Raises:
        TemplateSyntaxError: with the path, line, column and source line of the problem.
    """
    src = Source(source, path)
    return _compile(_generate(src), src)


def show_code(source: str, path: str) -> str:
    """The Python source equivalent of what compile_template() builds (for debugging)."""
    return ast.unparse(_generate(Source(source, path)))


def _generate(src: Source) -> ast.Module:
    try:
        return CodeGenerator(src).generate(parse(src))
    except RecursionError:
        raise src.error("template nests constructs too deeply", 1, 0) from None


def _compile(module: ast.Module, src: Source) -> types.CodeType:
    # Errors only the compiler sees: 'return' outside a function, too many nested loops...
    try:
        return compile(module, src.path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno or 1
        col = src.char_col(line, (exc.offset or 1) - 1)
        raise src.error(f"invalid Python: {exc.msg}", line, col) from None
    except RecursionError:  # pragma: no cover - codegen's own recursion limit comes first
        raise src.error("template nests constructs too deeply", 1, 0) from None
