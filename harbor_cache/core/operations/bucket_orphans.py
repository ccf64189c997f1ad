"""Orphan objects in the bucket (``[storage] backend = "s3"``): objects no index row points at, and their removal.

A commit uploads the object before its row is written, and a delete
removes the row before the object, so a crash between the two (or a
delete whose object removal failed) leaves an object nothing refers to.
A pass lists the bucket (ListObjectsV2, a page at a time), asks the index
which digests are referenced, and deletes the others (and aborts multipart
uploads nobody completed) once older than ``cache.orphan_grace_seconds``
(a younger one may be a commit whose row is on its way, on this node or
another).  It runs with the local sweep (`OrphanSweeper.sweep`), and what
it leaves is counted in the bucket's bytes.

The walk is incremental (issue 26), like the local one: a pass lists at
most ``keys_per_pass`` keys from a cursor (the last key the previous pass
saw, sent as StartAfter) kept in memory between passes (`BucketSweep`),
and wraps around to the first key at the end of the listing.  Its memory
is one page of keys plus the unreferenced bytes per shard
(``blobs/sha256/ab``: at most 256 per algorithm), whatever the object
count; a small bucket is swept whole in one pass, ten million objects in
about ``10M / keys_per_pass`` passes.  Chunk objects of upload sessions
(``uploads/<session>/<offset>``) are removed only once their session is
gone from the index and they are older than ``uploads.idle_seconds``.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING

from twisted.logger import Logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from harbor_cache.index import Index
    from harbor_cache.storage.bucket import Bucket
    from harbor_cache.storage.commits import CommitHolds

log = Logger()

PAGE = 1000
#: keys one pass lists at most (the rest in the next passes, from the cursor)
KEYS_PER_PASS = 50_000


def _age(last_modified: str, now: float) -> float:
    try:
        return now - datetime.fromisoformat(last_modified.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0  # unknown: treated as young (kept)


class BucketSweep:
    """The bucket's walk between passes: where the next pass starts, and the orphan bytes each shard had."""

    def __init__(self, keys_per_pass: int = KEYS_PER_PASS, page: int = PAGE) -> None:
        self.keys_per_pass = max(1, keys_per_pass)
        self.page = max(1, min(page, self.keys_per_pass))
        self.cursor: str | None = None  # the last key the previous pass looked at (None: start at the first)
        self._left: dict[str, int] = {}  # shard -> unreferenced bytes still there after its last full visit
        self._shard: str | None = None  # the shard being visited (possibly across passes) ...
        self._shard_left = 0  # ... and its unreferenced bytes so far
        self._cycle: set[str] = set()  # shards seen since the walk last started at the first key
        self.keys_seen = 0  # in the last pass (for the tests)

    @property
    def orphan_bytes(self) -> int:
        """Unreferenced bytes still in the bucket, as each shard's last visit found them."""
        return sum(self._left.values())

    def _note(self, shard: str, left: int) -> None:
        if shard != self._shard:
            if self._shard is not None:
                self._left[self._shard] = self._shard_left
            self._shard, self._shard_left = shard, 0
            self._cycle.add(shard)
        self._shard_left += left

    def _wrapped(self) -> None:
        """The walk reached the end of the listing: the last shard's count is complete, vanished shards go."""
        if self._shard is not None:
            self._left[self._shard] = self._shard_left
        for gone in set(self._left) - self._cycle:
            del self._left[gone]
        self._shard, self._shard_left, self._cycle = None, 0, set()
        self.cursor = None

    async def sweep(
        self,
        index: Index,
        bucket: Bucket,
        grace: float,
        now: float,
        busy: Callable[[], set[str]],
        upload_idle: float | None = None,
        holds: CommitHolds | None = None,
    ) -> tuple[int, int]:
        """One pass of at most ``keys_per_pass`` keys from the cursor; (objects removed, bytes removed).

        Sets ``bucket.orphan_bytes``.  ``upload_idle`` (``uploads.idle_seconds``):
        chunk objects of upload sessions older than that whose session the index
        no longer has are removed too (a node died before deleting them); None
        leaves them alone.  ``holds`` (`Storage.committing`): a push held during
        the re-check may have written its row after it; its object stays.
        """
        from harbor_cache.storage.bucket import digest_of_key
        from harbor_cache.storage.upload_chunks import session_of_key

        removed = removed_bytes = 0
        page: list[tuple[str, int, float]] = []
        stray_chunks: list[tuple[str, str, int]] = []  # (session, key, size) old enough to go if the session is gone

        async def settle(page: list[tuple[str, int, float]]) -> None:
            nonlocal removed, removed_bytes
            referenced = await index.digests_referenced([d for d, _, _ in page])
            in_use = busy()
            doomed = []
            for digest, size, age in page:
                algo, _, hexpart = digest.partition(":")
                kept = digest in referenced or digest in in_use or age < grace
                self._note(f"{algo}/{hexpart[:2]}", size if kept and digest not in referenced else 0)
                if not kept:
                    doomed.append((digest, size))
            if doomed:
                with holds.watch() if holds is not None else nullcontext(None) as seen:
                    again = await index.digests_referenced([d for d, _ in doomed])
                    # and busy again: a download of one that began since uploads its key afresh (the listing's age
                    # is the old object's) and writes its row after this check; it is in flight until then
                    in_use = busy() | (seen.seen if seen is not None else set())
                    doomed = [(d, size) for d, size in doomed if d not in again and d not in in_use]
                    await bucket.delete([d for d, _ in doomed])
                removed += len(doomed)
                removed_bytes += sum(size for _, size in doomed)

        first = self.cursor
        seen = 0
        # From the cursor to the end of the listing (then the walk wraps around), and, for a pass that did not
        # start at the first key, from the first key up to where it started, until it has seen ``keys_per_pass``.
        for start_after, stop_after in ((first, None), (None, first)):
            ended = True
            last: str | None = None
            async for info in bucket.client.list_objects_v2("", page_size=self.page, start_after=start_after):
                if stop_after is not None and info.key > stop_after:
                    break  # (the keys this pass began with)
                seen += 1
                last = info.key
                digest = digest_of_key(info.key)
                if digest is None:
                    chunk = session_of_key(info.key)
                    if chunk is not None and upload_idle is not None and _age(info.last_modified, now) >= upload_idle:
                        stray_chunks.append((chunk[0], info.key, info.size))
                else:
                    page.append((digest, info.size, _age(info.last_modified, now)))
                    if len(page) >= self.page:
                        await settle(page)
                        page = []
                        self.cursor = last  # (only past keys settled: a failure resumes at the unsettled ones)
                if seen >= self.keys_per_pass:
                    ended = False
                    break
            if page:
                await settle(page)
                page = []
            if last is not None:
                self.cursor = last
            if not ended:
                break
            if stop_after is None:
                self._wrapped()
            if first is None:
                break
        self.keys_seen = seen
        bucket.orphan_bytes = self.orphan_bytes
        if stray_chunks:
            chunks_removed, chunks_bytes = await _sweep_chunks(index, bucket, stray_chunks)
            removed += chunks_removed
            removed_bytes += chunks_bytes
        # Multipart uploads a crashed node never completed nor aborted: their parts are stored (and billed).
        # One whose digest is being downloaded is that download's commit, however long it has taken.
        uploads = await bucket.client.list_multipart_uploads("")
        in_use = busy() if uploads else set()
        for upload in uploads:
            digest = digest_of_key(upload.key)
            if digest is not None and digest not in in_use and _age(upload.initiated, now) >= grace:
                await bucket.client.abort_multipart_upload(upload.key, upload.upload_id)
                log.info("aborted the abandoned multipart upload of {key}", key=upload.key)
        if removed:
            log.info(
                "removed {count} objects ({size} bytes) from the bucket that no index entry pointed at",
                count=removed, size=removed_bytes,
            )  # fmt: skip
        return removed, removed_bytes


async def _sweep_chunks(index: Index, bucket: Bucket, chunks: list[tuple[str, str, int]]) -> tuple[int, int]:
    """Delete the chunk objects among ``chunks`` whose session the index no longer has; (count, bytes)."""
    live: dict[str, bool] = {}
    doomed: list[tuple[str, int]] = []
    for session_id, key, size in chunks:
        if session_id not in live:
            live[session_id] = await index.get_upload(session_id) is not None
        if not live[session_id]:
            doomed.append((key, size))
    if not doomed:
        return 0, 0
    failed = await bucket.client.delete_objects([key for key, _ in doomed])
    gone = [(key, size) for key, size in doomed if key not in failed]
    log.info("removed {count} chunk objects of upload sessions that ended", count=len(gone))
    return len(gone), sum(size for _, size in gone)
