"""Orphan files: committed files no index row points at, and their removal.

A file is renamed into ``blobs/`` before its index row is written, so a crash
(kill -9, power loss) between the two leaves a file nothing refers to.  The
sweep walks ``blobs/`` (on the I/O pool), asks the index which digests are
referenced, and removes the others once they are older than
``cache.orphan_grace_seconds`` (a file renamed a moment ago may be a commit in
progress, here or on another node sharing the directory).  Files being read
or downloaded are left for a later sweep.

It runs once shortly after start-up and at each eviction pass.  Until they
go, orphans are counted in the cache statistics' ``total_size``.

The walk is incremental (issue 30): ``blobs/<algo>/<ab>/`` shard by shard
with `os.scandir`, ``BATCH`` files at a time, from a cursor (the next shard)
kept between passes.  A pass goes on to the next shard until it has looked at
``files_per_pass`` files, so its work and memory stay bounded at any file
count; a small store is swept whole in one pass, a million files in about
``1M / files_per_pass`` passes.  The orphan bytes are remembered per shard.
With a bucket, its objects are walked the same way (`bucket_orphans.BucketSweep`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from harbor_cache.core.operations.bucket_orphans import KEYS_PER_PASS, BucketSweep
from harbor_cache.storage.layout import take

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.storage import Storage

log = Logger()

BATCH = 500
FILES_PER_PASS = 50_000


class OrphanSweeper:
    def __init__(
        self,
        *,
        index: Index,
        storage: Storage,
        settings: RuntimeSettings,
        clock: IReactorTime,
        busy: Callable[[], set[str]] = lambda: set(),
        files_per_pass: int = FILES_PER_PASS,
        bucket_keys_per_pass: int = KEYS_PER_PASS,
    ) -> None:
        self.index = index
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.busy = busy  # callable: digests being read or downloaded right now
        self.files_per_pass = files_per_pass
        self.cursor: str | None = None  # the shard the next pass starts at (None: the first)
        self._left: dict[str, int] = {}  # shard -> unreferenced bytes still there after its last visit
        self.shards_visited = 0  # in the last pass (for the tests and the bench)
        self.files_seen = 0
        #: [storage] backend = "s3": the bucket's walk, its cursor kept between passes like ``cursor``
        self.bucket_walk = BucketSweep(bucket_keys_per_pass)

    @property
    def orphan_bytes(self) -> int:
        """Unreferenced bytes still on disk, as each shard's last visit found them."""
        return sum(self._left.values())

    async def sweep(self) -> tuple[int, int]:
        """One pass from the cursor, ``files_per_pass`` files or so; returns (files removed, bytes removed)."""
        shards = await self.storage.io.run(self.storage.blob_shards)
        for vanished in set(self._left) - set(shards):
            del self._left[vanished]
        if not shards:
            self.cursor = None  # (an empty tier: the bucket is still swept, below)
        start = 0
        if self.cursor is not None:
            start = next((i for i, shard in enumerate(shards) if shard >= self.cursor), 0)
        removed = removed_bytes = seen = visited = 0
        for step in range(len(shards)):
            shard = shards[(start + step) % len(shards)]
            files, unlinked, unlinked_bytes = await self._sweep_shard(shard)
            seen += files
            removed += unlinked
            removed_bytes += unlinked_bytes
            visited += 1
            self.cursor = shards[(start + step + 1) % len(shards)]
            if seen >= self.files_per_pass:
                break
        self.shards_visited, self.files_seen = visited, seen
        bucket = getattr(self.storage, "bucket", None)
        if bucket is not None:  # [storage] backend = "s3": the bucket's objects too (bucket_orphans.py)
            grace = self.settings.get("cache.orphan_grace_seconds")
            upload_idle = self.settings.get("uploads.idle_seconds")
            await self.bucket_walk.sweep(
                self.index, bucket, grace, self.clock.seconds(), self.busy, upload_idle, self.storage.committing
            )
        if removed:
            log.info(
                "removed {count} orphan files ({size} bytes) that no index entry pointed at",
                count=removed,
                size=removed_bytes,
            )
        return removed, removed_bytes

    async def _sweep_shard(self, shard: str) -> tuple[int, int, int]:
        """Sweep one shard, a batch at a time; (files looked at, files removed, bytes removed)."""
        grace = self.settings.get("cache.orphan_grace_seconds")
        now = self.clock.seconds()
        seen = removed = removed_bytes = left_bytes = 0
        files = self.storage.scan_shard(shard)
        while True:
            batch = await self.storage.io.run(take, files, BATCH)
            if not batch:
                break
            seen += len(batch)
            referenced = await self.index.digests_referenced([digest for digest, _, _ in batch])
            busy = self.busy()
            doomed = []
            for digest, size, mtime in batch:
                if digest in referenced:
                    continue
                if digest in busy or now - mtime < grace:
                    left_bytes += size
                    continue
                doomed.append((digest, size))
            if doomed:
                # Checked again just before unlinking: a commit may have indexed one meanwhile (and a push held
                # during the check may have written its row after it: ``held``, `storage.commits`).
                with self.storage.committing.watch() as held:
                    again = await self.index.digests_referenced([d for d, _ in doomed])
                    doomed = [(d, size) for d, size in doomed if d not in again and d not in held.seen]
                    gone = set(await self.storage.remove_orphan_files([d for d, _ in doomed], now - grace, held))
                removed += len(gone)
                removed_bytes += sum(size for d, size in doomed if d in gone)
        self._left[shard] = left_bytes
        return seen, removed, removed_bytes
