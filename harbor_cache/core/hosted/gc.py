"""Online garbage collection of hosted content: mark in memory, sweep in the index, batch by batch.

Deleting a hosted manifest or tag leaves the layers it used on disk, and an
image pushed by digest and never tagged stays for ever: nothing but a
collection frees them.  A collection (`GarbageCollector.collect`, run by the
service's timer every ``gc.interval_seconds`` and by ``POST /api/v1/gc``):

1. records the child manifests of indexes pushed before children were
   recorded (read once from their bodies);
2. **marks** from one snapshot of the hosted graph (`plan`): a hosted
   manifest lives when it is tagged, was (re)pushed within
   ``gc.grace_seconds``, is a child of a live index, or is a referrer of a live
   manifest (or of a cached one); a referrer follows its subject, so a
   signature goes with its image and the two never keep each other alive.
   A hosted blob lives when a live manifest needs it, or an upload or mount
   claimed it (or it was uploaded again) within the grace period;
3. **sweeps** the rest, parents and subjects first, ``batch_size`` rows per
   transaction (`index.gc`), each candidate checked again under its row
   lock, then unlinks the files no row references any more: after the row,
   never before.

Pushes go on meanwhile: an upload commit, a mount and a manifest PUT each
take their blob's row (and write a claim with its time) in one transaction,
so a blob uploaded just now is within the grace period, and a manifest PUT
naming a blob swept meanwhile fails with BLOB_UNKNOWN instead of pointing at
nothing.  Proxied (cached) content is never touched: that is eviction's.

One collection at a time: in this process a flag, across nodes the ``gc``
lease (`core.flight.leases`); a second caller gets `GcBusy` (409).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.errors import Conflict
from harbor_cache.grammar.mediatypes import INDEX_TYPES, InvalidManifest, manifest_references
from harbor_cache.index.gc import GcRun, GcSnapshot

log = Logger()

# How often the service asks whether a scheduled collection is due (it is when gc.interval_seconds
# have passed since the last real collection on any node).
GC_TICK_SECONDS = 60.0
GC_LEASE = "gc"


class GcBusy(Conflict):
    """A collection is already running (on this node or another)."""


@dataclass
class GcPlan:
    """What one snapshot says is garbage: manifests in sweep order, blobs, and the bytes they hold."""

    manifests: list[tuple[str, str]] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def plan(snapshot: GcSnapshot, cutoff: float) -> GcPlan:
    """Mark from ``snapshot``: every hosted manifest and blob that nothing keeps alive (see the module doc).

    Content (re)pushed or claimed at ``cutoff`` or later is kept.  Manifests
    come parents and subjects first, so a sweep in this order frees an index
    before its children and an image before its referrers.
    """
    hosted = {(m.repository, m.key): m for m in snapshot.manifests}
    below: dict[tuple[str, str], list[str]] = defaultdict(list)  # children and referrers of a manifest
    roots = {key for key, m in hosted.items() if m.fetched_at >= cutoff or key in snapshot.tagged}
    for repository, parent, child in snapshot.children:
        below[(repository, parent)].append(child)
    for repository, referrer, subject, subject_kind in snapshot.referrers:
        below[(repository, subject)].append(referrer)
        if subject_kind is not None and subject_kind != "hosted":
            roots.add((repository, referrer))  # the subject is cached content: not ours to judge
    live: set[tuple[str, str]] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in live:
            continue
        live.add(node)
        stack.extend((node[0], key) for key in below.get(node, ()))
    dead = {key for key in hosted if key not in live}
    result = GcPlan(manifests=_parents_first(dead, below))
    needed = {
        digest
        for repository, digest, manifest, claimed_at in snapshot.blob_refs
        if (manifest and (repository, manifest) not in dead) or (claimed_at is not None and claimed_at >= cutoff)
    }
    result.blobs = [b.key for b in snapshot.blobs if b.key not in needed and b.fetched_at < cutoff]
    gone = {hosted[key].digest: hosted[key].size for key in dead}
    gone.update({b.digest: b.size for b in snapshot.blobs if b.key in set(result.blobs)})
    kept = {m.digest for key, m in hosted.items() if key not in dead} | {
        b.digest for b in snapshot.blobs if b.key not in set(result.blobs)
    }
    result.freed_bytes = sum(size for digest, size in gone.items() if digest not in kept)
    return result


def _parents_first(dead: set[tuple[str, str]], below: dict[tuple[str, str], list[str]]) -> list[tuple[str, str]]:
    """``dead`` ordered so that every manifest comes after the dead manifests that point at it."""
    pointed: dict[tuple[str, str], int] = dict.fromkeys(dead, 0)
    for node in dead:
        for key in below.get(node, ()):
            if (node[0], key) in pointed:
                pointed[(node[0], key)] += 1
    ready = sorted(node for node, count in pointed.items() if count == 0)
    ordered: list[tuple[str, str]] = []
    while ready:
        node = ready.pop()
        ordered.append(node)
        for key in below.get(node, ()):
            child = (node[0], key)
            if child in pointed:
                pointed[child] -= 1
                if pointed[child] == 0:
                    ready.append(child)
    return ordered


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class GarbageCollector:
    """Runs collections of hosted content and keeps their history (see the module doc)."""

    def __init__(
        self,
        *,
        index: Any,
        storage: Any,
        settings: Any,
        metrics: Any,
        clock: Any,
        audit: Any = None,
        leases: Any = None,
        node: str = "local",
        batch_size: int = 200,
        cooperate: Callable[[], Any] | None = None,
    ) -> None:
        self.index = index
        self.storage = storage
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.audit = audit
        self.leases = leases
        self.node = node
        self.batch_size = batch_size
        # Called between batches; its Deferred lets the reactor serve requests in between.
        self._cooperate = cooperate or (lambda: task.deferLater(clock, 0, lambda: None))
        # Memory caches above the index, told of each removed entry: (type, repository, key).
        self.invalidators: list[Callable[[str, str, str], Any]] = []
        self.running = False
        self.started_at = clock.seconds()

    async def run_if_due(self) -> dict[str, Any] | None:
        """The scheduled collection, when ``gc.interval_seconds`` (0: never) have passed since the last one.

        The last one is any node's (from the index), else this process's
        start; a collection running elsewhere makes this a no-op.
        """
        interval = self.settings.get("gc.interval_seconds")
        if interval <= 0 or self.running:
            return None
        last = await self.index.last_gc_finished_at()
        if self.clock.seconds() - (last if last is not None else self.started_at) < interval:
            return None
        try:
            return await self.collect(reason="schedule")
        except GcBusy:
            return None

    async def collect(
        self, *, dry_run: bool = False, reason: str = "manual", actor: str | None = None, request: Any = None
    ) -> dict[str, Any]:
        """One collection (or, ``dry_run``, what it would remove); its report as the API shows it."""
        if self.running:
            raise GcBusy("a garbage collection is already running on this node", {"node": self.node})
        self.running = True
        lease = None
        try:
            if self.leases is not None:
                lease = await self.leases.try_hold(GC_LEASE)
                if lease is None:
                    raise GcBusy("a garbage collection is already running on another node")
            return await self._collect(dry_run, reason, actor, request)
        finally:
            if lease is not None:
                await lease.release()
            self.running = False

    async def _collect(self, dry_run: bool, reason: str, actor: str | None, request: Any) -> dict[str, Any]:
        started = self.clock.seconds()
        figures = {"manifests": 0, "blobs": 0, "freed_bytes": 0}
        error = None
        try:
            await self._record_legacy_children()
            cutoff = started - self.settings.get("gc.grace_seconds")
            garbage = plan(await self.index.gc_snapshot(), cutoff)
            if dry_run:
                figures = {
                    "manifests": len(garbage.manifests),
                    "blobs": len(garbage.blobs),
                    "freed_bytes": garbage.freed_bytes,
                }
            else:
                await self._sweep(garbage, cutoff, figures)
        except Exception as e:
            error = str(e) or type(e).__name__
            raise
        finally:
            report = await self._finish(started, dry_run, reason, figures, error)
            if report is not None:
                await self._audit(report, actor, request)
        assert report is not None  # recorded, or shaped without its id (an error would have been raised)
        return report

    async def _sweep(self, garbage: GcPlan, cutoff: float, figures: dict[str, int]) -> None:
        for batch in _batches(garbage.manifests, self.batch_size):
            removed, files = await self.index.gc_sweep_manifests(batch, cutoff)
            for repository, key in removed:
                self._invalidate("manifest", repository, key)
            figures["manifests"] += len(removed)
            figures["freed_bytes"] += await self._unlink(files)
            await self._cooperate()
        for batch in _batches(garbage.blobs, self.batch_size):
            removed_blobs, files = await self.index.gc_sweep_blobs(batch, cutoff)
            for key in removed_blobs:
                self._invalidate("blob", "", key)
            figures["blobs"] += len(removed_blobs)
            figures["freed_bytes"] += await self._unlink(files)
            await self._cooperate()

    async def _unlink(self, files: list[tuple[str, int]]) -> int:
        """Delete files whose rows are gone; one a new row references again (pushed meanwhile) stays."""
        if not files:
            return 0
        freed = 0
        # (a push of the same bytes held during the check may write its row after it: `storage.commits`)
        with self.storage.committing.watch() as seen:
            again = await self.index.digests_referenced([digest for digest, _ in files])
            for digest, size in files:
                if digest not in again and await self.storage.delete_blob(digest, seen):
                    freed += size
        return freed

    def _invalidate(self, type_: str, repository: str, key: str) -> None:
        for invalidate in self.invalidators:
            invalidate(type_, repository, key)

    async def _record_legacy_children(self) -> None:
        """Indexes pushed before their children were recorded: read each once and record them."""
        for repository, key, digest in await self.index.hosted_manifests_without_children(sorted(INDEX_TYPES)):
            try:
                _, children = manifest_references(await self.storage.read_bytes(digest))
            except (OSError, InvalidManifest) as e:
                log.warn("gc: cannot read index {name}@{key}: {error}", name=repository, key=key, error=e)
                continue
            if children:
                await self.index.add_manifest_children(repository, key, children)

    async def _finish(
        self, started: float, dry_run: bool, reason: str, figures: dict[str, int], error: str | None
    ) -> dict[str, Any] | None:
        finished = self.clock.seconds()
        run = {
            "started_at": started,
            "finished_at": finished,
            "node": self.node,
            "reason": reason,
            "dry_run": dry_run,
            "error": error,
            **figures,
        }
        if not dry_run:
            self.metrics.gc_runs.inc()
            self.metrics.gc_removed.labels("manifest").inc(figures["manifests"])
            self.metrics.gc_removed.labels("blob").inc(figures["blobs"])
            self.metrics.gc_freed_bytes.inc(figures["freed_bytes"])
        log.info(
            "gc{dry} ({reason}): {manifests} manifests, {blobs} blobs, {freed} bytes in {seconds:.3f} s",
            dry=" (dry run)" if dry_run else "",
            reason=reason,
            manifests=figures["manifests"],
            blobs=figures["blobs"],
            freed=figures["freed_bytes"],
            seconds=finished - started,
        )
        try:
            row = await self.index.record_gc_run(run, self.settings.get("gc.history"))
        except Exception as e:  # the index is away: the run happened all the same
            log.warn("gc: could not record the run: {error}", error=e)
            return None if error is not None else run_view(None, run)
        return run_view(row, run)

    async def _audit(self, report: dict[str, Any], actor: str | None, request: Any) -> None:
        if self.audit is None:
            return
        detail = {k: report[k] for k in ("dry_run", "manifests", "blobs", "freed_bytes", "duration_seconds")}
        await self.audit.record("gc.run", actor=actor, target=report["reason"], detail=detail, request=request)

    async def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last collections, newest first."""
        return [run_view(row, None) for row in await self.index.list_gc_runs(limit)]


def run_view(row: GcRun | None, run: dict[str, Any] | None) -> dict[str, Any]:
    """A collection as the API shows it (times in epoch seconds; the front formats them)."""
    if row is not None:
        source: dict[str, Any] = {
            "id": row.id,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "node": row.node,
            "reason": row.reason,
            "dry_run": bool(row.dry_run),
            "manifests": row.manifests,
            "blobs": row.blobs,
            "freed_bytes": row.freed_bytes,
            "error": row.error,
        }
    else:
        assert run is not None
        source = {"id": None, **run}
    source["duration_seconds"] = round(source["finished_at"] - source["started_at"], 3)
    return source


def detached(coro: Any) -> defer.Deferred:
    """Run a collection to its end even when the HTTP caller leaves (rows deleted, files not yet unlinked)."""
    work = defer.Deferred.fromCoroutine(coro)
    out: defer.Deferred = defer.Deferred()

    def _done(result: Any) -> None:
        if not out.called:
            out.callback(result)
        elif isinstance(result, Failure):
            log.failure("garbage collection failed after its caller left", result)

    work.addBoth(_done)
    return out
