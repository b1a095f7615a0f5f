# Pympl parser (ply yacc): tokens -> nodes.Template.
#
# Strategy: the lexer already delivers one token per construct, so the grammar only describes
# block structure:
#
#   template : items EOF
#   items    : items item | <empty>
#   item     : TEXT | EXPR | RAW | EXEC | IMPORT | IMPORTCTRL
#            | IF items elifs else ENDIF
#            | FOR items ENDFOR
#   elifs    : elifs ELIF items | <empty>
#   else     : ELSE items | <empty>
#
# Errors: p_error receives the offending token (never None, thanks to the lexer's EOF token) and
# explains it from the parser's symbol stack: terminals of an unfinished `@if`/`@for` stay on the
# stack until their closing tag reduces them, so the innermost open block is the last IF or FOR
# token on it. Inside an `@if`, an ELSE is refused only when the block already has its `@else:`
# and an ELIF only after it. A block left open at end of file is reported at its opening tag.
# The tables are built once per process, in memory only (write_tables=False, debug=False: no
# parser.out or parsetab.py is written), with ply's own diagnostics silenced.

from __future__ import annotations

import copy
import sys
from typing import Any

from ply import yacc

from krait.pympl.lexer import make_lexer, tokens  # noqa: F401  (ply reads `tokens` from here)
from krait.pympl.nodes import (
    Branch,
    Exec,
    For,
    If,
    Import,
    Output,
    Source,
    Template,
    Text,
)

start = "template"


def _node(cls, p, *args):
    # Build a node positioned at the p[1] token.
    source: Source = p.lexer.pympl_source
    line, col = source.position(p.lexpos(1))
    return cls(*args, line, col)


def p_template(p):
    "template : items EOF"
    p[0] = Template(p[1])


def p_items(p):
    "items : items item"
    p[1].append(p[2])
    p[0] = p[1]


def p_items_empty(p):
    "items :"
    p[0] = []


def p_item_text(p):
    "item : TEXT"
    source: Source = p.lexer.pympl_source
    line, col = source.position(p.lexpos(1))
    p[0] = Text(p[1], line, col)


def p_item_output(p):
    """item : EXPR
    | RAW"""
    p[0] = _node(Output, p, p[1], p.slice[1].type == "EXPR")


def p_item_exec(p):
    "item : EXEC"
    p[0] = _node(Exec, p, p[1])


def p_item_import(p):
    """item : IMPORT
    | IMPORTCTRL"""
    p[0] = _node(Import, p, p[1], p.slice[1].type == "IMPORTCTRL")


def p_item_if(p):
    "item : IF items elifs else ENDIF"
    first = _node(Branch, p, p[1], p[2])
    p[0] = If([first] + p[3], p[4], first.line, first.col)


def p_elifs(p):
    "elifs : elifs ELIF items"
    source: Source = p.lexer.pympl_source
    line, col = source.position(p.lexpos(2))
    p[1].append(Branch(p[2], p[3], line, col))
    p[0] = p[1]


def p_elifs_empty(p):
    "elifs :"
    p[0] = []


def p_else(p):
    "else : ELSE items"
    p[0] = p[2]


def p_else_empty(p):
    "else :"
    p[0] = None


def p_item_for(p):
    "item : FOR items ENDFOR"
    p[0] = _node(For, p, p[1], p[2])


_TAG = {"IF": "@if", "FOR": "@for", "ELIF": "@elif", "ENDIF": "@/if", "ENDFOR": "@/for"}


def p_error(tok):
    lexer = tok.lexer
    source: Source = lexer.pympl_source
    # The innermost open block: the last IF or FOR terminal still on the stack.
    opener: Any = None
    for sym in reversed(lexer.pympl_parser.symstack):
        if getattr(sym, "type", None) in ("IF", "FOR"):
            opener = sym
            break
    if opener is not None:
        open_tag = _TAG[opener.type]
        open_line, open_col = source.position(opener.lexpos)
        where = f"the '{open_tag}' at line {open_line}, column {open_col + 1}"
    line, col = source.position(tok.lexpos)
    kind = tok.type
    if kind == "EOF":
        # reached only with a block still open
        close = "@/if" if opener.type == "IF" else "@/for"
        raise source.error(f"'{open_tag}' is never closed: missing '{close}'", open_line, open_col)
    if kind in ("ENDIF", "ENDFOR"):
        tag = _TAG[kind]
        if opener is None:
            message = f"'{tag}' without an open '{tag[0] + tag[2:]}'"
        else:
            message = f"'{tag}' cannot close {where}"
    elif opener is None or opener.type != "IF":
        what = "'@else:'" if kind == "ELSE" else "'@elif'"
        message = f"{what} outside an '@if' block"
    elif kind == "ELSE":
        message = f"second '@else:' in {where}"
    else:  # ELIF after ELSE: the only other way an ELSE or ELIF token can be refused
        message = f"'@elif' after '@else:' in {where}"
    raise source.error(message, line, col)


_parser = yacc.yacc(
    module=sys.modules[__name__],
    debug=False,
    write_tables=False,
    optimize=False,
    errorlog=yacc.NullLogger(),
)


def parse(source: Source) -> Template:
    """Parse a template into its node tree.

    Raises:
        TemplateSyntaxError: on any lexical or structural error.
    """
    lexer = make_lexer(source)
    # A shallow copy shares the read-only tables but owns its stacks, so parses never share
    # state (p_error finds this copy's stack through the lexer).
    lexer.pympl_parser = parser = copy.copy(_parser)
    return parser.parse(lexer=lexer)
