"""The bucket's orphan sweep walks the bucket incrementally (issue 26): each pass lists at most
``keys_per_pass`` keys from a cursor kept between passes (StartAfter), wraps around at the end, and
never removes an object a row points at, one younger than the grace time, one being read, or a chunk
of an upload session still in progress.

Against an in-memory listing (`FakeListing`, which records what each pass asked for) and against a
real S3 API (moto, `tests.s3_support`; the unsigned server: moto's signature check mishandles the
``/`` of a StartAfter key).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from harbor_cache.core.operations.bucket_orphans import BucketSweep
from harbor_cache.storage.bucket import Bucket, blob_key
from harbor_cache.storage.s3 import S3Client, S3Settings
from harbor_cache.storage.s3.wire import MultipartUpload, ObjectInfo
from harbor_cache.storage.upload_chunks import chunk_key
from harbor_cache.testing import InlineIO
from tests import s3_support
from tests.unit.base import run

OLD = "2020-01-01T00:00:00.000Z"
NOW = 1_700_000_000.0  # (2023: every OLD object is years past the grace time)
YOUNG = "2023-11-14T22:13:00.000Z"  # 20 s before NOW


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeListing:
    """The part of `S3Client` the sweep uses, over a dict; records each listing's keys and page sizes."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[int, str]] = {}  # key -> (size, LastModified)
        self.listed: list[str] = []  # keys handed out, in order
        self.page_sizes: list[int] = []
        self.start_afters: list[str | None] = []
        self.uploads: tuple[MultipartUpload, ...] = ()  # multipart uploads in progress
        self.aborted: list[str] = []  # the upload ids aborted

    async def list_objects_v2(
        self, prefix: str = "", page_size: int = 1000, start_after: str | None = None
    ) -> AsyncIterator[ObjectInfo]:
        self.page_sizes.append(page_size)
        self.start_afters.append(start_after)
        keys = sorted(k for k in self.objects if start_after is None or k > start_after)
        for at in range(0, len(keys), page_size):
            page = keys[at : at + page_size]  # (one request's answer)
            for key in page:
                if key not in self.objects:
                    continue
                size, modified = self.objects[key]
                self.listed.append(key)
                yield ObjectInfo(key=key, size=size, etag="", last_modified=modified)

    async def delete_object(self, key: str) -> None:
        self.objects.pop(key, None)

    async def delete_objects(self, keys: list[str]) -> dict[str, str]:
        for key in keys:
            self.objects.pop(key, None)
        return {}

    async def list_multipart_uploads(self, prefix: str) -> list[Any]:
        return list(self.uploads)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self.aborted.append(upload_id)


class FakeIndex:
    def __init__(self, referenced: set[str] = frozenset(), uploads: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.referenced = set(referenced)
        self.uploads = set(uploads)

    async def digests_referenced(self, digests: list[str]) -> set[str]:
        return {d for d in digests if d in self.referenced}

    async def get_upload(self, session_id: str) -> object | None:
        return object() if session_id in self.uploads else None


class WalkTests(unittest.TestCase):
    def setUp(self) -> None:
        self.listing = FakeListing()
        self.bucket = Bucket(self.listing, Clock())  # type: ignore[arg-type]

    def put(self, data: bytes, modified: str = OLD) -> str:
        digest = sha(data)
        self.listing.objects[blob_key(digest)] = (len(data), modified)
        return digest

    def sweep(self, walk: BucketSweep, index: FakeIndex, busy: set[str] = frozenset()) -> tuple[int, int]:  # type: ignore[assignment]
        return run(self, walk.sweep(index, self.bucket, 3600, NOW, lambda: set(busy), upload_idle=3600))  # type: ignore[arg-type]

    def test_each_pass_lists_a_bounded_number_of_keys_from_its_cursor(self) -> None:
        digests = [self.put(b"orphan %d" % i) for i in range(25)]
        walk = BucketSweep(keys_per_pass=10, page=4)
        index = FakeIndex(referenced=set(digests))  # all referenced: nothing goes, the walk only moves on
        before = 0
        keys = sorted(self.listing.objects)
        for expected_cursor in (keys[9], keys[19], keys[4]):  # (the third: the last 5, then the first 5)
            self.sweep(walk, index)
            listed = self.listing.listed[before:]
            before = len(self.listing.listed)
            self.assertLessEqual(len(listed), 10)
            self.assertEqual(walk.cursor, expected_cursor)
        self.assertEqual(self.listing.start_afters, [None, keys[9], keys[19], None])
        self.assertEqual(set(self.listing.page_sizes), {4})  # a page at a time, never the whole listing
        self.assertEqual(len(self.listing.objects), 25)

    def test_passes_remove_only_old_unreferenced_idle_objects(self) -> None:
        kept = [self.put(b"has a row %d" % i) for i in range(6)]
        orphans = [self.put(b"no row %d" % i) for i in range(6)]
        young = self.put(b"committed a moment ago", YOUNG)
        busy = self.put(b"being read")
        index = FakeIndex(referenced=set(kept))
        walk = BucketSweep(keys_per_pass=3, page=2)
        removed = [self.sweep(walk, index, {busy}) for _ in range(5)]  # 14 keys, 3 a pass: all seen
        self.assertEqual(sum(r[0] for r in removed), 6)
        left = set(self.listing.objects)
        self.assertEqual(left, {blob_key(d) for d in [*kept, young, busy]})
        self.assertTrue(all(blob_key(d) not in left for d in orphans))
        # A whole cycle later the bucket's orphan bytes are what is left unreferenced: young + busy.
        for _ in range(5):
            self.sweep(walk, index, {busy})
        self.assertEqual(self.bucket.orphan_bytes, len(b"committed a moment ago") + len(b"being read"))

    def test_a_pass_wraps_around_to_the_first_key(self) -> None:
        digests = [self.put(b"object %d" % i) for i in range(10)]
        keys = sorted(self.listing.objects)
        walk = BucketSweep(keys_per_pass=6, page=6)
        index = FakeIndex(referenced=set(digests))
        self.sweep(walk, index)
        self.assertEqual(walk.cursor, keys[5])
        self.sweep(walk, index)  # the last 4, then the first 2
        self.assertEqual(self.listing.listed[6:], keys[6:] + keys[:2])
        self.assertEqual(walk.cursor, keys[1])
        self.assertEqual(self.listing.start_afters[1:], [keys[5], None])

    def test_a_pass_that_wraps_stops_where_it_began(self) -> None:
        digests = [self.put(b"object %d" % i) for i in range(5)]
        keys = sorted(self.listing.objects)
        walk = BucketSweep(keys_per_pass=3, page=2)
        index = FakeIndex(referenced=set(digests))
        self.sweep(walk, index)
        walk.keys_per_pass = 100  # (more than the bucket holds)
        self.sweep(walk, index)  # keys[3:], then keys[:3] from the first: each key once
        # (and keys[3] handed out once more: the key past where it began, which ends the pass unswept)
        self.assertEqual(self.listing.listed[3:], [*keys[3:], *keys[:3], keys[3]])
        self.assertEqual((walk.cursor, walk.keys_seen), (keys[2], 5))

    def test_chunks_of_sessions_in_progress_stay(self) -> None:
        live, ended, recent = (str(uuid.UUID(int=i)) for i in (1, 2, 3))
        self.listing.objects[chunk_key(live, 0)] = (5, OLD)
        self.listing.objects[chunk_key(ended, 0)] = (7, OLD)
        self.listing.objects[chunk_key(recent, 0)] = (9, YOUNG)
        walk = BucketSweep(keys_per_pass=1, page=1)
        for _ in range(3):
            self.sweep(walk, FakeIndex(uploads={live}))
        self.assertEqual(set(self.listing.objects), {chunk_key(live, 0), chunk_key(recent, 0)})

    def test_an_object_indexed_during_the_pass_stays(self) -> None:
        digest = self.put(b"row on its way")

        class Racing(FakeIndex):
            calls = 0

            async def digests_referenced(self, digests: list[str]) -> set[str]:
                self.calls += 1
                return set(digests) if self.calls > 1 else set()  # the commit's row lands between the two checks

        self.sweep(BucketSweep(), Racing())
        self.assertIn(blob_key(digest), self.listing.objects)

    def test_an_object_uploaded_again_during_the_pass_stays(self) -> None:
        """An old orphan's digest fetched again while the pass decides: the download uploads the same key
        afresh (the listing's age is the old object's) and its row comes after the re-check; it is busy then."""
        digest = self.put(b"fetched again")
        busy: set[str] = set()

        class Refetched(FakeIndex):
            calls = 0

            async def digests_referenced(self, digests: list[str]) -> set[str]:
                self.calls += 1
                if self.calls == 2:
                    busy.add(digest)  # the download began after the first check; its row is not there yet
                return set()

        self.sweep(BucketSweep(), Refetched(), busy)
        self.assertIn(blob_key(digest), self.listing.objects)

    def test_a_multipart_upload_of_content_being_committed_is_not_aborted(self) -> None:
        """A multipart upload older than the grace time whose digest is being downloaded is that download's
        commit (a large blob on a slow link), not one a crashed node left: left alone; an idle one is aborted."""
        committing, abandoned = sha(b"a large layer"), sha(b"left by a crashed node")
        self.listing.uploads = (
            MultipartUpload(key=blob_key(committing), upload_id="committing", initiated=OLD),
            MultipartUpload(key=blob_key(abandoned), upload_id="abandoned", initiated=OLD),
        )
        self.sweep(BucketSweep(), FakeIndex(), busy={committing})
        self.assertEqual(self.listing.aborted, ["abandoned"])

    def test_a_fresh_walk_sweeps_from_the_first_key(self) -> None:
        self.put(b"orphan")
        removed = run(self, BucketSweep().sweep(FakeIndex(), self.bucket, 3600, NOW, lambda: set()))  # type: ignore[arg-type]
        self.assertEqual(removed, (1, len(b"orphan")))


class MotoWalkTests(unittest.TestCase):
    """The same walk against a real S3 API: StartAfter as the store understands it."""

    timeout = 120

    def setUp(self) -> None:
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.server = s3_support.server(check_signatures=False)
        self.name = self.server.new_bucket()
        client = S3Client(
            S3Settings(
                bucket=self.name,
                endpoint=self.server.endpoint,
                access_key_id=self.server.access_key_id,
                secret_access_key=self.server.secret_access_key,
                addressing="path",
                prefix="cache/",
                max_attempts=2,
            ),
            HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))),
            InlineIO(),
            reactor,
        )
        self.bucket = Bucket(client, reactor, probe_interval=0)
        self.s3 = self.server.botocore_client()

    def keys(self) -> set[str]:
        listing = self.s3.list_objects_v2(Bucket=self.name).get("Contents", [])
        return {o["Key"].removeprefix("cache/") for o in listing}

    async def test_passes_walk_the_bucket_and_remove_orphans(self) -> None:
        kept: list[str] = []
        orphans: list[str] = []
        for i in range(7):
            for data, group in ((b"kept %d" % i, kept), (b"orphan %d" % i, orphans)):
                digest = sha(data)
                self.s3.put_object(Bucket=self.name, Key="cache/" + blob_key(digest), Body=data)
                group.append(digest)
        index = FakeIndex(referenced=set(kept))
        walk = BucketSweep(keys_per_pass=5, page=2)
        later = time.time() + 7200
        seen_cursors = []
        for _ in range(3):  # 14 keys, 5 a pass
            await walk.sweep(index, self.bucket, 3600, later, lambda: set())  # type: ignore[arg-type]
            seen_cursors.append(walk.cursor)
            self.assertLessEqual(walk.keys_seen, 5)
        self.assertEqual(self.keys(), {blob_key(d) for d in kept})
        self.assertIsNotNone(seen_cursors[0])
        self.assertTrue(seen_cursors[0] < seen_cursors[1])  # type: ignore[operator]
        # Young objects stay: the same walk with "now" = now keeps a fresh orphan.
        fresh = sha(b"fresh")
        self.s3.put_object(Bucket=self.name, Key="cache/" + blob_key(fresh), Body=b"fresh")
        for _ in range(3):
            await walk.sweep(index, self.bucket, 3600, time.time(), lambda: set())  # type: ignore[arg-type]
        self.assertIn(blob_key(fresh), self.keys())

    async def test_start_after_lists_only_later_keys(self) -> None:
        for name in ("a", "b", "c/d", "c/e"):
            self.s3.put_object(Bucket=self.name, Key="cache/" + name, Body=b"x")
        got = [o.key async for o in self.bucket.client.list_objects_v2("", page_size=1, start_after="c/d")]
        self.assertEqual(got, ["c/e"])
        got = [o.key async for o in self.bucket.client.list_objects_v2("", page_size=2, start_after="a")]
        self.assertEqual(got, ["b", "c/d", "c/e"])
