# Every limit Krait enforces, in one place.
#
# Rules: this module holds named constants only and imports nothing from krait. Each constant says
# what it bounds, the precedent it follows and the response it triggers when exceeded. The
# protocol cores (krait/http, krait/pympl) never read these directly: their constructors take
# the limits as parameters, and Settings (krait/settings.py) passes these defaults, overridable
# from the command line.

# --- HTTP/1.1 request parsing (RFC 9112) -------------------------------------------------------

#: Longest request line (method, target, version). nginx 8 KiB, waitress 4 KiB (default
#: max_request_header_size covers it), Node 16 KiB in total. Exceeded -> 414 URI Too Long.
MAX_REQUEST_LINE = 8 * 1024

#: Largest whole header block (all field lines, excluding the request line). h11 16 KiB,
#: Apache 8 KiB per line x 100 lines, nginx 4 x 8 KiB. Exceeded -> 431.
MAX_HEADER_BLOCK = 64 * 1024

#: Largest single header field line. Apache LimitRequestFieldSize 8190. Exceeded -> 431.
MAX_HEADER_LINE = 8 * 1024

#: Most header fields in one request (or one trailer section). http.client _MAXHEADERS = 100,
#: Apache LimitRequestFields 100. Exceeded -> 431.
MAX_HEADER_COUNT = 100

#: Largest request body, checked against Content-Length before any body byte is read (and while
#: reading a chunked body). Default 16 MiB (docs/configuration.md). Exceeded -> 413 Content Too Large.
MAX_BODY_SIZE = 16 * 1024 * 1024

#: Most fields in one urlencoded body or query string (get_post_form(), query): parsing costs about 80
#: bytes of memory per field, 40 times a small field's size. PHP max_input_vars 1000, Django
#: DATA_UPLOAD_MAX_NUMBER_FIELDS 1000. Exceeded -> InvalidForm: 400 with the message, unless caught.
MAX_FORM_FIELDS = 10_000

#: Longest chunk-size line in a chunked body (hex digits plus extensions). Exceeded -> 400.
MAX_CHUNK_LINE = 1024

# --- Connection timing (enforced by krait/server/channel.py, never by the sans-IO core) ---------------

#: Seconds a client has to send a complete header block once its first byte arrived
#: (slowloris defence). Exceeded -> 408 and close.
HEADER_TIMEOUT = 10.0

#: Seconds an idle keep-alive connection is kept open between requests. gunicorn 2 s,
#: nginx 75 s, waitress channel_timeout 120 s. Exceeded -> the connection is closed silently.
KEEPALIVE_TIMEOUT = 15.0

#: Minimum request-body rate, in bytes per second, as a quota (krait/server/pace.py): every
#: BODY_RATE_WINDOW seconds must bring MIN_BODY_RATE x BODY_RATE_WINDOW bytes, the first window being
#: BODY_RATE_GRACE seconds longer. A burst followed by silence buys no time beyond the window it
#: filled, so a stalled body is cut within about BODY_RATE_WINDOW seconds. Below it -> 408 and close.
MIN_BODY_RATE = 1024
BODY_RATE_GRACE = 5.0
BODY_RATE_WINDOW = 5.0

#: Seconds a connection Krait ends after a response (Connection: close, an error) is read and discarded
#: once its sending side is shut (RFC 9112 section 9.6: closing at once while the client still sends
#: makes the kernel answer with a reset, which destroys the response's unread tail). Apache waits 2 s,
#: Go's net/http 0.5 s. Past it, or when the client closes -> the socket is closed.
LINGER_TIMEOUT = 2.0

#: Seconds the TLS handshake may take before the connection is dropped.
TLS_HANDSHAKE_TIMEOUT = 10.0

#: Seconds a single blocking send may stall (client not reading) before the connection is dropped.
SEND_TIMEOUT = 30.0

#: Minimum rate, in bytes per second, at which a client must take a response that does not fit the
#: socket's buffer at once: every SEND_TIMEOUT seconds it must take MIN_SEND_RATE x SEND_TIMEOUT bytes
#: (the same quota as request bodies, krait/server/pace.py), so a response of N bytes ends within about
#: SEND_TIMEOUT + N / MIN_SEND_RATE seconds however the client trickles. Below it -> the connection is
#: dropped. 8 KiB/s is a 64 kbit/s link.
MIN_SEND_RATE = 8192

# --- Request bodies and large responses (krait/server/bodies.py, krait/pool/serve.py) -------------

#: A request body larger than this (bytes) is written to a temporary file instead of being kept in
#: memory; the worker reads it from there (krait.request.body_file), so it never crosses the worker
#: pipe. waitress spools above 512 KiB (inbuf_overflow), gunicorn never.
SPOOL_THRESHOLD = 1024 * 1024

#: Bytes of request bodies the server process keeps in memory across all connections at once; past
#: it, even small bodies are spooled to temporary files.
BODY_MEMORY = 64 * 1024 * 1024

#: A script or template response body of at least this many bytes (or any iterable body) streams from
#: the worker in pieces of at most this size, chunked when its length is unknown: neither process
#: builds a copy of the whole body for the other (docs/scripts.md).
STREAM_CHUNK = 256 * 1024

# --- Concurrency ---------------------------------------------------------------------------

#: Most simultaneously open client connections per server process. Past it, a new connection takes the
#: place of one waiting for its client (krait/server/listener.py); when none waits, it gets a 503 with
#: Retry-After and is closed.
MAX_CONNECTIONS = 2000

#: Most connections open at once from one client address (the TCP peer's, not a forwarded one), per
#: server process (--max-connections-per-ip); 0 means no such bound. Past it, new connections from that
#: address get a 503 with Retry-After and are closed, with a warning in the log.
MAX_CONNECTIONS_PER_IP = 0

#: Length of the prefix an IPv6 client is counted under wherever connections are counted by client
#: address (--max-connections-per-ip, the room made on a full server, the WebSocket places): a subnet's
#: hosts pick their own low 64 bits (RFC 4291 section 2.5.4, RFC 8981), so one host could otherwise take
#: a fresh address for every connection. An IPv4 client is counted under its address.
IPV6_COUNTED_PREFIX = 64

#: Seconds between two log lines of one warning a client can repeat at will (a refused connection, one
#: closed to make room, running out of descriptors; krait/server/throttle.py): the lines left out are
#: counted in the next one, so a flood of connections is not a flood of log lines.
WARNING_INTERVAL = 10.0

#: Seconds the accept loop sleeps when accept() fails for want of a file descriptor (EMFILE, ENFILE)
#: and no spare descriptor is left to refuse the waiting client with (krait/server/listener.py).
ACCEPT_BACKOFF = 0.1

#: Requests processed at the same moment by the server process (a request waiting for a script worker
#: does not count) where connection threads cannot be SCHED_BATCH (krait/portable.py; on Linux they are,
#: and there is no gate). Connection threads past it wait in arrival order (krait/server/gate.py), which
#: keeps tail latency low under load (measured with 50 clients on one core: 4 slots gave p99 9.9 ms, 2
#: slots 4.2 ms, no gate 58 ms).
GATE_SLOTS = 2

#: Seconds before a failed start of a script worker that replaces a dead one is tried again; the wait
#: doubles after each failure, up to WORKER_RESTART_MAX (krait/pool/scheduler.py). In between, requests
#: that find no script worker get 503.
WORKER_RESTART_DELAY = 0.5
WORKER_RESTART_MAX = 30.0

#: Listen backlog passed to listen(2).
LISTEN_BACKLOG = 1024

#: Jobs that may wait for a free script worker before new ones are refused with 503.
MAX_QUEUED_JOBS = 256

#: Jobs one script worker may hold in its pipe (the one it runs and those queued behind it). More than
#: one lets a busy worker read several jobs per wake-up instead of sleeping between them (krait/pool/scheduler.py).
#: Deeper pipes mean fewer wake-ups per job: on one core, 8 rather than 4 gave about 12% more hello.py
#: requests/s and 16 rather than 8 another 11% (bench/README.md). Jobs only queue behind jobs known
#: to be fast (PIPELINE_STALL), so a deep pipe does not hold fast requests behind slow scripts.
PIPELINE_DEPTH = 16

#: A worker whose current job has run this long (seconds), or whose pipe holds a job whose file took
#: this long last time (or has not run yet), gets no more jobs queued behind it: they wait in the
#: shared queue for whichever worker is free first. Jobs that take longer gain little from pipelining.
PIPELINE_STALL = 0.002

#: Jobs with a request body this large (bytes) or larger only go to an idle worker.
PIPELINE_MAX_BODY = 32768

#: How often (seconds) a pool's reader thread looks at the running job's deadline when no answer comes.
POOL_POLL_INTERVAL = 0.25

#: Seconds a retired script worker (a reload, --max-requests) gets to exit after its stop message; then it
#: is killed. A thread that init.py started and did not make a daemon would keep it alive for ever.
WORKER_STOP_GRACE = 5.0

#: Extra seconds a request waits for a queued job before it gives up with 503 (beyond 2x --timeout).
QUEUE_WAIT_SLACK = 5.0

#: Safety limit (seconds) for writing one job into a worker's pipe.
PIPE_SEND_TIMEOUT = 600.0

#: Value of Retry-After (seconds) on a 503 caused by overload.
RETRY_AFTER = 1

# --- Site code -----------------------------------------------------------------------------

#: Per-request deadline for a script or template, in seconds. Exceeded -> worker killed and
#: replaced, client gets 504.
SCRIPT_TIMEOUT = 30.0

#: Largest header block a script or template may send (its Response's headers and krait.extra_headers,
#: cookies included: names, values, ": " and CRLF) and most fields in it: the bounds the parser puts on
#: requests (Python's http.client refuses a response with more than 100 fields). Exceeded -> the job
#: fails with a 500, logged, and none of its headers are sent (krait/worker/run.py).
MAX_RESPONSE_HEADER_BLOCK = MAX_HEADER_BLOCK
MAX_RESPONSE_HEADER_COUNT = MAX_HEADER_COUNT

#: Seconds a worker may spend compiling one template (Pympl through ply) on top of the request's
#: --timeout, which does not count the compilation: a large template is compiled, cached and served
#: however slow the first compilation, instead of being killed mid-way on every request. Past it -> 504.
COMPILE_TIMEOUT = 300.0

#: Deepest nesting of @import and MVC views inside one request (a template may import itself to render a
#: tree, so a cycle is known only by its depth; Jinja2 has no such limit and ends in RecursionError after
#: about 1,000 frames). Exceeded -> the job fails with a 500 whose message shows the chain of files.
MAX_IMPORT_DEPTH = 64

#: Requests a worker serves before it is replaced (0 = never).
MAX_REQUESTS_PER_WORKER = 0

#: Seconds in-flight requests get to finish on SIGTERM/SIGINT before they are cut.
GRACEFUL_TIMEOUT = 30.0

#: Compiled templates kept per worker (LRU). Jinja's default cache_size is 400.
TEMPLATE_CACHE_SIZE = 400

# --- Static files --------------------------------------------------------------------------

#: Files up to this size are cached in memory (checked against mtime and size on each use);
#: larger ones are streamed with socket.sendfile().
STATIC_CACHE_FILE_SIZE = 256 * 1024

#: Total bytes of file content kept in the static cache.
STATIC_CACHE_BYTES = 64 * 1024 * 1024

#: Bytes of finished replies kept to answer plain GET and HEAD requests for static files and code-free
#: pages again without routing them (krait/server/replies.py), counting 512 per reply besides its body.
PLAIN_REPLY_BYTES = 16 * 1024 * 1024

#: Total bytes of code-free template output the server process keeps to serve such pages itself
#: (krait/server/pages.py); a page larger than STATIC_CACHE_FILE_SIZE is never kept, and goes to a
#: worker on every request.
CODE_FREE_CACHE_BYTES = 16 * 1024 * 1024

#: A static file with other hard links is refused (404) when it shares its inode with site code, a dot
#: file or a file in a dot folder (krait/server/routing.py, docs/site-layout.md). The inodes come from a
#: scan of the site, made only when such a file is asked for and redone when the file's ctime is newer
#: than the scan (less this slack, in seconds: file systems stamp times with a clock that may lag a
#: tick) or the scan is older than CODE_SCAN_TTL seconds (for file systems with coarse timestamps).
CODE_SCAN_TTL = 5.0
CODE_SCAN_CLOCK_SLACK = 0.1

# --- Compression ---------------------------------------------------------------------------

#: Smallest response body worth gzipping.
GZIP_MIN_SIZE = 1024

#: Largest response body gzipped. Larger files are sent with sendfile() and larger script bodies stream,
#: neither held whole to compress; one rule for every body keeps a 304 or a 206 saying what its 200 says
#: (its entity tag and Vary, RFC 9110 sections 15.4.5 and 15.3.7).
GZIP_MAX_SIZE = STATIC_CACHE_FILE_SIZE

#: zlib level for gzip responses (6 is zlib's default trade-off).
GZIP_LEVEL = 6

# --- WebSockets (RFC 6455) -----------------------------------------------------------------

#: Largest WebSocket message (after reassembly of fragments). websockets' default max_size is
#: 1 MiB. Exceeded -> close 1009 Message Too Big.
MAX_WS_MESSAGE = 1024 * 1024

#: Partly received WebSocket messages one server process holds at most, in units of --max-ws-message:
#: each connection may hold one such message while it arrives, and without a bound across them 10,000
#: clients that each send all but the last byte of one would hold 10 GB. Past it, a client holding more
#: than 1/WS_FAIR_SHARE of --max-ws-message of unfinished input when it sends more is closed with 1013
#: (Try Again Later); clients holding less are never closed for it.
WS_PARTIAL_MESSAGES = 64
WS_FAIR_SHARE = 16

#: Most control frames (pings, pongs) one read of a WebSocket client may bring: a client that sends
#: them by the thousand (a flood of unsolicited pongs, or of pings whose pongs it reads) would keep the
#: hub's thread parsing and answering them while the other clients wait. A heartbeat sends one now and
#: then. Exceeded -> close 1008 (policy violation).
MAX_WS_CONTROL_FRAMES = 256

#: Most frames one WebSocket message may come in (RFC 6455 section 5.4 sets no limit): a flood of empty
#: continuation frames, which never complete a message, would keep the hub's thread parsing them while
#: the other clients wait. A 1 MiB message in fragments of 256 bytes still fits. Exceeded -> close 1009.
MAX_WS_FRAGMENTS = 4096

#: Most WebSocket connections open at once per server process. Each costs one file descriptor, so the
#: server lowers it to what the open-file limit leaves (krait/server/lifecycle.py logs that). Past it,
#: an upgrade gets 503 with Retry-After.
MAX_WEBSOCKETS = 10000

#: Seconds a controller gets to finish after on_stop() (wait_stopped()); past it the connection is given
#: up with a warning in the log, and the controller's thread is left to end on its own.
WS_STOP_TIMEOUT = 5.0

#: Seconds to wait for the client's Close frame after the server sent one, or for a client that closed
#: (its Close frame, or EOF) to take the output still queued for it; then the TCP connection is dropped.
WS_CLOSE_TIMEOUT = 5.0

#: Seconds one controller callback (on_in_message, on_start, on_stop) may hold a WebSocket worker's pipe
#: reader before another thread takes over reading (krait/pool/wsserve.py): how long the other
#: connections of that worker can be held up by one slow controller.
WS_CALLBACK_STALL = 0.05

#: Seconds without any frame from a client before the server pings it (--ws-ping-interval; the
#: websockets library's default is 20 s too); 0 turns pings off.
WS_PING_INTERVAL = 20.0

#: Seconds the client has to answer a ping with a pong before the connection is closed with 1011
#: (--ws-ping-timeout).
WS_PING_TIMEOUT = 20.0

#: A WebSocket client that does not read (docs/websockets.md): one holding more than WS_SLOW_UNSENT bytes
#: of unsent output that has taken nothing for WS_SEND_STALL seconds is closed with 1008 (policy
#: violation) and dropped, and so is one holding more than WS_MAX_UNSENT whatever it reads, so one slow
#: member of a room never slows down the others nor grows the server's memory without bound. A reader
#: that keeps up gets bursts larger than the kernel's socket buffer without harm.
WS_SLOW_UNSENT = 1024 * 1024
WS_SEND_STALL = 10.0
WS_MAX_UNSENT = 16 * 1024 * 1024

#: The other way round: a connection whose controller has not taken this many bytes of its client's
#: messages (waiting while its callback runs, or in the input queue of a controller that does not pop it)
#: is closed with 1008, so a client that sends faster than its controller handles cannot grow a
#: WebSocket worker's memory without bound (docs/websockets.md).
WS_MAX_UNREAD = 16 * 1024 * 1024

#: Bytes counted against WS_MAX_UNREAD for each message waiting in a worker besides its payload: the
#: objects that hold it. So a flood of empty messages is bounded too.
WS_MESSAGE_OVERHEAD = 100

#: Bytes of client messages the server holds for one WebSocket worker whose pipe does not take them (a
#: worker that stopped reading it: stopped, or stuck in C code that holds the GIL). Past it the hub stops
#: reading that worker's clients, and TCP holds them back, until half of it is written
#: (krait/server/hub.py); so the server's memory stays bounded whatever the clients send meanwhile.
WS_MAX_TO_WORKER = 16 * 1024 * 1024

#: Longest room name, in UTF-8 bytes (krait.websockets.publish(), WebsocketsCtrlBase.join()).
WS_MAX_ROOM = 256

#: File descriptors kept aside from the WebSocket and connection limits (listening socket, worker pipes,
#: log files, the site's own files and databases).
FD_RESERVE = 256

#: Sockets one select() call takes on Windows (CPython's FD_SETSIZE there), which bounds the WebSocket
#: hub on portable paths (krait/portable.py): --max-websockets is lowered to fit.
SELECT_MAX_SOCKETS = 512

# --- Sessions and signed cookies (docs/sessions.md) ------------------------------------------

#: Default idle lifetime of a session in seconds (krait.config.session_max_age): 14 days. A session
#: not used for this long is gone (the next request starts a fresh one) and is purged from the store.
SESSION_MAX_AGE = 14 * 24 * 3600

#: Seconds a request waits for the session store while another process writes it (SQLite's busy
#: timeout). Exceeded -> the request fails with 500.
SESSION_BUSY_TIMEOUT = 10.0

#: A session that requests only read gets its expiry moved forward at most this often (seconds, or
#: every max_age / 2 when that is shorter), so reading a session rarely writes to the store.
SESSION_TOUCH_INTERVAL = 60

#: Seconds between two purges of expired sessions by one worker (done while writing a session).
SESSION_PURGE_INTERVAL = 3600

#: Shortest krait.config.secret_key, in bytes: RFC 2104 section 3 discourages HMAC keys shorter than
#: the hash's output (32 bytes for SHA-256). Generated keys have this length.
SECRET_KEY_BYTES = 32
