"""Maven files over a bucket (issue 26): a hit missing from the local tier streams from the bucket while
the tier fills, instead of waiting for the whole copy (`Storage.ensure_local`) before the first byte.

A Range reads only its part (`Bucket.open_range`), a HEAD reads nothing, a bucket that does not answer
is a 503 before the headers, a bucket that breaks off midway cuts the client's connection, and content
the bucket no longer has is a miss (downloaded again).
"""

from __future__ import annotations

import json
import os
from typing import Any

import treq
from twisted.internet import defer

from harbor_cache.storage.bucket_range import BucketRange
from harbor_cache.storage.errors import SourceFailed
from tests.unit.base import MavenCacheCase, sha256
from tests.unit.core.test_bucket_core import MemoryBucket
from tests.unit.maven import test_maven_hosted as hosted

JAR = "org/example/big/1.0/big-1.0.jar"


class HeldBucket(MemoryBucket):
    """`stream` writes only the first ``hold`` bytes of the growing file (None: all) until `release` writes
    the rest or `cut` breaks it off, as a slow bucket; `fill` and `open_range` calls are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: int | None = None
        self.pending: list[tuple[Any, bytes, str]] = []
        self.fill_calls = 0
        self.ranges: list[tuple[int, int]] = []

    def fill(self, storage: Any, digest: str, size: int | None) -> defer.Deferred[bool]:
        self.fill_calls += 1
        return super().fill(storage, digest, size)

    def stream(self, storage: Any, digest: str, size: int | None) -> defer.Deferred[Any]:
        if self.hold is None or self.down or digest not in self.objects:
            return super().stream(storage, digest, size)
        self.fills += 1
        data = self.objects[digest]
        temp = storage.new_temp(len(data))
        temp.to_bucket = False
        temp.write(data[: self.hold])
        self.pending.append((temp, data, digest))
        return defer.succeed(temp)

    def release(self) -> None:
        for temp, data, digest in self.pending:
            temp.write(data[self.hold :])
            defer.ensureDeferred(temp.finish(digest))
        self.pending = []

    def cut(self) -> None:
        for temp, _, _ in self.pending:
            temp.abort(SourceFailed("the bucket's answer broke off"))
        self.pending = []

    async def open_range(self, storage: Any, digest: str, size: int, first: int, last: int) -> Any:
        self.ranges.append((first, last))
        return None  # (as a store that ignored the Range: served from the fill)


class _Ranged206:
    """The store's unread 206 answer: records whether anyone read it or dropped it (``deliverBody``)."""

    code = 206

    def __init__(self) -> None:
        self.delivered_to: list[Any] = []

    def deliverBody(self, protocol: Any) -> None:
        self.delivered_to.append(protocol)


class RangedBucket(HeldBucket):
    """`open_range` answers with a `BucketRange` over a `_Ranged206` (kept in ``answers``)."""

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock
        self.answers: list[_Ranged206] = []

    async def open_range(self, storage: Any, digest: str, size: int, first: int, last: int) -> Any:
        self.ranges.append((first, last))
        self.answers.append(_Ranged206())
        return BucketRange("blobs/" + digest, size, first, last, self.answers[-1], self.clock, 30.0)


class MavenTierMissTests(MavenCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.bucket = HeldBucket()
        self.app.storage.use_bucket(self.bucket, 1 << 30)  # type: ignore[arg-type]
        self.jar = os.urandom(300_000)  # (above the size kept in memory: served from the file)
        self.upstream.put(JAR, self.jar)
        self.path = "/artifacts/central/" + JAR
        self.assertEqual(self.get(), (200, self.jar))  # cached: a row, the object, a tier copy
        self.digest = sha256(self.jar)
        self.assertIn(self.digest, self.bucket.objects)
        os.unlink(self.app.storage.blob_path(self.digest))  # evicted from the tier (or another node's commit)
        self.bucket.fills = 0

    def get(self, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
        response = self.successResultOf(self.request(method, self.path, headers))
        return response.code, self.successResultOf(self.read_body(response))

    def test_first_bytes_come_before_the_bucket_has_sent_it_all(self) -> None:
        self.bucket.hold = 1000
        response = self.successResultOf(self.request("GET", self.path))
        self.assertEqual(response.code, 200)
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        self.flush()
        self.assertEqual(b"".join(chunks), self.jar[:1000])  # the first bytes are out ...
        self.assertNoResult(done)  # ... while the bucket still sends
        self.assertEqual(self.bucket.fill_calls, 0)  # no whole copy first
        self.bucket.release()
        self.flush()
        self.successResultOf(done)
        self.assertEqual(b"".join(chunks), self.jar)
        self.assertEqual(self.app.storage.stat_blob(self.digest), len(self.jar))  # the tier filled
        self.assertEqual(self.get(), (200, self.jar))  # a local hit now
        self.assertEqual((self.bucket.fills, self.upstream.count("GET", JAR)), (1, 1))

    def test_a_range_reads_its_part_from_the_bucket(self) -> None:
        code, body = self.get({"Range": "bytes=100-199"})
        self.assertEqual((code, body), (206, self.jar[100:200]))
        self.assertEqual(self.bucket.ranges, [(100, 199)])
        self.assertEqual(self.bucket.fill_calls, 0)

    def test_a_range_answered_304_drops_the_buckets_ranged_answer(self) -> None:
        """Unread, the store's answer would keep its connection paused (never back in the pool) for good."""
        bucket = RangedBucket(self.clock)
        bucket.objects = self.bucket.objects
        self.app.storage.use_bucket(bucket, 1 << 30)  # type: ignore[arg-type]
        response = self.successResultOf(self.request("HEAD", self.path))
        etag = response.headers.getRawHeaders(b"ETag")[0].decode()
        code, _ = self.get({"Range": "bytes=100-199", "If-None-Match": etag})
        self.assertEqual((code, bucket.ranges), (304, [(100, 199)]))
        [answer] = bucket.answers
        self.assertEqual(len(answer.delivered_to), 1)

    def test_head_reads_nothing_from_the_bucket(self) -> None:
        response = self.successResultOf(self.request("HEAD", self.path))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Length"), [b"%d" % len(self.jar)])
        self.assertEqual((self.bucket.fills, self.bucket.fill_calls), (0, 0))

    def test_unreachable_bucket_is_a_503_before_the_headers(self) -> None:
        self.bucket.down = True
        code, body = self.get()
        self.assertEqual(code, 503)
        self.assertIn("STORAGE_UNAVAILABLE", json.dumps(json.loads(body)))
        self.assertEqual(self.upstream.count("GET", JAR), 1)

    def test_a_bucket_that_breaks_off_cuts_the_connection(self) -> None:
        self.bucket.hold = 1000
        response = self.successResultOf(self.request("GET", self.path))
        outcome: list[Any] = []
        treq.content(response).addBoth(outcome.append)
        self.flush()
        self.assertEqual(outcome, [])
        self.bucket.cut()
        self.flush()
        self.assertEqual(len(outcome), 1)
        self.assertNotIsInstance(outcome[0], bytes)  # never a complete-looking body
        outcome[0].trap(Exception)
        self.assertIsNone(self.app.storage.stat_blob(self.digest))  # nothing installed

    def test_content_the_bucket_lost_is_downloaded_again(self) -> None:
        del self.bucket.objects[self.digest]
        self.assertEqual(self.get(), (200, self.jar))
        self.assertEqual(self.upstream.count("GET", JAR), 2)


class HostedTierMissTests(hosted.HostedBase):
    """A deployed file of a hosted repository takes the same streaming path."""

    def test_a_deployed_file_streams_from_the_bucket(self) -> None:
        bucket = HeldBucket()
        self.app.storage.use_bucket(bucket, 1 << 30)  # type: ignore[arg-type]
        jar = os.urandom(300_000)
        response, _ = self.put("releases", hosted.JAR, jar)
        self.assertEqual(response.code, 201)
        digest = sha256(jar)
        self.assertIn(digest, bucket.objects)
        os.unlink(self.app.storage.blob_path(digest))
        bucket.hold = 1000
        response = self.successResultOf(self.request("GET", "/artifacts/releases/" + hosted.JAR))
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        self.flush()
        self.assertEqual((response.code, b"".join(chunks), bucket.fill_calls), (200, jar[:1000], 0))
        self.assertNoResult(done)
        bucket.release()
        self.flush()
        self.successResultOf(done)
        self.assertEqual(b"".join(chunks), jar)


class LostMetadataTests(MavenCacheCase):
    """Metadata past its TTL whose content is gone from the tier and the bucket: revalidated (304) it is
    downloaded again, and with upstream down it is a 404, never a 200 whose body then breaks off."""

    META = "org/example/big/maven-metadata.xml"

    def setUp(self) -> None:
        super().setUp()
        self.bucket = HeldBucket()
        self.app.storage.use_bucket(self.bucket, 1 << 30)  # type: ignore[arg-type]
        self.body = b"<metadata>" + os.urandom(100).hex().encode() + b"</metadata>"
        self.upstream.put(self.META, self.body)
        self.path = "/artifacts/central/" + self.META
        self.assertEqual(self.get(), (200, self.body))
        digest = sha256(self.body)
        os.unlink(self.app.storage.blob_path(digest))
        del self.bucket.objects[digest]
        self.clock.advance(3600 * 24)  # (past maven.metadata_ttl_seconds)

    def get(self) -> tuple[int, bytes]:
        response = self.successResultOf(self.request("GET", self.path))
        return response.code, self.successResultOf(self.read_body(response))

    def test_revalidated_but_lost_is_downloaded_again(self) -> None:
        self.assertEqual(self.get(), (200, self.body))
        self.assertEqual(self.upstream.count("GET", self.META), 3)  # the first, the 304, the new copy

    def test_lost_with_upstream_down_is_a_404(self) -> None:
        self.http.down = True
        code, body = self.get()
        self.assertEqual(code, 404)
        self.assertIn("NOT_FOUND", body.decode())
