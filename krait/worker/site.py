# Site: what a worker process knows about the site, built once when the worker starts.
#
# Design: the worker puts SITE/.py on sys.path and runs .py/init.py once in a namespace dict that plays
# the role of 0.5.2's shared __main__ globals. Every request then starts from that state again:
# namespace() copies it (lists, dicts and sets one level deep, so a request that appends to a global list
# leaves no trace), and gives the copy its own versions of the functions init.py defined, bound to it:
# as in 0.5.2, where init.py and the script shared one __main__ per request, a global that such a function
# sets with `global` is the calling script's, and gone for the next request. Code of init.py that keeps
# init.py's globals (methods, the function a decorator wrapped, one held in a dict, a thread's) may still
# set one there: the names that init.py's functions assign with `global` (read from their bytecode once)
# are put back before every request, so none set for one visitor reaches the next. A thread of init.py's
# shares fresh data with requests by updating an object in place instead. A request's copy (what a thread
# or closure it left behind still reads) is its own. Its functions (the script's, and init.py's bound to
# it) refer back to it, a cycle that only a full garbage collection would free, with whatever large object
# the request kept in a global: release() empties it when the request is over, but only when reference
# counts show that nothing else holds it or its functions, so nothing could notice.
# A WebSocket route script gets a plain copy: its controller lives on with it, and init.py's functions it
# calls keep init.py's globals, shared by the worker's connections. restore_modules() puts the krait.*
# modules back as init.py left them, so nothing a request assigns to krait.* (even a brand-new attribute)
# is seen by the next one.
# Scripts and templates are compiled once and cached by path, checked against mtime and size on every use.
# `on_compile(starting)`, when set, is told when a template's compilation starts and ends: the worker's
# loop tells the server, whose request deadline does not count it (krait/pool/serve.py).

from __future__ import annotations

import builtins
import copy
import dis
import os
import sys
import types
from collections.abc import Callable
from typing import Any

import krait
from krait import _store
from krait.pympl import CodeCache, TemplateCache

_SCRIPT_CACHE_SIZE = 1000  # compiled .py files kept per worker


def _compile_script(data: bytes, path: str) -> Any:
    return compile(data, path, "exec", dont_inherit=True)


class Site:
    """The worker's view of the site: the post-init namespace and the code caches.

    Raises (from the constructor): whatever init.py raises.
    """

    def __init__(self, site_root: str, template_cache_size: int) -> None:
        self.root = os.path.realpath(site_root)
        self.py_dir = os.path.join(self.root, ".py")
        if self.py_dir not in sys.path:
            sys.path.append(self.py_dir)
        for name in krait.__all__:  # load the whole script API now: a request must not add module names
            getattr(krait, name)
        krait.site_root = self.root
        self.templates = TemplateCache(template_cache_size)
        self.on_compile: Callable[[bool], None] | None = None
        self._build_template = self.templates.build
        self.templates.build = self._compile_template
        self.scripts = CodeCache(_compile_script, _SCRIPT_CACHE_SIZE)
        ns: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "krait": krait,
            "sys": sys,
            "os": os,
            "project_dir": self.root,
            "site_py_dir": self.py_dir,
        }
        init = os.path.join(self.py_dir, "init.py")
        ns["main_script_path"] = init
        init_code = None
        if os.path.isfile(init):
            init_code = self.scripts.get(init)
            exec(init_code, ns)
        _store.configure(self.root)  # init.py's session settings, checked now rather than at the first request
        self.base = ns
        self.modules = [(vars(m), dict(vars(m))) for m in (krait, krait.config, krait.mvc, krait.cookie,
                                                           krait.websockets)]
        self.copy_keys = [k for k, v in ns.items() if isinstance(v, (list, dict, set)) and k != "__builtins__"]
        self.functions = [k for k, v in ns.items() if type(v) is types.FunctionType and v.__globals__ is ns]
        self.put_back = [(name, ns.get(name, _GONE)) for name in sorted(_set_with_global(init_code))]

    def _compile_template(self, data: bytes, path: str) -> types.CodeType:
        report = self.on_compile
        if report is None:
            return self._build_template(data, path)
        report(True)
        try:
            return self._build_template(data, path)
        finally:
            report(False)

    def restore_modules(self) -> None:
        # dict.update() puts every saved value back, and any deleted attribute, at C speed; after it the
        # live dict holds every saved name, so it is larger exactly when the request added names, which a
        # length check finds without comparing keys (bench/README.md, "Where the time goes"). Values are never
        # compared, so a hostile __eq__ is harmless.
        for live, saved in self.modules:
            live.update(saved)
            if len(live) != len(saved):  # the request added module attributes
                for key in [k for k in live if k not in saved]:
                    del live[key]

    def namespace(self, websocket: bool = False) -> dict[str, Any]:
        """The globals of the next request, or of a WebSocket route script (see the module comment)."""
        # One level of copying: a request that appends to, removes from or rebinds an item of a global
        # list/dict/set leaves no trace. Objects nested inside them stay shared (a deep copy of a large
        # table built by init.py would cost more than the request itself); docs/scripts.md says so.
        base = self.base
        if not websocket:
            for name, value in self.put_back:  # what init.py's other code set for the last request
                if value is _GONE:
                    base.pop(name, None)
                else:
                    base[name] = value
        ns = base.copy()
        for key in self.copy_keys:
            value = ns.get(key, _GONE)
            kind = type(value)
            if kind is list or kind is dict or kind is set:
                ns[key] = value.copy()
            elif isinstance(value, (list, dict, set)):  # defaultdict, OrderedDict, Counter...: type and state
                try:
                    ns[key] = copy.copy(value)
                except Exception:  # one that cannot be copied stays shared
                    pass
        if not websocket:
            for key in self.functions:
                function = ns.get(key)
                if type(function) is types.FunctionType and function.__globals__ is base:
                    ns[key] = _bound_to(function, ns)
        return ns

    @staticmethod
    def release(box: list[dict[str, Any]]) -> None:
        """Empty the globals of a request that is over (taken out of `box`, the caller's only hold on
        them) when nothing but their own functions refers to them (see the module comment)."""
        if not box:  # released already
            return
        ns = box.pop()
        count = sys.getrefcount(ns)
        if count == _NS_ALONE:  # nothing else holds it (no function of its own): it goes with `ns`
            return
        # Emptied only when its only other references are those of functions that nothing but it holds:
        # then nothing can use it any more (not a thread, a pool's queue, a registry, a generator, a
        # class's methods), and emptying it frees at once what the cycle would keep.
        functions = _function_refs(ns)
        if count - len(functions) == _NS_ALONE and all(c == _FUNCTION_ALONE for c in functions):
            ns.clear()


def _function_refs(ns: dict[str, Any]) -> list[int]:
    """The reference counts of the functions in `ns` whose globals it is."""
    return [sys.getrefcount(value) for value in ns.values()
            if type(value) is types.FunctionType and value.__globals__ is ns]


def _measure_alone() -> tuple[int, int]:
    """The reference counts, taken as release() takes them, of a namespace held by one variable (less its
    function's reference) and of a function that nothing but the namespace holds: they depend on the
    interpreter, so they are measured once."""
    probe: dict[str, Any] = {}
    exec("def alone(): pass", probe)
    count = sys.getrefcount(probe)
    return count - 1, _function_refs(probe)[0]


_NS_ALONE, _FUNCTION_ALONE = _measure_alone()


_GONE = object()  # a global that a thread of init.py's deleted since, or that init.py never set


def _set_with_global(code: types.CodeType | None) -> set[str]:
    """The names that the functions, methods and lambdas of init.py assign or delete with `global`."""
    names: set[str] = set()
    if code is None:
        return names
    inner = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    while inner:
        code = inner.pop()
        names.update(op.argval for op in dis.get_instructions(code) if op.opname in _GLOBAL_WRITES)
        inner.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


_GLOBAL_WRITES = ("STORE_GLOBAL", "DELETE_GLOBAL")


def _bound_to(function: types.FunctionType, ns: dict[str, Any]) -> types.FunctionType:
    """`function` (one init.py defined) with `ns` as its globals: the same code, defaults, closure and
    attributes."""
    bound = types.FunctionType(function.__code__, ns, function.__name__, function.__defaults__,
                               function.__closure__)
    bound.__kwdefaults__ = function.__kwdefaults__
    bound.__qualname__ = function.__qualname__
    bound.__doc__ = function.__doc__
    bound.__annotations__ = function.__annotations__
    if function.__dict__:
        bound.__dict__.update(function.__dict__)
    return bound
