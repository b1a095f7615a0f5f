"""The optional unmasking accelerator (krait[speedups]) against the pure-Python fallback.

krait.http.frames.apply_mask is chosen once, at import: websockets' compiled apply_mask when the
extra is installed, else py_apply_mask. Both must give the same bytes for every length, alignment
and buffer type the parser and websocket.py hand them; the parser and the session are run over
both (the `impl` fixture forces one in-process); and subprocesses check the choice itself: the
accelerator is picked when importable, without importing the websockets package or any I/O module,
and a hidden or disabled accelerator falls back.
"""

import importlib.machinery
import importlib.util
import os
import random
import subprocess
import sys
import types
from pathlib import Path

import pytest

from krait.http import frames, websocket
from krait.http.frames import FrameParser, Opcode, py_apply_mask, serialize
from krait.http.websocket import BinaryMessage, TextMessage, WebSocketConnection

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("socket", "selectors", "threading", "multiprocessing", "asyncio", "ssl")


def accelerator_installed() -> bool:
    """True when websockets and its compiled extension are installed (found without importing)."""
    if "websockets" in sys.modules:
        return sys.modules.get("websockets.speedups") is not None
    package = importlib.util.find_spec("websockets")
    if package is None or not package.submodule_search_locations:
        return False
    spec = importlib.machinery.PathFinder.find_spec("websockets.speedups", package.submodule_search_locations)
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


INSTALLED = accelerator_installed()
DISABLED = bool(os.environ.get("KRAIT_NO_SPEEDUPS"))
needs_accelerator = pytest.mark.skipif(not INSTALLED or DISABLED,
                                       reason="the speedups extra is not installed (or KRAIT_NO_SPEEDUPS is set)")
needs_installed = pytest.mark.skipif(not INSTALLED, reason="the speedups extra is not installed")

IMPLS = [pytest.param(py_apply_mask, id="python")]
if frames._speedups_apply_mask is not None:
    IMPLS.append(pytest.param(frames._speedups_apply_mask, id="speedups"))


def naive_mask(data, key) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(bytes(data)))


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
    """Run the test with one implementation as the module-level apply_mask of frames and websocket."""
    monkeypatch.setattr(frames, "apply_mask", request.param)
    monkeypatch.setattr(websocket, "apply_mask", request.param)
    return request.param


def run(code: str, env: dict | None = None) -> str:
    """Run `code` in a fresh interpreter (site-packages on its path: the extra is found there)."""
    full_env = dict(os.environ)
    full_env.pop("KRAIT_NO_SPEEDUPS", None)
    full_env.update(env or {})
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env=full_env)
    return out.stdout.strip()


# --- the two implementations give the same bytes -------------------------------------------


def lengths():
    rng = random.Random(6455)
    edge = list(range(0, 40)) + [125, 126, 127, 511, 512, 513, 4095, 4096, 4097, 65535, 65536, 65537, 70000]
    return edge + sorted(rng.randrange(0, 70001) for _ in range(60))


@needs_accelerator
def test_accelerator_matches_python_for_random_lengths_and_every_buffer_type():
    fast = frames._speedups_apply_mask
    rng = random.Random(1)
    for n in lengths():
        data = rng.randbytes(n)
        key = rng.randbytes(4)
        want = py_apply_mask(data, key)
        assert fast(data, key) == want, n
        assert fast(bytearray(data), key) == want, n
        # the parser's view: a payload at any offset in a larger bytearray (header, earlier frames)
        offset = rng.randrange(0, 17)
        buf = bytearray(rng.randbytes(offset)) + data + bytearray(rng.randbytes(rng.randrange(0, 9)))
        with memoryview(buf) as view:
            assert fast(view[offset:offset + n], key) == want, (n, offset)
        # websocket.receive_single()'s slice of a read, and a key cut from a bytearray
        assert fast(memoryview(data)[0:], bytes(bytearray(key))) == want
        assert type(fast(bytearray(data), key)) is bytes
        assert fast(want, key) == data


@needs_accelerator
@pytest.mark.parametrize("offset", range(16))
def test_accelerator_at_every_alignment_of_a_long_payload(offset):
    fast = frames._speedups_apply_mask
    data = os.urandom(70000)
    key = os.urandom(4)
    buf = bytearray(offset) + bytearray(data)
    with memoryview(buf) as view:
        got = fast(view[offset:], key)
    assert got == py_apply_mask(data, key) == py_apply_mask(memoryview(buf)[offset:], key)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 17, 511, 512, 513, 1001])
@pytest.mark.parametrize("kind", [bytes, bytearray, lambda d: memoryview(bytearray(b"\x00" * 6) + d)[6:]])
def test_python_fallback_on_every_buffer_type(n, kind):
    data = os.urandom(n)
    key = os.urandom(4)
    assert py_apply_mask(kind(data), key) == naive_mask(data, key)
    assert type(py_apply_mask(kind(data), key)) is bytes


# --- the parser and the session over both --------------------------------------------------


@pytest.mark.parametrize("n", [0, 5, 125, 126, 511, 512, 513, 65535, 65536, 70000])
def test_parser_unmasks_every_size_at_every_position(impl, n):
    key = os.urandom(4)
    payload = os.urandom(n)
    wire = serialize(Opcode.BINARY, payload, mask_key=key)
    if n:
        assert wire[-n:] == naive_mask(payload, key)
    small = serialize(Opcode.TEXT, b"hi", mask_key=os.urandom(4))
    # alone (the frame ends the buffer), after another frame (the payload at another offset), with
    # a byte of the next frame behind it (cut off the front), and in uneven chunks
    for before, after in ((b"", b""), (small, b""), (b"", b"\x82"), (small, small[:3])):
        parser = FrameParser()
        parser.feed(before + wire + after)
        got = []
        while (parts := parser.next_parts()) is not None:
            got.append(parts)
        assert got[-1] == (True, Opcode.BINARY, payload)
        assert len(got) == (2 if before else 1) and parser.buffered() == len(after)
    parser = FrameParser()
    data = small + wire + small
    got = []
    for i in range(0, len(data), 4099):
        parser.feed(memoryview(data)[i:i + 4099])
        while (parts := parser.next_parts()) is not None:
            got.append(parts)
    assert [p[2] for p in got] == [b"hi", payload, b"hi"]


def test_parser_uses_the_chosen_routine_for_large_payloads(monkeypatch):
    """With an accelerator the parser hands it the payload where it lies (a view, no copy)."""
    seen = []

    def spy(data, key):
        seen.append(type(data))
        return py_apply_mask(data, key)

    payload = os.urandom(100000)
    wire = serialize(Opcode.BINARY, payload, mask_key=b"abcd")
    monkeypatch.setattr(frames, "apply_mask", spy)
    parser = FrameParser()
    parser.feed(wire + b"\x82")
    assert parser.next_parts() == (True, Opcode.BINARY, payload)
    assert seen == [memoryview] and parser.buffered() == 1
    parser.feed(b"\x80" + b"abcd")  # the rest of an empty binary frame: the buffer grows again
    assert parser.next_parts() == (True, Opcode.BINARY, b"")


def test_session_over_both(impl):
    big = os.urandom(300000)
    ws = WebSocketConnection()
    for chunk in (serialize(Opcode.TEXT, "héllo".encode(), mask_key=os.urandom(4)),
                  serialize(Opcode.BINARY, big, mask_key=os.urandom(4))):
        ws.receive_data(chunk)
    assert ws.events() == [TextMessage("héllo"), BinaryMessage(big)]
    single = serialize(Opcode.TEXT, b"x" * 100, mask_key=os.urandom(4))
    assert ws.receive_single(memoryview(bytearray(single))) == (True, b"x" * 100)
    assert ws.receive_single(single) == (True, b"x" * 100)
    # serialize() masks with the same routine (a client's frames)
    masked = serialize(Opcode.BINARY, big, mask_key=b"\x01\x02\x03\x04")
    assert masked[-len(big):] == impl(big, b"\x01\x02\x03\x04") == py_apply_mask(big, b"\x01\x02\x03\x04")


# --- which one is chosen ---------------------------------------------------------------------


@needs_accelerator
def test_accelerator_is_chosen_when_installed():
    assert frames.SPEEDUPS == "websockets.speedups"
    assert frames.apply_mask is frames._speedups_apply_mask is not None
    assert websocket.apply_mask is frames.apply_mask


@pytest.mark.skipif(INSTALLED and not DISABLED, reason="the speedups extra is installed")
def test_fallback_is_chosen_without_the_extra():
    assert frames.SPEEDUPS is None and frames.apply_mask is py_apply_mask


@needs_installed
def test_import_with_the_extra_loads_no_io_module_and_not_the_websockets_package():
    # krait.http.frames under a bare `krait` package, as in test_sansio_imports.py, but with
    # site-packages on the path (-S would hide the extra)
    code = ("import sys, types; pkg = types.ModuleType('krait'); pkg.__path__ = ['krait']; "
            "sys.modules['krait'] = pkg; before = set(sys.modules); import krait.http.frames as f; "
            f"new = set(sys.modules) - before; print(f.SPEEDUPS, [m for m in {FORBIDDEN!r} if m in new], "
            "sorted(m for m in new if m.startswith('websockets')))")
    assert run(code) == "websockets.speedups [] []"


@needs_installed
def test_websockets_still_imports_after_krait_loaded_its_extension():
    code = ("import krait.http.frames as f, websockets, websockets.frames as wf; "
            "print(f.SPEEDUPS, type(wf.apply_mask).__name__, wf.apply_mask(b'abcda', b'abcd'))")
    assert run(code) == "websockets.speedups builtin_function_or_method b'\\x00\\x00\\x00\\x00\\x00'"


@pytest.mark.parametrize("hide", [
    "sys.modules['websockets'] = None",
    # a meta-path blocker: the package cannot be found at all
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'websockets': raise ImportError(name)\n"
    "sys.meta_path.insert(0, Block())",
])
def test_hidden_accelerator_falls_back(hide):
    code = ("import sys\n" + hide + "\n"
            "import krait.http.frames as f\n"
            "p = f.FrameParser(); p.feed(f.serialize(f.Opcode.BINARY, b'x' * 1000, mask_key=b'abcd'))\n"
            "print(f.SPEEDUPS, f.apply_mask is f.py_apply_mask, p.next_parts()[2] == b'x' * 1000)")
    assert run(code) == "None True True"


def test_environment_variable_forces_the_fallback():
    code = "import krait.http.frames as f; print(f.SPEEDUPS, f.apply_mask is f.py_apply_mask)"
    assert run(code, {"KRAIT_NO_SPEEDUPS": "1"}) == "None True"


def test_loader_rejects_what_it_cannot_use(monkeypatch, tmp_path):
    # in-process, so that coverage sees every way _load_speedups() says no
    monkeypatch.setenv("KRAIT_NO_SPEEDUPS", "1")
    assert frames._load_speedups() is None
    monkeypatch.delenv("KRAIT_NO_SPEEDUPS")
    # already imported by the application: used if it passes the check, else not
    def typeerror_on_views(data, mask):
        if isinstance(data, memoryview):
            raise TypeError("no views")
        return py_apply_mask(data, mask)

    for fake in (lambda data, mask: bytes(data), lambda data, mask: bytearray(py_apply_mask(data, mask)),
                 typeerror_on_views):
        monkeypatch.setitem(sys.modules, "websockets.speedups", types.SimpleNamespace(apply_mask=fake))
        assert frames._load_speedups() is None
    monkeypatch.setitem(sys.modules, "websockets.speedups", types.SimpleNamespace(apply_mask=py_apply_mask))
    assert frames._load_speedups() is py_apply_mask
    monkeypatch.setitem(sys.modules, "websockets.speedups", types.SimpleNamespace())
    assert frames._load_speedups() is None  # no apply_mask
    monkeypatch.delitem(sys.modules, "websockets.speedups")
    # hidden
    monkeypatch.setitem(sys.modules, "websockets", None)
    assert frames._load_speedups() is None
    monkeypatch.delitem(sys.modules, "websockets")
    # a websockets without its extension (its pure wheel), or with a Python module in its place
    package = tmp_path / "websockets"
    package.mkdir()
    (package / "__init__.py").write_text("raise AssertionError('the package is never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert frames._load_speedups() is None
    (package / "speedups.py").write_text("def apply_mask(data, mask): return bytes(data)\n")
    importlib.invalidate_caches()
    assert frames._load_speedups() is None
    assert "websockets" not in sys.modules


@needs_installed
def test_loader_loads_the_extension_again(monkeypatch):
    monkeypatch.delenv("KRAIT_NO_SPEEDUPS", raising=False)
    monkeypatch.delitem(sys.modules, "websockets.speedups", raising=False)
    fast = frames._load_speedups()
    assert fast is not None and fast(b"\x00" * 6, b"abcd") == b"abcdab"
    assert "websockets.speedups" not in sys.modules
