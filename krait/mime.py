# Content types: the stdlib `mimetypes` table plus the few types it lacks, with "; charset=utf-8" on text.
#
# Rules (docs/scripts.md): unknown extensions are application/octet-stream; text types (text/*,
# JavaScript, JSON, XML, SVG) get "; charset=utf-8" because Krait reads and writes text as UTF-8.
# Lookups are cached: the table never changes while the server runs.

from __future__ import annotations

import functools
import mimetypes
import os

DEFAULT = "application/octet-stream"

# What mimetypes lacks, or gets wrong on some systems (it also reads /etc/mime.types).
_EXTRA = {
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".ico": "image/vnd.microsoft.icon",
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".pyml": "text/html",
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".xml": "application/xml",
}

_TEXT_LIKE = ("application/javascript", "application/json", "application/xml", "image/svg+xml",
              "application/manifest+json", "application/yaml", "application/xhtml+xml")

# Types already compressed: never gzip them (see compression in channel.py).
COMPRESSIBLE_PREFIXES = ("text/", "application/javascript", "application/json", "application/xml",
                         "image/svg+xml", "application/manifest+json", "application/wasm", "font/ttf",
                         "font/otf", "application/yaml", "image/vnd.microsoft.icon")


def with_charset(ctype: str) -> str:
    """Add "; charset=utf-8" to a text type that has no parameters."""
    if ";" in ctype:
        return ctype
    if ctype.startswith("text/") or ctype in _TEXT_LIKE or ctype.endswith("+json") or ctype.endswith("+xml"):
        return ctype + "; charset=utf-8"
    return ctype


@functools.lru_cache(maxsize=512)
def for_extension(ext: str) -> str:
    """Content-Type for a file extension such as ".css" or "css" (case-insensitive)."""
    if ext and not ext.startswith("."):
        ext = "." + ext
    ext = ext.lower()
    ctype = _EXTRA.get(ext) or mimetypes.types_map.get(ext) or DEFAULT
    return with_charset(ctype)


def for_path(path: str) -> str:
    """Content-Type for a file name, by its last extension."""
    return for_extension(os.path.splitext(path)[1])


def is_compressible(ctype: str) -> bool:
    return ctype.startswith(COMPRESSIBLE_PREFIXES)
