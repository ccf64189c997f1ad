"""Upload sessions across nodes that share only a bucket (`storage.upload_chunks`), against moto.

Two `Storage` objects on separate data directories and one bucket play two
nodes: a chunk written on one is rebuilt from its object on the other, a
chunk whose object failed is cut back, missing chunks end the session, the
objects go when the session ends, and the orphan sweep removes chunks of
sessions the index no longer has once they are older than the idle time.
"""

from __future__ import annotations

import os
import time
import uuid

from twisted.trial import unittest

from harbor_cache.core.operations.bucket_orphans import BucketSweep
from harbor_cache.errors import StorageUnavailable
from harbor_cache.storage import Storage
from harbor_cache.storage.bucket import blob_key
from harbor_cache.storage.upload_chunks import UploadChunksMissing, chunk_key, session_of_key
from harbor_cache.storage.uploads import UploadFiles
from harbor_cache.testing import InlineIO
from tests.unit.storage.test_storage_backends import S3Fixture, sha


class UploadChunksTests(S3Fixture, unittest.TestCase):
    def setUp(self) -> None:
        self.a = self.s3_storage(self.mktemp())
        self.b = self.s3_storage(self.mktemp(), bucket=self.bucket_name)
        self.files_a = UploadFiles(self.a)
        self.files_b = UploadFiles(self.b)
        self.session = str(uuid.uuid4())

    async def append(self, files: UploadFiles, offset: int, data: bytes, publish: bool = True) -> int:
        sink = files.appender(self.session, offset, {})
        sink.write(data)
        size = await sink.close_append()
        if publish:
            await files.publish(self.session, offset, len(data))
        return size

    def local(self, files: UploadFiles) -> bytes:
        with open(files.path(self.session), "rb") as f:
            return f.read()

    def test_keys(self) -> None:
        key = chunk_key(self.session, 1234)
        self.assertEqual(key, f"uploads/{self.session}/1234")
        self.assertEqual(session_of_key(key), (self.session, 1234))
        for other in ("uploads/x/0", f"uploads/{self.session}/01", f"uploads/{self.session}/", "blobs/sha256/ab/ab"):
            self.assertIsNone(session_of_key(other))

    async def test_a_session_continues_on_the_other_node_and_back(self) -> None:
        await self.files_a.create(self.session)
        await self.append(self.files_a, 0, b"one,")
        self.assertEqual(self.objects(), {chunk_key(self.session, 0): b"one,"})
        self.assertEqual(await self.files_b.restore(self.session, 4), 4)  # B never saw it: all fetched
        self.assertEqual(self.local(self.files_b), b"one,")
        await self.append(self.files_b, 4, b"two,")
        await self.append(self.files_b, 8, b"three")
        self.assertEqual(await self.files_a.restore(self.session, 13), 9)  # A has its own first chunk
        self.assertEqual(self.local(self.files_a), b"one,two,three")
        self.assertEqual(await self.files_a.restore(self.session, 13), 0)  # nothing new
        digest = await self.files_a.commit(self.session, sha(b"one,two,three"), 13, None)
        await self.files_a.forget(self.session)
        self.assertEqual(self.objects(), {blob_key(digest): b"one,two,three"})

    async def test_forget_finds_chunks_other_nodes_wrote(self) -> None:
        await self.files_a.create(self.session)
        await self.append(self.files_a, 0, b"aa")
        await self.files_b.restore(self.session, 2)
        await self.append(self.files_b, 2, b"bbb")
        await self.files_a.remove(self.session)  # A knows only the first chunk: it walks on to B's
        self.assertEqual(self.objects(), {})
        self.assertFalse(os.path.exists(self.files_a.path(self.session)))

    async def test_bytes_whose_chunk_failed_are_cut_back(self) -> None:
        await self.files_a.create(self.session)
        await self.append(self.files_a, 0, b"kept")
        await self.append(self.files_a, 4, b"never published", publish=False)
        await self.files_a.restore(self.session, 4)
        self.assertEqual(self.local(self.files_a), b"kept")

    async def test_a_replaced_local_file_is_refetched_whole(self) -> None:
        await self.files_a.create(self.session)
        await self.append(self.files_a, 0, b"abc")
        with open(self.files_a.path(self.session), "wb") as f:
            f.write(b"X")  # shorter than what A trusted
        self.assertEqual(await self.files_a.restore(self.session, 3), 3)
        self.assertEqual(self.local(self.files_a), b"abc")

    async def test_missing_chunks_end_the_session(self) -> None:
        with self.assertRaises(UploadChunksMissing):
            await self.files_b.restore(self.session, 10)
        await self.files_a.create(self.session)
        await self.append(self.files_a, 0, b"12345")
        with self.assertRaises(UploadChunksMissing):  # the chunk overshoots the recorded size
            await self.files_b.restore(self.session, 3)

    async def test_a_chunk_the_bucket_refuses_is_unavailable(self) -> None:
        storage = self.s3_storage(self.mktemp(), endpoint="http://127.0.0.1:1", max_attempts=1)
        files = UploadFiles(storage)
        await files.create(self.session)
        sink = files.appender(self.session, 0, {})
        sink.write(b"abc")
        await sink.close_append()
        with self.assertRaises(StorageUnavailable):
            await files.publish(self.session, 0, 3)
        self.assertEqual(files.chunks.local_end(self.session) if files.chunks else None, 0)

    async def test_the_filesystem_backend_needs_none_of_it(self) -> None:
        files = UploadFiles(Storage(self.mktemp(), InlineIO()))
        self.assertIsNone(files.chunks)
        await files.create(self.session)
        await files.publish(self.session, 0, 10)
        self.assertEqual(await files.restore(self.session, 10), 0)

    async def test_the_sweep_removes_chunks_of_ended_sessions_after_the_idle_time(self) -> None:
        live = str(uuid.uuid4())
        for session in (self.session, live):
            self.session = session
            await self.files_a.create(session)
            await self.append(self.files_a, 0, b"chunk")

        class Index:
            async def digests_referenced(self, digests: list[str]) -> set[str]:
                return set()

            async def get_upload(self, session_id: str) -> object | None:
                return object() if session_id == live else None

        bucket = self.a.bucket
        assert bucket is not None
        before = set(self.objects())
        self.assertEqual(len(before), 2)
        await BucketSweep().sweep(Index(), bucket, 3600, time.time(), lambda: set(), upload_idle=3600)  # type: ignore[arg-type]
        self.assertEqual(set(self.objects()), before)  # young: kept
        removed = await BucketSweep().sweep(Index(), bucket, 3600, time.time() + 7200, lambda: set())  # type: ignore[arg-type]
        self.assertEqual(removed, (0, 0))  # without the idle time: chunks are left alone
        removed = await BucketSweep().sweep(Index(), bucket, 3600, time.time() + 7200, lambda: set(), upload_idle=3600)  # type: ignore[arg-type]
        self.assertEqual(removed, (1, 5))
        self.assertEqual(set(self.objects()), {chunk_key(live, 0)})

    async def test_sweep_local_removes_files_of_sessions_that_ended_elsewhere(self) -> None:
        ended, live = str(uuid.uuid4()), str(uuid.uuid4())
        for session in (ended, live):
            await self.files_b.create(session)

        async def is_live(session_id: str) -> bool:
            return session_id == live

        self.assertEqual(await self.files_b.sweep_local(time.time() - 3600, is_live), 0)  # young
        self.assertEqual(await self.files_b.sweep_local(time.time() + 1, is_live), 1)
        self.assertEqual(sorted(os.listdir(self.files_b.dir)), [live])


class LargeChunkTests(S3Fixture, unittest.TestCase):
    async def test_a_chunk_above_the_multipart_threshold_is_its_region_of_the_file(self) -> None:
        mib = 1 << 20
        storage = self.s3_storage(self.mktemp(), multipart_threshold=5 * mib, part_size=5 * mib)
        files = UploadFiles(storage)
        session = str(uuid.uuid4())
        await files.create(session)
        head, big = b"abc", os.urandom(11 * mib + 7)
        for offset, data in ((0, head), (3, big)):
            sink = files.appender(session, offset, {})
            sink.write(data)
            await sink.close_append()
            await files.publish(session, offset, len(data))
        self.assertEqual(self.objects(), {chunk_key(session, 0): head, chunk_key(session, 3): big})
