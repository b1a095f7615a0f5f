# "Your request": everything Krait tells a script about the request it is serving.
from krait import mvc

BODY_SHOWN = 4096  # bytes of the body displayed


class RequestController(mvc.CtrlBase):
    page_url = "/request"
    title = "Your request"

    def __init__(self, request):
        self.method = request.http_method
        self.url = request.url
        self.path = request.path
        self.query = sorted(request.query.items())
        self.headers = sorted(request.headers.items())
        # remote_addr is ("ip", port), or None when unknown.
        self.client = "%s, port %s" % request.remote_addr if request.remote_addr else "unknown"
        self.scheme = request.scheme
        self.body_size = len(request.body)
        self.body_text = request.body[:BODY_SHOWN].decode("utf-8", "replace")
        self.form = []
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.form = sorted(request.get_post_form().items())
        # An approximation of the request as it came over the wire.
        target = request.url + ("?" + request.query_string if request.query_string else "")
        lines = [f"{request.http_method} {target} {request.http_version}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        self.request_text = "\n".join(lines) + "\n\n" + self.body_text

    def get_view(self):
        return ".view/request.html"
