"""`Storage` on both backends: the same contract with the filesystem and with a bucket (moto) behind it.

`StorageContract` runs once per backend, as the index tests run on sqlite
and PostgreSQL; the S3 class adds what only a bucket has: the object is
there before the digest is returned, a wiped local tier loses nothing, a
corrupted object is refused, deletes reach the bucket, the tier's LRU bound.
The bucket is a real S3 API server (moto, `tests.s3_support`) on 127.0.0.1;
without moto these skip (CI installs it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from harbor_cache.core.operations.bucket_orphans import BucketSweep
from harbor_cache.errors import StorageUnavailable
from harbor_cache.storage import Storage
from harbor_cache.storage.bucket import Bucket, blob_key, digest_of_key
from harbor_cache.storage.s3 import S3Client, S3Settings
from harbor_cache.storage.uploads import UploadFiles
from harbor_cache.testing import InlineIO
from tests import s3_support


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class StorageContract:
    """What every backend does; ``make_storage`` builds one on a fresh data directory."""

    storage: Storage

    def make_storage(self, root: str) -> Storage:
        raise NotImplementedError

    def setUp(self) -> None:
        self.storage = self.make_storage(self.mktemp())  # type: ignore[attr-defined]

    async def test_store_then_read(self) -> None:
        digest = await self.storage.store_bytes(b"manifest body")
        self.assertEqual(digest, sha(b"manifest body"))  # type: ignore[attr-defined]
        self.assertEqual(await self.storage.read_bytes(digest), b"manifest body")  # type: ignore[attr-defined]
        self.assertEqual(self.storage.stat_blob(digest), len(b"manifest body"))  # type: ignore[attr-defined]
        self.assertTrue(await self.storage.ensure_local(digest, 13))  # type: ignore[attr-defined]

    async def test_streamed_write_then_open(self) -> None:
        body = os.urandom(300_000)
        temp = self.storage.new_temp(len(body))
        temp.write(body[:100_000])
        temp.write(body[100_000:])
        digest = await temp.finish(sha(body))
        source = self.storage.open_stored(digest)
        with open(source.path, "rb") as f:
            self.assertEqual(f.read(), body)  # type: ignore[attr-defined]

    async def test_delete(self) -> None:
        digest = await self.storage.store_bytes(b"gone soon")
        self.assertTrue(await self.storage.delete_blob(digest))  # type: ignore[attr-defined]
        self.assertIsNone(self.storage.stat_blob(digest))  # type: ignore[attr-defined]
        self.assertFalse(await self.storage.ensure_local(digest))  # type: ignore[attr-defined]

    async def test_delete_many(self) -> None:
        digests = [await self.storage.store_bytes(b"x%d" % i) for i in range(3)]
        await self.storage.delete_blobs(digests)
        for d in digests:
            self.assertFalse(await self.storage.ensure_local(d))  # type: ignore[attr-defined]

    async def test_unknown_digest_is_nowhere(self) -> None:
        self.assertFalse(await self.storage.ensure_local(sha(b"never stored")))  # type: ignore[attr-defined]

    async def test_upload_session_commit(self) -> None:
        files = UploadFiles(self.storage)
        session = str(uuid.uuid4())
        await files.create(session)
        appender = files.appender(session, 0, {})
        appender.write(b"chunk one,")
        appender.write(b"chunk two")
        size = await appender.close_append()
        body = b"chunk one,chunk two"
        digest = await files.commit(session, sha(body), size, None)
        self.assertEqual(await self.storage.read_bytes(digest), body)  # type: ignore[attr-defined]


class FilesystemStorageTests(StorageContract, unittest.TestCase):
    def make_storage(self, root: str) -> Storage:
        return Storage(root, InlineIO())


class S3Fixture:
    """A fresh bucket on the test process's moto server, and a `Bucket` on it."""

    timeout = 120

    def s3_bucket(self, **settings: Any) -> tuple[Bucket, str]:
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)  # type: ignore[attr-defined]
        self.server = s3_support.server()  # checks every signature (our listings send no prefix: see s3_support)
        pool = HTTPConnectionPool(reactor, persistent=False)
        name = settings.pop("bucket", None) or self.server.new_bucket()
        fields: dict[str, Any] = dict(
            bucket=name,
            endpoint=self.server.endpoint,
            access_key_id=self.server.access_key_id,
            secret_access_key=self.server.secret_access_key,
            addressing="path",
            backoff_base=0.01,
            backoff_cap=0.02,
            max_attempts=2,
        )
        fields.update(settings)
        client = S3Client(S3Settings(**fields), HTTPClient(Agent(reactor, pool=pool)), InlineIO(), reactor)
        return Bucket(client, reactor, probe_interval=0), name

    def s3_storage(self, root: str, limit: int = 1 << 30, **settings: Any) -> Storage:
        bucket, self.bucket_name = self.s3_bucket(**settings)
        storage = Storage(root, InlineIO())
        storage.use_bucket(bucket, limit)
        return storage

    def objects(self) -> dict[str, bytes]:
        s3 = self.server.botocore_client()
        listing = s3.list_objects_v2(Bucket=self.bucket_name).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=self.bucket_name, Key=o["Key"])["Body"].read() for o in listing}


class S3StorageTests(StorageContract, S3Fixture, unittest.TestCase):
    def make_storage(self, root: str) -> Storage:
        return self.s3_storage(root)

    async def test_object_is_in_the_bucket_when_the_digest_returns(self) -> None:
        digest = await self.storage.store_bytes(b"committed")
        self.assertEqual(self.objects(), {blob_key(digest): b"committed"})
        self.assertEqual(digest_of_key(blob_key(digest)), digest)

    async def test_wiped_tier_loses_nothing(self) -> None:
        body = os.urandom(200_000)
        temp = self.storage.new_temp(len(body))
        temp.write(body)
        digest = await temp.finish()
        small = await self.storage.store_bytes(b"a manifest")
        shutil.rmtree(self.storage.blob_dir)
        os.makedirs(self.storage.blob_dir)
        self.assertIsNone(self.storage.stat_blob(digest))
        both = [defer.ensureDeferred(self.storage.ensure_local(digest, len(body))) for _ in range(2)]
        self.assertEqual(await defer.gatherResults(both), [True, True])  # one fill, both told
        with open(self.storage.blob_path(digest), "rb") as f:
            self.assertEqual(f.read(), body)
        self.assertEqual(await self.storage.read_bytes(small), b"a manifest")  # read_bytes fills by itself

    async def test_corrupt_object_is_refused(self) -> None:
        digest = await self.storage.store_bytes(b"the real content")
        os.unlink(self.storage.blob_path(digest))
        s3 = self.server.botocore_client()
        s3.put_object(Bucket=self.bucket_name, Key=blob_key(digest), Body=b"the fake content")  # same size
        self.assertFalse(await self.storage.ensure_local(digest, 16))
        self.assertIsNone(self.storage.stat_blob(digest))
        s3.put_object(Bucket=self.bucket_name, Key=blob_key(digest), Body=b"short")
        self.assertFalse(await self.storage.ensure_local(digest, 16))
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])

    async def test_delete_removes_the_object(self) -> None:
        digest = await self.storage.store_bytes(b"to delete")
        await self.storage.delete_blob(digest)
        self.assertEqual(self.objects(), {})

    async def test_tier_keeps_its_bound_and_refills(self) -> None:
        self.storage = self.s3_storage(self.mktemp(), limit=250)
        a = await self.storage.store_bytes(b"a" * 100)
        b = await self.storage.store_bytes(b"b" * 100)
        self.storage.open_stored(a)  # a read: a is now the most recently used
        c = await self.storage.store_bytes(b"c" * 100)
        self.assertIsNone(self.storage.stat_blob(b))  # the least recently used left the tier...
        self.assertIsNotNone(self.storage.stat_blob(a))
        self.assertIsNotNone(self.storage.stat_blob(c))
        assert self.storage.tier is not None
        self.assertEqual(self.storage.tier.bytes, 200)
        self.assertEqual(len(self.objects()), 3)  # ...never the bucket
        self.assertTrue(await self.storage.ensure_local(b, 100))
        self.assertEqual(await self.storage.read_bytes(b), b"b" * 100)
        self.assertLessEqual(self.storage.tier.bytes, 250)

    async def test_upload_failure_fails_the_commit(self) -> None:
        self.storage = self.s3_storage(self.mktemp(), bucket="no-such-bucket-here")
        with self.assertRaises(StorageUnavailable):
            await self.storage.store_bytes(b"cannot be stored")
        files = UploadFiles(self.storage)
        session = str(uuid.uuid4())
        await files.create(session)
        appender = files.appender(session, 0, {})
        appender.write(b"pushed")
        size = await appender.close_append()
        with self.assertRaises(StorageUnavailable):
            await files.commit(session, sha(b"pushed"), size, None)

    async def test_unreachable_bucket(self) -> None:
        bucket, _ = self.s3_bucket(endpoint="http://127.0.0.1:1", max_attempts=1)
        storage = Storage(self.mktemp(), InlineIO())
        storage.use_bucket(bucket, 1 << 20)
        both = [defer.ensureDeferred(storage.ensure_local(sha(b"x"))) for _ in range(2)]
        for waiter in both:
            with self.assertRaises(StorageUnavailable) as caught:
                await waiter
            self.assertEqual(caught.exception.code, "STORAGE_UNAVAILABLE")
        self.assertFalse(await bucket.probe())
        with self.assertRaises(StorageUnavailable):
            storage.check_writable()
        digest = await self.storage.store_bytes(b"warm")  # the other (reachable) storage: unaffected
        self.assertTrue(await self.storage.ensure_local(digest))

    async def test_orphan_objects_go_after_the_grace_time(self) -> None:
        kept = await self.storage.store_bytes(b"has a row")
        orphan = await self.storage.store_bytes(b"no row")
        busy = await self.storage.store_bytes(b"being read")

        class Index:
            async def digests_referenced(self, digests: list[str]) -> set[str]:
                return {d for d in digests if d == kept}

        bucket = self.storage.bucket
        assert bucket is not None
        self.assertEqual(await BucketSweep().sweep(Index(), bucket, 3600, time.time(), lambda: set()), (0, 0))  # type: ignore[arg-type]
        self.assertEqual(bucket.orphan_bytes, len(b"no row") + len(b"being read"))  # young: kept, and counted
        later = time.time() + 7200
        removed = await BucketSweep().sweep(Index(), bucket, 3600, later, lambda: {busy})  # type: ignore[arg-type]
        self.assertEqual(removed, (1, len(b"no row")))
        self.assertEqual(set(self.objects()), {blob_key(kept), blob_key(busy)})
        self.assertNotIn(blob_key(orphan), self.objects())

    async def test_abandoned_multipart_uploads_are_aborted(self) -> None:
        s3 = self.server.botocore_client()
        key = blob_key(sha(b"never completed"))
        s3.create_multipart_upload(Bucket=self.bucket_name, Key=key)
        bucket = self.storage.bucket
        assert bucket is not None

        class Index:
            async def digests_referenced(self, digests: list[str]) -> set[str]:
                return set()

        # (moto dates every upload 2010-11-10: the pass's "now" is taken relative to what it says)
        initiated = s3.list_multipart_uploads(Bucket=self.bucket_name)["Uploads"][0]["Initiated"].timestamp()
        await BucketSweep().sweep(Index(), bucket, 3600, initiated + 60, lambda: set())  # type: ignore[arg-type]
        self.assertEqual(len(s3.list_multipart_uploads(Bucket=self.bucket_name).get("Uploads", [])), 1)  # young
        await BucketSweep().sweep(Index(), bucket, 3600, initiated + 7200, lambda: set())  # type: ignore[arg-type]
        self.assertEqual(s3.list_multipart_uploads(Bucket=self.bucket_name).get("Uploads", []), [])

    async def test_a_delete_the_bucket_refuses_leaves_an_orphan_not_an_error(self) -> None:
        bucket, _ = self.s3_bucket(endpoint="http://127.0.0.1:1", max_attempts=1)
        storage = Storage(self.mktemp(), InlineIO())
        storage.use_bucket(bucket, 1 << 20)
        self.assertTrue(await storage.delete_blob(sha(b"whatever")))
        await storage.delete_blobs([sha(b"a"), sha(b"b")])
