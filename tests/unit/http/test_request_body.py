"""The body path: routes decide before a body is read; limits on size, slowness and connections.

Driven through the real `HarborSite`/`HarborChannel`/`HarborRequest` over an
in-memory transport and a `Clock`, so each test sees exactly which bytes were
read (the transport's producer state), answered and when.
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.errors import Unauthorized
from harbor_cache.http.channel import LINGER_BYTES, LINGER_SECONDS
from harbor_cache.http.client_limits import ClientLimits
from harbor_cache.http.request_body import BodyTooLarge, BufferedBody, StreamedBody, body_of
from harbor_cache.http.resources import Root
from harbor_cache.http.responses import install_error_handlers
from harbor_cache.http.site import HarborSite
from harbor_cache.metrics import Metrics

ADDR = IPv4Address("TCP", "127.0.0.1", 40000)


class Sink:
    """A body sink that asks to pause after ``high`` bytes until `drain` is called."""

    def __init__(self, high=None):
        self.data = bytearray()
        self.high = high
        self.on_drain = None

    def write(self, data):
        self.data += data
        return self.high is not None and len(self.data) >= self.high

    def drain(self):
        self.high = None
        if self.on_drain is not None:
            self.on_drain()


class App:
    app = Klein()
    install_error_handlers(app)

    def __init__(self):
        self.calls = []
        self.sink = Sink()
        self.authorized = True
        self.started = None
        self.gate = None

    @app.route("/v2/<path:rest>", methods=["PATCH", "PUT", "POST"])
    async def upload(self, request, rest):
        self.calls.append(request.method)
        if self.gate is not None:
            await self.gate
        if not self.authorized:
            raise Unauthorized("authentication required")
        n = await body_of(request).stream_to(self.sink)
        request.setResponseCode(202)
        return b"%d" % n

    @app.route("/api/v1/ping", methods=["GET"])
    def ping(self, request):
        return b"pong"

    @app.route("/api/v1/echo", methods=["POST"])
    def echo(self, request):
        self.calls.append(request.method)
        return request.content.read()


class Harness:
    def __init__(self, case, **limits):
        self.clock = Clock()
        self.front = App()
        root = Root()
        resource = self.front.app.resource()
        root.mount(b"v2", resource)
        root.mount(b"api", resource)
        self.site = HarborSite(root, Metrics(), limits=ClientLimits(**limits), reactor=self.clock)
        self.case = case

    def connect(self, addr=ADDR):
        channel = self.site.buildProtocol(addr)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport


def head(method, path, *headers):
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *headers, "", ""]
    return "\r\n".join(lines).encode()


def response(transport):
    raw = transport.value()
    if raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        raw = raw[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    head_part, _, body = raw.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    if b"Transfer-Encoding: chunked" in head_part:
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out += rest[:n]
            body = rest[n + 2 :]
        body = out
    return status, head_part, body


def closes(h, transport):
    """The connection closes: at once, or after the lingering read of a refused body."""
    if not transport.disconnecting:
        h.clock.advance(LINGER_SECONDS)
    assert transport.disconnecting, "connection still open"


def error_code(body):
    return json.loads(body)["errors"][0]["code"]


class BufferedRouteTests(SynchronousTestCase):
    def test_content_length_over_limit_refused_before_the_body(self):
        """An anonymous 1 GiB login: 413 SIZE_INVALID from the headers alone; no handler, connection closed."""
        h = Harness(self, max_body_bytes=1024)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 1073741824"))
        status, headers, body = response(transport)
        self.assertEqual(status, 413)
        self.assertEqual(error_code(body), "SIZE_INVALID")
        self.assertIn(b"Connection: close", headers)
        closes(h, transport)
        self.assertEqual(h.front.calls, [])
        self.assertEqual(h.front.calls, [])

    def test_refused_body_is_dropped_for_a_moment_then_closed(self):
        """After a refusal the rest of the body is read and dropped (so the client sees the answer), bounded."""
        h = Harness(self, max_body_bytes=1024)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 1073741824"))
        self.assertEqual(response(transport)[0], 413)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"x" * (LINGER_BYTES // 2))
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"x" * LINGER_BYTES)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.front.calls, [])

    def test_chunked_body_cut_at_the_limit(self):
        """A chunked body is counted as it arrives and answered 413 the moment it passes the limit."""
        h = Harness(self, max_body_bytes=1024)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Transfer-Encoding: chunked"))
        channel.dataReceived(b"200\r\n" + b"a" * 512 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"400\r\n" + b"a" * 1024 + b"\r\n")
        status, _, body = response(transport)
        self.assertEqual(status, 413)
        self.assertEqual(error_code(body), "SIZE_INVALID")
        closes(h, transport)
        channel.dataReceived(b"0\r\n\r\n")
        self.assertEqual(h.front.calls, [])

    def test_small_body_is_buffered_in_memory(self):
        """Under the limit the handler sees the whole body in request.content (never a temp file)."""
        h = Harness(self, max_body_bytes=1024)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 5") + b"hello")
        status, _, body = response(transport)
        self.assertEqual((status, body), (200, b"hello"))
        self.assertFalse(transport.disconnecting)


class StreamedRouteTests(SynchronousTestCase):
    def test_handler_runs_before_the_body_and_the_socket_waits(self):
        """A streamed route is processed when the headers are in; the socket stays paused until it pulls."""
        h = Harness(self)
        gate = h.front.gate = Deferred()
        channel, transport = h.connect()
        channel.dataReceived(head("PATCH", "/v2/a/blobs/uploads/1", "Content-Length: 10") + b"01234")
        self.assertEqual(h.front.calls, [b"PATCH"])
        self.assertEqual(transport.producerState, "paused")
        gate.callback(None)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(bytes(h.front.sink.data), b"01234")
        channel.dataReceived(b"56789")
        status, _, body = response(transport)
        self.assertEqual((status, body), (202, b"10"))
        self.assertEqual(bytes(h.front.sink.data), b"0123456789")
        self.assertFalse(transport.disconnecting)

    def test_sink_backpressure_pauses_the_socket(self):
        """When the sink's queue is full the socket is paused; the sink's drain resumes it."""
        h = Harness(self)
        h.front.sink = sink = Sink(high=4)
        channel, transport = h.connect()
        channel.dataReceived(head("PUT", "/v2/a/blobs/uploads/1", "Transfer-Encoding: chunked"))
        channel.dataReceived(b"5\r\nabcde\r\n")
        self.assertEqual(transport.producerState, "paused")
        sink.drain()
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"3\r\nfgh\r\n0\r\n\r\n")
        status, _, body = response(transport)
        self.assertEqual((status, body), (202, b"8"))
        self.assertEqual(bytes(sink.data), b"abcdefgh")

    def test_refusal_before_reading_closes_without_reading(self):
        """An anonymous 1 GiB PUT gets its 401 before the body is read; the connection then closes."""
        h = Harness(self)
        h.front.authorized = False
        channel, transport = h.connect()
        channel.dataReceived(head("PUT", "/v2/a/manifests/1", "Content-Length: 1073741824") + b"x" * 1000)
        status, headers, body = response(transport)
        self.assertEqual(status, 401)
        self.assertEqual(error_code(body), "UNAUTHORIZED")
        self.assertIn(b"Connection: close", headers)
        closes(h, transport)
        self.assertEqual(h.front.sink.data, b"")

    def test_upload_limit(self):
        """A streamed body over max_upload_bytes fails with 413 and closes."""
        h = Harness(self, max_upload_bytes=1 << 20)
        channel, transport = h.connect()
        channel.dataReceived(head("PATCH", "/v2/a/blobs/uploads/1", "Transfer-Encoding: chunked"))
        chunk = b"%x\r\n" % (1 << 19) + b"a" * (1 << 19) + b"\r\n"
        channel.dataReceived(chunk * 3)
        status, _, body = response(transport)
        self.assertEqual(status, 413)
        self.assertEqual(error_code(body), "SIZE_INVALID")
        closes(h, transport)

    def test_expect_continue_only_when_the_body_is_wanted(self):
        """100-continue goes out when the handler pulls, never before a refusal."""
        h = Harness(self)
        h.front.authorized = False
        channel, transport = h.connect()
        channel.dataReceived(head("PUT", "/v2/a/manifests/1", "Content-Length: 10", "Expect: 100-continue"))
        self.assertNotIn(b"100 Continue", transport.value())
        h2 = Harness(self)
        channel, transport = h2.connect()
        channel.dataReceived(head("PUT", "/v2/a/manifests/1", "Content-Length: 3", "Expect: 100-continue"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 100 Continue"))


class SlowClientTests(SynchronousTestCase):
    def test_header_deadline(self):
        """Headers trickled past header_timeout_seconds: 408 REQUEST_TIMEOUT and closed."""
        h = Harness(self, header_timeout_seconds=10)
        channel, transport = h.connect()
        for _ in range(9):
            channel.dataReceived(b"G")
            h.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        h.clock.advance(1)
        status, headers, body = response(transport)
        self.assertEqual(status, 408)
        self.assertEqual(error_code(body), "REQUEST_TIMEOUT")
        closes(h, transport)

    def test_idle_keepalive_closed_silently(self):
        """A kept-alive connection that sends nothing is closed at the deadline without a response."""
        h = Harness(self, header_timeout_seconds=10)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 2") + b"hi")
        transport.clear()
        h.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        h.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        closes(h, transport)

    def test_header_deadline_counts_from_the_last_response(self):
        """The deadline restarts with each response (one timer per connection, moved on)."""
        h = Harness(self, header_timeout_seconds=10)
        channel, transport = h.connect()
        h.clock.advance(6)
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 2") + b"hi")
        self.assertEqual(response(transport)[0], 200)
        transport.clear()
        h.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        h.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        closes(h, transport)

    def test_header_deadline_spares_a_long_request(self):
        """A request handled for longer than the deadline is not cut; the deadline starts after its response."""
        h = Harness(self, header_timeout_seconds=10)
        h.front.gate = Deferred()
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/v2/x/blobs/uploads/", "Content-Length: 0"))
        h.clock.advance(30)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        h.front.gate.callback(None)
        self.assertEqual(response(transport)[0], 202)
        transport.clear()
        h.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        h.clock.advance(1)
        self.assertEqual(transport.value(), b"")
        closes(h, transport)

    def test_header_deadline_spares_a_pipelined_request(self):
        """A pipelined request, replayed when the one before it answers and still being handled, is not cut."""
        h = Harness(self, header_timeout_seconds=10)
        first = h.front.gate = Deferred()
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/v2/x/blobs/uploads/", "Content-Length: 0"))
        channel.dataReceived(head("POST", "/v2/y/blobs/uploads/", "Content-Length: 0"))  # (buffered meanwhile)
        second = h.front.gate = Deferred()
        first.callback(None)
        self.assertEqual(response(transport)[0], 202)
        self.assertEqual(h.front.calls, [b"POST", b"POST"])  # the second one is being handled
        transport.clear()
        h.clock.advance(30)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        second.callback(None)
        self.assertEqual(response(transport)[0], 202)
        transport.clear()
        h.clock.advance(10)
        self.assertEqual(transport.value(), b"")
        closes(h, transport)

    def test_header_deadline_after_a_pipelined_partial_request(self):
        """Headers of a pipelined request still incomplete when the one before answers: due within the deadline."""
        h = Harness(self, header_timeout_seconds=10)
        first = h.front.gate = Deferred()
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/v2/x/blobs/uploads/", "Content-Length: 0"))
        channel.dataReceived(b"POST /api/v1/echo HTTP/1.1\r\nHost: a\r\n")  # (no end of headers)
        h.clock.advance(5)
        first.callback(None)
        self.assertEqual(response(transport)[0], 202)
        transport.clear()
        h.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        h.clock.advance(1)
        status, _, body = response(transport)
        self.assertEqual((status, error_code(body)), (408, "REQUEST_TIMEOUT"))
        closes(h, transport)

    def test_minimum_body_rate(self):
        """A body arriving slower than min_body_rate_bytes over the window: 408 and closed."""
        h = Harness(self, min_body_rate_bytes=100, body_rate_window_seconds=10)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 100000"))
        for _ in range(10):
            channel.dataReceived(b"x" * 50)
            h.clock.advance(1)
        status, _, body = response(transport)
        self.assertEqual(status, 408)
        self.assertEqual(error_code(body), "REQUEST_TIMEOUT")
        closes(h, transport)
        self.assertEqual(h.front.calls, [])

    def test_minimum_body_rate_streamed(self):
        """A streamed upload trickling in fails with 408 through its handler; time paused by us never counts."""
        h = Harness(self, min_body_rate_bytes=100, body_rate_window_seconds=10)
        gate = h.front.gate = Deferred()
        channel, transport = h.connect()
        channel.dataReceived(head("PATCH", "/v2/a/blobs/uploads/1", "Content-Length: 100000"))
        h.clock.advance(60)  # the handler is not reading yet: not the client's fault
        self.assertEqual(transport.value(), b"")
        gate.callback(None)
        for _ in range(25):
            channel.dataReceived(b"x" * 10)
            h.clock.advance(1)
        status, _, body = response(transport)
        self.assertEqual(status, 408)
        self.assertEqual(error_code(body), "REQUEST_TIMEOUT")
        closes(h, transport)

    def test_fast_body_passes(self):
        h = Harness(self, min_body_rate_bytes=100, body_rate_window_seconds=10)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 3000"))
        for _ in range(20):
            channel.dataReceived(b"x" * 150)
            h.clock.advance(1)
        status, _, body = response(transport)
        self.assertEqual((status, len(body)), (200, 3000))

    def test_connection_cap(self):
        """Past max_connections, all busy: a new client gets 503 TOO_MANY_CONNECTIONS and is closed; a slot frees on close."""
        h = Harness(self, max_connections=2)
        h.front.gate = Deferred()  # both connections are in a handler, none owes its headers
        first, t1 = h.connect()
        first.dataReceived(head("PATCH", "/v2/a/blobs/uploads/1", "Content-Length: 10"))
        second, _ = h.connect()
        second.dataReceived(head("PATCH", "/v2/a/blobs/uploads/2", "Content-Length: 10"))
        refused = h.site.buildProtocol(ADDR)
        t3 = StringTransport()
        refused.makeConnection(t3)
        status, _, body = response(t3)
        self.assertEqual(status, 503)
        self.assertEqual(error_code(body), "TOO_MANY_CONNECTIONS")
        self.assertTrue(t3.disconnecting)
        first.connectionLost(Failure(ConnectionDone()))
        again, t4 = h.connect()
        self.assertEqual(t4.value(), b"")
        self.assertEqual(h.site.open_connections, 2)


OTHER = IPv4Address("TCP", "127.0.0.2", 40000)


def ping(case, h, addr=ADDR):
    channel, transport = h.connect(addr)
    channel.dataReceived(head("GET", "/api/v1/ping"))
    status, _, body = response(transport)
    case.assertEqual((status, body), (200, b"pong"))


class ConnectionShareTests(SynchronousTestCase):
    """Issue 24 (6): one client (or a few) trickling headers over many connections does not keep others out."""

    def test_at_the_cap_the_longest_waiting_for_headers_is_shed(self):
        """At max_connections a newcomer takes the place of the connection that waited longest for its headers:
        an idle one is closed silently, one that began a request gets 503 first; busy ones are never shed."""
        h = Harness(self, max_connections=3)
        h.front.gate = Deferred()
        busy, t_busy = h.connect()
        busy.dataReceived(head("PATCH", "/v2/a/blobs/uploads/1", "Content-Length: 10"))
        idle, t_idle = h.connect()
        trickling, t_trickling = h.connect()
        trickling.dataReceived(b"GET /api/v1/ping HTTP/1.1\r\nX-Slow: ")
        newcomer, t_new = h.connect(OTHER)
        self.assertTrue(t_idle.disconnecting)
        self.assertEqual(t_idle.value(), b"")
        self.assertFalse(t_trickling.disconnecting)
        self.assertEqual(h.site.open_connections, 3)
        newcomer.dataReceived(head("GET", "/api/v1/ping"))
        self.assertEqual(response(t_new)[0], 200)
        # the newcomer, between requests again, is now the newest waiter: the trickling one goes next
        h.connect(OTHER)
        self.assertTrue(t_trickling.disconnecting)
        status, _, body = response(t_trickling)
        self.assertEqual((status, error_code(body)), (503, "TOO_MANY_CONNECTIONS"))
        self.assertFalse(t_busy.disconnecting)
        self.assertFalse(t_new.disconnecting)
        # every remaining connection busy or newer: nothing left to shed... until one owes headers again
        idle.connectionLost(None)
        trickling.connectionLost(None)
        self.assertEqual(h.site.open_connections, 3)

    def test_per_address_cap(self):
        """Past max_connections_per_address from one address: 503 naming the setting; other addresses unaffected."""
        h = Harness(self, max_connections_per_address=2)
        first, _ = h.connect()
        h.connect()
        refused = h.site.buildProtocol(ADDR)
        t = StringTransport()
        refused.makeConnection(t)
        status, _, body = response(t)
        self.assertEqual((status, error_code(body)), (503, "TOO_MANY_CONNECTIONS"))
        self.assertEqual(json.loads(body)["errors"][0]["detail"], {"max_connections_per_address": 2})
        self.assertTrue(t.disconnecting)
        ping(self, h, OTHER)
        first.connectionLost(None)
        ping(self, h)
        self.assertEqual(h.site.connections.by_address, {"127.0.0.1": 2, "127.0.0.2": 1})

    def test_one_address_with_1100_slow_connections_does_not_lock_others_out(self):
        """Default limits: 1,100 connections from one address trickling headers; another client gets 200."""
        h = Harness(self)
        slow = []
        for _ in range(1100):
            channel, transport = h.connect()
            if not transport.disconnecting:
                channel.dataReceived(b"GET /api/v1/ping HTTP/1.1\r\nX-Slow: a")
                slow.append(transport)
        self.assertEqual(len(slow), ClientLimits().max_connections_per_address)
        ping(self, h, OTHER)

    def test_many_addresses_at_the_cap_still_let_a_new_client_in(self):
        """Four addresses holding 4 x 256 trickling connections (over max_connections, 768): a fifth client gets 200."""
        h = Harness(self)
        for n in range(4):
            addr = IPv4Address("TCP", "127.0.1.%d" % n, 40000)
            for _ in range(256):
                channel, transport = h.connect(addr)
                channel.dataReceived(b"GET /api/v1/ping HTTP/1.1\r\nX-Slow: a")
        self.assertEqual(h.site.open_connections, 768)
        ping(self, h, OTHER)


class BodyObjectTests(SynchronousTestCase):
    def test_read_all_refuses_from_content_length(self):
        body = StreamedBody(5000, 1 << 20, lambda: None, lambda: None)
        f = self.failureResultOf(Deferred.fromCoroutine(body.read_all(1000)))
        f.trap(BodyTooLarge)

    def test_buffered_body_same_api(self):
        import io

        body = body_of(type("R", (), {"content": io.BytesIO(b"abc")})())
        self.assertIsInstance(body, BufferedBody)
        self.assertEqual(body.length, 3)
        sink = Sink()
        d = Deferred.fromCoroutine(body.stream_to(sink))
        self.assertEqual(self.successResultOf(d), 3)
        self.assertEqual(bytes(sink.data), b"abc")


class KeepAliveTests(SynchronousTestCase):
    def test_streamed_route_without_body_leaves_the_socket_readable(self):
        """A streamed route with no body (upload POST) never pauses reading; the next request is served."""
        h = Harness(self)
        channel, transport = h.connect()
        channel.dataReceived(head("POST", "/v2/a/blobs/uploads/", "Content-Length: 0"))
        self.assertEqual(response(transport)[0], 202)
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(channel._body_paused)
        transport.clear()
        channel.dataReceived(head("PATCH", "/v2/a/blobs/uploads/1", "Content-Length: 2") + b"ok")
        self.assertEqual(response(transport)[0], 202)
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(channel._body_paused)
        transport.clear()
        channel.dataReceived(head("POST", "/api/v1/echo", "Content-Length: 2") + b"hi")
        self.assertEqual(response(transport)[:3:2], (200, b"hi"))
