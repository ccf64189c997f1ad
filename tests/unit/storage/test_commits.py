"""`Storage.committing`: the digests hosted writes hold between "file in place" and "row written".

Counted holds, released together (``with storage.commit()``), and the
store's own unlinks (`delete_blob`, `delete_blobs`, `remove_orphan_files`)
leave a held digest's file and object alone.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.storage import Storage
from harbor_cache.testing import InlineIO


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ObjectLog:
    """The part of `Bucket` `Storage` deletes through: records what it was asked to delete."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def delete(self, digests: list[str]) -> None:
        self.deleted.extend(digests)


class CommitHoldTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.storage = Storage(self.mktemp(), InlineIO())

    def wait(self, coro: Any) -> Any:
        return self.successResultOf(defer.Deferred.fromCoroutine(coro))

    def store(self, data: bytes) -> str:
        return str(self.wait(self.storage.store_bytes(data)))

    def test_holds_are_counted(self) -> None:
        """Two pushes of the same bytes: the digest stays held until both are done; release is idempotent."""
        first, second = self.storage.commit(), self.storage.commit()
        first.add("sha256:aa")
        second.add("sha256:aa")
        first.release()
        first.release()
        self.assertIn("sha256:aa", self.storage.committing)
        second.release()
        self.assertEqual(self.storage.committing.digests(), set())

    def test_with_releases_on_error(self) -> None:
        with self.assertRaises(RuntimeError):
            with self.storage.commit() as commit:
                commit.add("sha256:bb")
                raise RuntimeError("row write failed")
        self.assertEqual(self.storage.committing.digests(), set())

    def test_finish_holds_the_digest_before_the_rename(self) -> None:
        """`TempBlob.finish(commit=...)` holds the digest it computed; the file is in place while held."""
        with self.storage.commit() as commit:
            digest = self.wait(self.storage.store_bytes(b"deployed", None, commit))
            self.assertIn(digest, self.storage.committing)
            self.assertTrue(os.path.exists(self.storage.blob_path(digest)))
        self.assertNotIn(digest, self.storage.committing)

    def test_unlinks_leave_held_digests(self) -> None:
        """delete_blob, delete_blobs and remove_orphan_files skip a held digest (its row is on its way)."""
        held, free = self.store(b"held"), self.store(b"free")
        old = time.time() - 3600
        for digest in (held, free):
            os.utime(self.storage.blob_path(digest), (old, old))
        with self.storage.commit() as commit:
            commit.add(held)
            self.assertFalse(self.wait(self.storage.delete_blob(held)))
            self.wait(self.storage.delete_blobs([held]))
            self.assertEqual(self.wait(self.storage.remove_orphan_files([held, free], time.time())), [free])
            self.assertIsNotNone(self.storage.stat_blob(held))
            self.assertIsNone(self.storage.stat_blob(free))
        self.assertTrue(self.wait(self.storage.delete_blob(held)))
        self.assertIsNone(self.storage.stat_blob(held))

    def test_bucket_objects_of_held_digests_stay(self) -> None:
        """With a bucket, the object of a held digest is not deleted either (the commit uploads it)."""
        log = ObjectLog()
        self.storage.bucket = log  # type: ignore[assignment]
        held, free = self.store(b"held"), self.store(b"free")
        with self.storage.commit() as commit:
            commit.add(held)
            self.wait(self.storage.delete_blobs([held, free]))
            self.wait(self.storage.delete_blob(held))
        self.assertEqual(log.deleted, [free])

    def test_a_watch_keeps_what_was_held_since_it_began(self) -> None:
        """A hold taken and released during a deleter's index check (its row newer than the check) is in the
        deleter's watch, as is one held when the watch began; unlinks given the watch leave both."""
        during, before, other = self.store(b"during"), self.store(b"before"), self.store(b"other")
        early = self.storage.commit()
        early.add(before)
        with self.storage.committing.watch() as seen:
            early.release()
            with self.storage.commit() as push:
                push.add(during)
            self.assertEqual(self.storage.committing.digests(), set())
            self.wait(self.storage.delete_blobs([during, before, other], seen))
            self.assertFalse(self.wait(self.storage.delete_blob(during, seen)))
        self.assertEqual(seen.seen, {before, during})
        self.assertIsNotNone(self.storage.stat_blob(during))
        self.assertIsNotNone(self.storage.stat_blob(before))
        self.assertIsNone(self.storage.stat_blob(other))
        with self.storage.commit() as later:  # (a watch that ended notes nothing more)
            later.add(other)
        self.assertEqual(seen.seen, {before, during})
