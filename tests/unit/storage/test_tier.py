"""The local tier's LRU bookkeeping, and the order of things around the bucket on a fake one:
readers get their last byte before the upload, the digest only after it, deletes go tier first."""

from __future__ import annotations

import hashlib
import os

from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.errors import StorageUnavailable
from harbor_cache.storage import RangeProducer, Storage
from harbor_cache.storage.tier import LocalTier
from harbor_cache.testing import InlineIO


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LocalTierTests(SynchronousTestCase):
    def test_least_recently_used_go_first(self):
        tier = LocalTier(limit=250)
        tier.load([("sha256:b", 100, 2.0), ("sha256:a", 100, 1.0)])  # by mtime: a is the oldest
        tier.add("sha256:c", 100)
        self.assertEqual(tier.bytes, 300)
        self.assertEqual(tier.victims(set()), [("sha256:a", 100)])
        tier.touch("sha256:a")
        self.assertEqual(tier.victims(set()), [("sha256:b", 100)])

    def test_kept_digests_are_skipped(self):
        tier = LocalTier(limit=100)
        for name in "abc":
            tier.add("sha256:" + name, 100)
        self.assertEqual(tier.victims({"sha256:a"}), [("sha256:b", 100), ("sha256:c", 100)])
        self.assertEqual(tier.victims({"sha256:a", "sha256:b", "sha256:c"}), [])

    def test_readding_and_discarding_keep_the_count(self):
        tier = LocalTier(limit=1000)
        tier.add("sha256:a", 100)
        tier.add("sha256:a", 100)
        self.assertEqual(tier.bytes, 100)
        tier.discard("sha256:a")
        tier.discard("sha256:unknown")
        self.assertEqual((tier.bytes, tier.victims(set())), (0, []))


class FakeBucket:
    """Uploads wait for the test to fire them; deletes record whether the local file was already gone."""

    reachable: bool | None = True

    def __init__(self, storage_root: str):
        self.uploads: list[tuple[str, defer.Deferred]] = []
        self.deleted: list[tuple[list[str], list[bool]]] = []
        self.storage: Storage | None = None

    def upload(self, digest, path):
        d: defer.Deferred = defer.Deferred()
        self.uploads.append((digest, d))
        return d

    async def delete(self, digests):
        assert self.storage is not None
        self.deleted.append((digests, [os.path.exists(self.storage.blob_path(d)) for d in digests]))


class BucketOrderTests(SynchronousTestCase):
    def setUp(self):
        self.storage = Storage(self.mktemp(), InlineIO())
        self.bucket = FakeBucket(self.storage.root)
        self.bucket.storage = self.storage
        self.storage.use_bucket(self.bucket, 1 << 20)

    def test_reader_gets_the_last_byte_before_the_upload_and_the_digest_after(self):
        body = os.urandom(50_000)
        temp = self.storage.new_temp(len(body))
        client = StringTransport()
        producer = RangeProducer(temp, client, 0, None)
        producer.start()
        temp.write(body)
        finished = defer.ensureDeferred(temp.finish(sha(body)))
        self.assertEqual(len(self.bucket.uploads), 1)  # the upload is running...
        self.assertNoResult(finished)  # ...so the caller has no digest (and writes no row) yet...
        self.assertEqual(client.value(), body)  # ...but the reader has sent every byte
        self.successResultOf(producer.done)
        self.bucket.uploads[0][1].callback(None)
        self.assertEqual(self.successResultOf(finished), sha(body))

    def test_failed_upload_fails_the_commit_and_keeps_the_tier_copy(self):
        temp = self.storage.new_temp(5)
        temp.write(b"hello")
        finished = defer.ensureDeferred(temp.finish())
        self.bucket.uploads[0][1].errback(StorageUnavailable("the object store is unavailable"))
        self.failureResultOf(finished, StorageUnavailable)
        self.assertIsNone(temp.digest)
        self.assertEqual(self.storage.stat_blob(sha(b"hello")), 5)  # a tier copy, harmless without a row

    def test_delete_goes_tier_first_then_bucket(self):
        temp = self.storage.new_temp(3)
        temp.write(b"abc")
        finished = defer.ensureDeferred(temp.finish())
        self.bucket.uploads[0][1].callback(None)
        digest = self.successResultOf(finished)
        self.successResultOf(defer.ensureDeferred(self.storage.delete_blob(digest)))
        self.assertEqual(self.bucket.deleted, [([digest], [False])])
        assert self.storage.tier is not None
        self.assertEqual(self.storage.tier.bytes, 0)

    def test_cold_download_refused_while_the_bucket_is_unreachable(self):
        self.storage.check_writable()
        self.bucket.reachable = False
        self.assertRaises(StorageUnavailable, self.storage.check_writable)


class TrimRaceTests(SynchronousTestCase):
    """A file trimmed from the tier between `open_stored` and its reader's first byte (the trim unlinks on
    the I/O pool, concurrently with the reactor) must still reach the client whole."""

    def setUp(self):
        self.storage = Storage(self.mktemp(), InlineIO())
        self.bucket = FakeBucket(self.storage.root)
        self.bucket.storage = self.storage
        self.storage.use_bucket(self.bucket, 1 << 20)
        self.body = os.urandom(300_000)
        temp = self.storage.new_temp(len(self.body))
        temp.write(self.body)
        finished = defer.ensureDeferred(temp.finish())
        self.bucket.uploads[0][1].callback(None)
        self.digest = self.successResultOf(finished)

    def test_a_file_trimmed_after_open_stored_is_served_whole(self):
        source = self.storage.open_stored(self.digest, len(self.body))
        assert self.storage.tier is not None
        self.storage.tier.limit = 0  # lowered: everything not being read goes
        trimmed = self.successResultOf(defer.ensureDeferred(self.storage.trim_tier()))
        self.assertEqual(trimmed, len(self.body))
        self.assertIsNone(self.storage.stat_blob(self.digest))  # unlinked...
        client = StringTransport()
        producer = RangeProducer(source, client, 0, None)
        producer.start()
        self.successResultOf(producer.done)
        self.assertEqual(client.value(), self.body)  # ...but the open file was read to the end

    def test_an_unread_open_source_closes_its_file(self):
        import gc

        before = len(os.listdir("/proc/self/fd"))
        source = self.storage.open_stored(self.digest, len(self.body))
        self.assertEqual(len(os.listdir("/proc/self/fd")), before + 1)
        del source
        gc.collect()
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)

    def test_open_local_fills_a_file_trimmed_before_it_was_opened(self):
        os.unlink(self.storage.blob_path(self.digest))
        fills = []

        def fill(storage, digest, size):
            fills.append(digest)
            temp = storage.new_temp(size)
            temp.to_bucket = False
            temp.write(self.body)
            return defer.ensureDeferred(temp.finish(digest)).addCallback(lambda _: True)

        self.bucket.fill = fill
        source = self.successResultOf(defer.ensureDeferred(self.storage.open_local(self.digest, len(self.body))))
        self.assertEqual(fills, [self.digest])
        client = StringTransport()
        producer = RangeProducer(source, client, 0, None)
        producer.start()
        self.assertEqual(client.value(), self.body)
