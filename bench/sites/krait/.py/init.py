# Start-up script of the benchmark site (bench/run.py). Runs once per worker.
#
# Routes: the WebSocket echo endpoint at /echo (echo.py), the room of bench/ws_scale.py at /room (room.py),
# everything else by the default route.
# Globals: `title` and `rows` (100 rows) for table.html.
from tabledata import make_rows

import krait
from krait.config import Route

krait.config.routes = [Route("WEBSOCKET", url="/echo"), Route("WEBSOCKET", url="/room"), Route()]

title = "Benchmark table"
rows = make_rows(100)
