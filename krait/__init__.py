# krait: the package site code imports (names kept from Krait 0.5.2).
#
# Layout: the package root is the script API (this module, _request, _response, config, mvc,
# cookie, websockets) plus small shared leaf modules (errors, limits, settings, mime, timefmt,
# sockopt, urls, portable). The server process lives in krait/server, the process boundary in krait/pool,
# the code that runs site code in krait/worker; krait/http and krait/pympl are the protocol core
# and the template compiler (docs/architecture.md draws the map).
#
# Rules:
# - The module globals below describe the request being handled. Each worker process handles one
#   request at a time and calls _begin_request() before each, which gives every per-request
#   global here (krait.session included: a Session that loads nothing until used) and in krait.mvc,
#   krait.cookie and krait.websockets a fresh object, so nothing a request stores leaks into the
#   next (docs/scripts.md).
# - Importing krait loads nothing but this module and krait.errors: the API's classes and modules
#   load on first use (PEP 562 module __getattr__), so the server process, which imports
#   krait.http and krait.server, never loads the script API.
# - get_full_path() never returns a path outside the site root (0.5.2 let absolute paths and
#   ".." escape it); dot folders such as .view are fine.

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from krait.errors import Forbidden

__version__ = "0.6.0.dev0"

__all__ = [
    "Request", "Response", "ResponseNotFound", "ResponseBadRequest", "ResponseRedirect", "ResponseJSON",
    "ResponseFile", "MultipartFormData", "Session", "config", "cookie", "mvc", "websockets", "get_full_path",
    "set_content_type", "site_root", "request", "response", "extra_headers", "url_params", "session",
]

#: str: the site root folder, as given on the command line.
site_root: str | None = None
#: Request: the request being handled.
request = None
#: Response or None: set it to replace the whole response.
response = None
#: list of (str, str): headers added to the response.
extra_headers: list = []
#: dict of str: named groups captured by the matching route's regex.
url_params: dict[str, str] = {}
#: Session: the visitor's session, a dict of JSON values kept on the server (docs/sessions.md).
session: Any = None
#: str or None: set by set_content_type(): a MIME type, "ext/<extension>", or None.
_content_type = None

_real_root_cache: tuple[str | None, str | None] = (None, None)  # (site_root, its realpath)

# Names of the API that load on first use: name -> the module that defines it (a submodule is its
# own name).
_LAZY = {
    "Request": "krait._request", "MultipartFormData": "krait._request",
    "Response": "krait._response", "ResponseNotFound": "krait._response",
    "ResponseBadRequest": "krait._response", "ResponseRedirect": "krait._response",
    "ResponseJSON": "krait._response", "ResponseFile": "krait._response", "Session": "krait._session",
    "config": None, "cookie": None, "mvc": None, "websockets": None,
}


def __getattr__(name: str) -> Any:
    """PEP 562: load an API class or submodule the first time it is used."""
    if name not in _LAZY:
        raise AttributeError(f"module 'krait' has no attribute {name!r}")
    source = _LAZY[name]
    if source is None:
        value = importlib.import_module("krait." + name)
    else:
        value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def _real_root(root: str) -> str:
    global _real_root_cache
    cached_root, real = _real_root_cache
    if cached_root != root or not os.path.isabs(root):  # a relative root depends on the cwd
        real = os.path.realpath(root)
        _real_root_cache = (root, real)
    return real  # type: ignore[return-value]


def get_full_path(filename):
    """Convert a path relative to the site root into a path that can be opened.

    Args:
        filename: a path relative to the site root, e.g. ".view/page.html".

    Returns:
        os.path.join(krait.site_root, filename).

    Raises:
        Forbidden: the path is absolute or leads outside the site root (after resolving ".."
            and symbolic links).
    """
    root = site_root
    if root is None:
        raise RuntimeError("krait.site_root is not set")
    filename = os.fspath(filename)
    if "\0" in filename or os.path.isabs(filename):
        raise Forbidden(f"path {filename!r} is not inside the site root")
    full = os.path.join(root, filename)
    real_root = _real_root(root)
    real = os.path.realpath(full)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise Forbidden(f"path {filename!r} leads outside the site root")
    return full


def set_content_type(raw=None, ext=None):
    """Set the response's Content-Type, when the target's extension does not say it.

    Args:
        raw: a full MIME type, used verbatim (e.g. "application/json").
        ext: a file extension to derive the type from (e.g. "json").
    With neither, the default (from the target's extension) is restored.
    """
    global _content_type
    if raw is not None:
        _content_type = raw
    elif ext is not None:
        _content_type = "ext/" + ext.lstrip(".")
    else:
        _content_type = None


def _begin_request(request, url_params=None):
    """Reset every per-request global (krait, mvc, cookie, websockets) for a new request; krait.session
    gets a fresh Session, which the worker stores with krait.session._end() after the site code ran.

    For the worker only. websockets.request is left None: the worker sets it for upgrades.
    """
    g = globals()
    g["request"] = request
    g["response"] = None
    g["extra_headers"] = []
    g["url_params"] = dict(url_params) if url_params else {}
    g["_content_type"] = None
    this = sys.modules[__name__]
    for name in ("mvc", "cookie", "websockets"):  # getattr loads a submodule not used yet
        getattr(this, name)._reset()
    g["session"] = this.Session()
