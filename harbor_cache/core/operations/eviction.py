"""Eviction: keep proxied content within `cache.max_size` and `cache.retention_days`.

One pass (`Evictor.run`, called by the service's `TimerService` and by
``POST /api/v1/cache/cleanup``) does, with the settings read at the start of
the pass (so a change through /api/v1/config applies at the next pass):

1. retention: every proxy entry not accessed for ``cache.retention_days``
   days goes (0 turns this off);
2. size: while the bytes eviction can free exceed ``cache.max_size``, proxy
   entries go in ``cache.eviction_policy`` order: ``lru`` by last access,
   ``lfu`` by access count (then last access), ``fifo`` by creation;
3. free space: while the data directory's filesystem has less than
   ``cache.min_free_bytes`` free, proxy entries go in the same order (the
   disk may be shared with other data: ``cache.max_size`` alone cannot
   promise room).

Each pass also sweeps orphan files (`core.operations.orphans`).  At 100% full sqlite
cannot even journal a DELETE ("database or disk is full"): the pass then
gives back the space of ``DATA/.reserve`` (`Storage.release_reserve`) and
tries again, so clearing the cache and cleanup work on a full disk; the
reserve is recreated once there is room.

What is counted against ``cache.max_size`` is the proxied content on disk:
each digest once, and only digests no hosted entry references (hosted
content is never evicted, so counting it would only evict more proxy
content for nothing).

Safety rules:

- hosted entries are never touched: the DELETE itself says ``kind = 'proxy'``
  so an entry that became hosted after it was picked survives;
- entries whose digest is being downloaded (a key in ``Downloads.inflight``)
  or streamed from the store (``Storage.digests_being_read``) are skipped;
- a file is deleted only when no index row references its digest, checked
  in the transaction that deletes the rows and again just before unlinking;
  a file whose digest is being read by then is remembered and deleted by a
  later pass;
- memory caches above the index are told about each deleted entry through
  ``invalidators`` (callables ``(type, repository, key)``): the OCI core's
  `invalidate` and whatever the Maven front registers.

Work is done in batches of ``batch_size`` rows, one SQL transaction each,
handing the reactor back between batches, so 100k entries never stall it
(see ``bench/eviction_bench.py``).  Passes never overlap: a second caller
waits for the running one and then runs its own.

Cost grows with what is removed, not with the index (issue 30): the
evictable bytes are a maintained total (one row, `index.totals_schema`), so a
pass with nothing to evict reads it and stops; victims come page by page
from an index in eviction order, each page starting after the last row of
the previous one (keyset), and a clear walks proxy rows by id - or, on
sqlite when it removes most of the index, deletes them in one transaction
that rebuilds the derived tables (`index.clear_rebuild`,
``cache.clear_rebuild_min_entries``) and then tells the caches and unlinks
the files page by page.  After large
deletes the planner's statistics are refreshed (``ANALYZE``), since sqlite
keeps none by itself (see ``bench/eviction_scale_bench.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.core.operations.diskspace import is_disk_full
from harbor_cache.storage.errors import RESERVE_BYTES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.flight.access import AccessRecorder
    from harbor_cache.core.flight.downloads import Downloads
    from harbor_cache.core.operations.diskspace import DiskSpace
    from harbor_cache.core.operations.orphans import OrphanSweeper
    from harbor_cache.index import Index
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.storage import Storage
    from harbor_cache.storage.commits import Watch

log = Logger()

T = TypeVar("T")

Invalidator = Callable[[str, str, str], Any]

DAY = 86400.0
# A pass that removed at least this many entries refreshes the planner's statistics in full (a clear always
# does); a smaller one only asks sqlite's ``PRAGMA optimize``, which analyzes what grew or shrank much.
ANALYZE_AFTER = 10_000
# After that transaction, the deleted rows are read back this many at a time (caches told, files unlinked).
CLEARED_PAGE = 10_000
UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def human_size(size: int) -> str:
    """Bytes for people, 1024-based with two decimals: 1073741824 -> "1.00 GB".

    Units step by 1024 (as `du -h` and most registries' UIs do) but keep the
    short names KB/MB/GB the seed shows; below 1 KB the exact count: "512 B".
    """
    if size < 1024:
        return f"{size} B"
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    if round(value, 2) >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.2f} {UNITS[unit]}"


def _digests_in_keys(keys: Iterable[Any]) -> set[str]:
    """Digest-looking strings inside in-flight keys (("blob", digest), ...)."""
    found = set()
    for key in keys:
        parts = key if isinstance(key, tuple) else (key,)
        for part in parts:
            if isinstance(part, str) and ":" in part and not part.startswith(":"):
                found.add(part)
    return found


def _digests_being_committed(downloads: Iterable[Any]) -> set[str]:
    """Digests of in-flight downloads whose bytes are verified (`TempBlob.finish` has their hashes).

    From then on their file is renamed into the store (and uploaded to the
    bucket) before their row is written; a download keyed by path or tag (a
    Maven file, a manifest by tag) names no digest in its key, so without
    this an unlink deciding in that gap (the row not there yet) would take
    the file a row is about to name: the same bytes fetched again after a
    clear.
    """
    found = set()
    for download in downloads:
        hashes = getattr(getattr(download, "temp", None), "hashes", None)
        if isinstance(hashes, dict) and hashes.get("sha256"):
            found.add("sha256:" + hashes["sha256"])
    return found


def _detached(coro: Coroutine[Any, Any, T]) -> defer.Deferred[T]:
    """Run ``coro`` to its end even when the caller stops waiting.

    Klein cancels a handler's Deferred when the client disconnects; a pass cut
    between "rows deleted" and "files unlinked" would leave files that no row
    points at.  Cancelling the returned Deferred only stops the waiting.
    """
    work = defer.Deferred.fromCoroutine(coro)
    out: defer.Deferred[T] = defer.Deferred()

    def _done(result: T | Failure) -> None:
        if not out.called:
            out.callback(result)
        elif isinstance(result, Failure):
            log.failure("eviction work failed after its caller left", result)
        return None

    work.addBoth(_done)
    return out


class Evictor:
    """Runs eviction passes and cache clears over the index and the store."""

    def __init__(
        self,
        *,
        index: Index,
        storage: Storage,
        downloads: Downloads,
        settings: RuntimeSettings,
        access: AccessRecorder,
        clock: IReactorTime,
        batch_size: int = 2000,
        clear_batch_size: int = 2000,
        cooperate: Callable[[], Any] | None = None,
        single_writer: bool = True,
    ) -> None:
        self.index = index
        self.storage = storage
        self.downloads = downloads
        self.settings = settings
        self.access = access
        self.clock = clock
        # Rows per transaction: 2,000 (as a clear's batches) evicts 10% of a million-entry sqlite index about 15%
        # faster than 500 (fewer commits of the same index pages), holding the writer 0.2-0.3 s a batch there
        # (bench/RESULTS.md); reads, /health and hits never wait for it (their own connections).
        self.batch_size = batch_size
        self.page_size = batch_size * 10
        # A clear removes everything proxied: bigger transactions (fewer commits, each a WAL write of the
        # same index pages) matter more there than the time one of them holds the writer.
        self.clear_batch_size = clear_batch_size
        # False when other processes write the same sqlite index ([server] workers): the one-transaction clear
        # would hold the file's write lock past their busy timeout, so their writes would fail; batches then.
        self.single_writer = single_writer
        # Called between batches; its Deferred lets the reactor run other work.
        self._cooperate = cooperate or (lambda: task.deferLater(clock, 0, lambda: None))
        self.invalidators: list[Invalidator] = []
        self._lock = defer.DeferredLock()
        # Files whose rows are gone but which were being read when we wanted to unlink them.
        self.pending_files: set[str] = set()
        self.last_pass: dict[str, Any] = {}
        self.space: DiskSpace | None = None  # operations.diskspace.DiskSpace: the free-space floor (None: not kept)
        self.orphans: OrphanSweeper | None = None  # operations.orphans.OrphanSweeper (None: no sweep)
        # Where the free-space floor stood after the last pass: "ok", "evicting" (below it, proxied content
        # went) or "stuck" (below it with nothing left to evict).  Logged when it changes, not every pass.
        self.floor_state = "ok"

    # -- public ------------------------------------------------------------

    async def run(self) -> int:
        """One eviction pass (retention, then size); the number of entries removed."""
        return await _detached(self._locked(self._pass))

    async def clear_proxy(self) -> int:
        """Remove every proxy entry (rows and unreferenced files); the number removed.

        Entries being downloaded or streamed go too (the reader keeps its open
        file; the file itself is unlinked by a later pass once nobody reads it).
        """
        return await _detached(self._locked(self._clear))

    async def delete_entry(self, entry_id: int) -> bool:
        """Remove one proxy entry now (the console's delete): its row, the caches above, its file if orphaned.

        False when there is no such proxy entry (gone meanwhile, or hosted).
        A file being downloaded or read is unlinked by a later pass, as in eviction.
        """

        async def work() -> int:
            count, _ = await self._delete([entry_id])
            return count

        return bool(await _detached(self._locked(work)))

    async def stats(self) -> dict[str, Any]:
        """The body of GET /api/v1/cache/stats.

        ``total_size`` is the bytes of content on disk (each digest once),
        ``entry_count`` every index entry, ``manifest_count`` the OCI
        manifests and ``blob_count`` every other stored object (OCI blobs
        and Maven files), so entry_count = manifest_count + blob_count.
        Hits and misses are the persisted counters since the cache was created.
        """
        totals = await self.index.cache_totals()
        indexed = totals.total_size
        if self.orphans is not None:
            # Files on disk that no entry points at yet count until the sweep removes them.
            totals = replace(totals, total_size=totals.total_size + self.orphans.orphan_bytes)
        hits = int(self.access.totals.get("hits", 0))
        misses = int(self.access.totals.get("misses", 0))
        lookups = hits + misses
        return {
            "total_size": totals.total_size,
            "total_size_human": human_size(totals.total_size),
            "entry_count": totals.entries,
            "manifest_count": totals.manifests,
            "blob_count": totals.entries - totals.manifests,
            "hit_count": hits,
            "miss_count": misses,
            "hit_rate": (hits / lookups) if lookups else 0.0,
            **self._storage_stats(indexed),
        }

    def _storage_stats(self, indexed: int) -> dict[str, Any]:
        """Where the bytes are: with ``[storage] backend = "s3"`` the bucket (every committed digest once, plus
        objects no row points at yet) and this node's local tier of it; null for the filesystem backend."""
        bucket = getattr(self.storage, "bucket", None)
        tier = getattr(self.storage, "tier", None)
        return {
            "storage_backend": "filesystem" if bucket is None else "s3",
            "bucket_bytes": None if bucket is None else indexed + bucket.orphan_bytes,
            "local_tier_bytes": None if tier is None else tier.bytes,
        }

    # -- passes ------------------------------------------------------------

    async def _locked(self, work: Callable[[], Awaitable[int]]) -> int:
        await self._lock.acquire()
        try:
            return await work()
        finally:
            self._lock.release()

    async def _pass(self) -> int:
        started = self.clock.seconds()
        try:
            await self.access.flush()  # so LRU/LFU see the latest hits
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warn("disk full: last-access times not written before eviction")
        await self._delete_pending_files()
        await self._sweep_orphans()
        retention_days = self.settings.get("cache.retention_days")
        max_size = self.settings.get("cache.max_size")
        policy = self.settings.get("cache.eviction_policy")
        expired = 0
        if retention_days > 0:
            cutoff = started - retention_days * DAY
            expired, _ = await self._sweep("lru", accessed_before=cutoff)
        size = await self.index.evictable_size()
        evicted = 0
        if size > max_size:
            evicted, size = await self._sweep(policy, excess=size - max_size, size=size)
        space = self.space
        shortfall = space.shortfall() if space is not None else 0
        if space is not None and shortfall > 0:
            if self.floor_state == "ok":
                log.warn(
                    "{free} bytes free, below cache.min_free_bytes: evicting {shortfall} bytes",
                    free=space.free(),
                    shortfall=shortfall,
                )
            more, size = await self._sweep(policy, excess=shortfall, size=size)
            evicted += more
            self._floor_now("evicting" if more else "stuck", space)
        elif space is not None:
            self._floor_now("ok", space)
        await self._keep_reserve()
        await self._analyze(full=expired + evicted >= ANALYZE_AFTER)
        self.last_pass = {
            "expired": expired,
            "evicted": evicted,
            "evictable_size": size,
            "seconds": self.clock.seconds() - started,
        }
        if expired or evicted:
            log.info(
                "eviction: {expired} expired, {evicted} evicted by {policy}; "
                "{size} bytes of proxied content left (limit {max_size})",
                expired=expired,
                evicted=evicted,
                policy=policy,
                size=size,
                max_size=max_size,
            )
        return expired + evicted

    def _floor_now(self, state: str, space: DiskSpace) -> None:
        """Record where the free-space floor stands; log only a change (a full disk would log every pass)."""
        previous, self.floor_state = self.floor_state, state
        if state == previous:
            return
        if state == "stuck":
            log.warn(
                "{free} bytes free, below cache.min_free_bytes, and no proxied content left to evict: "
                "hosted content or other files fill the disk",
                free=space.free(),
            )
        elif state == "ok":
            log.info("{free} bytes free: back above cache.min_free_bytes", free=space.free())

    async def _clear(self) -> int:
        removed = await self._clear_by_rebuild()
        if removed is None:
            removed, _ = await self._sweep("id", protect=False, batch=self.clear_batch_size)
        await self._keep_reserve()
        await self._analyze(full=True)
        return removed

    async def _clear_by_rebuild(self) -> int | None:
        """A clear of most of the index in one transaction (sqlite; `Index.clear_proxy_rebuild`), then the
        caches told and the files unlinked page by page; None when the index declines (batches then).

        On a full disk the one transaction cannot be journalled (its WAL is as large as what it deletes):
        the batches, which give back DATA/.reserve, do the clear instead.
        """
        try:
            min_rows = self.settings.get("cache.clear_rebuild_min_entries")
            if min_rows <= 0 or not self.single_writer:
                return None
            removed = await self.index.clear_proxy_rebuild(min_rows)
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warn("disk full: clearing the cache in batches")
            return None
        if removed is None:
            return None
        after = 0
        while True:
            rows = await self.index.cleared_rows_page(after, CLEARED_PAGE)
            if not rows:
                break
            after = rows[-1][0]
            self.access.forget([row[0] for row in rows])
            self._invalidate([(type_, repository, key) for _, type_, repository, key, _ in rows])
            await self._unlink(sorted({row[4] for row in rows}))
            await self._cooperate()
        await self.index.drop_cleared_rows()
        return removed

    async def _analyze(self, full: bool) -> None:
        """Keep the planner's statistics fresh after large deletes (see `SchemaStore.analyze`)."""
        try:
            await self.index.analyze(full)
        except Exception:
            log.failure("refreshing the index statistics after eviction")

    async def _sweep_orphans(self) -> None:
        if self.orphans is None:
            return
        try:
            await self.orphans.sweep()
        except Exception:
            log.failure("orphan sweep failed")

    async def _keep_reserve(self) -> None:
        """Recreate DATA/.reserve once the disk has room for it again (never eating the last space)."""
        make = getattr(self.storage, "ensure_reserve", None)
        if make is None or self.space is None or os.path.exists(self.storage.reserve_path):
            return
        if self.space.free() < 4 * RESERVE_BYTES:
            return
        try:
            await self.storage.io.run(make)
        except Exception:
            log.failure("recreating the disk reserve")

    async def _sweep(
        self,
        order: str,
        *,
        accessed_before: float | None = None,
        excess: int | None = None,
        size: int = 0,
        protect: bool = True,
        batch: int | None = None,
    ) -> tuple[int, int]:
        """Walk proxy entries in ``order`` and delete them batch by batch.

        Stops at the end, or once ``excess`` bytes were freed.  Returns
        (entries removed, evictable bytes left by the caller's count).
        """
        removed = 0
        freed = 0
        after = None
        batch_size = batch or self.batch_size
        page_size = batch_size * 10
        cols = self.index.EVICTION_ORDERS[order]
        while excess is None or freed < excess:
            # One query fetches a window of several batches (each order has an
            # index on (kind, order columns), migrations 1 and 4).
            window = await self.index.proxy_entries_page(order, after, page_size, accessed_before)
            if not window:
                break
            finished_window = True
            for start in range(0, len(window), batch_size):
                chunk = window[start : start + batch_size]
                busy = self.busy_digests() if protect else set()
                victims = []
                planned = 0
                considered = 0
                for row in chunk:
                    considered += 1
                    if row.digest in busy:
                        continue
                    victims.append(row.id)
                    planned += row.size
                    if excess is not None and freed + planned >= excess:
                        break
                # The next query starts after the last row looked at (rows after
                # an early stop are still candidates).
                after = tuple(getattr(chunk[considered - 1], c) for c in cols)
                if victims:
                    count, bytes_freed = await self._delete(victims)
                    removed += count
                    freed += bytes_freed
                await self._cooperate()
                if considered < len(chunk) or (excess is not None and freed >= excess):
                    finished_window = False
                    break
            if finished_window and len(window) < page_size:
                break
        return removed, size - freed

    def busy_digests(self) -> set[str]:
        """Digests no unlink may take now: files being read, downloads in flight or past `TempBlob.finish`,
        and hosted writes between "file in place" and "row written" (`Storage.committing`)."""
        inflight = self.downloads.inflight
        return (
            self.storage.digests_being_read()
            | _digests_in_keys(inflight)
            | _digests_being_committed(list(inflight.values()))
            | self.storage.committing.digests()
        )

    async def _delete(self, ids: list[int]) -> tuple[int, int]:
        """Delete rows, tell the caches, unlink orphaned files; (rows, bytes freed)."""
        try:
            deleted, orphans = await self.index.delete_proxy_entries(ids)
        except Exception as e:
            release = getattr(self.storage, "release_reserve", None)
            if not is_disk_full(e) or release is None or not await self.storage.io.run(release):
                raise
            log.warn("disk full: gave back DATA/.reserve so that eviction can delete rows")
            deleted, orphans = await self.index.delete_proxy_entries(ids)
        self.access.forget([row.id for row in deleted])
        self._invalidate([(row.type, row.repository, row.key) for row in deleted])
        await self._unlink([digest for digest, _ in orphans])
        return len(deleted), sum(size for _, size in orphans)

    def _invalidate(self, rows: list[tuple[str, str, str]]) -> None:
        """Tell the memory caches above the index that these (type, repository, key) entries are gone."""
        for type_, repository, key in rows:
            for invalidate in self.invalidators:
                try:
                    invalidate(type_, repository, key)
                except Exception:
                    log.failure("eviction invalidator {hook} failed", hook=invalidate)

    async def _unlink(self, digests: list[str]) -> None:
        if not digests:
            return
        # (a push held and released during the index check below is in ``seen``: its row may be newer than the check)
        with self.storage.committing.watch() as seen:
            still_used = await self.index.digests_referenced(digests)
            busy = self.busy_digests() | seen.seen
            work: list[str] = []
            for digest in digests:
                if digest in still_used:  # re-committed since its rows went
                    self.pending_files.discard(digest)
                    continue
                if digest in busy:
                    self.pending_files.add(digest)
                    continue
                self.pending_files.discard(digest)
                work.append(digest)
            try:
                await self._delete_files(work, seen)
            except Exception:
                log.failure("eviction could not delete {count} files", count=len(work))

    async def _delete_files(self, digests: list[str], seen: Watch | None = None) -> None:
        """Unlink committed files in one trip to the storage I/O pool (`Storage.delete_blobs`).

        One job per batch, not one per file: hundreds of thread round trips
        per batch cost the reactor more than the unlinks themselves.  A digest
        a hosted write started committing since `busy_digests` was asked is
        skipped there, on the pool (and so is one held since ``seen`` began: `storage.commits`).
        """
        if digests:
            await self.storage.delete_blobs(digests, seen)  # (with a bucket: the tier's files, then the objects)

    async def _delete_pending_files(self) -> None:
        pending = sorted(self.pending_files)
        for start in range(0, len(pending), self.batch_size):
            await self._unlink(pending[start : start + self.batch_size])
