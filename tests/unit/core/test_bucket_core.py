"""The pull cache over a bucket (an in-memory stand-in for `storage.bucket.Bucket`): the core's "row but no
file" paths fill from the bucket, a failed upload writes no row, an unreachable bucket is a clear 503."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import defer

from harbor_cache.storage.bucket import unavailable
from harbor_cache.storage.errors import BlobCorrupt
from tests.unit.base import OciCacheCase


class MemoryBucket:
    """What `Storage` asks of a `Bucket`, kept in a dict; ``down`` makes every call fail as after the retries."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reachable: bool | None = True
        self.down = False
        self.fills = 0
        self.orphan_bytes = 0
        self.refused: set[str] = set()

    def _check(self, what: str) -> None:
        if self.down:
            self.reachable = False
            raise unavailable(what, Exception("ConnectionError"))

    async def upload(self, digest: str, path: str) -> None:
        self._check("upload")
        with open(path, "rb") as f:
            self.objects[digest] = f.read()
        self.refused.discard(digest)

    async def delete(self, digests: list[str]) -> None:
        self._check("delete")
        for d in digests:
            self.objects.pop(d, None)

    def fill(self, storage: Any, digest: str, size: int | None) -> defer.Deferred[bool]:
        async def go() -> bool:
            self._check("read")
            self.fills += 1
            data = self.objects.get(digest)
            if data is None:
                return False
            temp = storage.new_temp(len(data))
            temp.to_bucket = False
            temp.write(data)
            try:
                await temp.finish(digest)
            except BlobCorrupt:
                return False
            return True

        return defer.ensureDeferred(go())

    def stream(self, storage: Any, digest: str, size: int | None) -> defer.Deferred[Any]:
        """As `Bucket.stream`: the growing file at once, its fill going on; a refused digest is a miss."""
        try:
            self._check("read")
        except Exception:
            return defer.fail()
        data = self.objects.get(digest)
        if data is None or digest in self.refused:
            return defer.succeed(None)
        self.fills += 1
        temp = storage.new_temp(len(data))
        temp.to_bucket = False
        temp.write(data)

        def refuse(failure: Any) -> None:
            failure.trap(BlobCorrupt)
            self.refused.add(digest)

        defer.ensureDeferred(temp.finish(digest)).addErrback(refuse)
        return defer.succeed(temp)


class BucketPullTests(OciCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.bucket = MemoryBucket()
        self.app.storage.use_bucket(self.bucket, 1 << 30)  # type: ignore[arg-type]
        self.layer = os.urandom(100_000)
        self.digest = self.upstream.add_blob(self.layer)
        self.path = "/v2/library/app/blobs/" + self.digest

    def get(self) -> tuple[int, bytes]:
        response = self.successResultOf(self.request("GET", self.path))
        return response.code, self.successResultOf(self.read_body(response))

    def entry(self) -> Any:
        return self.successResultOf(self.drive(self.app.index.get_entry("blob", "", self.digest)))

    def test_committed_to_the_bucket_and_filled_back(self) -> None:
        self.assertEqual(self.get(), (200, self.layer))
        self.assertEqual(self.bucket.objects, {self.digest: self.layer})
        self.assertIsNotNone(self.entry())
        os.unlink(self.app.storage.blob_path(self.digest))  # evicted from the tier (or another node's commit)
        self.assertEqual(self.get(), (200, self.layer))
        self.assertEqual((self.bucket.fills, self.upstream.count("GET", "/blobs/")), (1, 1))

    def test_a_corrupt_object_is_refused_and_fetched_again(self) -> None:
        self.get()
        os.unlink(self.app.storage.blob_path(self.digest))
        self.bucket.objects[self.digest] = b"x" * len(self.layer)
        outcome: list[Any] = []
        self.request("GET", self.path).addCallback(self.read_body).addBoth(outcome.append)
        self.flush()
        self.assertNotEqual(outcome[0], b"x" * len(self.layer))  # streamed, cut before its last byte
        self.assertEqual(self.get(), (200, self.layer))  # never the bucket's bytes: the upstream's again
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 2)
        self.assertEqual(self.bucket.objects[self.digest], self.layer)  # and the object is whole again

    def test_failed_upload_writes_no_row(self) -> None:
        self.bucket.down = True
        self.bucket.reachable = True  # (the probe has not noticed yet: the download starts)
        outcome: list[Any] = []
        self.request("GET", self.path).addCallback(self.read_body).addBoth(outcome.append)
        self.flush()
        if isinstance(outcome[0], bytes):  # the client may have had every byte before the upload failed ...
            self.assertEqual(outcome[0], self.layer)  # ... never a wrong one
        else:
            outcome[0].trap(Exception)  # (else its connection is cut)
        self.assertIsNone(self.entry())
        self.assertEqual(self.bucket.objects, {})
        self.assertEqual(self.get()[0], 503)  # the failure marked the bucket unreachable: no more cold downloads
        self.bucket.down = False
        self.bucket.reachable = True  # (what the next probe finds)
        self.assertEqual(self.get(), (200, self.layer))  # not committed, so fetched (and committed) again
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 2)
        self.assertIsNotNone(self.entry())

    def test_unreachable_bucket(self) -> None:
        self.get()  # committed and on the tier
        self.bucket.down = True
        self.bucket.reachable = False
        self.assertEqual(self.get(), (200, self.layer))  # a warm hit from the local tier
        os.unlink(self.app.storage.blob_path(self.digest))
        code, body = self.get()  # only in the bucket
        self.assertEqual((code, json.loads(body)["errors"][0]["code"]), (503, "STORAGE_UNAVAILABLE"))
        other = self.upstream.add_blob(os.urandom(1000))
        response = self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + other))
        body = self.successResultOf(self.read_body(response))
        self.assertEqual((response.code, json.loads(body)["errors"][0]["code"]), (503, "STORAGE_UNAVAILABLE"))
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)  # the cold one was never asked for

    def test_readyz_names_the_bucket(self) -> None:
        from harbor_cache.api.health import HealthFront

        front = HealthFront(self.app.index, self.app.storage, self.app.metrics)
        self.app.root.mount(b"readyz", front.app.resource())
        self.bucket.reachable = False
        response = self.successResultOf(self.request("GET", "/readyz"))
        body = json.loads(self.successResultOf(self.read_body(response)))
        self.assertEqual((response.code, body["problems"]), (503, ["bucket"]))
        self.bucket.reachable = True
        self.assertEqual(self.successResultOf(self.request("GET", "/readyz")).code, 200)

    def test_stats_report_the_tier(self) -> None:
        self.get()
        stats = self.successResultOf(self.drive(self.app.evictor.stats()))
        self.assertEqual(
            (stats["storage_backend"], stats["bucket_bytes"], stats["local_tier_bytes"]),
            ("s3", len(self.layer), len(self.layer)),
        )
