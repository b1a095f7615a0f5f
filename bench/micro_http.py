"""Microbenchmark of the sans-IO HTTP core: parse + respond cycles per second.

One cycle: a typical ~300-byte keep-alive GET with 8 header fields arrives in one piece;
next_event() gives Request and EndOfMessage; send_full() builds a small 200 response; the
next next_event() resets the connection for the next request (NEED_DATA).

    python bench/micro_http.py [cycles]
"""

import sys
import time

from krait.http import NEED_DATA, Connection

REQUEST = (
    b"GET /static/css/site.css?v=12 HTTP/1.1\r\n"
    b"Host: www.example.com:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/css,*/*;q=0.1\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Referer: http://www.example.com:8080/\r\n"
    b"Cookie: session=abc123def456\r\n"
    b"\r\n"
)
HEADERS = [("Content-Type", "text/css; charset=utf-8"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
           ("Server", "Krait/0.6.0"), ("Cache-Control", "max-age=3600")]
BODY = b"body { color: black; }\n" * 4


def run(cycles: int) -> float:
    conn = Connection()
    receive, next_event, send_full = conn.receive_data, conn.next_event, conn.send_full
    start = time.perf_counter()
    for _ in range(cycles):
        receive(REQUEST)
        next_event()            # Request
        next_event()            # EndOfMessage
        send_full(200, HEADERS, BODY)
        assert next_event() is NEED_DATA
    return cycles / (time.perf_counter() - start)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    assert len(REQUEST) in range(250, 400), len(REQUEST)
    best = max(run(n) for _ in range(3))
    print(f"{len(REQUEST)}-byte GET, 8 fields: {best:,.0f} parse+respond cycles/s "
          f"({1e6 / best:.2f} us per cycle)")
