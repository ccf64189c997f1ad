"""Entries: one row per cached or hosted file (OCI manifest or blob, Maven file), and the hit counters.

An entry names a file by ``(type, repository, key)`` and points at its bytes
by ``digest``; several entries may share one digest (one file on disk), so a
file may be deleted only when no entry references its digest any more.
"""

from __future__ import annotations

from dataclasses import dataclass

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_one
from harbor_cache.index.listings import maven_write_txn
from harbor_cache.index.rows import Entry


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One entry to insert or replace (`EntriesStore.put_entries`)."""

    kind: str
    type_: str
    repository: str
    key: str
    digest: str
    size: int
    media_type: str | None = None
    sha1: str | None = None
    upstream: str | None = None
    upstream_modified: float | None = None


def referenced_txn(store: Store, txn: Cursor, digests: list[str]) -> set[str]:
    """The subset of ``digests`` some entry references, inside a transaction of ``store``."""
    found: set[str] = set()
    for start in range(0, len(digests), 500):
        chunk = digests[start : start + 500]
        store._exec(txn, f"SELECT DISTINCT digest FROM entries WHERE digest IN ({', '.join('?' * len(chunk))})", chunk)
        found.update(r[0] for r in txn.fetchall())
    return found


class EntriesStore(Store):
    """Reads and writes single entries, their access times, and the counters."""

    async def get_entry(self, type_: str, repository: str, key: str) -> Entry | None:
        def _txn(txn: Cursor) -> Entry | None:
            self._exec(
                txn, "SELECT * FROM entries WHERE type = ? AND repository = ? AND key = ?", (type_, repository, key)
            )
            return fetch_one(txn, Entry)

        return await self._read("get_entry", _txn)

    async def get_entry_by_id(self, entry_id: int) -> Entry | None:
        def _txn(txn: Cursor) -> Entry | None:
            self._exec(txn, "SELECT * FROM entries WHERE id = ?", (entry_id,))
            return fetch_one(txn, Entry)

        return await self._read("get_entry_by_id", _txn)

    async def put_entry(
        self,
        *,
        kind: str,
        type_: str,
        repository: str,
        key: str,
        digest: str,
        size: int,
        now: float,
        media_type: str | None = None,
        sha1: str | None = None,
        upstream: str | None = None,
        upstream_modified: float | None = None,
    ) -> Entry:
        """Insert or replace an entry; an existing hosted entry stays hosted."""
        write = EntryWrite(kind, type_, repository, key, digest, size, media_type, sha1, upstream, upstream_modified)
        return await self._run("put_entry", self._upsert_entry_txn, write, now)

    async def put_entries(self, writes: list[EntryWrite], now: float) -> tuple[list[Entry], list[str]]:
        """Insert or replace several entries in one transaction (a Maven file and its ``.sha1``).

        Returns the rows as stored, in order, and the digests the writes
        replaced that no entry references any more (files the caller may delete).
        """

        def _txn(txn: Cursor) -> tuple[list[Entry], list[str]]:
            replaced: set[str] = set()
            rows = []
            for write in writes:
                self._exec(
                    txn,
                    "SELECT digest FROM entries WHERE type = ? AND repository = ? AND key = ?",
                    (write.type_, write.repository, write.key),
                )
                old = txn.fetchone()
                if old is not None and old[0] != write.digest:
                    replaced.add(old[0])
                rows.append(self._upsert_entry_txn(txn, write, now))
            orphans = []
            for digest in sorted(replaced):
                self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
                if txn.fetchone() is None:
                    orphans.append(digest)
            return rows, orphans

        return await self._run("put_entries", _txn)

    def _upsert_entry_txn(self, txn: Cursor, write: EntryWrite, now: float) -> Entry:
        self._exec(
            txn,
            """INSERT INTO entries (kind, type, repository, key, digest, size, media_type, sha1, upstream,
                   upstream_modified, created_at, fetched_at, last_access, access_count)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
               ON CONFLICT (type, repository, key) DO UPDATE SET
                   kind = CASE WHEN entries.kind = 'hosted' OR excluded.kind = 'hosted'
                               THEN 'hosted' ELSE 'proxy' END,
                   digest = excluded.digest, size = excluded.size, media_type = excluded.media_type,
                   sha1 = excluded.sha1, upstream = excluded.upstream,
                   upstream_modified = excluded.upstream_modified,
                   fetched_at = excluded.fetched_at""",
            (
                write.kind,
                write.type_,
                write.repository,
                write.key,
                write.digest,
                write.size,
                write.media_type,
                write.sha1,
                write.upstream,
                write.upstream_modified,
                now,
                now,
                now,
            ),
        )
        if write.type_ == "maven":  # its directory, for browse (index/listings.py)
            modified = write.upstream_modified if write.upstream_modified is not None else now
            maven_write_txn(self, txn, write.repository, write.key, modified)
        self._exec(
            txn,
            "SELECT * FROM entries WHERE type = ? AND repository = ? AND key = ?",
            (write.type_, write.repository, write.key),
        )
        row = fetch_one(txn, Entry)
        assert row is not None
        return row

    async def mark_fetched(self, entry_id: int, now: float) -> None:
        """Record a successful revalidation (TTL restarts)."""

        def _txn(txn: Cursor) -> None:
            self._exec(txn, "UPDATE entries SET fetched_at = ? WHERE id = ?", (now, entry_id))

        await self._run("mark_fetched", _txn)

    async def record_access(self, touches: dict[int, tuple[float, int]], counters: dict[str, int]) -> None:
        """Flush a batch of last-access times / hit counts and counter deltas in one transaction."""

        def _txn(txn: Cursor) -> None:
            for entry_id, (when, count) in touches.items():
                self._exec(
                    txn,
                    f"UPDATE entries SET last_access = {self.greatest}(last_access, ?), access_count = access_count + ? WHERE id = ?",
                    (when, count, entry_id),
                )
            for name, delta in counters.items():
                self._exec(
                    txn,
                    """INSERT INTO counters (name, value) VALUES (?, ?)
                       ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value""",
                    (name, delta),
                )

        await self._run("record_access", _txn)

    async def get_counters(self) -> dict[str, int]:
        def _txn(txn: Cursor) -> dict[str, int]:
            self._exec(txn, "SELECT name, value FROM counters")
            return {name: value for name, value in txn.fetchall()}

        return await self._run("get_counters", _txn)

    async def digest_in_use(self, digest: str) -> bool:
        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
            return txn.fetchone() is not None

        return await self._run("digest_in_use", _txn)

    async def digests_referenced(self, digests: list[str]) -> set[str]:
        """The subset of digests that some entry still references."""

        def _txn(txn: Cursor) -> set[str]:
            return referenced_txn(self, txn, list(digests))

        return await self._run("digests_referenced", _txn)

    async def delete_entries(self, ids: list[int]) -> list[str]:
        """Delete entries by id; returns the digests no longer referenced by any entry."""

        def _txn(txn: Cursor) -> list[str]:
            digests: set[str] = set()
            for entry_id in ids:
                self._exec(txn, "SELECT digest FROM entries WHERE id = ?", (entry_id,))
                r = txn.fetchone()
                if r is None:
                    continue
                digests.add(r[0])
                self._exec(txn, "DELETE FROM entries WHERE id = ?", (entry_id,))
            orphans = []
            for d in sorted(digests):
                self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (d,))
                if txn.fetchone() is None:
                    orphans.append(d)
            return orphans

        return await self._run("delete_entries", _txn)
