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
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from twisted.logger import Logger

from harbor_cache.core.operations.bucket_orphans import sweep_bucket

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.storage import Storage

log = Logger()

BATCH = 500


class OrphanSweeper:
    def __init__(
        self,
        *,
        index: Index,
        storage: Storage,
        settings: RuntimeSettings,
        clock: IReactorTime,
        busy: Callable[[], set[str]] = lambda: set(),
    ) -> None:
        self.index = index
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.busy = busy  # callable: digests being read or downloaded right now
        self.orphan_bytes = 0  # unreferenced bytes still on disk after the last sweep

    async def sweep(self) -> tuple[int, int]:
        """One sweep; returns (files removed, bytes removed)."""
        files = await self.storage.io.run(self.storage.scan_blobs)
        grace = self.settings.get("cache.orphan_grace_seconds")
        now = self.clock.seconds()
        removed = removed_bytes = left_bytes = 0
        for start in range(0, len(files), BATCH):
            batch = files[start : start + BATCH]
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
                # Checked again just before unlinking: a commit may have indexed one meanwhile.
                again = await self.index.digests_referenced([d for d, _ in doomed])
                doomed = [(d, size) for d, size in doomed if d not in again]
                await self.storage.io.run(_unlink_all, [self.storage.blob_path(d) for d, _ in doomed], now - grace)
                removed += len(doomed)
                removed_bytes += sum(size for _, size in doomed)
        self.orphan_bytes = left_bytes
        bucket = getattr(self.storage, "bucket", None)
        if bucket is not None:  # [storage] backend = "s3": the bucket's objects too (bucket_orphans.py)
            upload_idle = self.settings.get("uploads.idle_seconds")
            await sweep_bucket(self.index, bucket, grace, now, self.busy, upload_idle=upload_idle)
        if removed:
            log.info(
                "removed {count} orphan files ({size} bytes) that no index entry pointed at",
                count=removed,
                size=removed_bytes,
            )
        return removed, removed_bytes


def _unlink_all(paths: list[str], cutoff: float) -> None:
    """Unlink each file still older than ``cutoff`` (one renamed in since the scan is a new commit)."""
    for path in paths:
        try:
            if os.stat(path).st_mtime <= cutoff:
                os.unlink(path)
        except FileNotFoundError:
            pass
