# Which code paths this process takes: the tuned POSIX ones, or the portable ones that Windows needs.
#
# Design: ACTIVE is decided once, when this module is first imported: True on Windows, and on any system
# whose environment has KRAIT_PORTABLE=1, so that the Windows paths run (and are tested) on Linux; worker
# processes inherit the environment and agree with their server. Every portable branch consults it and
# sits next to the code it replaces (docs/deployment.md, "Windows and macOS", lists them):
# - workers start with multiprocessing's spawn, not a forkserver (krait/pool/process.py);
# - WebSocket workers are reached over socketpairs, not os.pipe()s, worker pipes keep Python's timeouts,
#   and several buffers are written one send() at a time, not gathered by sendmsg() (krait/pool/pipe.py,
#   krait/server/websocket.py);
# - the WebSocket hub's selector is select(), which takes at most limits.SELECT_MAX_SOCKETS sockets
#   (krait/server/hub.py, krait/server/lifecycle.py);
# - no SIGHUP (an edit under SITE/.py reloads), no open-file rlimit, and the listening socket takes no
#   SO_REUSEADDR (krait/server/lifecycle.py, krait/server/listener.py).
# What follows the kernel's interface rather than a choice of path (the encoding of socket timeouts,
# Nagle's algorithm on Windows' TCP socketpairs, SO_EXCLUSIVEADDRUSE) goes by the platform itself.

from __future__ import annotations

import os
import socket
import sys

ACTIVE = sys.platform == "win32" or os.environ.get("KRAIT_PORTABLE") == "1"

# --processes N: the servers are forked and bind one port with SO_REUSEPORT, which spreads its connections
# across them on Linux only (on macOS and the BSDs one socket takes them all; Windows has neither).
SHARES_PORT = not ACTIVE and sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
