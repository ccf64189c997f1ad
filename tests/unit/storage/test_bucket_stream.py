"""A tier miss streams from the bucket while it fills the tier (`Bucket.stream`, `Storage.open_streaming`):
the first bytes reach the reader while the object arrives, the last one only once its digest matched,
one GET however many read it, and a corrupt object fails its readers and is then treated as a miss."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from harbor_cache.storage import RangeProducer, Storage
from harbor_cache.storage.bucket import Bucket
from harbor_cache.storage.bucket_range import BucketRange
from harbor_cache.storage.errors import SourceFailed
from harbor_cache.testing import InlineIO


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeResponse:
    def __init__(self, size: int, code: int = 200) -> None:
        self.code = code
        self.headers = Headers({b"content-length": [b"%d" % size]})
        self.protocol: Any = None
        self.transport = StringTransport()

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def end(self) -> None:
        self.protocol.connectionLost(Failure(ResponseDone()))


class FakeClient:
    """`S3Client.get_object` answering with responses the test feeds."""

    class settings:
        timeout = 30.0

    def __init__(self) -> None:
        self.gets: list[tuple[str, FakeResponse]] = []
        self.ranges: list[Any] = []
        self.size = 0

    async def get_object(self, key: str, byte_range: Any = None) -> FakeResponse:
        if byte_range is None:
            response = FakeResponse(self.size)
        else:
            response = FakeResponse(byte_range[1] - byte_range[0] + 1, code=206)
        self.gets.append((key, response))
        self.ranges.append(byte_range)
        return response


class BucketStreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.storage = Storage(self.mktemp(), InlineIO())
        self.client = FakeClient()
        self.bucket = Bucket(self.client, self.clock)  # type: ignore[arg-type]
        self.storage.use_bucket(self.bucket, 1 << 30)
        self.body = os.urandom(300_000)
        self.digest = sha(self.body)
        self.client.size = len(self.body)

    def open(self, range_header: bytes | None = None) -> Any:
        opening = self.storage.open_streaming(self.digest, len(self.body), range_header)
        return self.successResultOf(defer.ensureDeferred(opening))

    def read(self, source: Any) -> tuple[StringTransport, RangeProducer]:
        client = StringTransport()
        producer = RangeProducer(source, client, 0, None)
        producer.start()
        return client, producer

    def test_bytes_flow_before_the_object_is_whole_and_the_last_waits_for_the_digest(self) -> None:
        first = self.open()
        second = self.open()  # a second reader joins the same fill: one GET
        self.assertIs(first, second)
        self.assertEqual(len(self.client.gets), 1)
        reader, producer = self.read(first)
        response = self.client.gets[0][1]
        response.send(self.body[:100_000])
        self.assertEqual(reader.value(), self.body[:100_000])  # streamed before the rest arrived
        response.send(self.body[100_000:])
        self.assertEqual(reader.value(), self.body[:-1])  # every byte but the last: not verified yet
        response.end()
        self.successResultOf(producer.done)
        self.assertEqual(reader.value(), self.body)
        self.assertEqual(self.storage.stat_blob(self.digest), len(self.body))  # and the tier is filled
        self.assertIsNotNone(self.open().take_fd())  # the next reader opens the tier's file
        self.assertEqual(len(self.client.gets), 1)

    def test_a_corrupt_object_fails_its_readers_then_is_a_miss(self) -> None:
        source = self.open()
        reader, producer = self.read(source)
        response = self.client.gets[0][1]
        response.send(b"x" * len(self.body))
        response.end()
        self.failureResultOf(producer.done, SourceFailed)
        self.assertNotEqual(reader.value(), b"x" * len(self.body))  # never the whole wrong body
        self.assertIsNone(self.storage.stat_blob(self.digest))
        self.assertIsNone(self.open())  # refused: the caller downloads it again...
        self.assertEqual(len(self.client.gets), 1)
        path = os.path.join(self.storage.root, "good")
        with open(path, "wb") as f:
            f.write(self.body)

        async def put_file(key: str, path: str, sha256: Any = None) -> None:
            pass

        self.client.put_file = put_file  # type: ignore[attr-defined]
        self.successResultOf(defer.ensureDeferred(self.bucket.upload(self.digest, path)))
        self.assertIsNotNone(self.open())  # ...and once its commit replaced the object, it streams again
        self.assertEqual(len(self.client.gets), 2)

    def test_a_range_on_a_tier_miss_is_the_buckets_ranged_answer_and_the_fill_runs_beside(self) -> None:
        source = self.open(b"bytes=200000-299998")
        self.assertIsInstance(source, BucketRange)
        self.assertEqual(self.client.ranges, [(200_000, 299_998), None])  # the part, then the tier's fill
        client = StringTransport()
        producer = source.producer(client)
        done = producer.start()
        ranged = self.client.gets[0][1]
        ranged.send(self.body[200_000:250_000])
        self.assertEqual(client.value(), self.body[200_000:250_000])  # straight through, nothing held back
        fill = self.client.gets[1][1]
        fill.send(self.body)
        fill.end()
        producer.pauseProducing()  # the client is slow: so is the bucket's connection
        self.assertEqual(ranged.transport.producerState, "paused")
        self.clock.advance(1000)  # (and no timeout while paused)
        self.assertNoResult(done)
        producer.resumeProducing()
        self.assertEqual(ranged.transport.producerState, "producing")
        ranged.send(self.body[250_000:299_999])
        ranged.end()
        self.successResultOf(done)
        self.assertEqual(client.value(), self.body[200_000:299_999])
        self.assertEqual(self.storage.stat_blob(self.digest), len(self.body))  # the next read is a tier hit
        self.assertIsNotNone(self.open(b"bytes=5-9").take_fd())
        self.assertEqual(len(self.client.gets), 2)

    def test_a_short_ranged_answer_fails_its_reader(self) -> None:
        source = self.open(b"bytes=0-99")
        producer = source.producer(StringTransport())
        done = producer.start()
        ranged = self.client.gets[0][1]
        ranged.send(self.body[:50])
        ranged.end()
        self.failureResultOf(done, SourceFailed)

    def test_a_stalled_ranged_answer_times_out(self) -> None:
        source = self.open(b"bytes=-10")
        self.assertEqual(self.client.ranges[0], (len(self.body) - 10, len(self.body) - 1))
        done = source.producer(StringTransport()).start()
        self.clock.advance(31)
        self.failureResultOf(done, SourceFailed)

    def test_a_whole_range_is_the_fill(self) -> None:
        self.assertNotIsInstance(self.open(b"bytes=0-"), BucketRange)
        self.assertEqual(self.client.ranges, [None])
