# TemplateCache: compile once, recompile when the file's stamp changes, LRU bound, errors as documented.

import os

import pytest

from krait import limits
from krait.errors import TemplateSyntaxError
from krait.pympl import TemplateCache, render


def write(path, data: bytes, mtime_ns=None):
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_hit_returns_same_code(tmp_path):
    page = tmp_path / "p.html"
    write(page, b"@x@")
    cache = TemplateCache()
    assert cache.max_entries == limits.TEMPLATE_CACHE_SIZE
    code = cache.get(str(page))
    assert cache.get(str(page)) is code
    assert str(page) in cache and len(cache) == 1
    assert render(code, {"x": "<"}) == "&lt;"


def test_changed_mtime_recompiles(tmp_path):
    page = tmp_path / "p.html"
    write(page, b"one", 1_000_000_000)
    cache = TemplateCache()
    first = cache.get(str(page))
    write(page, b"two", 2_000_000_000)  # same size, new mtime
    second = cache.get(str(page))
    assert second is not first and render(second, {}) == "two"


def test_changed_size_recompiles(tmp_path):
    page = tmp_path / "p.html"
    write(page, b"one", 1_000_000_000)
    cache = TemplateCache()
    cache.get(str(page))
    write(page, b"three", 1_000_000_000)  # same mtime, new size
    assert render(cache.get(str(page)), {}) == "three"


def test_a_file_renamed_over_with_the_same_mtime_and_size_recompiles(tmp_path):
    page = tmp_path / "p.html"
    write(page, b"one", 1_000_000_000)
    cache = TemplateCache()
    cache.get(str(page))
    spare = tmp_path / "new.html"
    write(spare, b"two", 1_000_000_000)  # another inode, same size and mtime
    os.replace(spare, page)
    assert render(cache.get(str(page)), {}) == "two"


def test_lru_bound(tmp_path):
    cache = TemplateCache(max_entries=2)
    paths = []
    for name in "abc":
        path = tmp_path / f"{name}.html"
        write(path, name.encode())
        paths.append(str(path))
    cache.get(paths[0])
    cache.get(paths[1])
    cache.get(paths[0])  # a is now the most recent
    cache.get(paths[2])  # evicts b
    assert paths[0] in cache and paths[2] in cache and paths[1] not in cache
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        TemplateCache().get(str(tmp_path / "nope.html"))


def test_invalid_utf8_reports_line(tmp_path):
    page = tmp_path / "bad.html"
    write(page, "line one\nligne deux é \xff here\n".encode("latin-1"))
    with pytest.raises(TemplateSyntaxError) as info:
        TemplateCache().get(str(page))
    error = info.value
    assert "invalid UTF-8" in error.message
    assert (error.path, error.line) == (str(page), 2)
    assert error.column == 12  # the 0xe9 byte (é in Latin-1) is the first bad one
    assert error.source_line.startswith("ligne deux")


def test_bom_is_dropped(tmp_path):
    page = tmp_path / "bom.html"
    write(page, b"\xef\xbb\xbfhi @x@")
    assert render(TemplateCache().get(str(page)), {"x": 1}) == "hi 1"


def test_syntax_error_then_fixed(tmp_path):
    page = tmp_path / "p.html"
    write(page, b"@if x:", 1_000_000_000)
    cache = TemplateCache()
    with pytest.raises(TemplateSyntaxError):
        cache.get(str(page))
    assert str(page) not in cache
    write(page, b"@if x:y@/if@", 2_000_000_000)
    assert render(cache.get(str(page)), {"x": 1}) == "y"
