# krait.server: the server process. It owns every socket, speaks HTTP and WebSocket through the sans-IO
# core (krait/http), routes requests, serves static files, and hands site code to the worker pools
# (krait/pool); it never imports the worker side, the script API or ply.
#
# Modules, from the outside in:
#   cli.py        the `krait` command line -> Settings
#   lifecycle.py  start-up order, the pools, signals, reloads, --processes
#   listener.py   the listening socket, accept loop, connection limit, graceful drain, access log
#   channel.py    one client connection: recv -> krait.http -> route -> reply or job -> send
#   hub.py        every WebSocket of the process, in one selector loop; rooms; pings
#   websocket.py  one WebSocket client of the hub: its sans-IO session and unsent output
#   dispatch.py   App: route once, answer static files and errors, build jobs, turn results into replies
#   records.py    Incoming (the request, split once) and Reply (the response to send)
#   routing.py, static.py, compress.py, forwarded.py, gate.py, reloader.py   one concern each
# This file imports nothing.
