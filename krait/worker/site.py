# Site: what a worker process knows about the site, built once when the worker starts.
#
# Design: the worker puts SITE/.py on sys.path and runs .py/init.py once in a namespace dict that plays
# the role of 0.5.2's shared __main__ globals: it is also the globals of every function init.py defines.
# Every request then starts from that state again: namespace() puts that same dict back as init.py left
# it (its lists, dicts and sets copied one level deep, so a request that appends to a global list leaves
# no trace) and a script runs in it, so an init.py function that sets a global with `global` is seen by
# the script that called it and by nobody after. A WebSocket route script runs in a copy instead: the
# controller it builds may outlive it, and its methods need that script's globals while later upgrades
# run. restore_modules() puts the krait.* modules back as init.py left them, so nothing a request assigns
# to krait.* (even a brand-new attribute) is seen by the next one.
# Scripts and templates are compiled once and cached by path, checked against mtime and size on every use.
# `on_compile(starting)`, when set, is told when a template's compilation starts and ends: the worker's
# loop tells the server, whose request deadline does not count it (krait/pool/serve.py).

from __future__ import annotations

import builtins
import copy
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
        if os.path.isfile(init):
            exec(self.scripts.get(init), ns)
        _store.configure(self.root)  # init.py's session settings, checked now rather than at the first request
        self.base = ns
        self.saved = dict(ns)
        self.modules = [(vars(m), dict(vars(m))) for m in (krait, krait.config, krait.mvc, krait.cookie,
                                                           krait.websockets)]
        self.copies = [(k, _copier(v)) for k, v in ns.items()
                       if isinstance(v, (list, dict, set)) and k != "__builtins__"]

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

    def namespace(self, own: bool = False) -> dict[str, Any]:
        """The globals of the next request: init.py's namespace as init.py left it, or with `own` a copy
        of it (for a WebSocket route script, see the module comment)."""
        # Put back in place, as restore_modules() does; one level of copying: a request that appends to,
        # removes from or rebinds an item of a global list/dict/set leaves no trace. Objects nested inside
        # them stay shared (a deep copy of a large table built by init.py would cost more than the request
        # itself); docs/scripts.md says so.
        ns, saved = self.base, self.saved
        ns.update(saved)
        if len(ns) != len(saved):  # the last request added globals
            for key in [k for k in ns if k not in saved]:
                del ns[key]
        for key, copier in self.copies:
            ns[key] = copier(saved[key])
        return ns.copy() if own else ns


def _copier(value: Any) -> Callable[[Any], Any]:
    """How to copy a global container of init.py per request: its own copy() for a plain list, dict or
    set; copy.copy() for a subclass (defaultdict, OrderedDict, Counter...), whose type and state it
    keeps; none, so the value stays shared, for one that cannot be copied."""
    if type(value) in (list, dict, set):
        return type(value).copy
    try:
        copy.copy(value)
    except Exception:
        return lambda same: same
    return copy.copy
