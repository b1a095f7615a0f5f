# Pympl constructs beyond the worked examples: the fixes and additions of docs/pympl.md, whitespace rules,
# dedent, keyword divergence, strings and brackets, escaping and the shared namespace.

import pytest

from krait.pympl import compile_template, escape, render_into, show_code

from .helpers import run


@pytest.mark.parametrize(
    "template, namespace, expected",
    [
        # keyword divergence: these are plain expressions
        ("@ifx@", {"ifx": 1}, "1"),
        ("@elsewhere@", {"elsewhere": 2}, "2"),
        ("@important@", {"important": 3}, "3"),
        ("@for_each@", {"for_each": 4}, "4"),
        ("@format(1)@", {}, "1"),
        ("@import_x@", {"import_x": 5}, "5"),
        ("@elifant@", {"elifant": 6}, "6"),
        ("@items@", {"items": 7}, "7"),
        # keywords
        ("@if 1:a@elif 1:b@/if@", {}, "a"),
        ("@if 0:a@elif 1:b@elif 1:c@else:d@/if@", {}, "b"),
        ("@if 0:a@elif 0:b@elif x:c@else:d@/if@", {"x": 0}, "d"),
        ("@if 0:a@elif 0:b@/if@", {}, ""),
        ("@if 1:a@else   :b@/if@", {}, "a"),
        ("@if 0:a@else\n:b@/if@", {}, "b"),
        ("@if 1:a@/if", {}, "a"),
        ("@if 1:a@/if b", {}, "a b"),
        ("@for x in [1]:@x@@/for\n", {}, "1\n"),
        ("@for x in [1]:@x@@/for", {}, "1"),
        # `:` inside strings, brackets, dicts and lambdas does not end a header
        ("@if {'a': 1}['a']:y@/if@", {}, "y"),
        ("@if (lambda: 1)():y@/if@", {}, "y"),
        ("@for k in {'a:b': 1}:@k@@/for@", {}, "a:b"),
        ("@for x in d[1:3]:@x@@/for@", {"d": "abcd"}, "bc"),
        ("@for (a, b) in [(1, 2)]:@a@@b@@/for@", {}, "12"),
        ("@for x in xs if xs else []:@x@@/for@", {"xs": None}, ""),
        # expressions: groups know strings and may contain spaces, `@` and newlines
        ("@d[ 'a b' ]@", {"d": {"a b": 1}}, "1"),
        ("@f(')', \"(\")@", {"f": lambda a, b: a + b}, ")("),
        ("@f('@')@", {"f": str}, "@"),
        ("@(a @ b)@", {"a": type("M", (), {"__matmul__": lambda s, o: "mm"})(), "b": 1}, "mm"),
        ("@(1 +\n 2)@!", {}, "3!"),
        ("@'it''s'@", {}, "its"),
        ("@'a\\'b'@", {}, "a&#39;b"),
        ('@"""tri\nple"""@', {}, "tri\nple"),
        ("@'''a'b'''@", {}, "a&#39;b"),
        # empty constructs vanish
        ("a@", {}, "a"),
        ("a@\tb", {}, "a\tb"),
        ("a@!", {}, "a"),
        ("a@!@b", {}, "ab"),
        ("@{ }x", {}, "x"),
        ("@{\n\n}x", {}, "x"),
        ("", {}, ""),
        ("   \n", {}, "   \n"),
        # backslash is not an escape
        ("\\@@", {}, "\\@"),
        # raw output: str() without escaping
        ("@!v@", {"v": None}, "None"),
        ("@!v@", {"v": "<&>"}, "<&>"),
        # CRLF templates keep their bytes, code inside works
        ("a\r\n@if 1:\r\n@{\r\n  x = 1\r\n}@x@\r\n@/if\r\n", {}, "a\r\n\r\n1\r\n\r\n"),
    ],
)
def test_render(template, namespace, expected):
    assert run(template, namespace) == expected


@pytest.mark.parametrize(
    "template",
    [
        "@{'k': 1}['k']@",  # `@{` always opens a code block: a dict display is invalid there
        "@x)@",  # a stray closer is code; Python rejects it
        "@if(x):y@/if@",  # `@if(` is the expression `if(x):y`
    ],
)
def test_invalid_python(template):
    from krait.errors import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="invalid Python"):
        run(template, {"x": 1})


@pytest.mark.parametrize(
    "block",
    [
        "@{ x = 1\n    y = 2 }",
        "@{ x = 1\ny = 2 }",
        "@{\n    x = 1\n    y = 2\n}",
        "@{\n\n\tx = 1\n\ty = 2\n\t}",
        "  @{ if True:\n         x = 1\n     y = 2 }",
        "@{ for i in range(3):\n    x = i - 1\ny = 2 }",
        "@{ if True:\n       x = 1\n   y = 2 }",
        "@{ x = 1 # don't care }\n@{ y = 2 }",
        "@{ x = 1; y = 2 }",
        "@{\n    x = 1\n\n    if x:\n        y = 2\n}",
        "<p>é @{ x = 1\n y = 2 }",
        # 0.5.2's dedent: the margin shared by every line, the first one's spaces after @{ included
        "@{ y = 2 }<ul>\n  @{ for i in range(2):\n    x = i }",
        "@{ y = 2 }@{ if True:\n  x = 1 }",
    ],
)
def test_code_block_dedent(block):
    ns = {}
    render_into(compile_template(block, "b.html"), ns, [])
    assert (ns["x"], ns["y"]) == (1, 2)


def test_break_and_continue_work_in_loops():
    template = "@for i in range(9):@{\n    if i == 1:\n        continue\n    if i == 3:\n        break\n}@i@@/for@"
    assert run(template) == "02"


def test_escape():
    assert escape("<a href='x'>&\"</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    assert escape(12) == "12"
    assert escape(None) == "None"
    assert escape(True) == "True"
    assert escape(1.5) == "1.5"

    class Weird:
        def __str__(self):
            return "<w>"

    assert escape(Weird()) == "&lt;w&gt;"


def test_shared_namespace():
    ns = {"xs": [1, 2]}
    render_into(compile_template("@{ seen = [] }@for x in xs:@{ seen.append(x) }@/for@", "a.html"), ns, [])
    assert ns["seen"] == [1, 2] and ns["x"] == 2
    # no helper names are left behind
    assert not [name for name in ns if name.startswith("__pympl")]


def test_import_and_import_ctrl_callbacks():
    calls = []
    template = "@import 'a.html'@|@import ('b' + '.html')\n@import-ctrl ctrl@|@import-ctrl ctrl\n"
    out = run(
        template,
        {"ctrl": "C"},
        include=lambda v: calls.append(("import", v)),
        include_ctrl=lambda v: calls.append(("ctrl", v)),
    )
    assert out == "|\n|\n"
    assert calls == [("import", "a.html"), ("import", "b.html"), ("ctrl", "C"), ("ctrl", "C")]


def test_nested_for_across_includes_keeps_outer_loop():
    # 0.5.2 clobbered the outer loop's hidden iterator; real Python loops cannot.
    inner = compile_template("@for j in range(2):[@i@.@j@]@/for@", "inner.html")
    outer = compile_template("@for i in range(3):@import 'inner.html'@;@/for@", "outer.html")
    ns, out = {}, []

    def include(value):
        render_into(inner, ns, out, include)

    render_into(outer, ns, out, include)
    assert "".join(out) == "[0.0][0.1];[1.0][1.1];[2.0][2.1];"


def test_include_with_its_own_output_list_does_not_break_outer_helpers():
    inner = compile_template("<inner @x@>", "inner.html")
    outer = compile_template("a@import 'i'@b@import 'i'@c", "outer.html")
    ns, out, side = {"x": 1}, [], []

    def include(value):
        render_into(inner, ns, side)  # a different list and no include callback

    render_into(outer, ns, out, include)
    assert "".join(out) == "abc"
    assert "".join(side) == "<inner 1><inner 1>"


def test_helpers_restored_after_nested_render():
    ns = {"__pympl_w": "user value?"}
    render_into(compile_template("x", "t"), ns, [])
    assert ns["__pympl_w"] == "user value?"


def test_one_write_per_text_run():
    code = show_code("<td>@a@ and @!b@</td>\n@{ c = 1 }<p>@@</p>", "t.html")
    assert code.splitlines() == [
        "__pympl_w(f'<td>{__pympl_e(a)} and {b!s}</td>\\n')",
        "c = 1",
        "__pympl_w('<p>@</p>')",
    ]
    assert show_code("", "t") == ""


def test_code_object_names_template_file():
    code = compile_template("hi", "site/page.html")
    assert code.co_filename == "site/page.html"
