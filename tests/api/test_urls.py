"""krait/urls.py: a request target is split once and decoded once (RFC 9112 section 3.2)."""

import pytest

from krait.errors import BadRequest
from krait.urls import decode_path, origin_path, split_target


@pytest.mark.parametrize("target, path, query", [
    ("/a/b?x=1&y", "/a/b", "x=1&y"), ("/a", "/a", ""), ("/a?", "/a", ""), ("/a?b?c", "/a", "b?c"),
    ("http://h?q=/x", "http://h", "q=/x"),  # the query of an absolute-form target is not its path
])
def test_split_target(target, path, query):
    assert split_target(target) == (path, query)


@pytest.mark.parametrize("raw, path", [
    ("/x", "/x"), ("http://h/x/y", "/x/y"), ("http://h", "/"), ("https://[::1]:8/z", "/z"), ("*", "/"),
])
def test_origin_path(raw, path):
    assert origin_path(raw) == path


def test_decode_path():
    assert decode_path("/caf%C3%A9%20x") == "/café x"
    assert decode_path("/plain") == "/plain"
    with pytest.raises(BadRequest):
        decode_path("/%ff")
