# TemplateSyntaxError: message, file, line, column and source line for every way a template can
# be wrong (docs/pympl.md), plus runtime tracebacks that point at the template line.

import pickle
import traceback

import pytest

from krait.errors import TemplateError, TemplateSyntaxError
from krait.pympl import compile_template, render

PATH = "site/.view/broken.html"

CASES = [
    # (template, message fragment, line, column)
    ("ab\n  @{ x = 1\n", "unterminated '@{ ... }' block: missing '}'", 2, 3),
    ("ab\n  @if x == 1\n", "unterminated '@if ...:' header: missing ':'", 2, 3),
    ("@for x in y\nfoo", "unterminated '@for ... in ...:' header: missing ':'", 1, 1),
    ("x\n@elif y\n", "unterminated '@elif ...:' header", 2, 1),
    ("x @(1 + (2)\n", "'(' at line 1, column 4 is never closed with ')'", 1, 3),
    ("@f([1, 2)", "'(' at line 1, column 3 is never closed with ')'", 1, 1),
    ("@f('abc)@", "unterminated string literal in '@...' expression", 1, 4),
    ('@!f("abc)@', "unterminated string literal in '@!...' expression", 1, 5),
    ("@f('''abc)@", "unterminated triple-quoted string in '@...' expression", 1, 4),
    ("@if x == 'a:\n", "unterminated string literal in '@if ...:' header", 1, 10),
    ("@{ x = 'abc }", "unterminated string literal in '@{ ... }' block", 1, 8),
    ("@import f('a'", "unterminated '@import ...' instruction: '('", 1, 1),
    ("@import-ctrl f('a'", "unterminated '@import-ctrl ...' instruction: '('", 1, 1),
    ("a\n@if x:\n@for y in z:\n@/for\n", "'@if' is never closed: missing '@/if'", 2, 1),
    ("a\n@if x:\n  @for y in z:\n@/if\n", "'@/if' cannot close the '@for' at line 3, column 3", 4, 1),
    ("@for x in y:\n@if z:", "'@if' is never closed", 2, 1),
    ("@for x in y:", "'@for' is never closed: missing '@/for'", 1, 1),
    ("ok\n@/if", "'@/if' without an open '@if'", 2, 1),
    ("@/for@", "'@/for' without an open '@for'", 1, 1),
    ("x @else:", "'@else:' outside an '@if' block", 1, 3),
    ("@for x in y:@else:@/for", "'@else:' outside an '@if' block", 1, 13),
    ("@elif x:", "'@elif' outside an '@if' block", 1, 1),
    ("@if x:@else:\n@else:@/if", "second '@else:' in the '@if' at line 1, column 1", 2, 1),
    ("@if x:@else:@elif y:@/if", "'@elif' after '@else:' in the '@if' at line 1, column 1", 1, 13),
    ("@if x:@/for", "'@/for' cannot close the '@if' at line 1, column 1", 1, 7),
    ("@else x", "incomplete '@else:' instruction", 1, 1),
    ("@else", "incomplete '@else:' instruction", 1, 1),
    ("@if :yes@/if", "empty '@if' condition", 1, 1),
    ("@if x:\n@elif   :\n@/if", "empty '@elif' condition", 2, 1),
    ("@for :@/for", "'@for' needs a target and an iterable", 1, 1),
    ("@for x in :@/for", "'@for' needs a target and an iterable", 1, 1),
    ("  @for in y:@/for", "'@for' needs a target and an iterable", 1, 3),
    ("@import \n", "empty '@import' expression", 1, 1),
    ("@import-ctrl @x", "empty '@import-ctrl' expression", 1, 1),
    ("Hello @name!", "invalid Python in '@...' expression", 1, 12),
    ("é @(x!)@", "invalid Python in '@...' expression", 1, 6),
    ("@if x = 1:@/if", "invalid Python in '@if' condition", 1, 7),
    ("@for 1 in x:@/for", "invalid Python in '@for' header", 1, 6),
    ("@{\n  a = 1\n  b = = 2\n}", "invalid Python in '@{ ... }' block: invalid syntax", 3, 7),
    ("\n\n@{ x = 1\n    y = 2\n  z = 3 }", "'@{ ... }' block: unexpected indent", 4, 0),
    ("@{ return 1 }", "invalid Python: 'return' outside function", 1, 4),
    ("a\n  @{ yield 1 }", "invalid Python: 'yield' outside function", 2, 6),
    ("@x\x00@", "null bytes", 1, 2),
    ("é\n @{ return 1 }", "'return' outside function", 2, 5),
    ("\n@{\n  for x in y:\n}", "expected an indented block after 'for' statement on line 3", 3, 14),
]


@pytest.mark.parametrize("template, message, line, column", CASES)
def test_syntax_error(template, message, line, column):
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template(template, PATH)
    error = info.value
    assert message in error.message
    assert error.path == PATH
    if column:
        assert (error.line, error.column) == (line, column)
    else:
        assert error.line == line
    assert error.source_line == template.split("\n")[error.line - 1]
    assert f'File "{PATH}", line {error.line}, column {error.column}' in str(error)


def test_error_pickles():
    with pytest.raises(TemplateSyntaxError) as info:
        compile_template("@if x:", PATH)
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.message, again.path, again.line, again.column) == (
        info.value.message, PATH, 1, 1
    )


def test_runtime_error_traceback_points_at_template_line():
    template = "\n".join(["<p>line %d</p>" % n for n in range(1, 7)] + ["<p>@missing@</p>"])
    code = compile_template(template, "site/.view/seven.html")
    with pytest.raises(NameError) as info:
        render(code, {})
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.filename, last.lineno) == ("site/.view/seven.html", 7)
    assert last.colno == 4 and last.end_colno == 11  # the expression itself is underlined


@pytest.mark.parametrize(
    "template, line",
    [
        ("a\n@{\n  x = 1\n  y = 1 / 0\n}", 4),
        ("@for i in range(2):\n\n  @(1 / (i - 1))@\n@/for@", 3),
        ("@if 1:\n@elif 1 / 0:\n@/if@\n@if 0:\n@elif 1 / 0:\n@/if@", 5),
        ("x\n@import bad@", 2),
        ("@!undefined_thing@", 1),
    ],
)
def test_runtime_error_lines(template, line):
    code = compile_template(template, "t.html")
    with pytest.raises(Exception) as info:
        render(code, {"bad": 1}, include=lambda value: 1 / 0)
    last = [f for f in traceback.extract_tb(info.value.__traceback__) if f.filename == "t.html"][-1]
    assert last.lineno == line


def test_missing_include_callback():
    with pytest.raises(TemplateError, match="no include callback"):
        render(compile_template("@import 'x.html'", "t.html"), {})
    with pytest.raises(TemplateError, match="no include_ctrl callback"):
        render(compile_template("@import-ctrl c", "t.html"), {"c": 1})


def test_source_helpers():
    from krait.pympl.nodes import Source

    src = Source("ab\n\u00e9x", "s")
    assert src.line_text(0) == src.line_text(3) == ""
    assert src.position(4) == (2, 1)
    assert src.byte_col(2, 1) == 2 and src.char_col(2, 2) == 1
    assert src.byte_col(1, 1) == 1 and src.char_col(1, 1) == 1
    # byte_col() counts on from its last answer on a line: any order of questions gets the same answers
    text = "a\u00e9\U0001f600b\u00e9" * 5
    src = Source("x\n" + text, "s")
    for col in (3, 7, 7, 2, 20, 0, 25, 11, 12, 1):
        assert src.byte_col(2, col) == len(text[:col].encode("utf-8")), col
        assert src.byte_col(1, 1) == 1


def test_python_warnings_are_reissued_at_template_line():
    import warnings

    template = "a\nb\n@{\n  x = 1\n  y = '\\d'\n}@y@"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = compile_template(template, "w.html")
    assert render(code, {}) == "a\nb\n\\d"
    assert [(w.category, w.filename, w.lineno) for w in caught] == [(DeprecationWarning, "w.html", 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TemplateSyntaxError, match="invalid escape sequence") as info:
            compile_template(template, "w.html")
    assert info.value.line == 5
