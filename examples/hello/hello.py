# GET /hello: a route-target script that builds the whole response itself.
import krait

krait.response = krait.Response("HTTP/1.1", 200, [("Content-Type", "text/plain")], "Hello, world!\n")
