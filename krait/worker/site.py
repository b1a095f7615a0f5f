# Site: what a worker process knows about the site, built once when the worker starts.
#
# Design: the worker puts SITE/.py on sys.path and runs .py/init.py once in a namespace dict that plays
# the role of 0.5.2's shared __main__ globals. Every request then starts from that state again:
# fresh_namespace() copies the namespace (plain containers one level deep, so a request that appends to
# a global list leaves no trace), and restore_modules() puts the krait.* modules back as init.py left
# them, so nothing a request assigns to krait.* (even a brand-new attribute) is seen by the next one.
# Scripts and templates are compiled once and cached by path, checked against mtime and size on every use.
# `on_compile(starting)`, when set, is told when a template's compilation starts and ends: the worker's
# loop tells the server, whose request deadline does not count it (krait/pool/serve.py).

from __future__ import annotations

import builtins
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
        self.modules = [(vars(m), dict(vars(m))) for m in (krait, krait.config, krait.mvc, krait.cookie,
                                                           krait.websockets)]
        self.copy_keys = [k for k, v in ns.items() if type(v) in (list, dict, set) and k != "__builtins__"]

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

    def fresh_namespace(self) -> dict[str, Any]:
        # One level of copying: a request that appends to, removes from or rebinds an item of a global
        # list/dict/set leaves no trace. Objects nested inside them stay shared (a deep copy of a large
        # table built by init.py would cost more than the request itself); docs/scripts.md says so.
        ns = self.base.copy()
        for key in self.copy_keys:
            ns[key] = ns[key].copy()
        return ns
