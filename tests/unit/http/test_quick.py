"""`http.quick`'s encoded header blocks and `http.channel.send_now`: the same bytes as the slow way, sent sooner."""

from __future__ import annotations

import socket
import tempfile

from twisted.internet import ssl, tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.request_head import parse_head
from harbor_cache.http import responses
from harbor_cache.http.channel import send_now
from harbor_cache.http.quick import HeaderBlock, QuickRequest
from harbor_cache.http.responses import BASE_HEADERS
from tests.ldap_support import make_ca

PAIRS = [
    (b"Last-Modified", b"Mon, 01 Jan 2026 00:00:00 GMT"),
    (b"etag", b'"abc"'),  # (Headers writes it as "ETag": the block must too)
    (b"Accept-Ranges", b"bytes"),
    (b"Content-Type", b"application/xml"),
    (b"Content-Length", b"5"),
]


def request(method: str = "GET", headers: str = "") -> QuickRequest:
    head = parse_head(f"{method} /artifacts/central/a.pom HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    assert head is not None
    return QuickRequest(head)


def one_by_one(req: QuickRequest, pairs: list[tuple[bytes, bytes]]) -> None:
    for name, value in pairs:
        req.setHeader(name, value)


class HeaderBlockTests(SynchronousTestCase):
    """A block gives the bytes of the `setHeader` calls it stands for, whatever is set around it."""

    def assertSameAnswer(self, method: str, code: int, pairs, body: bytes, after=()) -> bytes:
        fast, slow = request(method), request(method)
        fast.set_headers(HeaderBlock(pairs))
        one_by_one(slow, pairs)
        for req in (fast, slow):
            one_by_one(req, list(after))
            req.setResponseCode(code)
        out = b"".join(fast.response(body))
        self.assertEqual(out, b"".join(slow.response(body)))
        self.assertEqual(fast.sentLength, slow.sentLength)
        return out

    def test_get_head_and_304(self):
        raw = self.assertSameAnswer("GET", 200, PAIRS, b"<p/>!")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 OK\r\n" + BASE_HEADERS.lines() + b"Last-Modified: "))
        self.assertIn(b'\r\nETag: "abc"\r\n', raw)
        self.assertTrue(raw.endswith(b"Content-Length: 5\r\n\r\n<p/>!"))
        self.assertTrue(self.assertSameAnswer("HEAD", 200, PAIRS, b"").endswith(b"\r\n\r\n"))
        self.assertSameAnswer("GET", 304, PAIRS[:3], b"")

    def test_without_length_is_chunked_as_before(self):
        raw = self.assertSameAnswer("GET", 200, PAIRS[:4], b"<p/>!")
        self.assertIn(b"Transfer-Encoding: chunked\r\n", raw)

    def test_headers_set_after_the_block_come_after_it(self):
        raw = self.assertSameAnswer("GET", 200, PAIRS, b"<p/>!", [(b"Warning", b"x"), (b"Accept-Ranges", b"none")])
        self.assertIn(b"Content-Length: 5\r\nWarning: x\r\n", raw)
        self.assertIn(b"Accept-Ranges: none\r\n", raw)

    def test_headers_set_before_the_block(self):
        fast, slow = request(), request()
        for req in (fast, slow):
            req.setHeader(b"X-First", b"1")
        fast.set_headers(HeaderBlock(PAIRS))
        one_by_one(slow, PAIRS)
        self.assertEqual(b"".join(fast.response(b"<p/>!")), b"".join(slow.response(b"<p/>!")))

    def test_values_are_checked_once(self):
        """As `Headers` does, a line break in a value becomes a space (no header injection)."""
        block = HeaderBlock([(b"X-Odd", b"a\r\nSet-Cookie: b")])
        self.assertEqual(block.lines, b"X-Odd: a Set-Cookie: b\r\n")
        self.assertFalse(block.has_length)

    def test_base_lines_follow_the_second(self):
        now = [1796300000.25]
        self.patch(responses.time, "time", lambda: now[0])
        headers = responses._BaseHeaders()
        first = headers.lines()
        self.assertEqual(first, b"".join(b"%s: %s\r\n" % (k, v[0]) for k, v in headers.every_response().items()))
        self.assertIn(b"Date: Thu, 03 Dec 2026", first)
        now[0] += 0.5
        self.assertIs(headers.lines(), first)
        now[0] += 1
        self.assertNotEqual(headers.lines(), first)


class _Transport(tcp.Connection):
    """What `send_now` reads of a `twisted.internet.tcp.Connection`, over a real socket of a socketpair."""

    dataBuffer = b""
    _tempDataLen = 0
    TLS = False
    connected = 1
    disconnecting = False
    _writeDisconnecting = False
    _writeDisconnected = False

    def __init__(self, sock):  # (not the Connection's: no reactor, no protocol)
        self.socket = sock
        self.queued: list[bytes] = []

    def write(self, data):
        self.queued.append(data)

    def writeSequence(self, chunks):
        self.queued.append(b"".join(chunks))


class SendNowTests(SynchronousTestCase):
    def setUp(self):
        self.ours, self.peer = socket.socketpair()
        self.ours.setblocking(False)
        self.addCleanup(self.ours.close)
        self.addCleanup(self.peer.close)
        self.transport = _Transport(self.ours)

    def received(self) -> bytes:
        self.peer.setblocking(False)
        try:
            return self.peer.recv(1 << 20)
        except BlockingIOError:
            return b""

    def test_sent_at_once_when_nothing_is_queued(self):
        send_now(self.transport, [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\n\r\nbody")
        self.assertEqual(self.transport.queued, [])

    def test_queued_behind_what_is_queued(self):
        """Bytes already waiting in the transport go first: the answer is queued after them."""
        for attribute, value in (("dataBuffer", b"x"), ("_tempDataLen", 1)):
            transport = _Transport(self.ours)
            setattr(transport, attribute, value)
            send_now(transport, [b"a", b"b"])
            self.assertEqual(transport.queued, [b"ab"])
        self.assertEqual(self.received(), b"")

    def test_not_on_tls_closing_or_socketless_transports(self):
        for attribute, value in (
            ("TLS", True),
            ("disconnecting", True),
            ("_writeDisconnecting", True),
            ("_writeDisconnected", True),
            ("connected", 0),
            ("socket", None),
        ):
            transport = _Transport(self.ours)
            setattr(transport, attribute, value)
            send_now(transport, [b"a"])
            self.assertEqual(transport.queued, [b"a"])
        self.assertEqual(self.received(), b"")

    def test_what_the_socket_does_not_take_is_queued(self):
        self.ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = bytes(range(256)) * 8192  # 2 MiB: more than the socket takes at once
        send_now(self.transport, [big])
        [rest] = self.transport.queued
        self.assertGreater(len(rest), 0)
        self.assertLess(len(rest), len(big))
        self.assertTrue(big.endswith(rest))

    def test_an_error_leaves_everything_to_the_transport(self):
        self.peer.close()
        send_now(self.transport, [b"a", b"b"])  # EPIPE: the transport's own write finds it and reports it
        self.assertEqual(self.transport.queued, [b"ab"])

    def test_never_past_a_tls_layer(self):
        """An ``ssl:`` listener's transport is a TLS wrapper over the TCP connection, which passes ``socket`` and
        the queue's attributes through: the answer must go through TLS, never in clear text onto the socket."""
        directory = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, directory)
        _, cert, key = make_ca(directory)
        with open(cert, "rb") as c, open(key, "rb") as k:
            options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
        tls = TLSMemoryBIOFactory(options, False, Factory.forProtocol(Protocol)).buildProtocol(None)
        tls.makeConnection(self.transport)
        send_now(tls, [b"HTTP/1.1 200 OK\r\n\r\n", b"secret"])
        self.assertNotIn(b"secret", self.received())
