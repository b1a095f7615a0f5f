# Pympl syntax tree: the data that flows from the parser to the code generator.
#
# Rules:
# - Every node carries `line` (1-based) and `col` (0-based, in characters) of the `@` (or first
#   text character) that produced it; the code generator turns them into Python `ast` positions.
# - Python code found inside a construct is kept as a `Code` value: its raw text plus the template
#   position of its first character. Stripping, dedenting and validating it is the code
#   generator's job, so the lexer never interprets Python beyond strings and brackets.
# - `Source` is the template being compiled: its path and text, and the helpers every stage uses
#   to build a positioned TemplateSyntaxError and to convert character columns into the UTF-8
#   byte offsets that Python `ast` nodes use.

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from krait.errors import TemplateSyntaxError


class Source:
    """A template's path and text, with position helpers shared by all stages."""

    __slots__ = ("_mark", "lines", "path", "starts", "text")

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.text = text
        self.lines = text.split("\n")
        self.starts = list(accumulate((len(line) + 1 for line in self.lines[:-1]), initial=0))
        self._mark = (0, 0, 0)  # (line, col, byte_col) of the last non-ASCII byte_col() answer

    def line_text(self, line: int) -> str:
        """The text of 1-based `line` without its newline ("" past the end)."""
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1]
        return ""

    def position(self, offset: int) -> tuple[int, int]:
        """(1-based line, 0-based column) of a character offset into the text."""
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1]

    def byte_col(self, line: int, col: int) -> int:
        """UTF-8 byte offset of character column `col` on `line` (what ast positions count)."""
        text = self.line_text(line)
        if text.isascii():
            return col
        # The code generator asks in template order: count on from the last answer on this line, so a
        # long line with many expressions is encoded once, not once per expression.
        mark_line, mark_col, mark_byte = self._mark
        if mark_line != line or mark_col > col:
            mark_col = mark_byte = 0
        byte = mark_byte + len(text[mark_col:col].encode("utf-8", "surrogatepass"))
        self._mark = (line, col, byte)
        return byte

    def char_col(self, line: int, byte_col: int) -> int:
        """Inverse of byte_col: character column of a UTF-8 byte offset on `line`."""
        text = self.line_text(line)
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8", "surrogatepass")[:byte_col].decode("utf-8", "ignore"))

    def error(self, message: str, line: int, col: int) -> TemplateSyntaxError:
        """A TemplateSyntaxError at 1-based `line`, 0-based character `col`."""
        return TemplateSyntaxError(message, self.path, line, col + 1, self.line_text(line))


@dataclass(slots=True)
class Code:
    """Python source text found in a construct; (line, col) locate text[0] in the template."""

    text: str
    line: int
    col: int


@dataclass(slots=True)
class Text:
    """Literal template text, written unchanged (`@@` arrives here as "@")."""

    value: str
    line: int
    col: int


@dataclass(slots=True)
class Output:
    """`@expr@` (escape=True) or `@!expr@` (escape=False)."""

    code: Code
    escape: bool
    line: int
    col: int


@dataclass(slots=True)
class Exec:
    """`@{ statements }`."""

    code: Code
    line: int
    col: int


@dataclass(slots=True)
class Import:
    """`@import expr` (ctrl=False) or `@import-ctrl expr` (ctrl=True)."""

    code: Code
    ctrl: bool
    line: int
    col: int


@dataclass(slots=True)
class Branch:
    """One `@if cond:` or `@elif cond:` with the body that follows it."""

    cond: Code
    body: list[Node]
    line: int
    col: int


@dataclass(slots=True)
class If:
    """`@if` ... [`@elif` ...]* [`@else:` ...] `@/if`; orelse is None without `@else:`."""

    branches: list[Branch]
    orelse: list[Node] | None
    line: int
    col: int


@dataclass(slots=True)
class For:
    """`@for TARGET in ITERABLE:` ... `@/for`; header is the text between `for` and `:`."""

    header: Code
    body: list[Node]
    line: int
    col: int


@dataclass(slots=True)
class Template:
    """The whole template."""

    body: list[Node] = field(default_factory=list)
    line: int = 1
    col: int = 0


Node = Text | Output | Exec | Import | If | For
