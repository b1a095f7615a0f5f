# Start-up script of the Krait demo site.
#
# Krait runs this file once in every worker process before that worker serves anything. Everything
# it defines at top level (project_name, header_items, ...) is copied into the namespace of every
# request, so route scripts and templates can use those names directly. krait.config is read once,
# after this file ran; later changes to it are ignored.
import store

import krait
from krait.config import Route

project_name = "Krait Demo"

# The navigation bar of .view/header.html: (label, URL) pairs.
header_items = [
    ("Home", "/"),
    ("Guestbook", "/guestbook"),
    ("Your request", "/request"),
    ("Chat room", "/chat"),
    ("Say hello", "/hello/visitor"),
    ("Sign in", "/login"),
]

# Routes are tried in order; the first match wins. Targets are files relative to the site root.
krait.config.routes = [
    Route("POST", url="/guestbook/post", target="/guestbook_post.py"),
    # Signing in and out keeps the visitor's name in krait.session (see login_post.py).
    Route("POST", url="/login", target="/login_post.py"),
    Route("POST", url="/logout", target="/logout.py"),
    # A JSON endpoint: GET reads the session, POST changes it (GET /api/me also takes the default route).
    Route("POST", url="/api/me", target="/api/me.py"),
    Route("WEBSOCKET", url="/chat/socket", target="/chat_socket.py"),
    Route("POST", url="/chat/post", target="/chat_post.py"),
    # A regex route: the named group lands in krait.url_params["name"].
    Route("GET", regex=r"/hello/(?P<name>[^/]+)", target="/hello.py"),
    # The request echo page accepts every method, so you can try it with curl -X PUT.
    Route("ANY", url="/request", target="/request.py"),
    # Last: every other GET (and HEAD) goes to the file its URL names (pages, CSS, JS).
    Route(),
]

# CSS and JS may be cached by browsers and proxies for 30 days. The pages link them as
# "/css/site.css?v=2": bump v= when a file changes so that browsers fetch the new one.
krait.config.cache_public = [r"css/.*\.css", r"js/.*\.js"]
krait.config.cache_long_term = [r"css/.*\.css", r"js/.*\.js"]
krait.config.cache_max_age_long_term = 30 * 24 * 3600

# The guestbook lives in SQLite under .private/ (never served: its name starts with a dot).
# Creating the table is idempotent, so every worker may run this at start-up.
store.create_schema()
