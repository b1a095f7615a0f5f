# The worked examples of Krait 0.5.2's Pympl documentation are the conformance suite, with the fixes
# docs/pympl.md lists.

import types

import pytest

from krait.errors import TemplateSyntaxError

from .helpers import run

USER = types.SimpleNamespace(name="bob")

EXAMPLES = [
    # (number, template, namespace, expected output)
    (1, "Hello @name@!", {"name": "World"}, "Hello World!"),
    (2, "Hello @name", {"name": "World"}, "Hello World"),
    (5, "<p>@name@</p>", {"name": "<b>&\"'</b>"}, "<p>&lt;b&gt;&amp;&quot;&#39;&lt;/b&gt;</p>"),
    (6, "<p>@!name@</p>", {"name": "<b>"}, "<p><b></p>"),
    (7, "mail: a@@b.com", {}, "mail: a@b.com"),
    (9, "end with at@", {}, "end with at"),
    (10, "a @ b", {}, "a  b"),
    (11, "line@\nnext", {}, "line\nnext"),
    (12, "x @(1 + 2) y", {}, "x 3 y"),
    (13, "x @(1 + 2)@y", {}, "x 3y"),
    (15, "@user.name@ @items[0]@ @f(1, 2)@", {"user": USER, "items": ["a"], "f": lambda a, b: a + b}, "bob a 3"),
    (16, "@d['a b']@ / @x[1:3]@", {"d": {"a b": 5}, "x": "abcd"}, "5 / bc"),
    (17, "@'a' if x else 'b'@", {"x": 1}, "a if x else 'b'"),
    (18, "@('a' if x else 'b')@", {"x": 1}, "a"),
    (19, "@x@y@", {"x": 1}, "1y"),
    (20, "@x@@y@", {"x": 1, "y": 2}, "12"),
    (21, "@x  @y", {"x": 1, "y": 2}, "1  2"),
    (22, "@{ x = 5 }x=@x@", {}, "x=5"),
    (23, "@{x = {'a': 1}}@x['a']@", {}, "1"),
    (24, "@{ x = '}' }@x@", {}, "}"),
    (25, "A\n@if c:\nB\n@/if\nC", {"c": True}, "A\n\nB\n\nC"),
    (26, "A\n@if c:\nB\n@/if\nC", {"c": False}, "A\n\nC"),
    (27, "@if c:T@else:F@/if@", {"c": True}, "T"),
    (27, "@if c:T@else:F@/if@", {"c": False}, "F"),  # fix: `@else:` consumes its colon
    (28, "@if x == 'a:b':yes@/if@", {"x": "a:b"}, "yes"),
    (29, "@if d[1:2]:y@/if@", {"d": "abc"}, "y"),  # fix: `:` in brackets is not the end
    (29, "@if d[1:2]:y@/if@", {"d": "a"}, ""),
    (30, "<ul>\n@for i in xs:\n<li>@i@</li>\n@/for\n</ul>", {"xs": [1, 2]},
     "<ul>\n\n<li>1</li>\n\n<li>2</li>\n\n</ul>"),
    (31, "@for k, v in d:[@k@=@v@]@/for@", {"d": [("a", 1), ("b", 2)]}, "[a=1][b=2]"),
    (32, "@for i in range(3):@i@,@/for@.", {}, "0,1,2,."),
    (33, "@for x in [1,2]:@x@@/for@", {}, "12"),
    (34, "@for x in 'ab':@x@@/for@ @x@", {}, "ab b"),
    (35, "@for i in []:never@/for@done", {}, "done"),
    (36, "@for i in [1,2]:@if i == 2:two@else:other@/if@;@/for@", {}, "other;two;"),  # fix
    (38, "\\@x", {"x": 1}, "\\1"),
    (39, "@None@|@0@|@''@|", {}, "None|0||"),
    (40, '<a href="@url@">', {"url": "/a?b=1&c=2"}, '<a href="/a?b=1&amp;c=2">'),
    (41, "  @{ y = 1 }\n<p>@y@</p>\n", {}, "  \n<p>1</p>\n"),
    (42, "@ifx@ / @elsewhere@ / @format(1)@", {"ifx": "I", "elsewhere": "E"}, "I / E / 1"),
    (43, '@f(")")@', {"f": lambda v: v}, ")"),  # fix: parentheses know string literals
]


@pytest.mark.parametrize(
    "number, template, namespace, expected", EXAMPLES, ids=[f"ex{e[0]}-{i}" for i, e in enumerate(EXAMPLES)]
)
def test_worked_example(number, template, namespace, expected):
    assert run(template, namespace) == expected


def test_example_8_name_error_at_render_time():
    # `b.com` is valid Python, so it fails only when evaluated.
    with pytest.raises(NameError):
        run("mail: a@b.com")


@pytest.mark.parametrize(
    "number, template, column",
    [
        (3, "Hello @name!", 7),  # evaluates `name!`
        (4, "<p>@name</p>", 5),  # evaluates `name</p>`
        (14, "x @(1 + 2)y", 4),  # evaluates `(1 + 2)y`
        (44, "@if x:", 1),  # never closed
    ],
)
def test_examples_that_fail_at_compile_time(number, template, column):
    # Decision: Python syntax errors in expressions are found when compiling, not rendering.
    with pytest.raises(TemplateSyntaxError) as info:
        run(template, {"name": "World", "x": 1})
    assert info.value.line == 1
    assert info.value.column >= column


def test_example_37_import_renders_inline():
    from krait.pympl import compile_template, render_into

    header = compile_template("<h>@t@</h>", "h.html")
    ns = {"t": "T"}
    out = []

    def include(value):
        assert value == "h.html"
        render_into(header, ns, out, include)

    render_into(compile_template("@import 'h.html'\nbody", "page.html"), ns, out, include)
    assert "".join(out) == "<h>T</h>\nbody"


# --- demoserver idioms (0.5.2's demo site) ----------------------------------------------------------


class FakeCtrl:
    page_url = "/db"
    suffixes = {1: "st", 2: "nd", 3: "rd"}
    request_str = "GET / HTTP/1.1\r\nHost: <x>"


def test_demoserver_menu():
    template = (
        "@for name, url in header_items:\n"
        "  @{ cl = 'class=\"active\"' if url == ctrl.page_url else \"\" }\n"
        '  <li role="presentation" @!cl@><a href="@url@">@name@</a></li>\n'
        "@/for@"
    )
    ns = {"ctrl": FakeCtrl(), "header_items": [("Home", "/"), ("DB & co", "/db")]}
    assert run(template, ns) == (
        "\n  \n"
        '  <li role="presentation" ><a href="/">Home</a></li>\n'
        "\n  \n"
        '  <li role="presentation" class="active"><a href="/db">DB &amp; co</a></li>\n'
    )


def test_demoserver_says():
    assert run("<p>@name says:</p>", {"name": "Ann"}) == "<p>Ann says:</p>"


def test_demoserver_suffixes():
    template = 'LOOK AT IT (for the @(str(idx) + ctrl.suffixes.get(idx, "th")) time)'
    ns = {"ctrl": FakeCtrl()}
    assert run(template, dict(ns, idx=2)) == "LOOK AT IT (for the 2nd time)"
    assert run(template, dict(ns, idx=7)) == "LOOK AT IT (for the 7th time)"


def test_demoserver_pre():
    assert run("<pre>@ctrl.request_str@</pre>", {"ctrl": FakeCtrl()}) == (
        "<pre>GET / HTTP/1.1\r\nHost: &lt;x&gt;</pre>"
    )
