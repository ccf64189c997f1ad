"""The HTTP site: one root resource over the fronts, CORS, errors, access log, health.

Every front is a Klein app whose routes carry their full paths (``/v2/...``,
``/api/v1/...``); the root resource only picks which app sees the request.
Everything a client can get wrong or we can fail at ends in the seed's
``{"errors": [...]}`` body, never in a Twisted HTML page.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

from klein import Klein
from twisted.internet import protocol
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.web import http, http_headers, resource, server
from twisted.web.static import File
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound

from harbor_cache import __version__
from harbor_cache.errors import ErrorCode, HarborError, error_body
from harbor_cache.grammar.request_head import HOT_METHODS, parse_head
from harbor_cache.http.access_log import AccessLogFile
from harbor_cache.http.client_limits import ClientLimits, raw_error
from harbor_cache.http.connections import ConnectionTable
from harbor_cache.http.errors import status_of
from harbor_cache.http.quick import HotHandler, QuickRequest
from harbor_cache.http.request_body import BodyRules, BodyTooLarge, BodyTooSlow, ClientGone, StreamedBody, default_rules
from harbor_cache.metrics import front_label, method_label, status_label

log = Logger()
access_log = Logger(namespace="harbor_cache.access")
_ACCESS_NAMESPACE = "harbor_cache.access"
#: the access line (tests and log readers parse it): one event per request, in this namespace
ACCESS_FORMAT = "{method} {path} {status} {bytes} {duration_ms:.1f}ms {cache_status} {upstream}"
# Memo sizes for labelled metric children (keys: raw method and status, or front; bounded for made-up methods).
_MEMO_LIMIT = 256

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

    def common(self) -> dict[bytes, list[bytes]]:
        """CORS and `SECURITY_HEADERS`: what a preflight answer carries too."""
        return {name: [value] for name, value in self._common}

    def every_response(self) -> dict[bytes, list[bytes]]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._date = http.datetimeToString(now)
        headers = self.common()
        headers[self._server[0]] = [self._server[1]]
        headers[self._date_name] = [self._date]
        return headers


_BASE_HEADERS = _BaseHeaders()


def json_response(request, obj: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(obj).encode()


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


class HarborRequest(server.Request):
    """Adds CORS to every response, answers preflights, remembers timing and cache status.

    The body is never spooled: `gotLength` (headers in, body not yet read)
    asks the site's `BodyRules` whether the route streams its body.  If so,
    the request is processed at once with a `StreamedBody` as ``body`` (the
    handler pulls it; see `request_body`), unless its Content-Length is over
    ``max_upload_bytes`` (413 at once, the handler never runs); otherwise the
    body is buffered in memory up to ``max_body_bytes`` and a larger one is
    refused with 413 before (Content-Length) or as soon as (chunked) it goes
    over.
    """

    cache_status: str | None = None
    upstream: str | None = None  # the upstream that answered, when one did (OCI)
    front: str = "site"
    body: StreamedBody | None = None
    refused = False
    _line_parsed = False
    _buffered = 0
    _buffer_limit = 0

    # -- body handling (before process) -----------------------------------------

    def gotLength(self, length):
        channel = self.channel
        site = channel.site
        rules: BodyRules = site.body_rules
        if length != 0 and rules.streamed(channel._command, channel._path):  # no body: nothing to stream
            self.content = io.BytesIO()
            if length is not None and length > rules.max_upload_bytes:
                # Decided from the headers: the handler never runs and not a byte of the body is read.
                limit = rules.max_upload_bytes
                self.refuse(BodyTooLarge("request body too large", {"size": length, "limit": limit}))
                return
            self.body = StreamedBody(
                length, rules.max_upload_bytes, channel.pause_body, channel.resume_body, channel.send_continue
            )
            return
        self._buffer_limit = rules.max_body_bytes
        self.content = io.BytesIO()
        if length is not None and length > self._buffer_limit:
            self.refuse(BodyTooLarge("request body too large", {"size": length, "limit": self._buffer_limit}))

    def handleContentChunk(self, data):
        if self.body is not None:
            self.body.feed(data)
            return
        if self.refused:
            return
        self._buffered += len(data)
        if self._buffered > self._buffer_limit:
            self.refuse(BodyTooLarge("request body too large", {"limit": self._buffer_limit}))
            return
        self.content.write(data)

    def _parse_request_line(self, command, path, version):
        self._line_parsed = True
        self.args = {}
        self.method, self.uri = command, path
        self.clientproto = version
        target, _, query = path.partition(b"?")
        self.path = target
        if query:
            self.args = parse_qs(query, 1)

    def start_early(self, command, path, version):
        """Process a streamed-body request now; its handler pulls the body."""
        self._parse_request_line(command, path, version)
        self.process()

    def requestReceived(self, command, path, version):
        if self.body is not None:
            self.body.end()
            return
        if self.refused:
            return
        super().requestReceived(command, path, version)

    def refuse(self, error: HarborError) -> None:
        """Answer ``error`` before the body is read (or while it is cut off) and close the connection."""
        if self.refused or self.finished:
            return
        self.refused = True
        channel = self.channel
        if not self._line_parsed:
            self._parse_request_line(channel._command, channel._path, channel._version)
        self.started_at = time.monotonic()
        channel.persistent = False
        body = write_error(self, status_of(error), error.code, error.message, error.detail)
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        self.setHeader(b"Connection", b"close")
        self.setHeader(b"Content-Length", b"%d" % len(body))
        self.write(b"" if self.method == b"HEAD" else body)
        self.finish()

    def write(self, data):
        if not self.startedWriting and self.body is not None and not self.body.complete:
            # Answered before the body ended (an error, a 401): the rest of it is never read.
            self.channel.persistent = False
            self.setHeader(b"Connection", b"close")
        super().write(data)

    # -- processing -----------------------------------------------------------------

    def process(self):
        """`server.Request.process` with the headers every response carries set at the cost of one dict update.

        Twisted's own sets ``Server`` and ``Date`` through `setHeader`, which
        encodes the name and checks the value each time, and formats the date
        anew for every request: with the CORS pair, about a tenth of a warm
        hit's CPU.  Here the names and values are checked once (`_BaseHeaders`)
        and the date once a second; the response bytes are the same.
        """
        self.started_at = time.monotonic()
        raw = self.responseHeaders._rawHeaders
        if self.method == b"OPTIONS":
            raw.update(_BASE_HEADERS.common())
            for name, value in PREFLIGHT_HEADERS.items():
                self.setHeader(name, value)
            self.setResponseCode(204)
            self.finish()
            return
        raw.update(_BASE_HEADERS.every_response())
        # What server.Request.process does after its two setHeader calls.
        self.site = self.channel.site
        self.prepath = []
        self.postpath = list(map(http.unquote, self.path[1:].split(b"/")))
        if self.path == b"*":
            self._handleStar()
            return
        try:
            resrc = self.site.getResourceFor(self)
            if resource._IEncodingResource.providedBy(resrc):
                encoder = resrc.getEncoder(self)
                if encoder is not None:
                    self._encoder = encoder
            self.render(resrc)
        except BaseException:
            self.processingFailed(failure.Failure())

    def processingFailed(self, reason):
        body = crash_response(self, reason)
        if body is not None:
            self.write(body)
            self.finish()
        return reason

    def connectionLost(self, reason):
        if self.body is not None:
            self.body.fail(ClientGone("client disconnected"))
        if not self.finished and hasattr(self, "started_at"):
            self.channel_lost = True
            site = getattr(self, "site", None)
            if site is not None:
                site.log(self)
        super().connectionLost(reason)


# How long, and how much, a refused body is read and dropped before the connection closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 << 20
# Socket read size while a streamed body is pulled (Twisted's default is 64 KiB).
BODY_READ_SIZE = 1 << 20


class HarborChannel(http.HTTPChannel):
    """One client connection, with the limits of `ClientLimits` applied.

    * A TLS handshake on the plain-HTTP port is answered at once, as Go
      servers do: clients such as skopeo and podman try HTTPS first, and a
      ClientHello has no line ending, so the parser would wait for one until
      the client times out (10 s per pull).
    * Headers must be complete within ``header_timeout_seconds`` of the
      connection (or of the previous response): 408, or a silent close for a
      connection that sent nothing.
    * While a body is read, at least ``min_body_rate_bytes`` per second must
      arrive, averaged over ``body_rate_window_seconds``; time during which
      *we* paused the socket (backpressure, a handler not yet reading) does not
      count.  Too slow: 408 and close.
    * A streamed body pauses the socket while its handler is not pulling.
    * While it owes a request's headers it may be shed for a newcomer at
      ``max_connections`` (`http.connections`).
    * A read that holds exactly one plain GET/HEAD head, between requests,
      is first offered to the hot handler of its path and answered without
      a `Request` (`http.quick`); anything else is parsed as usual.
    """

    _first = True
    _body_paused = False
    _header_deadline = None
    _awaiting_headers = False
    _rate_check = None
    _rate_request = None
    _rate_bytes = 0
    _early_saved_timeout = None
    _counted = False
    #: the client's address (None for a non-IP transport), counted per address (`http.connections`)
    peer_host: str | None = None

    site: HarborSite  # set by the factory that builds the channel

    @property
    def limits(self) -> ClientLimits:
        return self.site.limits

    def connectionMade(self):
        super().connectionMade()
        self._counted = True
        self.site.connections.opened(self.peer_host)
        self._arm_header_deadline()

    def dataReceived(self, data):
        if self._first:
            self._first = False
            if data[:1] == b"\x16":
                self.transport.write(
                    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
                )
                self.transport.loseConnection()
                return
        self._bytes_in += len(data)
        if self._between_requests() and self._answer_at_once(data):
            return
        try:
            super().dataReceived(data)
        finally:
            self.hot_declined = False

    _bytes_in = 0
    #: the hot handler already declined the request being parsed (`HotRoute` does not ask it again)
    hot_declined = False

    # -- hot GETs without a Request (`http.quick`) ------------------------------------------

    def _between_requests(self) -> bool:
        """Nothing of a request is buffered or in progress: the next byte starts a request's head."""
        return bool(
            not self.requests
            and not self._handlingRequest
            and self.line_mode
            and not self._buffer
            and self.persistent
            and not self._body_paused
        )

    def _answer_at_once(self, data: bytes) -> bool:
        """Answer ``data`` if it is one plain GET/HEAD head that a hot handler takes; False: parse it as usual.

        The response, the access line and the metrics are those of the
        usual path (`HotRoute`); the connection then waits for its next
        request exactly as after `requestDone`.
        """
        head = parse_head(data)
        if head is None:
            return False
        hot = self.site.hot_for(head.path)
        if hot is None:
            return False
        request = QuickRequest(head, _BASE_HEADERS.every_response())
        try:
            body = hot(request)
        except Exception:
            log.failure("hot handler failed on {path}; the request takes the usual path", path=head.path)
            return False
        if body is None:
            self.hot_declined = True  # (the request is processed within this read: a head and no body)
            return False
        self.resetTimeout()
        self.transport.writeSequence(request.response(body))  # type: ignore[union-attr]
        self.site.log(request)
        self._arm_header_deadline()
        return True

    # -- header deadline ----------------------------------------------------------------

    def _arm_header_deadline(self):
        """The next request's headers are due within ``header_timeout_seconds`` from now.

        One timer per connection, moved on after each response (a later time
        is a cheap `reset`) and merely disarmed while a request is handled,
        instead of a new timer per request.
        """
        self._bytes_at_idle = self._bytes_in
        self._awaiting_headers = True
        self.site.connections.waiting(self)
        timeout = self.limits.header_timeout_seconds
        call = self._header_deadline
        if call is not None and call.active():
            call.reset(timeout)
        else:
            self._header_deadline = self.callLater(timeout, self._headers_too_slow)

    def _disarm_header_deadline(self):
        """Headers are in: the timer stays scheduled, but firing now does nothing."""
        self._awaiting_headers = False
        self.site.connections.busy(self)

    def _cancel_header_deadline(self):
        self._awaiting_headers = False
        self.site.connections.busy(self)
        if self._header_deadline is not None and self._header_deadline.active():
            self._header_deadline.cancel()
        self._header_deadline = None

    def _headers_too_slow(self):
        self._header_deadline = None
        if not self._awaiting_headers:
            return  # a request is being handled; its response arms the deadline again
        if self.transport is None or self.transport.disconnecting:
            return
        if self._started_a_request():
            seconds = self.limits.header_timeout_seconds
            self.transport.write(
                raw_error(
                    408,
                    "Request Timeout",
                    "REQUEST_TIMEOUT",
                    f"request headers not complete within {seconds:g} s",
                    {"header_timeout_seconds": seconds},
                )
            )
        self.transport.loseConnection()

    def _started_a_request(self) -> bool:
        """Bytes of a request that is not complete yet arrived (else the connection is idle between requests)."""
        return bool(self.requests or self._bytes_in > self._bytes_at_idle or self._dataBuffer)

    def shed(self) -> None:
        """Close this connection, which still owes its headers, for a newcomer (`http.connections`).

        503 in the error format if it began a request, else silently (as
        after its header deadline); it stops counting at once.
        """
        self._cancel_header_deadline()
        if self._counted:
            self._counted = False
            self.site.connections.closed(self, self.peer_host)
        transport = self.transport
        if transport is None or getattr(transport, "disconnecting", False):
            return
        if self._started_a_request():
            transport.write(
                raw_error(
                    503,
                    "Service Unavailable",
                    "TOO_MANY_CONNECTIONS",
                    "the server is at its connection limit: a connection still sending its headers was closed",
                    {"max_connections": self.limits.max_connections},
                )
            )
        transport.loseConnection()

    # -- body ---------------------------------------------------------------------------

    def allHeadersReceived(self):
        self._disarm_header_deadline()
        req = self.requests[-1]
        req.parseCookies()
        self.persistent = self.checkPersistence(req, self._version)
        req.gotLength(self.length)
        if req.refused:
            return
        if self.length != 0:
            self._start_rate_check(req)
        if req.body is not None:
            # The idle timer would fire while the handler decides (socket paused): the rate check replaces it.
            self._early_saved_timeout = self.setTimeout(None)
            req.start_early(self._command, self._path, self._version)
            return  # 100-continue goes out when the handler pulls the body
        expect = req.requestHeaders.getRawHeaders(b"Expect")
        if expect and expect[0].lower() == b"100-continue" and self._version == b"HTTP/1.1":
            self._send100Continue()

    def send_continue(self):
        req = self.requests[-1] if self.requests else None
        if req is None or self._version_of(req) != b"HTTP/1.1":
            return
        expect = req.requestHeaders.getRawHeaders(b"Expect")
        if expect and expect[0].lower() == b"100-continue":
            self._send100Continue()

    @staticmethod
    def _version_of(req):
        return getattr(req, "clientproto", None)

    def allContentReceived(self):
        self._stop_rate_check()
        req = self.requests[-1] if self.requests else None
        if req is None or req.refused:
            # Answered (and closing) before its body ended: drop whatever else arrives.
            self.length = 0
            self._transferDecoder = None
            self._handlingRequest = True
            self._dataBuffer = []
            self.setRawMode()
            self.rawDataReceived = lambda data: None
            return
        if req.body is not None:
            saved = self._early_saved_timeout
            super().allContentReceived()
            self._savedTimeOut = saved
            return
        super().allContentReceived()

    def pause_body(self):
        self._body_paused = True
        self._networkProducer.pauseProducing()

    def resume_body(self):
        # A body being pulled is read in large gulps: per-read Python work, not the copy, dominates at 64 KiB.
        if getattr(self.transport, "bufferSize", BODY_READ_SIZE) < BODY_READ_SIZE:
            self._saved_buffer_size = self.transport.bufferSize
            self.transport.bufferSize = BODY_READ_SIZE
        self._body_paused = False
        self._reset_rate_window()
        if not self._waitingForTransport:
            self._networkProducer.resumeProducing()

    def resumeProducing(self):
        self._waitingForTransport = False
        if self._requestProducer is not None:
            self._requestProducer.resumeProducing()
        if not self._handlingRequest and not self._body_paused:
            self._networkProducer.resumeProducing()

    # -- minimum body rate ------------------------------------------------------------

    def _start_rate_check(self, req):
        if self.limits.min_body_rate_bytes <= 0:
            return
        self._rate_request = req
        self._reset_rate_window()

    def _reset_rate_window(self):
        """Start a new window from now (also after we resume a socket we had paused)."""
        if self._rate_request is None:
            return
        if self._rate_check is not None and self._rate_check.active():
            self._rate_check.cancel()
        self._rate_bytes = self._bytes_in
        self._rate_check = self.callLater(self.limits.body_rate_window_seconds, self._check_rate)

    def _stop_rate_check(self):
        if self._rate_check is not None and self._rate_check.active():
            self._rate_check.cancel()
        self._rate_check = None
        self._rate_request = None

    def _check_rate(self):
        limits = self.limits
        req = self._rate_request
        self._rate_check = None
        if req is None or self.transport is None:
            return
        body = req.body
        waiting_on_us = self._body_paused or (body is not None and not body.wanted)
        got = self._bytes_in - self._rate_bytes
        if not waiting_on_us and got < limits.min_body_rate_bytes * limits.body_rate_window_seconds:
            self._body_too_slow(req, got)
            return
        self._reset_rate_window()

    def _body_too_slow(self, req, got: int):
        limits = self.limits
        error = BodyTooSlow(
            f"request body slower than {limits.min_body_rate_bytes} bytes/s",
            {
                "min_body_rate_bytes": limits.min_body_rate_bytes,
                "received_in_window": got,
                "window_seconds": limits.body_rate_window_seconds,
            },
        )
        self._rate_request = None
        if req.body is not None and not req.startedWriting:
            req.body.fail(error)  # the handler answers it (in the error format) and the connection closes
            self.persistent = False
            return
        if not req.startedWriting and not req.finished:
            req.refuse(error)
            return
        self.transport.loseConnection()  # type: ignore[union-attr]

    # -- lifecycle ------------------------------------------------------------------------

    def requestDone(self, request):
        unread = request.refused or (request.body is not None and not request.body.complete)
        if self.persistent or not unread:
            self._body_paused = False  # a streamed body paused reading; the next request starts unpaused
            saved = getattr(self, "_saved_buffer_size", None)
            if saved is not None and self.transport is not None:
                self.transport.bufferSize, self._saved_buffer_size = saved, None
            # Headers are due again, unless a pipelined request that `super().requestDone` replays gets its
            # headers (`allHeadersReceived` disarms) and is still being handled when it returns.
            self._awaiting_headers = True
            super().requestDone(request)
            if (
                self._awaiting_headers
                and self.persistent
                and self.transport is not None
                and not self.transport.disconnecting
            ):
                self._arm_header_deadline()
            return
        if request != self.requests[0]:
            raise TypeError
        del self.requests[0]
        self._linger()

    def _linger(self):
        """Answered before the body was read: drop what the client still sends for a moment, then close.

        Clients such as Python's http.client send the whole body before they
        read a response; closing at once would reset the connection under them
        and they would never see the 413/401.  As nginx's lingering close:
        discard for at most LINGER_SECONDS or LINGER_BYTES, whichever first.
        Nothing is stored or parsed meanwhile.
        """
        self._stop_rate_check()
        self._cancel_header_deadline()
        self._lingered = 0
        self.dataReceived = self._discard
        self._body_paused = False
        self._networkProducer.resumeProducing()
        self._linger_call = self.callLater(LINGER_SECONDS, self.loseConnection)

    def _discard(self, data):
        self._lingered += len(data)
        if self._lingered > LINGER_BYTES:
            self.loseConnection()

    def connectionLost(self, reason):
        self._cancel_header_deadline()
        self._stop_rate_check()
        linger = getattr(self, "_linger_call", None)
        if linger is not None and linger.active():
            linger.cancel()
        if self._counted:
            self._counted = False
            self.site.connections.closed(self, self.peer_host)
        super().connectionLost(reason)


class _Refusal(protocol.Protocol):
    """A connection over a connection cap: one 503 in the error format, then closed."""

    def __init__(self, limit: int, setting: str = "max_connections", message: str = "too many open connections"):
        self.limit = limit
        self.setting = setting
        self.message = message

    def connectionMade(self):
        self.transport.write(
            raw_error(
                503,
                "Service Unavailable",
                "TOO_MANY_CONNECTIONS",
                f"{self.message}, retry later",
                {self.setting: self.limit},
            )
        )
        self.transport.loseConnection()


class HarborSite(server.Site):
    """The site: our request class, limits per client, and an access line (plus metrics) per request.

    Which connections are admitted (per address, overall, shedding those that
    owe headers) is `http.connections.ConnectionTable`'s to decide.
    """

    requestFactory = HarborRequest
    protocol = HarborChannel  # type: ignore[assignment]  # a channel class is a factory of channels

    def __init__(
        self,
        root,
        metrics,
        limits: ClientLimits | None = None,
        body_rules: BodyRules | None = None,
        access_file: AccessLogFile | None = None,
        **kw,
    ):
        super().__init__(root, **kw)
        self.metrics = metrics
        # `[log] access_file`: access lines go there instead of to twisted.logger (see `http.access_log`).
        self.access_file = access_file
        self.limits = limits or ClientLimits()
        self.body_rules = body_rules or default_rules(self.limits.max_body_bytes, self.limits.max_upload_bytes)
        self.connections = ConnectionTable(self.limits)
        self._responses: dict[tuple[bytes, str], Any] = {}  # (method, status) -> labelled child
        self._seconds: dict[Any, Any] = {}  # front -> labelled child

    def hot_for(self, path: bytes) -> HotHandler | None:
        """The hot handler for a request to ``path`` (see `HotRoute`), if the root has one."""
        root = self.resource
        return root.hot_for(path) if isinstance(root, Root) else None

    @property
    def open_connections(self) -> int:
        return self.connections.open

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None)
        refused = self.connections.refusal(host)
        if refused is not None:
            setting, limit, message = refused
            log.warn(
                "refused a connection from {host}: limits.{setting} ({limit})", host=host, setting=setting, limit=limit
            )
            return _Refusal(limit, setting, message)
        channel = super().buildProtocol(addr)
        channel.peer_host = host
        return channel

    def log(self, request):
        """Metrics and the access line of a finished (or aborted) request.

        Once per request, so kept cheap: the labelled metric children are
        looked up once per label value (the values come from fixed sets, so
        the memo stays small), and the access event is built here and handed
        to the logger's observer, exactly the event ``access_log.info`` would
        emit (same keys, same order, same values) minus ``Logger.emit``'s
        per-call overhead.  With an access log file (``[log] access_file``)
        the same values go to that file instead, and no event is emitted.
        """
        started = getattr(request, "started_at", None)
        duration = 0.0 if started is None else time.monotonic() - started
        status = "aborted" if getattr(request, "channel_lost", False) else str(request.code)
        method = request.method
        self.metrics.requests.inc()
        key = (method, status)
        responses = self._responses.get(key)
        if responses is None:
            responses = self.metrics.responses.labels(method_label(method), status_label(status))
            if len(self._responses) < _MEMO_LIMIT:
                self._responses[key] = responses
        responses.inc()
        front = request.front
        seconds = self._seconds.get(front)
        if seconds is None:
            seconds = self.metrics.request_seconds.labels(front_label(front))
            if len(self._seconds) < _MEMO_LIMIT:
                self._seconds[front] = seconds
        seconds.observe(duration)
        if self.access_file is not None:
            self.access_file.line(
                method.decode("latin-1"),
                request.uri.decode("latin-1"),
                status,
                request.sentLength,
                duration * 1000,
                request.cache_status or "-",
                request.upstream or "-",
            )
            return
        access_log.observer(
            {
                "method": method.decode("latin-1"),
                "path": request.uri.decode("latin-1"),
                "status": status,
                "bytes": request.sentLength,
                "duration_ms": duration * 1000,
                "cache_status": request.cache_status or "-",
                "upstream": request.upstream or "-",
                "log_logger": access_log,
                "log_level": LogLevel.info,
                "log_namespace": _ACCESS_NAMESPACE,
                "log_source": None,
                "log_format": ACCESS_FORMAT,
                "log_time": time.time(),
            }
        )


class NotFoundResource(resource.Resource):
    isLeaf = True

    def render(self, request):
        return write_error(request, 404, ErrorCode.NOT_FOUND, "no such endpoint", request.path.decode("latin-1"))


#: the console's policy: its own scripts and styles only (no inline script, no eval), JSON from this origin
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ConsoleFiles(File):
    """The web console's static files (``/ui/``) with a strict Content-Security-Policy.

    Every file, including index.html, carries the policy, so a name that
    somehow reached the page as markup still could not run script.
    """

    contentTypes = dict(
        File.contentTypes,
        **{
            ".js": "text/javascript; charset=utf-8",
            ".css": "text/css; charset=utf-8",
            ".html": "text/html; charset=utf-8",
            ".svg": "image/svg+xml",
        },
    )

    def render(self, request):
        request.setHeader(b"Content-Security-Policy", CONSOLE_CSP.encode())
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        request.setHeader(b"Cache-Control", b"no-cache")
        return super().render(request)

    def getChild(self, path, request):
        if b"\0" in path:  # "/ui/app.js%00.html": the file system refuses the name (a 500 before); no such file
            return NotFoundResource()
        return super().getChild(path, request)

    def directoryListing(self):
        return NotFoundResource()


class BadPathResource(resource.Resource):
    """400 in the error format for a path whose percent escapes are not UTF-8.

    Klein would answer these itself, in text/html; clients of every front
    expect the JSON error format.
    """

    isLeaf = True

    def render(self, request):
        return write_error(
            request,
            400,
            "BAD_REQUEST",
            "path is not UTF-8 after percent-decoding",
            request.path.decode("latin-1")[:200],
        )


def _utf8_path(path: bytes) -> bool:
    try:
        unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RedirectToUI(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(302)
        request.setHeader(b"Location", b"/ui/")
        return b""


class HotRoute(resource.Resource):
    """A front's Klein resource with a synchronous first try for its hot GET and HEAD requests.

    ``hot(request)`` answers what it can from memory at once (a warm Maven
    file, a cached manifest) and returns the body to write; it returns None,
    having changed nothing on the request, whenever the answer takes more (an
    auth check, a miss, a Range, an error), and the request goes to the Klein
    front as if this resource were not here.  Klein's routing, Deferreds and
    coroutine cost more than the rest of a hit together, so the hottest
    requests skip them; the response (status, headers, body, access line) is
    the one the front would have written.
    """

    isLeaf = True

    def __init__(self, front: resource.Resource, hot: HotHandler):
        super().__init__()
        self.front = front
        self.hot = hot

    def render(self, request):
        if request.method in HOT_METHODS and not getattr(request.channel, "hot_declined", False):
            body = self.hot(request)
            if body is not None:
                request.write(body)  # as Klein writes a handler's bytes, then finishes
                request.finish()
                return server.NOT_DONE_YET
        request.postpath.insert(0, request.prepath.pop())
        return self.front.render(request)


class Root(resource.Resource):
    """Picks the front for the first path segment; Klein fronts see the whole path."""

    def __init__(self):
        super().__init__()
        self._mounts: dict[bytes, resource.Resource] = {}
        self._plain: dict[bytes, resource.Resource] = {}
        self._hot: dict[bytes, HotRoute] = {}

    def mount(self, segment: bytes, res: resource.Resource, hot: HotHandler | None = None) -> None:
        """Route /segment/... to a Klein resource whose routes include /segment.

        ``hot``: the front's synchronous answer for hot GET/HEADs under this
        segment (see `HotRoute`); anything it declines goes to ``res``.
        """
        self._mounts[segment] = res
        if hot is not None:
            self._hot[segment] = HotRoute(res, hot)
        else:
            self._hot.pop(segment, None)

    def hot_for(self, path: bytes) -> HotHandler | None:
        """The hot handler of ``path``'s first segment (an undecoded path: `grammar.request_head` has no escapes)."""
        route = self._hot.get(path[1:].partition(b"/")[0])
        return None if route is None else route.hot

    def put(self, segment: bytes, res: resource.Resource) -> None:
        """Route /segment/... to an ordinary Twisted resource (static files)."""
        self._plain[segment] = res

    def getChild(self, path, request):
        if not _utf8_path(request.path):
            return BadPathResource()
        hot = self._hot.get(path)
        if hot is not None:
            return hot  # (it hands over to the Klein resource with the whole path when it declines)
        if path in self._mounts:
            request.postpath.insert(0, request.prepath.pop())
            return self._mounts[path]
        if path in self._plain:
            return self._plain[path]
        if path == b"" and not request.postpath:
            return RedirectToUI()
        return NotFoundResource()


class SiteFront:
    """/health, /healthz and the orchestrator probes /livez and /readyz (/metrics is prometheus_client's own).

    /health is the API contract's (and what load balancers poll). The probes
    split it for Kubernetes and the like: /livez fails only when the process
    does not answer at all, so a database outage or a full disk (which no
    restart mends, and through which warm hits from memory keep being
    served) never restarts the process; /readyz fails on the same problems
    as /health, so a node that cannot serve is taken out of rotation.
    """

    app = Klein()
    install_error_handlers(app)

    def __init__(self, index, storage, metrics, space=None):
        self.index = index
        self.storage = storage
        self.metrics = metrics
        self.space = space  # core.diskspace.DiskSpace: "disk_space" below cache.min_free_bytes

    async def problems(self) -> list[str]:
        """What is wrong now: "index" (no answer to a ping), "data_dir" (not writable); [] when healthy."""
        problems = []
        try:
            ok = await self.index.ping()
            if not ok:
                problems.append("index")
        except Exception:
            problems.append("index")
        if not self.storage.usable():
            problems.append("data_dir")
        if self.space is not None and self.space.low():
            problems.append("disk_space")
        return problems

    @app.route("/health", methods=["GET", "HEAD"])
    @app.route("/healthz", methods=["GET", "HEAD"])
    async def health(self, request):
        self.metrics.health_checks.inc()
        problems = await self.problems()
        if problems:
            body = json_response(request, {"status": "degraded", "version": __version__, "problems": problems}, 503)
        else:
            body = json_response(request, {"status": "healthy", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    @app.route("/livez", methods=["GET", "HEAD"])
    def livez(self, request):
        """200 whenever the reactor runs this: nothing here waits for the index or the disk."""
        body = json_response(request, {"status": "alive", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body

    @app.route("/readyz", methods=["GET", "HEAD"])
    async def readyz(self, request):
        """200 when this node can serve (index answers, data directory writable, free space above the floor)."""
        problems = await self.problems()
        if problems:
            body = json_response(request, {"status": "not_ready", "version": __version__, "problems": problems}, 503)
        else:
            body = json_response(request, {"status": "ready", "version": __version__})
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" else body
