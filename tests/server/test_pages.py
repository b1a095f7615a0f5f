"""krait/server/pages.py over real files in a temp folder: code-free output kept per file version, within
its bounds."""

import os

from krait.server.pages import CodeFreePages
from krait.server.static import stamp


def page_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("<p>%s</p>" % name)
    st = os.stat(path)
    return str(path), stamp(st)


def test_kept_while_the_file_is_the_version_rendered(tmp_path):
    pages = CodeFreePages(lambda rel: "max-age=1")
    path, source = page_file(tmp_path, "a.html")
    kept = pages.store(path, "a.html", source, [("Content-Type", "text/html")], b"<p>a</p>")
    assert pages.get(path) is kept and kept.data == b"<p>a</p>" and kept.size == 8
    assert dict(kept.headers)["Cache-Control"] == "max-age=1"
    os.utime(path, ns=(5, 5))
    assert pages.get(path) is None
    os.utime(path, ns=(source[0], source[0]))
    assert pages.get(path) is None  # dropped on the miss, not merely hidden
    pages.store(path, "a.html", source, [], b"x")
    os.remove(path)
    assert pages.get(path) is None


def test_bounded_per_page_and_in_all(tmp_path):
    pages = CodeFreePages(lambda rel: "", max_page_size=10, max_bytes=15)
    a, b, big = (page_file(tmp_path, name) for name in ("a.html", "b.html", "big.html"))
    answer = pages.store(big[0], "big.html", big[1], [], b"x" * 11)
    assert answer.data == b"x" * 11 and pages.get(big[0]) is None  # answered, never kept
    pages.store(a[0], "a.html", a[1], [], b"a" * 10)
    pages.store(a[0], "a.html", a[1], [], b"a" * 9)  # a new output replaces the old one in the count
    pages.store(b[0], "b.html", b[1], [], b"b" * 6)  # 9 + 6 fits
    assert pages.get(a[0]) is not None and pages.get(b[0]) is not None
    pages.store(big[0], "big.html", big[1], [], b"c" * 3)  # past 15 bytes in all: the cache starts over
    assert pages.get(a[0]) is None and pages.get(b[0]) is None and pages.get(big[0]).data == b"ccc"
