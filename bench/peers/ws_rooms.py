# The room peer of bench/ws_scale.py: the websockets library, asyncio or sync server.
#
# Every connection is a member of one room; a text message "pub ..." from any member goes to all of
# them: websockets.asyncio.server.broadcast() for the asyncio server (its documented way to send one
# message to many connections), a loop of send() for the sync server (which has no broadcast).
# Compression off, as Krait has none. Usage: python ws_rooms.py --port P --mode asyncio|sync
import argparse
import asyncio
import threading

MEMBERS = set()


async def asyncio_main(port):
    from websockets.asyncio.server import broadcast, serve

    async def member(websocket):
        MEMBERS.add(websocket)
        try:
            async for message in websocket:
                if isinstance(message, str) and message.startswith("pub "):
                    broadcast(MEMBERS, message)
        finally:
            MEMBERS.discard(websocket)

    async with serve(member, "127.0.0.1", port, compression=None) as srv:
        print(f"websockets asyncio serving at ws://127.0.0.1:{port}/", flush=True)
        await srv.serve_forever()


def sync_main(port):
    from websockets.sync.server import serve

    lock = threading.Lock()

    def member(websocket):
        with lock:
            MEMBERS.add(websocket)
        try:
            for message in websocket:
                if isinstance(message, str) and message.startswith("pub "):
                    with lock:
                        members = list(MEMBERS)
                    for other in members:
                        try:
                            other.send(message)
                        except Exception:  # a member that went away
                            pass
        finally:
            with lock:
                MEMBERS.discard(websocket)

    with serve(member, "127.0.0.1", port, compression=None) as srv:
        print(f"websockets sync serving at ws://127.0.0.1:{port}/", flush=True)
        srv.serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("asyncio", "sync"), required=True)
    args = parser.parse_args()
    try:
        if args.mode == "asyncio":
            asyncio.run(asyncio_main(args.port))
        else:
            sync_main(args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
