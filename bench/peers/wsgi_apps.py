# The WSGI application the benchmark runs under waitress and gunicorn (bench/run.py).
#
# Strategy: one app, dispatched on PATH_INFO, serving what the Krait benchmark site serves:
#   /static-1k.bin  read once at import, served from memory (the strongest WSGI static case)
#   /page-1k.html   read from disk on every request, as a WSGI app serving a site's pages would
#   /static-1m.bin  opened per request and streamed with wsgi.file_wrapper (sendfile under gunicorn)
#   /hello          14 bytes of text/plain, like bench/sites/krait/hello.py
#   /table          the 100-row table rendered by Jinja2 (autoescape on, template compiled once),
#                   from the same rows as the Pympl page (bench/sites/krait/.py/tabledata.py)
# The site folder comes from $BENCH_SITE (set by the harness).
import os
import sys

SITE = os.environ.get("BENCH_SITE") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "sites", "krait"
)
sys.path.insert(0, os.path.join(SITE, ".py"))

from tabledata import make_rows  # noqa: E402

HELLO = b"Hello, world!\n"
BIG_PATH = os.path.join(SITE, "static-1m.bin")
PAGE_PATH = os.path.join(SITE, "page-1k.html")
with open(os.path.join(SITE, "static-1k.bin"), "rb") as _f:
    SMALL = _f.read()

_TEMPLATE = None
ROWS = make_rows(100)
TITLE = "Benchmark table"


def _table_template():
    global _TEMPLATE
    if _TEMPLATE is None:
        import jinja2

        here = os.path.dirname(os.path.abspath(__file__))
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(here), autoescape=True, keep_trailing_newline=True
        )
        _TEMPLATE = env.get_template("table.jinja.html")
    return _TEMPLATE


def _bytes(start_response, body, ctype):
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    """Serve the five benchmark URLs; anything else is 404."""
    path = environ.get("PATH_INFO", "")
    if path == "/static-1k.bin":
        return _bytes(start_response, SMALL, "application/octet-stream")
    if path == "/page-1k.html":
        with open(PAGE_PATH, "rb") as f:
            return _bytes(start_response, f.read(), "text/html; charset=utf-8")
    if path == "/hello":
        return _bytes(start_response, HELLO, "text/plain; charset=utf-8")
    if path == "/table":
        body = _table_template().render(title=TITLE, rows=ROWS).encode("utf-8")
        return _bytes(start_response, body, "text/html; charset=utf-8")
    if path == "/static-1m.bin":
        f = open(BIG_PATH, "rb")
        size = os.fstat(f.fileno()).st_size
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
        )
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(f, 256 * 1024)
        return iter(lambda: f.read(256 * 1024), b"")
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]


try:  # compile the template at import so the first request is not special
    _table_template()
except ImportError:  # no Jinja2 here: only /table fails
    pass
