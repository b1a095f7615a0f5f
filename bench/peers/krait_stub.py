# A stand-in for `python -m krait`, used only to test bench/run.py before the real server runs:
#   python bench/run.py --quick --krait-cmd "python bench/peers/krait_stub.py"
#
# Strategy: accept Krait's command line (SITE --port P, other options ignored), print Krait's ready
# line, then serve with the stdlib: the site's static files (.bin, page-1k.html) from memory, /hello,
# /table (a fixed page: the stub cannot render Pympl) and a WebSocket echo on /echo (RFC 6455
# handshake section 4.2.2, unmasking section 5.3, unfragmented server frames). Stdlib only.
import argparse
import base64
import hashlib
import os
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAGES = {"/hello": (b"Hello, world!\n", "text/plain; charset=utf-8")}


def _unmask(data, key):
    n = len(data)
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/echo" and "websocket" in self.headers.get("Upgrade", "").lower():
            self._websocket()
            return
        page = PAGES.get(self.path)
        if page is None:
            self.send_error(404)
            return
        body, ctype = page
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _websocket(self):
        key = self.headers["Sec-WebSocket-Key"].encode("ascii")
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True
        parts = []
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            n = head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.rfile.read(8))[0]
            key = self.rfile.read(4)
            payload = _unmask(self.rfile.read(n), key) if n else b""
            opcode = head[0] & 0x0F
            if opcode == 8:
                self._send_frame(8, payload[:2])
                return
            if opcode in (9, 10):
                if opcode == 9:
                    self._send_frame(10, payload)
                continue
            if opcode:
                first = opcode
            parts.append(payload)
            if head[0] & 0x80:
                self._send_frame(first, b"".join(parts))
                parts = []

    def _send_frame(self, opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        self.wfile.write(head + payload)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("site")
    parser.add_argument("--port", "-p", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    args, _ignored = parser.parse_known_args()
    for name in os.listdir(args.site):
        path = os.path.join(args.site, name)
        if name.endswith((".bin", "-1k.html")) and os.path.isfile(path):
            with open(path, "rb") as f:
                PAGES["/" + name] = (f.read(), "application/octet-stream" if name.endswith(".bin")
                                     else "text/html; charset=utf-8")
    PAGES["/table"] = (b"<html><body>stub table</body></html>\n", "text/html; charset=utf-8")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print(f"Krait 0.0.0-stub serving {args.site} at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
