"""The local orphan sweep over a bucket: a file it unlinks from the local tier leaves the tier's byte count
and LRU order too (else the tier would trim files it still has for bytes it no longer holds)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from twisted.internet import defer

from harbor_cache.core.operations.orphans import OrphanSweeper
from tests.unit.base import OciCacheCase
from tests.unit.core.test_bucket_core import MemoryBucket


class _EmptyListing:
    """The part of `S3Client` the bucket's own orphan pass uses, for a bucket with no stray objects."""

    async def list_objects_v2(
        self, prefix: str, page_size: int = 1000, start_after: str | None = None
    ) -> AsyncIterator[Any]:
        nothing: list[Any] = []
        for item in nothing:
            yield item

    async def list_multipart_uploads(self, prefix: str) -> list[Any]:
        return []


class TierOrphanTests(OciCacheCase):
    def test_swept_files_leave_the_tier(self) -> None:
        bucket = MemoryBucket()
        bucket.client = _EmptyListing()  # type: ignore[attr-defined]
        storage = self.app.storage
        storage.use_bucket(bucket, 1 << 30)  # type: ignore[arg-type]
        data = b"an orphan on the tier" * 100
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = storage.blob_path(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (time.time() - 3600, time.time() - 3600))
        self.assertEqual(storage.load_tier(), len(data))
        self.clock.advance(time.time() - self.clock.seconds())
        sweeper = OrphanSweeper(index=self.app.index, storage=storage, settings=self.app.settings, clock=self.clock)
        removed = self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))
        self.assertEqual(removed, (1, len(data)))
        self.assertIsNone(storage.stat_blob(digest))
        assert storage.tier is not None
        self.assertEqual((storage.tier.bytes, list(storage.tier.files)), (0, []))

    def test_the_bucket_walk_resumes_where_the_last_pass_stopped(self) -> None:
        from harbor_cache.storage.bucket import Bucket, blob_key
        from tests.unit.storage.test_bucket_walk import FakeListing

        listing = FakeListing()
        for i in range(3):
            listing.objects[blob_key("sha256:" + hashlib.sha256(b"%d" % i).hexdigest())] = (1, "2020-01-01T00:00:00Z")
        keys = sorted(listing.objects)
        self.app.storage.use_bucket(Bucket(listing, self.clock), 1 << 30)  # type: ignore[arg-type]
        sweeper = OrphanSweeper(
            index=self.app.index, storage=self.app.storage, settings=self.app.settings, clock=self.clock,
            bucket_keys_per_pass=2,
        )  # fmt: skip
        self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))
        self.assertEqual((listing.start_afters, sweeper.bucket_walk.cursor), ([None], keys[1]))
        self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))
        self.assertEqual(listing.start_afters, [None, keys[1], None])  # the last key, then the first again

    def test_the_bucket_object_of_a_digest_being_pushed_stays(self) -> None:
        """An old unreferenced object whose bytes a hosted push is committing (object uploaded, row on its way;
        a multipart completion may carry its start as LastModified) is left by the bucket sweep."""
        from harbor_cache.storage.bucket import Bucket, blob_key
        from tests.unit.storage.test_bucket_walk import FakeListing

        listing = FakeListing()
        digest = "sha256:" + hashlib.sha256(b"pushed").hexdigest()
        listing.objects[blob_key(digest)] = (6, "2020-01-01T00:00:00Z")
        self.app.storage.use_bucket(Bucket(listing, self.clock), 1 << 30)  # type: ignore[arg-type]
        sweeper = self.app.evictor.orphans  # (the service's: busy is the evictor's `busy_digests`)
        assert sweeper is not None
        self.clock.advance(time.time() - self.clock.seconds())  # (the object is years old)
        with self.app.storage.commit() as commit:
            commit.add(digest)
            self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))
            self.assertIn(blob_key(digest), listing.objects)
        self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))
        self.assertNotIn(blob_key(digest), listing.objects)  # (no row came: an orphan after all)
