"""The S3 client on fakes: request shape through treq on an in-memory transport (RequestTraversalAgent,
as StubTreq but with body producers), retries and timeouts on a Clock (jitter
seeded), error mapping, multipart aborts, and the file producer's chunked, pausable reads."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web import resource, server

from harbor_cache.storage.s3 import S3Client, S3Error, S3NotFound, S3Settings, S3Unavailable
from harbor_cache.storage.s3.bodies import FileRegionProducer, LocalReadError
from harbor_cache.storage.s3.wire import backoff_delay, error_of, retryable
from harbor_cache.testing import InlineIO

MiB = 1024 * 1024


def error_xml(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{code} happened</Message></Error>".encode()


class Scripted(resource.Resource):
    """Answers each request with the next scripted (status, headers, body), or by a function of the request.

    Records (method, uri, headers, body) of every request.  A script entry
    None leaves the request hanging (NOT_DONE_YET).
    """

    isLeaf = True

    def __init__(self, *script: Any) -> None:
        super().__init__()
        self.script = list(script)
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def render(self, request: Any) -> Any:
        body = request.content.read()
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        self.seen.append((request.method.decode(), request.uri.decode(), headers, body))
        entry = self.script.pop(0) if self.script else (200, {}, b"")
        if callable(entry):
            entry = entry(request)
        if entry is None:
            return server.NOT_DONE_YET
        status, out_headers, out_body = entry
        request.setResponseCode(status)
        for name, value in out_headers.items():
            request.setHeader(name, value)
        return out_body


class InMemoryHTTP(HTTPClient):
    """treq's client on an in-memory transport to ``site``; `flush` delivers what is pending."""

    def __init__(self, site: resource.Resource) -> None:
        self.agent = RequestTraversalAgent(site)
        super().__init__(self.agent)

    def flush(self) -> None:
        for _ in range(5):
            self.agent.flush()


class _Base(unittest.TestCase):
    def make(self, site: resource.Resource, http: Any = None, **fields: Any) -> S3Client:
        self.clock = Clock()
        self.stub = InMemoryHTTP(site)
        s = S3Settings(
            **{
                "bucket": "bkt",
                "endpoint": "http://s3.test",
                "access_key_id": "AKID",
                "secret_access_key": "SECRET",
                "addressing": "path",
                **fields,
            }
        )
        return S3Client(s, http or self.stub, InlineIO(), self.clock, rng=random.Random(7))

    def run_(self, coro: Any) -> defer.Deferred[Any]:
        d = defer.Deferred.fromCoroutine(coro)
        self.stub.flush()
        return d

    def file(self, size: int) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(bytes(range(256)) * (size // 256))
        return path


class RequestShapeTests(_Base):
    def test_put_bytes_signs_the_body_hash(self):
        site = Scripted((200, {"ETag": '"e1"'}, b""))
        c = self.make(site, prefix="cache/")
        etag = self.successResultOf(self.run_(c.put_object("k y", b"data", content_type="text/plain")))
        self.assertEqual(etag, '"e1"')
        method, uri, headers, body = site.seen[0]
        self.assertEqual((method, uri, body), ("PUT", "/bkt/cache/k%20y", b"data"))
        self.assertEqual(headers["x-amz-content-sha256"], hashlib.sha256(b"data").hexdigest())
        self.assertEqual(headers["content-type"], "text/plain")
        self.assertRegex(
            headers["authorization"],
            r"^AWS4-HMAC-SHA256 Credential=AKID/\d{8}/us-east-1/s3/aws4_request, "
            r"SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$",
        )

    def test_put_file_streams_unsigned_or_with_the_given_digest(self):
        site = Scripted((200, {"ETag": '"a"'}, b""), (200, {"ETag": '"b"'}, b""))
        c = self.make(site)
        path = self.file(4096)
        self.successResultOf(self.run_(c.put_object("u", path)))
        self.successResultOf(self.run_(c.put_object("s", path, sha256="ab" * 32)))
        self.assertEqual([s[2]["x-amz-content-sha256"] for s in site.seen], ["UNSIGNED-PAYLOAD", "ab" * 32])
        self.assertEqual([len(s[3]) for s in site.seen], [4096, 4096])
        self.assertEqual(site.seen[0][2]["content-length"], "4096")

    def test_get_with_range_returns_the_unread_response(self):
        site = Scripted((206, {}, b"ell"))
        c = self.make(site)
        response = self.successResultOf(self.run_(c.get_object("k", (1, 3))))
        self.assertEqual(response.code, 206)
        self.assertEqual(site.seen[0][2]["range"], "bytes=1-3")

    def test_batch_delete_sends_content_md5_and_reports_refusals(self):
        answer = b"<DeleteResult><Error><Key>p/b</Key><Code>AccessDenied</Code></Error></DeleteResult>"
        site = Scripted((200, {}, answer), (200, {}, b"<DeleteResult/>"))
        c = self.make(site, prefix="p/")
        keys = [f"k{i}" for i in range(1001)] + ["b"]
        failed = self.successResultOf(self.run_(c.delete_objects(keys)))
        self.assertEqual(failed, {"b": "AccessDenied"})
        self.assertEqual([s[1] for s in site.seen], ["/bkt?delete", "/bkt?delete"])
        self.assertEqual(site.seen[0][3].count(b"<Key>"), 1000)
        self.assertIn("content-md5", site.seen[0][2])

    def test_listing_follows_continuation_tokens(self):
        page1 = (
            b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>'
            b"<Contents><Key>p/a</Key><Size>1</Size><ETag>x</ETag></Contents>"
            b"<NextContinuationToken>t/1=</NextContinuationToken></ListBucketResult>"
        )
        page2 = b"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>p/b</Key><Size>2</Size></Contents></ListBucketResult>"
        site = Scripted((200, {}, page1), (200, {}, page2))
        c = self.make(site, prefix="p/")

        async def keys() -> list[tuple[str, int]]:
            return [(o.key, o.size) async for o in c.list_objects_v2(page_size=1)]

        self.assertEqual(self.successResultOf(self.run_(keys())), [("a", 1), ("b", 2)])
        self.assertEqual(
            [s[1] for s in site.seen],
            [
                "/bkt?list-type=2&max-keys=1&prefix=p%2F",
                "/bkt?continuation-token=t%2F1%3D&list-type=2&max-keys=1&prefix=p%2F",
            ],
        )

    def test_presign_get_is_a_query_signed_url(self):
        c = self.make(Scripted(), prefix="blobs/")
        url = self.successResultOf(defer.Deferred.fromCoroutine(c.presign_get("sha256/ab", 300)))
        self.assertTrue(url.startswith("http://s3.test/bkt/blobs/sha256/ab?X-Amz-Algorithm=AWS4-HMAC-SHA256&"))
        self.assertIn("X-Amz-Expires=300&", url)
        self.failureResultOf(defer.Deferred.fromCoroutine(c.presign_get("k", 8 * 24 * 3600)), ValueError)


class ErrorMappingTests(_Base):
    def test_codes_from_the_body_or_the_status(self):
        self.assertEqual(error_of(503, error_xml("SlowDown")), ("SlowDown", "SlowDown happened"))
        self.assertEqual(error_of(404, b""), ("NotFound", ""))
        self.assertEqual(error_of(502, b"<html>bad gateway</html>"), ("HTTP502", ""))
        for status, code in (
            (500, "InternalError"),
            (503, "SlowDown"),
            (429, "x"),
            (400, "RequestTimeout"),
            (None, "Timeout"),
        ):
            self.assertTrue(retryable(status, code), (status, code))
        for status, code in ((403, "AccessDenied"), (404, "NoSuchKey"), (400, "InvalidArgument"), (409, "x")):
            self.assertFalse(retryable(status, code), (status, code))

    def test_4xx_is_raised_at_once_typed(self):
        site = Scripted((403, {}, error_xml("AccessDenied")))
        c = self.make(site)
        failure = self.failureResultOf(self.run_(c.put_object("k", b"x")), S3Error)
        self.assertEqual((failure.value.code, failure.value.status, len(site.seen)), ("AccessDenied", 403, 1))
        self.assertNotIsInstance(failure.value, S3Unavailable)

    def test_missing_keys(self):
        site = Scripted((404, {}, error_xml("NoSuchKey")), (404, {}, b""), (404, {}, error_xml("NoSuchKey")))
        c = self.make(site)
        self.assertEqual(self.failureResultOf(self.run_(c.get_object("k")), S3NotFound).value.code, "NoSuchKey")
        self.assertIsNone(self.successResultOf(self.run_(c.head_object("k"))))
        self.assertIsNone(self.successResultOf(self.run_(c.delete_object("k"))))


class RetryTests(_Base):
    def test_full_jitter_is_bounded_by_the_exponential_and_the_cap(self):
        rng = random.Random(1)
        for failures in range(1, 12):
            bound = min(5.0, 0.1 * 2 ** (failures - 1))
            draws = [backoff_delay(failures, 0.1, 5.0, rng) for _ in range(200)]
            self.assertTrue(all(0 <= d <= bound for d in draws))
            self.assertGreater(max(draws), bound * 0.8)  # it spreads over the whole range

    def test_slowdown_and_500_are_retried_after_the_jittered_delays(self):
        site = Scripted(
            (503, {}, error_xml("SlowDown")), (500, {}, error_xml("InternalError")), (200, {"ETag": '"ok"'}, b"")
        )
        c = self.make(site)
        d = self.run_(c.put_object("k", b"x"))
        expected = random.Random(7)
        first, second = expected.uniform(0, 0.1), expected.uniform(0, 0.2)
        self.assertEqual(len(site.seen), 1)
        self.clock.advance(first - 1e-6)
        self.stub.flush()
        self.assertEqual(len(site.seen), 1)
        self.clock.advance(2e-6)
        self.stub.flush()
        self.assertEqual(len(site.seen), 2)
        self.clock.advance(second)
        self.stub.flush()
        self.assertEqual((self.successResultOf(d), len(site.seen), c.retries), ('"ok"', 3, 2))
        # each attempt is signed afresh with the same body
        self.assertEqual({s[3] for s in site.seen}, {b"x"})

    def test_retries_are_bounded_then_s3_unavailable(self):
        site = Scripted(*[(503, {}, error_xml("SlowDown"))] * 10)
        c = self.make(site, max_attempts=4, backoff_base=1.0, backoff_cap=2.0)
        d = self.run_(c.put_object("k", b"x"))
        for _ in range(10):
            self.clock.advance(2.0)
            self.stub.flush()
        failure = self.failureResultOf(d, S3Unavailable)
        self.assertEqual((failure.value.code, failure.value.status, failure.value.attempts), ("SlowDown", 503, 4))
        self.assertEqual(len(site.seen), 4)

    def test_connection_reset_is_retried(self):
        site = Scripted((200, {"ETag": '"e"'}, b""))
        stub = None
        resets = []

        class Flaky:
            def request(self, *args: Any, **kwargs: Any) -> Any:
                if not resets:
                    resets.append(True)
                    return defer.fail(ConnectionLost("reset"))
                assert stub is not None
                return stub.request(*args, **kwargs)

        c = self.make(site, http=Flaky())
        stub = self.stub
        d = self.run_(c.put_object("k", b"x"))
        self.clock.advance(0.1)
        self.stub.flush()
        self.assertEqual((self.successResultOf(d), len(site.seen)), ('"e"', 1))

    def test_a_request_without_progress_times_out_and_is_retried(self):
        site = Scripted(None, (200, {"ETag": '"e"'}, b""))
        c = self.make(site, timeout=60.0)
        d = self.run_(c.put_object("k", b"x"))
        self.clock.advance(59)
        self.stub.flush()
        self.assertNoResult(d)
        self.clock.advance(1)  # cancelled: a timeout, retried after the backoff
        self.clock.advance(0.1)
        self.stub.flush()
        self.assertEqual((self.successResultOf(d), len(site.seen)), ('"e"', 2))

    def test_the_timeout_counts_from_the_last_progress_of_the_body(self):
        sent: list[Any] = []
        consumers: list[Any] = []

        class Slow:
            """Takes the body chunk by chunk (pausing the producer after each) and never answers."""

            def request(self, method: str, url: str, data: Any = None, **kwargs: Any) -> Any:
                class Consumer:
                    def write(self, chunk: bytes) -> None:
                        sent.append(len(chunk))
                        data.pauseProducing()

                consumers.append(data)
                data.startProducing(Consumer())
                return defer.Deferred()

        c = self.make(Scripted(), http=Slow(), timeout=60.0, read_chunk=1024, max_attempts=1)
        path = self.file(4096)
        d = defer.Deferred.fromCoroutine(c.put_object("k", path))
        producer = consumers[0]
        for _ in range(3):
            self.clock.advance(50)  # 50 s since the last chunk: still going
            producer.resumeProducing()
        self.assertEqual(sent, [1024] * 4)
        self.assertNoResult(d)
        self.clock.advance(60)
        failure = self.failureResultOf(d, S3Unavailable)
        self.assertEqual(failure.value.code, "Timeout")


def uploads_then(part_answer: Any) -> Scripted:
    """Create (upload id U) -> part 1 ok -> part 2 answered by ``part_answer`` -> whatever follows."""
    return Scripted(
        (200, {}, b"<InitiateMultipartUploadResult><UploadId>U</UploadId></InitiateMultipartUploadResult>"),
        (200, {"ETag": '"p1"'}, b""),
        part_answer,
        (204, {}, b""),
    )


class MultipartTests(_Base):
    def test_put_file_uploads_parts_and_completes(self):
        site = Scripted(
            (200, {}, b"<InitiateMultipartUploadResult><UploadId>U</UploadId></InitiateMultipartUploadResult>"),
            (200, {"ETag": '"p1"'}, b""),
            (200, {"ETag": '"p2"'}, b""),
            (200, {}, b'<CompleteMultipartUploadResult><ETag>"all-2"</ETag></CompleteMultipartUploadResult>'),
        )
        c = self.make(site, multipart_threshold=MiB)
        path = self.file(6 * MiB)
        etag = self.successResultOf(self.run_(c.put_file("big", path, part_size=5 * MiB)))
        self.assertEqual(etag, '"all-2"')
        self.assertEqual(
            [(s[0], s[1], len(s[3])) for s in site.seen[:3]],
            [
                ("POST", "/bkt/big?uploads", 0),
                ("PUT", "/bkt/big?partNumber=1&uploadId=U", 5 * MiB),
                ("PUT", "/bkt/big?partNumber=2&uploadId=U", MiB),
            ],
        )
        self.assertIn(
            b"<Part><PartNumber>2</PartNumber><ETag>&quot;p2&quot;</ETag></Part>".replace(b"&quot;", b'"'),
            site.seen[3][3],
        )

    def test_a_refused_part_aborts_the_upload(self):
        site = uploads_then((403, {}, error_xml("AccessDenied")))
        c = self.make(site, multipart_threshold=MiB)
        failure = self.failureResultOf(self.run_(c.put_file("big", self.file(6 * MiB), part_size=5 * MiB)), S3Error)
        self.assertEqual(failure.value.code, "AccessDenied")
        self.assertEqual(site.seen[-1][:2], ("DELETE", "/bkt/big?uploadId=U"))

    def test_a_completion_that_fails_in_a_200_aborts_the_upload(self):
        site = uploads_then((200, {"ETag": '"p2"'}, b""))
        site.script.insert(3, (200, {}, error_xml("InvalidPart")))
        c = self.make(site, multipart_threshold=MiB)
        failure = self.failureResultOf(self.run_(c.put_file("big", self.file(6 * MiB), part_size=5 * MiB)), S3Error)
        self.assertEqual((failure.value.code, failure.value.status), ("InvalidPart", 200))
        self.assertEqual([s[0] for s in site.seen], ["POST", "PUT", "PUT", "POST", "DELETE"])

    def test_cancelling_put_file_aborts_the_upload(self):
        site = uploads_then(None)  # part 2 hangs
        c = self.make(site, multipart_threshold=MiB)
        d = self.run_(c.put_file("big", self.file(6 * MiB), part_size=5 * MiB))
        self.assertEqual(len(site.seen), 3)
        d.cancel()
        self.stub.flush()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(site.seen[-1][:2], ("DELETE", "/bkt/big?uploadId=U"))

    def test_a_small_file_is_one_put(self):
        site = Scripted((200, {"ETag": '"one"'}, b""))
        c = self.make(site, multipart_threshold=MiB)
        self.assertEqual(self.successResultOf(self.run_(c.put_file("f", self.file(MiB)))), '"one"')
        self.assertEqual([s[0] for s in site.seen], ["PUT"])


class ProducerTests(unittest.TestCase):
    def make(self, size: int, offset: int = 0, length: int | None = None, chunk: int = 1000) -> FileRegionProducer:
        self.path = self.mktemp()
        self.data = bytes(i % 251 for i in range(size))
        with open(self.path, "wb") as f:
            f.write(self.data)
        return FileRegionProducer(self.path, offset, size - offset if length is None else length, InlineIO(), chunk)

    def test_reads_the_region_in_chunks(self):
        producer = self.make(10_000, offset=1234, length=5000)
        out: list[bytes] = []
        consumer = type("C", (), {"write": lambda self, b: out.append(b)})()
        self.successResultOf(producer.startProducing(consumer))
        self.assertEqual(b"".join(out), self.data[1234:6234])
        self.assertEqual((producer.reads, producer.largest_read), (5, 1000))

    def test_pause_stops_reading_until_resumed(self):
        producer = self.make(3000)
        out: list[bytes] = []

        class C:
            def write(self, b: bytes) -> None:
                out.append(b)
                producer.pauseProducing()

        d = producer.startProducing(C())
        self.assertEqual(producer.reads, 1)
        producer.resumeProducing()
        self.assertEqual(producer.reads, 2)
        producer.resumeProducing()
        self.successResultOf(d)
        self.assertEqual(b"".join(out), self.data)

    def test_stop_leaves_the_deferred_unfired(self):
        producer = self.make(3000)
        consumer = type("C", (), {"write": lambda self, b: producer.pauseProducing()})()
        d = producer.startProducing(consumer)
        producer.stopProducing()
        self.assertNoResult(d)
        self.assertEqual(producer.reads, 1)

    def test_a_short_file_is_a_local_error(self):
        producer = self.make(1000, length=2000)
        consumer = type("C", (), {"write": lambda self, b: None})()
        failure = self.failureResultOf(producer.startProducing(consumer), LocalReadError)
        self.assertIn("ended 1000 bytes early", str(failure.value))


class PlanPartsTests(unittest.TestCase):
    def test_parts_cover_the_file_and_respect_s3_limits(self):
        from harbor_cache.storage.s3.transfer import plan_parts

        self.assertEqual(
            plan_parts(12 * MiB, 5 * MiB), [(1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB), (3, 10 * MiB, 2 * MiB)]
        )
        self.assertEqual(plan_parts(12 * MiB, MiB)[0][2], 5 * MiB)  # never under S3's 5 MiB minimum
        huge = plan_parts(100_000 * MiB, 5 * MiB)  # would be 20,000 parts: the part size grows instead
        self.assertEqual((len(huge), sum(p[2] for p in huge)), (10_000, 100_000 * MiB))
