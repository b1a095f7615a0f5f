# The dynamic "hello" of the benchmark; the WSGI peers answer the same 14 bytes.
import krait

krait.response = krait.Response(
    "HTTP/1.1", 200, [("Content-Type", "text/plain; charset=utf-8")], "Hello, world!\n"
)
