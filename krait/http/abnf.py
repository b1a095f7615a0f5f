# The HTTP grammar Krait enforces, as regular expressions.
#
# Rules:
# - Each pattern sits under the ABNF it encodes, with the RFC section. Patterns are plain
#   strings here; the modules that use them compile what they need once, at import.
# - Patterns work on Latin-1-decoded str (the readers decode a whole head once), so obs-text
#   (%x80-FF) is written as the code points \x80-\xff.
# - Nothing here is lenient by accident: anything a pattern does not match is a 400 (or the
#   status the reader documents), never a silent fix-up.

# RFC 9110 s5.6.2
#   token = 1*tchar
#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"

# RFC 9110 s5.6.3
#   OWS = *( SP / HTAB )
OWS = r"[ \t]*"

# RFC 9110 s5.5
#   field-value    = *field-content
#   field-content  = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
#   field-vchar    = VCHAR / obs-text
#   obs-text       = %x80-FF
FIELD_VCHAR = r"[\x21-\x7e\x80-\xff]"
FIELD_VALUE = rf"(?:{FIELD_VCHAR}(?:[\t \x21-\x7e\x80-\xff]*{FIELD_VCHAR})?)?"

# RFC 9112 s5, s2.2
#   field-line = field-name ":" OWS field-value OWS     (each followed by CRLF)
# RFC 9112 s2.2 lets a recipient accept a bare LF as a line terminator; Krait does not (a
# front end that splits lines differently could be smuggled a request past), so a line must
# end with CR LF. One field line of a header or trailer block, anchored at a line start (used
# with re.M); a line ending with a bare LF fails the match, which the match count reveals.
# Group 1 is the name, group 2 the value with its trailing OWS (callers rstrip it). Since
# field-content allows SP / HTAB inside, "OWS field-value OWS" accepts exactly the strings of
# *( SP / HTAB / field-vchar ); matching that flat class and stripping afterwards is about 30%
# faster than the exact nested pattern (FIELD_VALUE, kept above as the reference) and accepts
# the same lines.
FIELD_LINE = rf"^({TOKEN}):{OWS}([\t \x21-\x7e\x80-\xff]*)\r\n"

# RFC 9112 s3
#   request-line   = method SP request-target SP HTTP-version
#   method         = token
# RFC 9112 s2.3
#   HTTP-version   = HTTP-name "/" DIGIT "." DIGIT
#   HTTP-name      = %s"HTTP"
# The request-target is checked here only for its characters (visible ASCII, RFC 9112 s3.2
# forms are checked by the reader). The line is matched without its LF and must end with the
# CR of its CRLF (RFC 9112 s2.2: no bare LF, see FIELD_LINE).
REQUEST_LINE = rf"({TOKEN}) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])\r"

# RFC 3986 s3.2.2 / s3.2.3, used by RFC 9110 s7.2 (Host), RFC 9112 s3.2.3 (authority-form)
# and RFC 9112 s3.2.2 (the authority of an absolute-form target)
#   Host        = uri-host [ ":" port ]
#   uri-host    = IP-literal / IPv4address / reg-name
#   IP-literal  = "[" ( IPv6address / IPvFuture  ) "]"
#   IPvFuture   = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
#   IPv6address =                            6( h16 ":" ) ls32
#               /                       "::" 5( h16 ":" ) ls32
#               / [               h16 ] "::" 4( h16 ":" ) ls32
#               / [ *1( h16 ":" ) h16 ] "::" 3( h16 ":" ) ls32
#               / [ *2( h16 ":" ) h16 ] "::" 2( h16 ":" ) ls32
#               / [ *3( h16 ":" ) h16 ] "::"    h16 ":"   ls32
#               / [ *4( h16 ":" ) h16 ] "::"              ls32
#               / [ *5( h16 ":" ) h16 ] "::"              h16
#               / [ *6( h16 ":" ) h16 ] "::"
#   h16         = 1*4HEXDIG
#   ls32        = ( h16 ":" h16 ) / IPv4address
#   IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet
#   dec-octet   = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35
#   reg-name    = *( unreserved / pct-encoded / sub-delims )
#   pct-encoded = "%" HEXDIG HEXDIG
#   port        = *DIGIT
# An IPv4address is also a reg-name (digits and dots), so reg-name covers it here.
_H16 = r"[0-9A-Fa-f]{1,4}"
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join([
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
])
_IPV_FUTURE = r"[vV][0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+"
_IP_LITERAL = rf"\[(?:{_IPV6}|{_IPV_FUTURE})\]"
_REG_CHAR = r"[-A-Za-z0-9._~!$&'()*+,;=]"  # unreserved / sub-delims
_REG_NAME = rf"{_REG_CHAR}*(?:%[0-9A-Fa-f]{{2}}{_REG_CHAR}*)*"
URI_HOST = rf"(?:{_IP_LITERAL}|{_REG_NAME})"
HOST = rf"{URI_HOST}(?::[0-9]*)?"
#   authority-form = uri-host ":" port       (RFC 9112 s3.2.3, CONNECT only)
AUTHORITY_FORM = rf"{URI_HOST}:[0-9]+"

# RFC 9112 s3.2.2
#   absolute-form = absolute-URI
# RFC 3986 s4.3, s3, s3.1, s3.2
#   absolute-URI  = scheme ":" hier-part [ "?" query ]
#   hier-part     = "//" authority path-abempty / path-absolute / path-rootless / path-empty
#   scheme        = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
#   authority     = [ userinfo "@" ] host [ ":" port ]
# Krait takes only the "//" authority branch with a non-empty host and no userinfo: an
# "http" or "https" URI with an empty host "MUST" be rejected (RFC 9110 s4.2.1, s4.2.2), a
# userinfo in one is to be treated "as an error" (RFC 9110 s4.2.4), and a target URI
# without an authority names nothing this server could be authoritative for (RFC 9110
# s7.4). The pattern is used with `match`: it checks the scheme and the authority, then
# only that the authority ends where the path or query begins (their characters are the
# visible ASCII the request line already checked, as for origin-form). Group 1 is the authority.
ABSOLUTE_FORM = (rf"[A-Za-z][A-Za-z0-9+.-]*://((?=[^:/?])(?:{_IP_LITERAL}|{_REG_NAME})"
                 r"(?::[0-9]*)?)(?:[/?]|\Z)")
#   the scheme alone, for the slow path's message
SCHEME_PREFIX = r"[A-Za-z][A-Za-z0-9+.-]*:"

# RFC 9110 s5.6.4
#   quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
#   qdtext         = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
#   quoted-pair    = "\" ( HTAB / SP / VCHAR / obs-text )
QUOTED_STRING = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'

# RFC 9112 s7.1 / s7.1.1
#   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
#   chunk-size     = 1*HEXDIG
#   last-chunk     = 1*("0") [ chunk-ext ] CRLF
#   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-name = token
#   chunk-ext-val  = token / quoted-string
# At most 16 hex digits: enough for any size a 64-bit peer can mean, and a bounded int().
# The line ends with CRLF, never a bare LF (RFC 9112 s7.1 writes CRLF; see FIELD_LINE).
CHUNK_EXT = rf"(?:{OWS};{OWS}{TOKEN}(?:{OWS}={OWS}(?:{TOKEN}|{QUOTED_STRING}))?)*"
CHUNK_LINE = rf"([0-9A-Fa-f]{{1,16}}){CHUNK_EXT}\r\n"
