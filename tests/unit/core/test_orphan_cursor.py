"""The incremental orphan sweep (issue 30): shard by shard from a cursor, bounded work per pass.

Files on a real data directory (InlineIO), SQL on a real sqlite file, time from
a Clock; the grace is 0 so every unreferenced file is due at once.
"""

from __future__ import annotations

import hashlib
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.orphans import OrphanSweeper
from harbor_cache.storage.layout import take
from harbor_cache.testing import build_app

T0 = 1_700_000_000.0


def digest_in(shard: str, n: int) -> str:
    """A sha256-looking digest whose file lands in shard ``shard`` ("0a")."""
    return "sha256:" + shard + hashlib.sha256(f"{shard}-{n}".encode()).hexdigest()[2:]


class OrphanCursorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0 + 3600)
        self.app = build_app(self.mktemp(), clock=self.clock)
        self.addCleanup(self.app.db_pool.close)
        self.storage = self.app.storage
        self.successResultOf(
            defer.Deferred.fromCoroutine(self.app.settings.update([("cache.orphan_grace_seconds", 0)]))
        )

    def put_file(self, digest: str, data: bytes = b"x") -> str:
        path = self.storage.blob_path(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (T0, T0))
        return path

    def sweeper(self, files_per_pass: int) -> OrphanSweeper:
        return OrphanSweeper(
            index=self.app.index,
            storage=self.storage,
            settings=self.app.settings,
            clock=self.clock,
            files_per_pass=files_per_pass,
        )

    def sweep(self, sweeper: OrphanSweeper) -> tuple[int, int]:
        return self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))

    def test_a_pass_stops_after_its_budget_and_the_next_resumes_at_the_cursor(self):
        """Four shards of three files, a budget of five files: two shards a pass, the third pass wraps round."""
        orphans = {shard: [self.put_file(digest_in(shard, n)) for n in range(3)] for shard in ("00", "3f", "a1", "ff")}
        sweeper = self.sweeper(files_per_pass=5)

        self.assertEqual(self.sweep(sweeper), (6, 6))
        self.assertEqual((sweeper.shards_visited, sweeper.files_seen, sweeper.cursor), (2, 6, "sha256/a1"))
        self.assertFalse(any(os.path.exists(p) for p in orphans["00"] + orphans["3f"]))
        self.assertTrue(all(os.path.exists(p) for p in orphans["a1"] + orphans["ff"]))

        self.assertEqual(self.sweep(sweeper), (6, 6))
        self.assertEqual(sweeper.cursor, "sha256/00")  # wrapped round: the next pass starts again at the first
        self.assertFalse(any(os.path.exists(p) for p in orphans["a1"] + orphans["ff"]))

        fresh = self.put_file(digest_in("3f", 99))
        self.assertEqual(self.sweep(sweeper), (1, 1))
        self.assertFalse(os.path.exists(fresh))

    def test_referenced_files_stay_and_orphan_bytes_are_kept_per_shard(self):
        """A file an entry points at is never removed; a young orphan counts in orphan_bytes until it goes."""
        kept = digest_in("10", 1)
        self.put_file(kept, b"indexed")
        self.successResultOf(
            defer.Deferred.fromCoroutine(
                self.app.index.put_entry(
                    kind="proxy", type_="blob", repository="r", key=kept, digest=kept, size=7, now=T0
                )
            )
        )
        young = self.put_file(digest_in("20", 1), b"in progress")
        os.utime(young, (T0 + 3600, T0 + 3600))
        self.successResultOf(
            defer.Deferred.fromCoroutine(self.app.settings.update([("cache.orphan_grace_seconds", 60)]))
        )
        sweeper = self.sweeper(files_per_pass=1)
        self.assertEqual(self.sweep(sweeper), (0, 0))  # shard 10: the indexed file
        self.assertEqual(self.sweep(sweeper), (0, 0))  # shard 20: the young one stays
        self.assertEqual(sweeper.orphan_bytes, len(b"in progress"))
        self.assertTrue(os.path.exists(self.storage.blob_path(kept)))
        self.clock.advance(120)
        self.assertEqual(self.sweep(sweeper), (0, 0))  # back at shard 10
        self.assertEqual(self.sweep(sweeper), (1, len(b"in progress")))
        self.assertEqual(sweeper.orphan_bytes, 0)

    def test_a_shard_is_read_a_batch_at_a_time(self):
        """scan_shard is a generator over os.scandir: take() hands out batches, never the whole shard at once."""
        for n in range(7):
            self.put_file(digest_in("0b", n))
        files = self.storage.scan_shard("sha256/0b")
        sizes = [len(take(files, 3)) for _ in range(4)]
        self.assertEqual(sizes, [3, 3, 1, 0])
        self.assertEqual(self.storage.blob_shards(), ["sha256/0b"])
