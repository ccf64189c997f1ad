"""The S3 client against a real S3 API server (moto in server mode, `tests.s3_support`) on loopback.

The server checks every SigV4 signature (a wrongly signed request is 403
``SignatureDoesNotMatch``), so each operation here also proves the signing;
listings under a prefix with ``/`` use the second, non-checking server
because of moto's query re-encoding bug (see `tests.s3_support`).  Ambient
``AWS_*`` variables are cleared around every test.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import urllib.error
import urllib.request
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer, reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionLost
from twisted.protocols import portforward
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from harbor_cache.storage.io import ThreadIO
from harbor_cache.storage.s3 import S3Client, S3Error, S3NotFound, S3Settings, S3Unavailable
from tests import s3_support

MiB = 1024 * 1024
_reactor: Any = reactor  # the global reactor, typed loosely (mypy sees only its common interface)


@implementer(IAgentEndpointFactory)
class _AllToLoopback:
    """Connects every URL to 127.0.0.1:port whatever its host: virtual-host names need no DNS."""

    def __init__(self, port: int) -> None:
        self.port = port

    def endpointForURI(self, uri: Any) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)


class _FailingParts:
    """An HTTP client that resets the connection of every upload of part ``part`` (the rest go through)."""

    def __init__(self, http: HTTPClient, part: int) -> None:
        self.http = http
        self.marker = f"partNumber={part}&"
        self.failed = 0

    def request(self, method: str, url: str, **kwargs: Any) -> defer.Deferred[Any]:
        if method == "PUT" and self.marker in url:
            self.failed += 1
            return defer.fail(ConnectionLost("reset by the test"))
        return self.http.request(method, url, **kwargs)


class _CutPartTwo(portforward.ProxyServer):
    """Forwards to the server, but drops the first connection that uploads part 2, 1 MiB into its body."""

    def dataReceived(self, data: bytes) -> None:
        factory: Any = self.factory
        if not factory.cut and (self.counting or b"partNumber=2&" in data):
            self.counting = getattr(self, "counting", 0) + len(data)
            if self.counting > MiB:
                factory.cut = True
                transport: Any = self.transport
                transport.abortConnection()
                return
        super().dataReceived(data)

    counting = 0


class S3ClientTests(unittest.TestCase):
    timeout = 240

    def setUp(self) -> None:
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.server = s3_support.server()  # one per test process, shared by every test
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(self.pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=self.pool))
        self.io = ThreadIO(_reactor, _reactor.getThreadPool())

    def client(self, server: s3_support.S3Server | None = None, http: Any = None, **settings: Any) -> S3Client:
        server = server or self.server
        fields: dict[str, Any] = dict(
            bucket=server.new_bucket(),
            endpoint=server.endpoint,
            access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key,
            addressing="path",
            backoff_base=0.01,
            backoff_cap=0.05,
        )
        fields.update(settings)
        return S3Client(S3Settings(**fields), http or self.http, self.io, reactor)

    def big_file(self, size: int) -> tuple[str, str]:
        path = self.mktemp()
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(size // MiB):
                chunk = os.urandom(MiB)
                digest.update(chunk)
                f.write(chunk)
        return path, digest.hexdigest()

    async def body_of(self, client: S3Client, key: str, byte_range: tuple[int, int | None] | None = None) -> bytes:
        response = await client.get_object(key, byte_range)
        return bytes(await treq.content(response))

    # -- single objects --------------------------------------------------------------

    @defer.inlineCallbacks
    def test_put_get_head_range_delete(self):
        c = self.client(prefix="cache/")
        yield defer.ensureDeferred(c.put_object("a b/~x", b"hello world", content_type="text/plain"))
        info = yield defer.ensureDeferred(c.head_object("a b/~x"))
        self.assertEqual((info.key, info.size, info.content_type), ("a b/~x", 11, "text/plain"))
        self.assertEqual((yield defer.ensureDeferred(self.body_of(c, "a b/~x"))), b"hello world")
        self.assertEqual((yield defer.ensureDeferred(self.body_of(c, "a b/~x", (6, None)))), b"world")
        response = yield defer.ensureDeferred(c.get_object("a b/~x", (0, 4)))
        self.assertEqual((response.code, (yield treq.content(response))), (206, b"hello"))
        # the key really is under the prefix in the bucket
        raw = self.server.botocore_client().head_object(Bucket=c.settings.bucket, Key="cache/a b/~x")
        self.assertEqual(raw["ContentLength"], 11)
        yield defer.ensureDeferred(c.delete_object("a b/~x"))
        self.assertIsNone((yield defer.ensureDeferred(c.head_object("a b/~x"))))
        yield defer.ensureDeferred(c.delete_object("a b/~x"))  # already gone: fine
        with self.assertRaises(S3NotFound) as caught:
            yield defer.ensureDeferred(c.get_object("a b/~x"))
        self.assertEqual((caught.exception.code, caught.exception.status), ("NoSuchKey", 404))

    @defer.inlineCallbacks
    def test_wrong_secret_is_a_typed_403_not_retried(self):
        c = self.client(secret_access_key="wrong")
        with self.assertRaises(S3Error) as caught:
            yield defer.ensureDeferred(c.put_object("k", b"x"))
        self.assertEqual((caught.exception.code, caught.exception.status), ("SignatureDoesNotMatch", 403))
        self.assertNotIsInstance(caught.exception, S3Unavailable)
        self.assertEqual(c.retries, 0)

    @defer.inlineCallbacks
    def test_put_object_from_a_file_signed_with_its_digest_or_unsigned_payload(self):
        """The signature covers the given SHA-256 (AWS then checks the body against it; moto does not)."""
        c = self.client()
        path, sha = self.big_file(2 * MiB)
        yield defer.ensureDeferred(c.put_object("f", path, sha256=sha))
        yield defer.ensureDeferred(c.put_object("u", path))  # UNSIGNED-PAYLOAD
        for key in ("f", "u"):
            body = yield defer.ensureDeferred(self.body_of(c, key))
            self.assertEqual(hashlib.sha256(body).hexdigest(), sha)

    # -- multipart -----------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_put_file_multipart_20_mib_in_5_mib_parts_streams_from_disk(self):
        c = self.client(multipart_threshold=5 * MiB, read_chunk=256 * 1024)
        path, sha = self.big_file(20 * MiB)
        tracemalloc.start()
        try:
            etag = yield defer.ensureDeferred(c.put_file("big", path, part_size=5 * MiB))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertTrue(etag.endswith('-4"'), etag)  # four parts
        self.assertLess(peak, 4 * MiB, "the upload held far more than a few chunks of the file in memory")
        body = yield defer.ensureDeferred(self.body_of(c, "big"))
        self.assertEqual((len(body), hashlib.sha256(body).hexdigest()), (20 * MiB, sha))
        self.assertEqual((yield defer.ensureDeferred(c.list_multipart_uploads())), [])

    @defer.inlineCallbacks
    def test_a_part_that_keeps_failing_aborts_the_upload(self):
        server = s3_support.server(check_signatures=False)  # listing uploads under "up/" (moto's bug)
        failing = _FailingParts(self.http, part=2)
        c = self.client(server, http=failing, prefix="up/", multipart_threshold=5 * MiB, max_attempts=3)
        path, _ = self.big_file(12 * MiB)
        with self.assertRaises(S3Unavailable) as caught:
            yield defer.ensureDeferred(c.put_file("big", path, part_size=5 * MiB))
        self.assertEqual((caught.exception.code, caught.exception.attempts, failing.failed), ("ConnectionError", 3, 3))
        self.assertEqual((yield defer.ensureDeferred(c.list_multipart_uploads())), [])
        self.assertIsNone((yield defer.ensureDeferred(c.head_object("big"))))

    @defer.inlineCallbacks
    def test_a_connection_reset_mid_part_is_retried_and_the_object_is_whole(self):
        factory = portforward.ProxyFactory("127.0.0.1", self.server.port)
        factory.protocol = _CutPartTwo
        factory.cut = False
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        endpoint = f"http://127.0.0.1:{listening.getHost().port}"
        c = self.client(endpoint=endpoint, multipart_threshold=5 * MiB, read_chunk=256 * 1024)
        path, sha = self.big_file(12 * MiB)
        yield defer.ensureDeferred(c.put_file("big", path, part_size=5 * MiB))
        self.assertTrue(factory.cut)
        self.assertEqual(c.retries, 1)
        body = yield defer.ensureDeferred(self.body_of(c, "big"))
        self.assertEqual(hashlib.sha256(body).hexdigest(), sha)

    @defer.inlineCallbacks
    def test_a_file_that_cannot_be_read_mid_upload_aborts_and_is_not_retried(self):
        c = self.client(multipart_threshold=5 * MiB, max_attempts=3)
        path, _ = self.big_file(12 * MiB)
        real = c.upload_part

        async def shrink_then_upload(key, upload_id, number, path_, offset, length):
            if number == 2:
                os.truncate(path, 6 * MiB)  # the file shrinks under the upload: part 2 comes up short
            return await real(key, upload_id, number, path_, offset, length)

        c.upload_part = shrink_then_upload
        with self.assertRaises(S3Error) as caught:
            yield defer.ensureDeferred(c.put_file("big", path, part_size=5 * MiB))
        self.assertEqual((caught.exception.code, c.retries), ("LocalReadError", 0))
        self.assertEqual((yield defer.ensureDeferred(c.list_multipart_uploads())), [])
        self.assertIsNone((yield defer.ensureDeferred(c.head_object("big"))))

    # -- listing and batch delete ---------------------------------------------------------

    @defer.inlineCallbacks
    def test_listing_pages_past_1000_keys_and_batch_delete(self):
        server = s3_support.server(check_signatures=False)  # "prefix=p%2F" (moto's bug)
        c = self.client(server, prefix="p/")
        keys = [f"k{i:05d}" for i in range(1005)]
        sem = defer.DeferredSemaphore(16)
        yield defer.gatherResults(
            [sem.run(lambda k=k: defer.ensureDeferred(c.put_object(k, b""))) for k in keys], consumeErrors=True
        )
        yield defer.ensureDeferred(c.put_object("other/x", b"1"))
        listed = yield defer.ensureDeferred(self._keys(c))
        self.assertEqual(listed, sorted(keys + ["other/x"]))  # two pages of the default 1000
        self.assertEqual((yield defer.ensureDeferred(self._keys(c, "other/"))), ["other/x"])
        failed = yield defer.ensureDeferred(c.delete_objects(keys))  # two batches
        self.assertEqual(failed, {})
        self.assertEqual((yield defer.ensureDeferred(self._keys(c))), ["other/x"])

    @defer.inlineCallbacks
    def test_small_pages_on_the_signature_checking_server(self):
        c = self.client()
        for i in range(7):
            yield defer.ensureDeferred(c.put_object(f"k{i}", b"x" * i))
        listed = yield defer.ensureDeferred(self._keys(c, page_size=3))
        self.assertEqual(listed, [f"k{i}" for i in range(7)])

    async def _keys(self, c: S3Client, prefix: str = "", page_size: int = 1000) -> list[str]:
        return [o.key async for o in c.list_objects_v2(prefix, page_size=page_size)]

    # -- presigned URLs and addressing ---------------------------------------------------------

    @defer.inlineCallbacks
    def test_presigned_get_with_a_plain_http_client(self):
        """Fetched by urllib, with no credentials.  On the non-checking server: moto's signature check
        fails with a 500 on query-signed URLs; the URL is checked against botocore's own presigner in
        tests.unit.storage.test_s3_signing."""
        c = self.client(s3_support.server(check_signatures=False), prefix="blobs/")
        yield defer.ensureDeferred(c.put_object("sha256/ab", b"presigned body"))
        url = yield defer.ensureDeferred(c.presign_get("sha256/ab", 60))
        self.assertIn("X-Amz-Expires=60&", url)
        status, body = yield threads.deferToThread(_plain_get, url)
        self.assertEqual((status, body), (200, b"presigned body"))

    @defer.inlineCallbacks
    def test_virtual_host_addressing(self):
        bucket = self.server.new_bucket("virtual")
        http = HTTPClient(Agent.usingEndpointFactory(reactor, _AllToLoopback(self.server.port), pool=self.pool))
        c = self.client(http=http, bucket=bucket, endpoint=f"http://s3.test:{self.server.port}", addressing="virtual")
        self.assertTrue(c.addresser.url("k").startswith(f"http://{bucket}.s3.test:{self.server.port}/k"))
        yield defer.ensureDeferred(c.put_object("k", b"virtual"))
        self.assertEqual((yield defer.ensureDeferred(self.body_of(c, "k"))), b"virtual")
        # it is in the bucket the host named
        raw = self.server.botocore_client().get_object(Bucket=bucket, Key="k")
        self.assertEqual(raw["Body"].read(), b"virtual")


def _plain_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
