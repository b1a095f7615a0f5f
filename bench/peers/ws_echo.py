# WebSocket echo peer of bench/run.py: the websockets library's threaded (sync) server.
#
# Strategy: the documented minimal echo handler; compression off (Krait has none, and the bench
# client does not offer it), max_size raised to 2 MiB so 1 MiB messages fit with room to spare.
# Usage: python ws_echo.py --port P   (binds 127.0.0.1 only; needs the venv's `websockets`)
import argparse

from websockets.sync.server import serve


def echo(websocket):
    for message in websocket:
        websocket.send(message)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with serve(echo, "127.0.0.1", args.port, compression=None, max_size=2 * 1024 * 1024) as srv:
        print(f"websockets serving at ws://127.0.0.1:{args.port}/", flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
