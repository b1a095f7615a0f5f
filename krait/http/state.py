# States of the two halves of a server-side HTTP/1.1 connection, and the transition tables.
#
# Theory of operation:
# - Each request/response exchange is a cycle. "their" state follows the request being
#   received, "our" state the response being sent.
#
#     their:  IDLE --Request--> BODY --EndOfMessage--> DONE
#             IDLE --peer EOF between requests--> CLOSED
#             any  --switch_protocol() after a 101--> SWITCHED
#     our:    IDLE --InformationalResponse(100..199 except 101)--> IDLE
#             IDLE --Response--> BODY --Data--> BODY --EndOfMessage--> DONE
#             IDLE --send_full(status >= 200)--> DONE
#             IDLE --101 (send_full or InformationalResponse)--> SWITCHED
#
# - When both are DONE and the connection is persistent, the cycle restarts (both IDLE) and
#   the next, possibly already buffered, request is parsed. When our side is DONE first, the
#   rest of the request body is read and discarded before that. When the connection is not
#   persistent, next_event() reports ConnectionClosed once our side is DONE.
# - A ProtocolError from the peer freezes the receive side for good (the Connection keeps the
#   error and raises it again); our side may still send one response, with Connection: close.
# - SEND below is the only table of legal sends; Connection.send consults it before writing.

IDLE = "IDLE"
BODY = "BODY"
DONE = "DONE"
CLOSED = "CLOSED"
SWITCHED = "SWITCHED"

# What the caller sends, by kind.
INFORMATIONAL, SWITCH, HEAD, FULL, DATA, END = range(6)

#: (our state, kind of event sent) -> our next state. Missing pairs are LocalProtocolErrors.
SEND = {
    (IDLE, INFORMATIONAL): IDLE,
    (IDLE, SWITCH): SWITCHED,
    (IDLE, HEAD): BODY,
    (IDLE, FULL): DONE,
    (BODY, DATA): BODY,
    (BODY, END): DONE,
}
