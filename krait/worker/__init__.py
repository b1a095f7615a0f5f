# krait.worker: the code that runs inside worker processes, and the only place site code runs.
#
# Modules:
#   main.py       the process entry point: build the Site (run init.py), report, serve
#   site.py       Site: the post-init.py namespace, the code caches, the per-request module reset
#   run.py        one job: bind krait.request, run the script or render the template, build the Result
#   websocket.py  one accepted WebSocket session: drive the site's controller
# The protocol with the server (pipe, records, batching) is krait/pool/serve.py's; this package hands it
# two callables and never touches the pipe. This file imports nothing.
