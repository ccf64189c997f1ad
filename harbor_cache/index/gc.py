"""Garbage collection of hosted content: the hosted graph as one snapshot, and sweeps that re-check under lock.

The collector (`core.hosted.gc`) decides what is garbage from `gc_snapshot`
(read in one transaction), then removes it in batches, one transaction each
(`gc_sweep_manifests`, `gc_sweep_blobs`).  A snapshot may be stale by the
time a batch runs (pushes go on), so every candidate is checked again inside
the batch's transaction, after its entry row is locked (PostgreSQL ``FOR
UPDATE``): a manifest PUT, an upload commit or a cross-repository mount
takes the same rows ``FOR SHARE`` in its own transaction (`index.hosted`),
so either the push sees the row and its claim is seen by the sweep, or the
sweep removed the row first and the push fails cleanly (BLOB_UNKNOWN).
Only rows are deleted here; the digests of files nothing references any
more are returned, and the caller unlinks them after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harbor_cache.index.engine import Store, fetch_all


@dataclass(frozen=True, slots=True)
class GcManifest:
    repository: str
    key: str
    digest: str
    size: int
    fetched_at: float


@dataclass(frozen=True, slots=True)
class GcBlob:
    id: int
    key: str
    digest: str
    size: int
    fetched_at: float


@dataclass(frozen=True, slots=True)
class GcSnapshot:
    """What the mark needs: hosted manifests and blobs, and every edge that keeps one alive."""

    manifests: list[GcManifest]
    blobs: list[GcBlob]
    tagged: set[tuple[str, str]]  # (repository, manifest key)
    children: list[tuple[str, str, str]]  # (repository, parent key, child key)
    referrers: list[tuple[str, str, str, str | None]]  # (repository, referrer key, subject, subject's kind)
    blob_refs: list[tuple[str, str, str, float | None]]  # (repository, digest, manifest or '', claimed_at)


@dataclass(frozen=True, slots=True)
class GcRun:
    """One collection as ``GET /api/v1/gc`` lists it."""

    id: int
    started_at: float
    finished_at: float
    node: str
    reason: str
    dry_run: int
    manifests: int
    blobs: int
    freed_bytes: int
    error: str | None


def _orphans_txn(store: Store, txn: Any, removed: dict[str, int]) -> list[tuple[str, int]]:
    """(digest, size) of the removed entries' files that no entry references any more."""
    orphans = []
    for digest in sorted(removed):
        store._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
        if txn.fetchone() is None:
            orphans.append((digest, removed[digest]))
    return orphans


class GcStore(Store):
    """The ``gc_runs`` and ``manifest_children`` tables, and the collector's reads and deletes."""

    async def add_manifest_children(self, repository: str, manifest: str, children: Sequence[str]) -> None:
        """Record the child manifests of an index pushed before children were recorded (kept idempotent)."""

        def _txn(txn: Any) -> None:
            for child in children:
                self._exec(
                    txn,
                    """INSERT INTO manifest_children (repository, manifest, child) VALUES (?, ?, ?)
                       ON CONFLICT (repository, manifest, child) DO NOTHING""",
                    (repository, manifest, child),
                )

        await self._run("add_manifest_children", _txn)

    async def hosted_manifests_without_children(self, media_types: Sequence[str]) -> list[tuple[str, str, str]]:
        """(repository, key, digest) of hosted indexes (of these media types) with no recorded child."""

        def _txn(txn: Any) -> list[tuple[str, str, str]]:
            self._exec(
                txn,
                f"""SELECT m.repository, m.key, m.digest FROM entries AS m
                    WHERE m.type = 'manifest' AND m.kind = 'hosted'
                      AND m.media_type IN ({", ".join("?" * len(media_types))})
                      AND NOT EXISTS (SELECT 1 FROM manifest_children AS c
                                      WHERE c.repository = m.repository AND c.manifest = m.key)
                    ORDER BY m.id""",
                tuple(media_types),
            )
            return [(r[0], r[1], r[2]) for r in txn.fetchall()]

        return await self._run("hosted_manifests_without_children", _txn)

    async def gc_snapshot(self) -> GcSnapshot:
        """The hosted graph, read in one transaction (the mark works on it outside the index)."""

        def _txn(txn: Any) -> GcSnapshot:
            self._exec(
                txn,
                """SELECT repository, key, digest, size, fetched_at FROM entries
                   WHERE type = 'manifest' AND kind = 'hosted' ORDER BY id""",
            )
            manifests = fetch_all(txn, GcManifest)
            self._exec(
                txn,
                """SELECT id, key, digest, size, fetched_at FROM entries
                   WHERE type = 'blob' AND repository = '' AND kind = 'hosted' ORDER BY id""",
            )
            blobs = fetch_all(txn, GcBlob)
            self._exec(txn, "SELECT repository, digest FROM tags")
            tagged = {(r[0], r[1]) for r in txn.fetchall()}
            self._exec(txn, "SELECT repository, manifest, child FROM manifest_children")
            children = [(r[0], r[1], r[2]) for r in txn.fetchall()]
            self._exec(
                txn,
                """SELECT r.repository, r.digest, r.subject, s.kind FROM referrers AS r
                   LEFT JOIN entries AS s
                     ON s.type = 'manifest' AND s.repository = r.repository AND s.key = r.subject""",
            )
            referrers = [(r[0], r[1], r[2], r[3]) for r in txn.fetchall()]
            self._exec(txn, "SELECT repository, digest, manifest, claimed_at FROM blob_refs")
            refs = [(r[0], r[1], r[2], r[3]) for r in txn.fetchall()]
            return GcSnapshot(manifests, blobs, tagged, children, referrers, refs)

        return await self._run("gc_snapshot", _txn)

    async def gc_sweep_manifests(
        self, candidates: Sequence[tuple[str, str]], cutoff: float
    ) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
        """Delete the candidate hosted manifests that are still garbage, in one transaction.

        A candidate stays when, checked again under its row lock, it was
        (re)pushed since ``cutoff``, is tagged, is the child of a manifest
        still present, or is a referrer whose subject is still present.
        Candidates come parents and subjects first, so a garbage index frees
        its children in the same pass.  Returns the removed (repository, key)
        and the (digest, size) of files nothing references any more.
        """

        def _txn(txn: Any) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
            removed: list[tuple[str, str]] = []
            files: dict[str, int] = {}
            for repository, key in candidates:
                self._exec(
                    txn,
                    """SELECT id, digest, size, fetched_at FROM entries
                       WHERE type = 'manifest' AND repository = ? AND key = ? AND kind = 'hosted'"""
                    + self.for_update,
                    (repository, key),
                )
                row = txn.fetchone()
                if row is None or row[3] >= cutoff:
                    continue
                entry_id, digest, size, _ = row
                self._exec(txn, "SELECT 1 FROM tags WHERE repository = ? AND digest = ? LIMIT 1", (repository, key))
                if txn.fetchone() is not None:
                    continue
                self._exec(
                    txn,
                    "SELECT 1 FROM manifest_children WHERE repository = ? AND child = ? LIMIT 1",
                    (repository, key),
                )
                if txn.fetchone() is not None:
                    continue
                self._exec(
                    txn,
                    """SELECT 1 FROM referrers AS r JOIN entries AS s
                         ON s.type = 'manifest' AND s.repository = r.repository AND s.key = r.subject
                       WHERE r.repository = ? AND r.digest = ? LIMIT 1""",
                    (repository, key),
                )
                if txn.fetchone() is not None:
                    continue
                self._exec(txn, "DELETE FROM entries WHERE id = ?", (entry_id,))
                for table, column in (("blob_refs", "manifest"), ("manifest_children", "manifest")):
                    self._exec(txn, f"DELETE FROM {table} WHERE repository = ? AND {column} = ?", (repository, key))
                self._exec(txn, "DELETE FROM referrers WHERE repository = ? AND digest = ?", (repository, key))
                removed.append((repository, key))
                files[digest] = size
            return removed, _orphans_txn(self, txn, files)

        return await self._run("gc_sweep_manifests", _txn)

    async def gc_sweep_blobs(self, candidates: Sequence[str], cutoff: float) -> tuple[list[str], list[tuple[str, int]]]:
        """Delete the candidate hosted blobs (by digest) that are still garbage, in one transaction.

        A candidate stays when, checked again under its row lock, some
        manifest needs it, a repository claimed it (upload, mount) since
        ``cutoff``, or it was uploaded again since.  Its claims go with it.
        """

        def _txn(txn: Any) -> tuple[list[str], list[tuple[str, int]]]:
            removed: list[str] = []
            files: dict[str, int] = {}
            for key in candidates:
                self._exec(
                    txn,
                    """SELECT id, digest, size, fetched_at FROM entries
                       WHERE type = 'blob' AND repository = '' AND key = ? AND kind = 'hosted'"""
                    + self.for_update,
                    (key,),
                )
                row = txn.fetchone()
                if row is None or row[3] >= cutoff:
                    continue
                entry_id, digest, size, _ = row
                self._exec(
                    txn,
                    """SELECT 1 FROM blob_refs WHERE digest = ? AND (manifest <> '' OR claimed_at >= ?) LIMIT 1""",
                    (key, cutoff),
                )
                if txn.fetchone() is not None:
                    continue
                self._exec(txn, "DELETE FROM entries WHERE id = ?", (entry_id,))
                self._exec(txn, "DELETE FROM blob_refs WHERE digest = ?", (key,))
                removed.append(key)
                files[digest] = size
            return removed, _orphans_txn(self, txn, files)

        return await self._run("gc_sweep_blobs", _txn)

    async def record_gc_run(self, run: dict[str, Any], keep: int) -> GcRun:
        """Record a finished collection and drop all but the newest ``keep`` records."""

        def _txn(txn: Any) -> GcRun:
            self._exec(
                txn,
                """INSERT INTO gc_runs (started_at, finished_at, node, reason, dry_run, manifests, blobs,
                       freed_bytes, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run["started_at"],
                    run["finished_at"],
                    run["node"],
                    run["reason"],
                    1 if run["dry_run"] else 0,
                    run["manifests"],
                    run["blobs"],
                    run["freed_bytes"],
                    run.get("error"),
                ),
            )
            self._exec(txn, "SELECT * FROM gc_runs ORDER BY id DESC LIMIT 1")
            row = fetch_all(txn, GcRun)[0]
            self._exec(
                txn,
                """DELETE FROM gc_runs WHERE id NOT IN (
                       SELECT id FROM (SELECT id FROM gc_runs ORDER BY id DESC LIMIT ?) AS kept)""",
                (keep,),
            )
            return row

        return await self._run("record_gc_run", _txn)

    async def list_gc_runs(self, limit: int) -> list[GcRun]:
        """The newest collections first."""

        def _txn(txn: Any) -> list[GcRun]:
            self._exec(txn, "SELECT * FROM gc_runs ORDER BY id DESC LIMIT ?", (limit,))
            return fetch_all(txn, GcRun)

        return await self._run("list_gc_runs", _txn)

    async def last_gc_finished_at(self) -> float | None:
        """When the last real (not dry) collection on any node finished (the schedule counts from it)."""

        def _txn(txn: Any) -> float | None:
            sql = "SELECT MAX(finished_at) FROM gc_runs WHERE dry_run = 0"
            self._exec(txn, sql)
            value = txn.fetchone()[0]
            return None if value is None else float(value)

        return await self._run("last_gc_finished_at", _txn)
