"""`grammar.request_head.parse_head`: the one shape of request the channel answers before Twisted parses it."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.request_head import MAX_HEAD_BYTES, MAX_HEADERS, parse_head

GOOD = b"GET /artifacts/central/a/b.pom?x=1 HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept:  b \r\n\r\n"


class ParseHeadTests(SynchronousTestCase):
    def test_plain_get(self):
        head = parse_head(GOOD)
        assert head is not None
        self.assertEqual(head.method, b"GET")
        self.assertEqual(head.target, b"/artifacts/central/a/b.pom?x=1")
        self.assertEqual(head.path, b"/artifacts/central/a/b.pom")
        self.assertEqual(head.query, b"x=1")
        self.assertEqual(head.headers, {b"host": [b"h"], b"accept": [b"a", b"b"]})

    def test_head_and_keep_alive(self):
        head = parse_head(b"HEAD /v2/x/manifests/1 HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n")
        assert head is not None
        self.assertEqual((head.method, head.query), (b"HEAD", b""))

    def test_other_shapes_are_not_taken(self):
        """Anything but one complete plain GET/HEAD head is left to Twisted's parser (None)."""
        for data in (
            GOOD[:-2],  # incomplete
            GOOD + b"GET / HTTP/1.1\r\n\r\n",  # pipelined
            GOOD + b"x",  # a body
            GOOD.replace(b"GET", b"POST"),
            GOOD.replace(b"GET", b"get"),
            GOOD.replace(b"HTTP/1.1", b"HTTP/1.0"),
            GOOD.replace(b"GET /", b"GET  /"),
            GOOD.replace(b"/artifacts", b"http://h/artifacts"),
            GOOD.replace(b"a/b.pom", b"a%2Fb.pom"),
            GOOD.replace(b"a/b.pom", b"a\x7fb.pom"),
            GOOD.replace(b"a/b.pom", "\u00e9".encode()),
            GOOD.replace(b"Host: h\r\n", b"Host: h\n"),  # a bare LF
            GOOD.replace(b"Host: h", b"Host: h\rx"),  # a bare CR
            GOOD.replace(b"Host: h", b"Host: h\x00"),
            GOOD.replace(b"Host: h\r\n", b"Host: h\r\n folded\r\n"),
            GOOD.replace(b"Host: h", b"Ho st: h"),
            GOOD.replace(b"Host: h", b"Host h"),
            GOOD.replace(b"Host: h", b"Content-Length: 0"),
            GOOD.replace(b"Host: h", b"Transfer-Encoding: chunked"),
            GOOD.replace(b"Host: h", b"Expect: 100-continue"),
            GOOD.replace(b"Host: h", b"Upgrade: websocket"),
            GOOD.replace(b"Host: h", b"Connection: close"),
            GOOD.replace(b"Host: h", b"Connection: keep-alive\r\nConnection: keep-alive"),
            b"\r\n" + GOOD,
            GOOD.replace(b"Host: h", b"X: " + b"y" * MAX_HEAD_BYTES),
            GOOD.replace(b"Host: h", b"\r\n".join(b"X: y" for _ in range(MAX_HEADERS))),
        ):
            self.assertIsNone(parse_head(data), data[:120])

    def test_limits_are_inclusive(self):
        """Exactly MAX_HEADERS headers is taken."""
        data = b"GET / HTTP/1.1\r\n" + b"".join(b"X: y\r\n" for _ in range(MAX_HEADERS)) + b"\r\n"
        self.assertIsNotNone(parse_head(data))
