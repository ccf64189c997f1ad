"""The hosted registry: pushed manifests, which repository holds which blob, and referrers.

``blob_refs`` records claims: an upload or mount claims a blob for a
repository (manifest ``''``), a pushed manifest records every blob it needs;
a blob DELETE removes one repository's claim and never a blob a manifest
still needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_written
from harbor_cache.index.rows import Entry, Referrer


class ReferenceGone(Exception):
    """A blob or child manifest a pushed manifest names was removed (garbage collected) meanwhile."""

    def __init__(self, digest: str):
        super().__init__(digest)
        self.digest = digest


class HostedStore(Store):
    """Writes of pushed content and the bookkeeping that keeps its blobs alive."""

    async def mark_hosted(self, ids: list[int]) -> None:
        """Make entries hosted (a pushed manifest now needs them): eviction skips them from now on."""

        def _txn(txn: Cursor) -> None:
            for entry_id in ids:
                self._exec(txn, "UPDATE entries SET kind = 'hosted' WHERE id = ?", (entry_id,))

        await self._run("mark_hosted", _txn)

    async def claim_blob(self, repository: str, digest: str, now: float | None = None) -> bool:
        """Record that ``repository`` holds a blob (pushed or mounted into it), at ``now``.

        The claim's time keeps the blob from the garbage collector for
        ``gc.grace_seconds`` (`index.gc`).  The blob's row is locked while the
        claim is written, so a sweep either sees the claim or has already
        removed the blob: then nothing is claimed and False is returned.
        """

        def _txn(txn: Cursor) -> bool:
            self._exec(
                txn,
                "SELECT 1 FROM entries WHERE type = 'blob' AND repository = '' AND key = ?" + self.for_share,
                (digest,),
            )
            if txn.fetchone() is None:
                return False
            self._exec(
                txn,
                """INSERT INTO blob_refs (repository, digest, manifest, claimed_at) VALUES (?, ?, '', ?)
                   ON CONFLICT (repository, digest, manifest) DO UPDATE SET claimed_at = excluded.claimed_at""",
                (repository, digest, now),
            )
            return True

        return await self._run("claim_blob", _txn)

    async def hosted_manifests_without_refs(self) -> list[Entry]:
        """Hosted manifests with no ``blob_refs`` rows: pushed before claims were recorded (or blob-less)."""

        def _txn(txn: Cursor) -> list[Entry]:
            self._exec(
                txn,
                """SELECT m.* FROM entries AS m
                               WHERE m.type = 'manifest' AND m.kind = 'hosted' AND NOT EXISTS (
                                   SELECT 1 FROM blob_refs AS r
                                   WHERE r.repository = m.repository AND r.manifest = m.key)
                               ORDER BY m.id""",
            )
            return fetch_all(txn, Entry)

        return await self._run("hosted_manifests_without_refs", _txn)

    async def add_blob_refs(self, repository: str, manifest: str, blobs: list[str]) -> None:
        """Record that a hosted manifest needs these blobs (kept idempotent)."""

        def _txn(txn: Cursor) -> None:
            for blob in blobs:
                self._exec(
                    txn,
                    """INSERT INTO blob_refs (repository, digest, manifest) VALUES (?, ?, ?)
                                   ON CONFLICT (repository, digest, manifest) DO NOTHING""",
                    (repository, blob, manifest),
                )

        await self._run("add_blob_refs", _txn)

    async def release_blob(self, repository: str, digest: str) -> tuple[str, Any]:
        """A blob DELETE through ``repository``, decided and done in one transaction.

        Returns one of:
        ``("unknown", None)`` the repository holds no such blob (nothing changes);
        ``("in_use", manifest)`` a hosted manifest of the repository needs it (nothing changes);
        ``("released", orphans)`` the repository's claim is gone; when no repository claims or
        needs the blob any more its hosted entry is deleted too, and ``orphans`` lists the file
        digests nothing references;
        ``("proxy", None)`` a cached blob nobody pushed (removed through the management API).
        A blob pushed before claims were recorded (no rows at all) is released as if this
        repository were its only holder.
        """

        def _txn(txn: Cursor) -> tuple[str, Any]:
            self._exec(txn, "SELECT repository, manifest FROM blob_refs WHERE digest = ?", (digest,))
            rows = txn.fetchall()
            mine = [m for r, m in rows if r == repository]
            if rows and not mine:
                return "unknown", None
            using = sorted(m for m in mine if m)
            if using:
                return "in_use", using[0]
            self._exec(
                txn, "DELETE FROM blob_refs WHERE repository = ? AND digest = ? AND manifest = ''", (repository, digest)
            )
            if len(rows) > len(mine):
                return "released", []
            self._exec(
                txn, "SELECT id, kind FROM entries WHERE type = 'blob' AND repository = '' AND key = ?", (digest,)
            )
            r = txn.fetchone()
            if r is None:
                return ("released", []) if rows else ("unknown", None)
            if r[1] != "hosted":
                return ("released", []) if rows else ("proxy", None)
            self._exec(txn, "DELETE FROM entries WHERE id = ?", (r[0],))
            self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
            return "released", ([] if txn.fetchone() is not None else [digest])

        return await self._run("release_blob", _txn)

    async def put_hosted_manifest(
        self,
        *,
        repository: str,
        key: str,
        digest: str,
        size: int,
        media_type: str,
        now: float,
        tag: str | None,
        referrer: dict | None,
        blobs: Sequence[str] = (),
        children: Sequence[str] = (),
    ) -> Entry:
        """Record a pushed manifest: its hosted entry, its tag, its referrer row, the blobs it
        needs (``blob_refs``) and its child manifests (``manifest_children``), in one transaction.

        Each blob and child is looked up again with its row locked (the push's
        claim against the garbage collector, see `index.gc`): one removed since
        the caller checked raises `ReferenceGone` and nothing is recorded.
        """

        def _txn(txn: Cursor) -> Entry | None:
            for blob in blobs:
                self._exec(
                    txn,
                    "SELECT 1 FROM entries WHERE type = 'blob' AND repository = '' AND key = ?" + self.for_share,
                    (blob,),
                )
                if txn.fetchone() is None:
                    raise ReferenceGone(blob)
            for child in children:
                self._exec(
                    txn,
                    "SELECT 1 FROM entries WHERE type = 'manifest' AND repository = ? AND key = ?" + self.for_share,
                    (repository, child),
                )
                if txn.fetchone() is None:
                    raise ReferenceGone(child)
            self._exec(txn, "DELETE FROM manifest_children WHERE repository = ? AND manifest = ?", (repository, key))
            for child in children:
                self._exec(
                    txn,
                    """INSERT INTO manifest_children (repository, manifest, child) VALUES (?, ?, ?)
                       ON CONFLICT (repository, manifest, child) DO NOTHING""",
                    (repository, key, child),
                )
            self._exec(txn, "DELETE FROM blob_refs WHERE repository = ? AND manifest = ?", (repository, key))
            for blob in blobs:
                self._exec(
                    txn,
                    """INSERT INTO blob_refs (repository, digest, manifest) VALUES (?, ?, ?)
                                   ON CONFLICT (repository, digest, manifest) DO NOTHING""",
                    (repository, blob, key),
                )
            self._exec(
                txn,
                """INSERT INTO entries (kind, type, repository, key, digest, size, media_type, created_at,
                       fetched_at, last_access, access_count)
                   VALUES ('hosted', 'manifest', ?, ?, ?, ?, ?, ?, ?, ?, 0)
                   ON CONFLICT (type, repository, key) DO UPDATE SET
                       kind = 'hosted', digest = excluded.digest, size = excluded.size,
                       media_type = excluded.media_type, upstream = NULL, fetched_at = excluded.fetched_at""",
                (repository, key, digest, size, media_type, now, now, now),
            )
            if tag is not None:
                self._exec(
                    txn,
                    """INSERT INTO tags (repository, tag, digest, kind, media_type, fetched_at, updated_at)
                       VALUES (?, ?, ?, 'hosted', ?, ?, ?)
                       ON CONFLICT (repository, tag) DO UPDATE SET
                           digest = excluded.digest, kind = 'hosted', media_type = excluded.media_type,
                           fetched_at = excluded.fetched_at, updated_at = excluded.updated_at""",
                    (repository, tag, key, media_type, now, now),
                )
            if referrer is not None:
                self._exec(
                    txn,
                    """INSERT INTO referrers (repository, digest, subject, media_type, artifact_type, size, annotations)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (repository, digest) DO UPDATE SET
                           subject = excluded.subject, media_type = excluded.media_type,
                           artifact_type = excluded.artifact_type, size = excluded.size,
                           annotations = excluded.annotations""",
                    (
                        repository,
                        key,
                        referrer["subject"],
                        media_type,
                        referrer.get("artifact_type"),
                        size,
                        referrer.get("annotations"),
                    ),
                )
            self._exec(
                txn, "SELECT * FROM entries WHERE type = 'manifest' AND repository = ? AND key = ?", (repository, key)
            )
            return fetch_written(txn, Entry)

        return await self._run("put_hosted_manifest", _txn)

    async def delete_hosted_entry(self, type_: str, repository: str, key: str) -> tuple[str | None, list[str]]:
        """Delete one hosted entry (and, for a manifest, its tags and referrer row).

        Returns ``(kind, orphans)``: kind is None when there is no such entry
        and "proxy" when there is one that is not hosted (nothing deleted);
        orphans are the file digests no entry references any more.
        """

        def _txn(txn: Cursor) -> tuple[str | None, list[str]]:
            self._exec(
                txn,
                "SELECT id, kind, digest FROM entries WHERE type = ? AND repository = ? AND key = ?",
                (type_, repository, key),
            )
            r = txn.fetchone()
            if r is None:
                return None, []
            entry_id, kind, digest = r
            if kind != "hosted":
                return kind, []
            self._exec(txn, "DELETE FROM entries WHERE id = ?", (entry_id,))
            if type_ == "manifest":
                self._exec(txn, "DELETE FROM blob_refs WHERE repository = ? AND manifest = ?", (repository, key))
                self._exec(
                    txn, "DELETE FROM manifest_children WHERE repository = ? AND manifest = ?", (repository, key)
                )
                self._exec(txn, "DELETE FROM tags WHERE repository = ? AND digest = ?", (repository, key))
                self._exec(txn, "DELETE FROM referrers WHERE repository = ? AND digest = ?", (repository, key))
            self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
            return kind, ([] if txn.fetchone() is not None else [digest])

        return await self._run("delete_hosted_entry", _txn)

    async def list_referrers(self, repository: str, subject: str, artifact_type: str | None) -> list[Referrer]:
        """Manifests in a repository whose ``subject`` is this digest, optionally of one artifact type."""

        def _txn(txn: Cursor) -> list[Referrer]:
            sql = "SELECT * FROM referrers WHERE repository = ? AND subject = ?"
            args: list = [repository, subject]
            if artifact_type is not None:
                sql += " AND artifact_type = ?"
                args.append(artifact_type)
            self._exec(txn, sql + " ORDER BY digest", args)
            return fetch_all(txn, Referrer)

        return await self._read("list_referrers", _txn)
