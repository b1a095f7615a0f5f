# Pympl lexer (ply): template text -> tokens.
#
# Strategy: Pympl is character-level, so the lexer does the real scanning and hands the parser
# one token per construct. Four ply states:
#   INITIAL  template text. `[^@]+` is TEXT; `@@` is a TEXT "@"; `@` followed by a keyword opens
#            a construct. Keywords are matched with look-ahead, so when the input diverges from a
#            keyword (`@ifx`, `@elsewhere`, `@important`, `@for_each`, `@format(1)`) the rule
#            does not match and the `@` starts a plain expression (docs/pympl.md).
#   expr     the code of `@expr`, `@!expr`, `@import expr`, `@import-ctrl expr`. It ends at
#            whitespace (left in the input, so it becomes text) or at `@` (consumed) or at end
#            of file, but only outside string literals and (), [], {} groups.
#   header   the text of `@if`/`@elif`/`@for` up to the first `:` outside strings and groups
#            (so `@if d[1:2]:` and `@if x == 'a:b':` work; docs/pympl.md).
#   block    the body of `@{ ... }` up to the `}` that balances the `{`; strings and `#`
#            comments (up to a newline or brace) are skipped, so `@{ x = '}' }` works and an
#            apostrophe in a comment does not open a string.
# The code states never build strings piece by piece: they only move lexpos, and the construct's
# code is sliced from the input when its terminator is found. String literals are whole-token
# regexes (triple-quoted ones may span lines; others may not, as in Python). The token value
# is a nodes.Code (raw code plus the template position of its first character); lineno/lexpos
# of the token are those of the opening `@`, so errors can point at the tag.
# Every rule whose match may contain newlines adds them to lexer.lineno; columns come from
# lexpos. End of input is announced by an explicit EOF token so that the parser's p_error
# always receives a token that knows its lexer. Bad input raises TemplateSyntaxError.

from __future__ import annotations

import sys

from ply import lex
from ply.lex import TOKEN

from krait.pympl.nodes import Code, Source

tokens = (
    "TEXT",
    "EXPR",
    "RAW",
    "EXEC",
    "IF",
    "ELIF",
    "ELSE",
    "ENDIF",
    "FOR",
    "ENDFOR",
    "IMPORT",
    "IMPORTCTRL",
    "EOF",
)

states = (
    ("expr", "exclusive"),
    ("header", "exclusive"),
    ("block", "exclusive"),
)

# How each construct is named in error messages.
_WHAT = {
    "EXPR": "'@...' expression",
    "RAW": "'@!...' expression",
    "IMPORT": "'@import ...' instruction",
    "IMPORTCTRL": "'@import-ctrl ...' instruction",
    "IF": "'@if ...:' header",
    "ELIF": "'@elif ...:' header",
    "FOR": "'@for ... in ...:' header",
    "EXEC": "'@{ ... }' block",
}
_CLOSER = {"(": ")", "[": "]", "{": "}"}

# A complete Python string literal (the prefix letters, if any, were already skipped as plain
# code). Possessive repeats keep a failed match linear; `'(?!'')` leaves an unterminated `'''`
# to the TRIPLE error rule instead of reading it as the empty string `''`. A backslash escapes the
# next character, or a CRLF line end as a whole (a line continuation in a Windows-saved file).
_STRING = (
    r"'''(?:[^'\\]++|\\(?:\r\n|[\s\S])|'(?!''))*+'''"
    r'|"""(?:[^"\\]++|\\(?:\r\n|[\s\S])|"(?!""))*+"""'
    r"|'(?!'')(?:[^'\\\n]++|\\(?:\r\n|[\s\S]))*+'"
    r'|"(?!"")(?:[^"\\\n]++|\\(?:\r\n|[\s\S]))*+"'
)

t_expr_ignore = ""
t_header_ignore = ""
t_block_ignore = ""


# --- helpers -----------------------------------------------------------------------------------


def _enter(t, state: str, kind: str) -> None:
    # Start collecting the code of a construct that begins right after this match.
    lexer = t.lexer
    lexer.pympl_kind = kind
    lexer.pympl_tag = (t.lineno, t.lexpos)
    lexer.pympl_start = lexer.lexpos
    lexer.pympl_brackets = []
    lexer.begin(state)


def _finish(t, end: int, resume: int):
    # The construct's code is lexdata[start:end]; scanning resumes at `resume`.
    lexer = t.lexer
    start = lexer.pympl_start
    text = lexer.lexdata[start:end]
    lexer.begin("INITIAL")
    lexer.lexpos = resume
    kind = lexer.pympl_kind
    if kind in ("EXPR", "RAW") and (not text or text.isspace()):
        return None  # `@` before whitespace, `@@`-less `@` at the end, `@!@`: nothing (5.2)
    line, lexpos = lexer.pympl_tag
    col = start - (lexer.lexdata.rfind("\n", 0, start) + 1)
    t.type = kind
    t.value = Code(text, line, col)
    t.lineno = line
    t.lexpos = lexpos
    return t


def _error(t, message: str, lexpos: int | None = None):
    source: Source = t.lexer.pympl_source
    line, col = source.position(t.lexpos if lexpos is None else lexpos)
    return source.error(message, line, col)


def _unterminated(t):
    # End of input inside a construct: point at its opening `@`.
    lexer = t.lexer
    what = _WHAT[lexer.pympl_kind]
    if lexer.pympl_brackets:
        opener, pos = lexer.pympl_brackets[-1]
        line, col = lexer.pympl_source.position(pos)
        return _error(
            t,
            f"unterminated {what}: '{opener}' at line {line}, column {col + 1} "
            f"is never closed with '{_CLOSER[opener]}'",
            lexer.pympl_tag[1],
        )
    if lexer.pympl_kind == "EXEC":
        return _error(t, f"unterminated {what}: missing '}}'", lexer.pympl_tag[1])
    return _error(t, f"unterminated {what}: missing ':'", lexer.pympl_tag[1])


# --- INITIAL: template text ----------------------------------------------------------------------


def t_TEXT(t):
    r"[^@]+"
    t.lexer.lineno += t.value.count("\n")
    return t


def t_ATAT(t):
    r"@@"
    t.type = "TEXT"
    t.value = "@"
    return t


def t_EXEC(t):
    r"@\{"
    _enter(t, "block", "EXEC")


def t_IF(t):
    r"@if(?=\s)"
    _enter(t, "header", "IF")


def t_ELIF(t):
    r"@elif(?=\s)"
    _enter(t, "header", "ELIF")


def t_ELSE(t):
    r"@else\s*:"
    t.lexer.lineno += t.value.count("\n")
    t.value = None
    return t


def t_ELSE_incomplete(t):
    r"@else(?=\s|@|\Z)"
    raise _error(t, "incomplete '@else:' instruction: expected ':' after '@else'")


def t_ENDIF(t):
    r"@/if(?:@|(?=\s)|\Z)"
    t.value = None
    return t


def t_ENDFOR(t):
    r"@/for(?:@|(?=\s)|\Z)"
    t.value = None
    return t


def t_FOR(t):
    r"@for(?=\s)"
    _enter(t, "header", "FOR")


def t_IMPORTCTRL(t):
    r"@import-ctrl(?=\s)[ \t]*"
    _enter(t, "expr", "IMPORTCTRL")


def t_IMPORT(t):
    r"@import(?=\s)[ \t]*"
    _enter(t, "expr", "IMPORT")


def t_RAW(t):
    r"@!"
    _enter(t, "expr", "RAW")


def t_EXPR(t):
    r"@"
    _enter(t, "expr", "EXPR")


def t_eof(t):
    lexer = t.lexer
    if lexer.pympl_eof_sent:
        return None
    lexer.pympl_eof_sent = True
    t.type = "EOF"
    t.value = None
    return t


# --- rules shared by the code states -------------------------------------------------------------


@TOKEN(_STRING)
def t_expr_header_block_STRING(t):
    t.lexer.lineno += t.value.count("\n")


def t_expr_header_block_TRIPLE(t):
    r"'''|\"\"\""
    raise _error(t, f"unterminated triple-quoted string in {_WHAT[t.lexer.pympl_kind]}")


def t_expr_header_block_QUOTE(t):
    r"['\"]"
    raise _error(t, f"unterminated string literal in {_WHAT[t.lexer.pympl_kind]}")


def t_expr_header_block_OPEN(t):
    r"[(\[{]"
    t.lexer.pympl_brackets.append((t.value, t.lexpos))


def t_expr_header_CLOSE(t):
    r"[)\]}]"
    if t.lexer.pympl_brackets:
        t.lexer.pympl_brackets.pop()
    # else: a stray closer is ordinary code; Python will judge it


def t_ANY_error(t):  # pragma: no cover - every state's rules together match any character
    raise _error(t, f"unexpected character {t.value[0]!r}")


# --- expr: ends at whitespace or `@` outside strings and groups ---------------------------------


def t_expr_CHARS(t):
    r"[^\s@'\"()\[\]{}]+"


def t_expr_SPACE(t):
    r"\s+"
    if t.lexer.pympl_brackets:
        t.lexer.lineno += t.value.count("\n")
        return None
    return _finish(t, t.lexpos, t.lexpos)  # the whitespace stays text


def t_expr_AT(t):
    r"@"
    if t.lexer.pympl_brackets:
        return None
    return _finish(t, t.lexpos, t.lexpos + 1)  # the closing `@` is dropped


def t_expr_eof(t):
    lexer = t.lexer
    if lexer.pympl_brackets:
        raise _unterminated(t)
    tok = _finish(t, lexer.lexlen, lexer.lexlen)
    return t_eof(t) if tok is None else tok


# --- header: ends at `:` outside strings and groups ---------------------------------------------


def t_header_CHARS(t):
    r"[^:'\"()\[\]{}\n]+"


def t_header_NEWLINE(t):
    r"\n+"
    t.lexer.lineno += len(t.value)


def t_header_COLON(t):
    r":"
    if t.lexer.pympl_brackets:
        return None
    return _finish(t, t.lexpos, t.lexpos + 1)


def t_header_eof(t):
    raise _unterminated(t)


# --- block: ends at the `}` that balances `@{` --------------------------------------------------


def t_block_CHARS(t):
    r"[^'\"()\[\]{}\#\n]+"


def t_block_NEWLINE(t):
    r"\n+"
    t.lexer.lineno += len(t.value)


def t_block_COMMENT(t):
    r"\#[^\n{}]*"


def t_block_CLOSE(t):
    r"[)\]}]"
    if t.lexer.pympl_brackets:
        t.lexer.pympl_brackets.pop()
        return None
    if t.value != "}":
        return None  # a stray closer is ordinary code; Python will judge it
    return _finish(t, t.lexpos, t.lexpos + 1)


def t_block_eof(t):
    raise _unterminated(t)


# --- construction --------------------------------------------------------------------------------

_master = None


def make_lexer(source: Source):
    """A fresh ply lexer positioned at the start of `source`.

    The master lexer (the compiled ply tables) is built once per process; each template gets a
    cheap clone carrying its own state.
    """
    global _master
    if _master is None:
        _master = lex.lex(module=sys.modules[__name__], reflags=0, optimize=False, errorlog=lex.NullLogger())
    lexer = _master.clone()
    lexer.begin("INITIAL")
    lexer.lineno = 1
    lexer.pympl_source = source
    lexer.pympl_eof_sent = False
    lexer.pympl_kind = "EXPR"
    lexer.pympl_tag = (1, 0)
    lexer.pympl_start = 0
    lexer.pympl_brackets = []
    lexer.input(source.text)
    return lexer
