# krait.pool: the process boundary. The server process starts worker processes, hands them jobs and
# WebSocket sessions, and gets answers back; this package alone speaks the worker protocol.
#
# Modules:
#   jobs.py       the records that cross the boundary (Job, Result, ErrorReport, WorkerReady, WS tags)
#   pipe.py       the framing of those records over a socketpair or an os.pipe()
#   process.py    mechanism: one worker process (start, start-up report, stop, kill)
#   scheduler.py  policy: JobPool, the pipelined scheduling of HTTP jobs on a fixed set of workers, and
#                 their generations (a reload swaps in a complete new set)
#   sessions.py   WebSocket workers seen from the server's hub: events in, records out, never blocking
#   serve.py      the script worker's half: its job loop (answers held in batches); publish()
#   wsserve.py    the WebSocket worker's half: many connections, one pipe reader at a time
#   relay.py      published messages between server processes (--processes N)
# The server imports scheduler and sessions; the worker imports serve; neither reads a wire record.
# This file imports nothing, so that each side loads only its own half.
