# A tuned stdlib static server, the "what you get for free" peer of bench/run.py.
#
# Strategy: http.server.ThreadingHTTPServer with an HTTP/1.1 (keep-alive) handler that serves
# static-1k.bin, page-1k.html and static-1m.bin from memory: one precomputed header block per file
# (plus a Date formatted at most once a second), one sendall per response, Nagle off, no access log.
# Usage: python stdlib_static.py --site DIR --port P   (binds 127.0.0.1 only)
import argparse
import os
import socket
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILES = {}
_date = [0, b""]


def _date_header():
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, formatdate(now, usegmt=True).encode("ascii")
    return _date[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _respond(self, with_body):
        entry = FILES.get(self.path)
        if entry is None:
            self.send_error(404)
            return
        head, body = entry
        out = b"HTTP/1.1 200 OK\r\nDate: " + _date_header() + head
        self.wfile.write(out + body if with_body else out)

    def do_GET(self):
        self._respond(True)

    def do_HEAD(self):
        self._respond(False)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    for name, ctype in (("static-1k.bin", "application/octet-stream"),
                        ("page-1k.html", "text/html; charset=utf-8"),
                        ("static-1m.bin", "application/octet-stream")):
        with open(os.path.join(args.site, name), "rb") as f:
            body = f.read()
        head = (
            f"\r\nServer: stdlib\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        FILES["/" + name] = (head, body)
    server = Server(("127.0.0.1", args.port), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    print(f"stdlib serving at http://127.0.0.1:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
