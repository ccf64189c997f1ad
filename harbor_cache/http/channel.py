"""One client connection: the limits of `ClientLimits`, streamed bodies, and the quick path for hot GETs.

`HarborChannel` is twisted.web's `http.HTTPChannel` with the per-connection
limits applied (header deadline, minimum body rate, lingering close) and a
first look at each read: one plain GET/HEAD head that a hot handler takes is
answered without a `Request` (`http.quick`).  Which connections are admitted
at all is `http.connections`' to decide, through the site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import tcp
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http

from harbor_cache.grammar.request_head import parse_head
from harbor_cache.http.client_limits import ClientLimits, raw_error
from harbor_cache.http.quick import QuickRequest
from harbor_cache.http.request_body import BodyTooSlow

if TYPE_CHECKING:
    from harbor_cache.http.site import HarborSite

log = Logger()

# How long, and how much, a refused body is read and dropped before the connection closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 << 20
# Socket read size while a streamed body is pulled (Twisted's default is 64 KiB).
BODY_READ_SIZE = 1 << 20


def send_now(transport: Any, chunks: list[bytes]) -> None:
    """Write ``chunks`` to a TCP transport with one ``send`` now when nothing is queued before them.

    A Twisted transport only queues a write: it is sent at the reactor's
    next write event, which for a small answer costs one more poll round
    and two ``epoll_ctl`` calls (watch for writability, then stop) per
    request, about a fifth of a warm hit's CPU (bench/RESULTS.md, "Issue 30:
    warm Maven hit, round 2").  With nothing queued (so the order is kept),
    the transport neither closing nor half-closed, and no TLS, the socket
    gets the bytes at once; what it does not take goes to the transport's
    queue as usual, and so does everything on an error (EAGAIN, or a reset,
    which the transport's own write then finds and reports).  Any other
    transport (not a `tcp.Connection`: TLS wrappers, tests): ``writeSequence``.
    """
    # A TLS connection's transport is a wrapper (`TLSMemoryBIOProtocol`) that passes unknown attributes, the
    # socket included, through to the TCP connection under it: only a `tcp.Connection` itself is written to.
    sock = transport.socket if isinstance(transport, tcp.Connection) else None
    if (
        sock is None
        or transport.dataBuffer
        or transport._tempDataLen
        or getattr(transport, "TLS", False)
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnecting
        or transport._writeDisconnected
    ):
        transport.writeSequence(chunks)
        return
    data = b"".join(chunks)
    try:
        sent = sock.send(data)
    except OSError:
        sent = 0
    if sent < len(data):
        transport.write(data[sent:])


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
    # The TCP transport (``disconnecting``, ``bufferSize``), set by makeConnection; twisted types it as an ITransport.
    transport: Any

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
        request = QuickRequest(head)
        try:
            body = hot(request)
        except Exception:
            log.failure("hot handler failed on {path}; the request takes the usual path", path=head.path)
            return False
        if body is None:
            self.hot_declined = True  # (the request is processed within this read: a head and no body)
            return False
        self.resetTimeout()
        send_now(self.transport, request.response(body))
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
            self.rawDataReceived = lambda data: None  # type: ignore[method-assign]  # this connection only
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
        self.transport.loseConnection()

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
        self.dataReceived = self._discard  # type: ignore[method-assign]  # this connection only, from now on
        self._body_paused = False
        self._networkProducer.resumeProducing()
        self._linger_call = self.callLater(LINGER_SECONDS, self.loseConnection)

    def _discard(self, data):
        self._lingered += len(data)
        if self._lingered > LINGER_BYTES:
            self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_header_deadline()
        self._stop_rate_check()
        linger = getattr(self, "_linger_call", None)
        if linger is not None and linger.active():
            linger.cancel()
        if self._counted:
            self._counted = False
            self.site.connections.closed(self, self.peer_host)
        super().connectionLost(reason)
