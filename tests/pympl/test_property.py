# Garbage in, documented errors out: any text either compiles or raises
# TemplateSyntaxError, never another exception; show_code never crashes on what compiles.

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from krait.errors import TemplateSyntaxError
from krait.pympl import compile_template, show_code

PIECES = st.sampled_from(
    [
        "@", "@@", "{", "}", "(", ")", "[", "]", "'", '"', "'''", ":", "\n", " ", "\t", "#", "\\",
        "!", "/", "x", "1", "é", "\r\n", "\r", "\f", "@if ", "@elif ", "@else:", "@else", "@/if", "@/for",
        "@for ", " in ", "@import ", "@import-ctrl ", "@{", "@!", "if", "for", "else", "=",
        "return", "pass", "yield", "lambda", "\x00", "<p>", ",",
    ]
)
TEMPLATES = st.lists(PIECES, max_size=40).map("".join) | st.text(max_size=60)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES)
def test_compiles_or_raises_template_syntax_error(template):
    try:
        code = compile_template(template, "fuzz.html")
    except TemplateSyntaxError as error:
        assert error.path == "fuzz.html" and error.line >= 1 and error.column >= 1
        return
    assert code.co_filename == "fuzz.html"
    try:
        show_code(template, "fuzz.html")
    except ValueError:
        pass  # ast.unparse cannot spell some f-strings before 3.12; the code object is fine


def test_deep_nesting_is_a_template_error():
    import pytest

    assert compile_template("@if 1:" * 300 + "x" + "@/if@" * 300, "deep.html")
    with pytest.raises(TemplateSyntaxError, match="nests constructs too deeply"):
        compile_template("@if 1:" * 3000 + "x" + "@/if@" * 3000, "deep.html")
    with pytest.raises(TemplateSyntaxError, match="too many statically nested blocks"):
        compile_template("@for x in y:" * 30 + "@/for@" * 30, "deep.html")
