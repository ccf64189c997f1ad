"""The head of one plain GET or HEAD request, parsed in one pass, or None for anything else.

The site answers its hottest requests (a warm Maven file, a cached manifest)
straight from the bytes a read brought (`http.quick`), before Twisted builds
a `Request`.  That is only safe for the simplest shape of request, so this
parser accepts nothing else and leaves every other case to Twisted's parser,
which has the rules (and errors) for them:

* exactly one complete head, ending in the read: nothing after the blank
  line (no body, no pipelined request), no line split across reads;
* ``GET`` or ``HEAD``, an origin-form target (``/...``) of printable ASCII
  with no ``%``-escapes, ``HTTP/1.1``;
* lines ended by CRLF only, no folded lines, token header names, values
  without NUL, at most `MAX_HEADERS` headers and `MAX_HEAD_BYTES` in all;
* no header that changes how the request is read or the connection is kept:
  ``Content-Length``, ``Transfer-Encoding``, ``Expect``, ``Upgrade``, or a
  ``Connection`` other than one ``keep-alive``.

None never means "bad request", only "not this fast shape".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HOT_METHODS", "MAX_HEAD_BYTES", "MAX_HEADERS", "RequestHead", "parse_head"]

#: a longer head goes to Twisted's parser (a hot GET's head is a few hundred bytes)
MAX_HEAD_BYTES = 8192
#: more header lines than this go to Twisted's parser
MAX_HEADERS = 64

_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII without space and without "%" (escapes are decoded, and checked, on the slow path).
_TARGET_RE = re.compile(rb"/[!-$&-~]*")
#: the methods a hot handler answers (here and in `http.resources.HotRoute`)
HOT_METHODS = frozenset((b"GET", b"HEAD"))
# Headers whose presence means the request is not a plain bodiless GET on a kept-alive connection.
_REFUSED = frozenset((b"content-length", b"transfer-encoding", b"expect", b"upgrade"))


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed head: ``headers`` maps lower-case names to their values, in arrival order."""

    method: bytes
    target: bytes  # as sent: path and query
    path: bytes
    query: bytes  # after "?", b"" without one
    headers: dict[bytes, list[bytes]]


def parse_head(data: bytes) -> RequestHead | None:
    """The head ``data`` holds, if it is one plain GET/HEAD head and nothing more (see the module doc)."""
    if len(data) > MAX_HEAD_BYTES or not data.endswith(b"\r\n\r\n"):
        return None
    end = data.find(b"\r\n\r\n")
    if end != len(data) - 4:
        return None  # a second request, or a body, follows the first head
    head = data[:end]
    # CR and LF only as CRLF pairs (a bare one is something Twisted's parser decides on).
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf or b"\x00" in head:
        return None
    lines = head.split(b"\r\n")
    if len(lines) - 1 > MAX_HEADERS:
        return None
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    method, target = parts[0], parts[1]
    if method not in HOT_METHODS or _TARGET_RE.fullmatch(target) is None:
        return None
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN_RE.fullmatch(name) is None:
            return None  # also a folded line (it starts with a space or a tab)
        name = name.lower()
        if name in _REFUSED:
            return None
        value = value.strip(b" \t")
        values = headers.get(name)
        if values is None:
            headers[name] = [value]
        else:
            values.append(value)
    connection = headers.get(b"connection")
    if connection is not None and (len(connection) != 1 or connection[0].lower() != b"keep-alive"):
        return None
    path, _, query = target.partition(b"?")
    return RequestHead(method, target, path, query, headers)
