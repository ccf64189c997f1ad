"""What every answer shares: the common and security headers, JSON bodies, the error format, CORS.

Everything a client can get wrong or we can fail at ends in the seed's
``{"errors": [...]}`` body, never in a Twisted HTML page: `write_error` writes
it, `install_error_handlers` maps a Klein front's exceptions onto it, and
`crash_response` is the last resort for what nobody caught.  The request
(`http.request`), the quick path (`http.channel`) and the resources
(`http.resources`) all take their headers from here, so that every path
writes the same bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from klein import Klein
from twisted.logger import Logger
from twisted.web import http, http_headers, server
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound

from harbor_cache.errors import ErrorCode, HarborError, error_body
from harbor_cache.http.errors import status_of

log = Logger()

CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Expose-Headers": b"Docker-Content-Digest, Docker-Upload-UUID, Location, Range, "
    b"Content-Range, WWW-Authenticate, Link, Warning",
}

PREFLIGHT_HEADERS = {
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers": b"Authorization, Content-Type, Range, Accept, Content-Range, "
    b"If-None-Match, If-Modified-Since",
    b"Access-Control-Max-Age": b"86400",
}


#: on every response outside ``/ui/`` (`ConsoleFiles` replaces the policy with `CONSOLE_CSP`): what we serve is
#: data (a deployed ``.pom``, a proxied ``.xml`` or manifest), and a browser that opens it as a document must not
#: run script from it on the console's origin, whatever its Content-Type says (docs/security.md)
SECURITY_HEADERS = {
    b"Content-Security-Policy": b"default-src 'none'; sandbox",
    b"X-Content-Type-Options": b"nosniff",
}


class _BaseHeaders:
    """The CORS pair, the security pair, ``Server`` and ``Date`` as `Headers` stores them, checked once.

    `every_response` gives fresh lists each time (a handler may add to a
    header's list), in the order the headers were set before: CORS and
    `SECURITY_HEADERS`, then ``Server`` and ``Date`` as
    `server.Request.process` sets them.  The ``Date`` value is
    `http.datetimeToString` of the current second, kept until the second
    changes.
    """

    def __init__(self):
        checked = http_headers.Headers()
        for name, value in {**CORS_HEADERS, **SECURITY_HEADERS}.items():
            checked.setRawHeaders(name, [value])
        self._common = [(name, values[0]) for name, values in checked._rawHeaders.items()]
        checked.setRawHeaders(b"Server", [server.version])
        checked.setRawHeaders(b"Date", [b""])
        names = list(checked._rawHeaders)
        self._server = (names[-2], server.version)
        self._date_name = names[-1]
        self._second = -1
        self._date = b""
        self._lines = b""

    def common(self) -> dict[bytes, list[bytes]]:
        """CORS and `SECURITY_HEADERS`: what a preflight answer carries too."""
        return {name: [value] for name, value in self._common}

    def _tick(self) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._date = http.datetimeToString(now)
            self._lines = b"".join(b"%s: %s\r\n" % (name, values[0]) for name, values in self._fresh().items())

    def _fresh(self) -> dict[bytes, list[bytes]]:
        headers = self.common()
        headers[self._server[0]] = [self._server[1]]
        headers[self._date_name] = [self._date]
        return headers

    def every_response(self) -> dict[bytes, list[bytes]]:
        self._tick()
        return self._fresh()

    def lines(self) -> bytes:
        """`every_response` as the header lines Twisted writes for it (encoded once a second, with ``Date``)."""
        self._tick()
        return self._lines


#: the one instance the request and the quick path share (its ``Date`` is formatted once a second)
BASE_HEADERS = _BaseHeaders()


def json_response(request, obj: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(obj).encode()


class Offload(Protocol):
    """Runs ``fn(*args)`` off the reactor (a thread pool in production, inline in unit tests)."""

    def run(self, fn: Callable[..., Any], *args: Any) -> Any: ...


# Items of a long list encoded per json.dumps call: a few milliseconds each, between which the GIL can go back.
ENCODE_SLICE = 500


def _encode_value(value: Any) -> str:
    if isinstance(value, list) and len(value) > ENCODE_SLICE:
        slices = (json.dumps(value[i : i + ENCODE_SLICE])[1:-1] for i in range(0, len(value), ENCODE_SLICE))
        return "[" + ", ".join(slices) + "]"
    return json.dumps(value)


def encode_json(obj: Any) -> bytes:
    """``json.dumps(obj).encode()``, byte for byte, with the long lists of a top-level object in slices.

    The C encoder holds the GIL for a whole call: on a thread, one call over
    a 7 MB body would still stall the reactor for all of it.  Encoding the
    big list a slice at a time lets the interpreter switch threads between
    slices (every 5 ms), so the reactor waits that long at most.
    """
    if not isinstance(obj, dict):
        return _encode_value(obj).encode()
    if not all(isinstance(key, str) for key in obj):
        return json.dumps(obj).encode()  # json.dumps' own spelling of other keys
    members = (json.dumps(key) + ": " + _encode_value(value) for key, value in obj.items())
    return ("{" + ", ".join(members) + "}").encode()


async def json_response_offloaded(request, obj: Any, offload: Offload | None, status: int = 200) -> bytes:
    """`json_response` for a body that grows with the index (an image list, a browse listing).

    Encoding 7 MB of JSON takes the reactor 0.1-1 s, and every request and
    timer waits meanwhile; on ``offload`` (a thread) the GIL is handed back
    every few milliseconds, so the reactor keeps serving.  None: inline.
    """
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    if offload is None:
        return encode_json(obj)
    body: bytes = await offload.run(encode_json, obj)
    return body


def write_error(
    request, status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> bytes:
    """Set status and headers for an error; returns the body (empty for HEAD)."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    body = error_body(code, message, detail)
    if request.method == b"HEAD":
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b""
    return body


def crash_response(request, failure) -> bytes | None:
    """Log an unexpected error; answer 500 in the error format, or abort if the body already started.

    Returns the body to write, or None when the connection was aborted.
    """
    log.failure(
        "unhandled error on {method} {path}",
        failure,
        method=request.method.decode("latin-1"),
        path=request.path.decode("latin-1"),
    )
    if request.startedWriting:
        request.transport.abortConnection()
        return None
    body = write_error(request, 500, ErrorCode.INTERNAL_ERROR, "internal server error")
    if request.method != b"HEAD":  # (write_error already set it for HEAD)
        request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def install_error_handlers(app: Klein) -> None:
    """Map our errors, routing misses and crashes onto the seed's error format."""

    @app.handle_errors(HarborError)
    def _harbor_error(self, request, failure):
        e = failure.value
        return write_error(request, status_of(e), e.code, e.message, e.detail, e.headers)

    @app.handle_errors(WerkzeugNotFound)
    def _not_found(self, request, failure):
        return write_error(request, 404, ErrorCode.NOT_FOUND, "no such endpoint", request.path.decode("latin-1"))

    @app.handle_errors(MethodNotAllowed)
    def _not_allowed(self, request, failure):
        allowed = ", ".join(failure.value.valid_methods or [])
        return write_error(request, 405, ErrorCode.UNSUPPORTED, "method not allowed", headers={"Allow": allowed})

    @app.handle_errors(HTTPException)
    def _http_exception(self, request, failure):
        e = failure.value
        return write_error(request, e.code or 400, ErrorCode.BAD_REQUEST, e.description or "bad request")

    @app.handle_errors(Exception)
    def _crash(self, request, failure):
        return crash_response(request, failure)
