# The single exception hierarchy of Krait.
#
#   KraitError
#    +-- ProtocolError(message, status_hint)      bad bytes from the peer (krait/http raises it)
#    |    +-- WebSocketError(message, close_code)  bad WebSocket frames; carries the close code
#    +-- LocalProtocolError                        we were about to send invalid bytes (e.g. CR/LF
#    |                                             in a header a script set): a bug -> 500, logged
#    +-- HttpError                                 a request we answer with an error status
#    |    +-- BadRequest 400, Forbidden 403, NotFound 404, MethodNotAllowed 405 (+ Allow),
#    |    |   NotImplementedMethod 501, ServiceUnavailable 503 (+ Retry-After),
#    |    |   GatewayTimeout 504, InternalError 500
#    |    +-- InvalidJSON(BadRequest, ValueError)   krait.request.get_json() found no JSON: the
#    |                                              worker answers 400 with its message
#    +-- TemplateError                             Pympl problems (krait/pympl raises these)
#    |    +-- TemplateSyntaxError(message, path, line, column, source_line)
#    +-- ConfigError                               a bad site configuration (init.py, routes) at start-up
#    |                                             or reload
#    +-- Reloaded                                  a job routed by a configuration a reload replaced: the
#                                                  server routes the request again (never answered)
#
# Rules: each layer raises its own kind and the layer above translates it at exactly one place
# (channel.py for ProtocolError and HttpError; worker.py turns everything else into an error
# report). This module imports nothing from krait.


class KraitError(Exception):
    """Root of every exception Krait raises on purpose."""


class ProtocolError(KraitError):
    """The peer sent bytes that break the protocol.

    Args:
        message: what was wrong, for logs and (with --debug) error pages.
        status_hint: the HTTP status to answer with (400, 408, 413, 414, 431, 501, 505).
    """

    headers: tuple[tuple[str, str], ...] = ()  # extra response headers the rejection must carry

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint

    def __reduce__(self):  # keep picklable although __init__ takes two arguments
        return (type(self), (str(self), self.status_hint))


class WebSocketError(ProtocolError):
    """A WebSocket protocol violation; close_code is the RFC 6455 section 7.4.1 code to send."""

    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message, 400)
        self.close_code = close_code

    def __reduce__(self):
        return (type(self), (str(self), self.close_code))


class LocalProtocolError(KraitError):
    """Krait itself was asked to send something the protocol forbids (CR, LF or NUL in a header,
    a response after the connection failed). Answered with 500 and logged; never sent."""


class HttpError(KraitError):
    """A request answered with an error status. Subclasses declare status and reason."""

    status = 500
    reason = "Internal Server Error"

    def __init__(self, message: str = "", headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message or self.reason)
        self.headers = tuple(headers)

    def __reduce__(self):
        return (type(self), (str(self), self.headers))


class BadRequest(HttpError):
    status, reason = 400, "Bad Request"


class InvalidJSON(BadRequest, ValueError):
    """The request body is not JSON (krait.request.get_json()). Uncaught, the client gets 400 with
    this message, which names the problem: it is the client's mistake, not a secret (docs/scripts.md)."""


class InvalidForm(BadRequest, ValueError):
    """A urlencoded body or query string with more fields than limits.MAX_FORM_FIELDS. Uncaught, the
    client gets 400 with this message, like InvalidJSON (docs/scripts.md)."""


class Forbidden(HttpError):
    status, reason = 403, "Forbidden"


class NotFound(HttpError):
    status, reason = 404, "Not Found"


class MethodNotAllowed(HttpError):
    status, reason = 405, "Method Not Allowed"


class InternalError(HttpError):
    status, reason = 500, "Internal Server Error"


class NotImplementedMethod(HttpError):
    status, reason = 501, "Not Implemented"


class ServiceUnavailable(HttpError):
    status, reason = 503, "Service Unavailable"


class GatewayTimeout(HttpError):
    status, reason = 504, "Gateway Timeout"


class TemplateError(KraitError):
    """Base of every Pympl error."""


class TemplateSyntaxError(TemplateError):
    """A template that cannot be compiled.

    str() gives a Python-traceback-like report::

        TemplateSyntaxError: unterminated '@{ ... }' block
          File "site/.view/page.html", line 3, column 5
            <p>@{ x = 1</p>
                ^
    """

    def __init__(self, message: str, path: str, line: int, column: int, source_line: str = "") -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.source_line = source_line
        super().__init__(self._format())

    def _format(self) -> str:
        text = f'{self.message}\n  File "{self.path}", line {self.line}, column {self.column}'
        if self.source_line:
            src = self.source_line.rstrip("\r\n").expandtabs(1)
            text += f"\n    {src}\n    {' ' * max(self.column - 1, 0)}^"
        return text

    def __reduce__(self):
        return (type(self), (self.message, self.path, self.line, self.column, self.source_line))


class ConfigError(KraitError):
    """The site's configuration (routes, cache lists, init.py) is unusable; names what and where."""


class Reloaded(KraitError):
    """A job that was routed with the configuration of a worker generation that a reload has replaced
    (krait/pool/scheduler.py). It never reached a worker; the server routes its request again."""
