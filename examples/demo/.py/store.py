# The guestbook's storage: one SQLite table in SITE/.private/guestbook.sqlite3.
#
# Rules: every function opens its own short-lived connection (workers are separate processes and
# requests are short), uses parameterised queries only (never string formatting into SQL), and
# returns plain tuples. Text is stored exactly as typed: escaping is the templates' job.
import os
import sqlite3
from contextlib import closing

import krait

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    posted_at TEXT NOT NULL DEFAULT (datetime('now'))
)
"""

# Fixed ids make the seeding idempotent: several workers can run it at the same time.
# Two of the entries are XSS attempts: the page must show them as text, not run them.
SEED = [
    (1, "Krait", "Welcome! Leave a message below."),
    (2, "Mallory", "<script>alert('xss')</script>"),
    (3, "Eve", "<b onmouseover=alert('Wufff!')>click me!</b>"),
]

MAX_NAME = 60
MAX_MESSAGE = 500


def db_path():
    """Path of the SQLite file (inside the site's .private folder)."""
    return os.path.join(krait.site_root, ".private", "guestbook.sqlite3")


def _connect():
    return closing(sqlite3.connect(db_path(), timeout=10))


def create_schema():
    """Create the table (and the seed rows) if they are missing."""
    os.makedirs(os.path.dirname(db_path()), exist_ok=True)
    with _connect() as conn, conn:
        conn.execute(SCHEMA)
        conn.executemany("INSERT OR IGNORE INTO messages (id, name, message) VALUES (?, ?, ?)", SEED)


def add_message(name, message):
    """Store one message."""
    with _connect() as conn, conn:
        conn.execute("INSERT INTO messages (name, message) VALUES (?, ?)", (name, message))


def latest_messages(limit=50):
    """The newest messages first, as (name, message, posted_at) tuples."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT name, message, posted_at FROM messages ORDER BY id DESC LIMIT ?", (limit,)
        )
        return rows.fetchall()
