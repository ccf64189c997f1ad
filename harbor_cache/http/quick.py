"""Hot GETs answered from the bytes of one read, before Twisted builds a `Request`.

A warm small Maven file or a cached manifest costs little to answer (a dict
lookup); what is left of a hit is Twisted's parsing line by line, its
`Request` (two `Headers`, cookies, the resource walk, `finish` and the
channel's bookkeeping) and the idle timer it cancels and re-creates per
request: about half of a hit's CPU.  So `HarborChannel` first offers each
read that holds exactly one plain GET/HEAD head (`grammar.request_head`)
to the hot handler of its first path segment (`http.resources.HotRoute`'s, the same
function) through a `QuickRequest`, which has what those handlers touch
and writes the response the way `twisted.web` would, byte for byte.

Everything else goes to Twisted's parser as before, with nothing consumed:
a head split across reads, a pipelined request, a body, HTTP/1.0, an
``Expect``, a handler that declines (returns None, having set nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs

from twisted.web.http import NO_BODY_CODES, RESPONSES
from twisted.web.http_headers import Headers

from harbor_cache.grammar.request_head import RequestHead
from harbor_cache.http.responses import BASE_HEADERS

if TYPE_CHECKING:
    from harbor_cache.http.request import HarborRequest

__all__ = ["HeaderBlock", "QuickRequest", "HotHandler"]

#: a front's synchronous answer: the body to write, or None having set nothing (see `http.resources.HotRoute`)
HotHandler = Callable[[Any], bytes | None]


def _lower(name: bytes | str) -> bytes:
    """A header name as `parse_head` keys it (Twisted's `Headers` takes str names too)."""
    return name.lower() if isinstance(name, bytes) else name.lower().encode("latin-1")


class _RequestHeaders:
    """The read side of `twisted.web.http_headers.Headers` over a parsed head (names lower-case)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[bytes, list[bytes]]):
        self._raw = raw

    def getRawHeaders(self, name: bytes | str, default: Any = None) -> Any:
        values = self._raw.get(_lower(name))
        return default if values is None else list(values)

    def hasHeader(self, name: bytes | str) -> bool:
        return _lower(name) in self._raw


class HeaderBlock:
    """Response headers that are the same on every answer of one cached file, checked and encoded once.

    A front sets them with ``request.set_headers(block)`` (`QuickRequest` and
    `HarborRequest` both have it).  The quick path then writes ``lines``
    after the headers of every response instead of building a `Headers` per
    request: the bytes are those the block's ``setHeader`` calls would give,
    in the same order.  A block belongs to what it describes (a memory hit's
    `MavenFile`) and goes when that goes: it holds no state of its own.
    """

    __slots__ = ("pairs", "lines", "has_length")

    def __init__(self, pairs: list[tuple[bytes, bytes]]):
        checked = Headers()
        for name, value in pairs:
            checked.setRawHeaders(name, [value])
        self.pairs = [(name, values[0]) for name, values in checked.getAllRawHeaders()]
        self.lines = b"".join(b"%s: %s\r\n" % pair for pair in self.pairs)
        self.has_length = checked.hasHeader(b"Content-Length")

    def apply(self, headers: Headers) -> None:
        """Set each of the block's headers on ``headers``, in order (replacing what was set under the same name)."""
        for name, value in self.pairs:
            headers.setRawHeaders(name, [value])


class QuickRequest:
    """What a hot handler reads and sets on a request, for a head `parse_head` accepted.

    The attributes `HarborSite.log` reads are those of `HarborRequest`, so
    the access line and the metrics are the same as on the slow path.  The
    response headers start as `BASE_HEADERS` plus at most one `HeaderBlock`,
    kept as bytes; a `Headers` is built only when a handler sets a header
    one by one (then the block's pairs go into it first, in order).
    """

    clientproto = b"HTTP/1.1"
    code = 200
    code_message = b"OK"
    front = "site"
    cache_status: str | None = None
    upstream: str | None = None
    sentLength = 0
    _headers_out: Headers | None = None
    _block: HeaderBlock | None = None

    def __init__(self, head: RequestHead):
        self.started_at = time.monotonic()
        self.method = head.method
        self.uri = head.target
        self.path = head.path
        self.args = parse_qs(head.query, True) if head.query else {}
        self._headers = head.headers
        self.requestHeaders = _RequestHeaders(head.headers)

    @property
    def responseHeaders(self) -> Headers:
        """The response headers as a `Headers` (built on first use: `BASE_HEADERS`, then the block's)."""
        headers = self._headers_out
        if headers is None:
            headers = self._headers_out = Headers()
            headers._rawHeaders.update(BASE_HEADERS.every_response())  # as `HarborRequest.process` does
            if self._block is not None:
                self._block.apply(headers)
                self._block = None
        return headers

    def getHeader(self, name: bytes) -> bytes | None:
        values = self._headers.get(name.lower())
        return None if values is None else values[-1]

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        self.responseHeaders.setRawHeaders(name, [value])

    def set_headers(self, block: HeaderBlock) -> None:
        """Set each header of ``block``, in order (kept as its bytes when nothing else was set yet)."""
        if self._headers_out is None and self._block is None:
            self._block = block
            return
        block.apply(self.responseHeaders)

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        self.code = code
        self.code_message = message or RESPONSES.get(code, b"Unknown Status")

    def response(self, body: bytes) -> list[bytes]:
        """The bytes `twisted.web`'s ``request.write(body); request.finish()`` would send, as one sequence."""
        no_body = self.method == b"HEAD" or self.code in NO_BODY_CODES
        block = self._block
        if self._headers_out is None and (no_body or (block is not None and block.has_length)):
            # Nothing set one by one, no chunking to add: the encoded lines as they are.
            head = b"HTTP/1.1 %d %s\r\n%s%s\r\n" % (
                self.code,
                self.code_message,
                BASE_HEADERS.lines(),
                b"" if block is None else block.lines,
            )
            if no_body:
                return [head]
            self.sentLength = len(body)
            return [head, body] if body else [head]
        headers = self.responseHeaders
        chunked = not no_body and not headers.hasHeader(b"Content-Length")
        if chunked:
            headers.setRawHeaders(b"Transfer-Encoding", [b"chunked"])
        out = [b"HTTP/1.1 %d %s\r\n" % (self.code, self.code_message)]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                out.append(b"%s: %s\r\n" % (name, value))
        out.append(b"\r\n")
        if no_body:
            return out
        self.sentLength = len(body)
        if chunked:
            if body:
                out += (b"%x\r\n" % len(body), body, b"\r\n")
            out.append(b"0\r\n\r\n")
        elif body:
            out.append(body)
        return out


#: The request a handler shared by the hot and the slow path receives: `QuickRequest` from the
#: channel's hot path, `HarborRequest` from Klein.  Such a handler reads and sets only what both have.
AnyRequest: TypeAlias = "HarborRequest | QuickRequest"
