"""Eviction: proxy entries page by page in eviction order, their deletion, and the cache's totals."""

from __future__ import annotations

from harbor_cache.index.bulk_delete import bulk_delete_txn
from harbor_cache.index.clear_rebuild import clear_rebuild_txn, cleared_page_txn, worth_rebuilding
from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_value
from harbor_cache.index.entries import referenced_txn
from harbor_cache.index.rows import CacheTotals, ProxyEntry

_PROXY_COLUMNS = "id, type, repository, key, digest, size, created_at, last_access, access_count"


class EvictionStore(Store):
    """What eviction reads and deletes; hosted entries are never touched."""

    # Keyset columns per eviction order; the last column is always the unique id,
    # so paging with "(cols) > (last row's cols)" never repeats or skips a row.
    EVICTION_ORDERS = {
        "lru": ("last_access", "id"),
        "lfu": ("access_count", "last_access", "id"),
        "fifo": ("created_at", "id"),
        "id": ("id",),
    }

    async def proxy_entries_page(
        self, order: str, after: tuple | None, limit: int, accessed_before: float | None = None
    ) -> list[ProxyEntry]:
        """One page of proxy entries in eviction order (see EVICTION_ORDERS).

        ``after`` is the order columns of the previous page's last row (None
        for the first page; the fields of `ProxyEntry` are named like the columns); ``accessed_before`` keeps only entries whose last
        access is older (retention).  Hosted entries are never returned.
        """
        sql, args = self.proxy_page_query(order, after, limit, accessed_before)

        def _txn(txn: Cursor) -> list[ProxyEntry]:
            self._exec(txn, sql, args)
            return fetch_all(txn, ProxyEntry)

        return await self._run("proxy_entries_page", _txn)

    def proxy_page_query(
        self, order: str, after: tuple | None, limit: int, accessed_before: float | None = None
    ) -> tuple[str, list]:
        """The SQL and arguments of `proxy_entries_page` (its plan is checked by tests/unit/index/test_totals)."""
        cols = self.EVICTION_ORDERS[order]
        # By id (a clear) the primary key is the index to walk: on sqlite ``+kind`` keeps the planner off
        # entries_kind_access (whose order is not the id's: a temp B-tree of every proxy row per page),
        # whatever its statistics say.  The other orders each have an index on (kind, order columns).
        kind = "+kind" if order == "id" and self.dialect == "sqlite" else "kind"
        where, args = [f"{kind} = 'proxy'"], []
        if accessed_before is not None:
            where.append("last_access < ?")
            args.append(accessed_before)
        if after is not None:
            where.append(f"({', '.join(cols)}) > ({', '.join('?' * len(cols))})")
            args.extend(after)
        sql = f"""SELECT {_PROXY_COLUMNS}
                  FROM entries WHERE {" AND ".join(where)} ORDER BY {", ".join(cols)} LIMIT ?"""
        return sql, [*args, limit]

    async def delete_proxy_entries(self, ids: list[int]) -> tuple[list[ProxyEntry], list[tuple[str, int]]]:
        """Delete the given entries that are still proxy entries, in one transaction.

        Returns (deleted rows;
        [(digest, size)] of digests no entry references any more).  An entry
        that became hosted since it was picked is left alone.  Set-based (a
        few statements per call, whatever its length) so a batch of hundreds
        of rows costs milliseconds; keep ``ids`` under a few thousand.
        """

        def _txn(txn: Cursor) -> tuple[list[ProxyEntry], list[tuple[str, int]]]:
            if not ids:
                return [], []
            marks = ", ".join("?" * len(ids))
            # By primary key: sqlite without statistics would walk entries_kind_access for kind = 'proxy'
            # (every proxy row per batch) unless ``+kind`` keeps it off that index.  PostgreSQL locks the
            # rows, so none becomes hosted between this and the deletion.
            kind = "+kind" if self.dialect == "sqlite" else "kind"
            self._exec(
                txn,
                f"""SELECT {_PROXY_COLUMNS} FROM entries
                    WHERE {kind} = 'proxy' AND id IN ({marks}) ORDER BY id{self.for_update}""",
                ids,
            )
            deleted = fetch_all(txn, ProxyEntry)
            if not deleted:
                return [], []
            # set-based: the totals and the search table move once for the batch (index/bulk_delete.py)
            bulk_delete_txn(self.dialect, txn, [row.id for row in deleted])
            sizes: dict[str, int] = {}
            for row in deleted:
                sizes[row.digest] = max(sizes.get(row.digest, 0), row.size)
            still = referenced_txn(self, txn, list(sizes))
            return deleted, [(d, sizes[d]) for d in sorted(sizes) if d not in still]

        return await self._run("delete_proxy_entries", _txn)

    async def clear_proxy_rebuild(self, min_rows: int) -> int | None:
        """Delete every proxy entry in one transaction, rebuilding the derived tables (index/clear_rebuild.py).

        None (nothing done) on PostgreSQL, or when the clear would remove
        fewer than ``min_rows`` rows or less than half the index: the caller
        deletes in batches then.  Otherwise the number of entries deleted;
        their rows are paged with `cleared_rows_page`.
        """
        if self.dialect != "sqlite":
            return None

        def _txn(txn: Cursor) -> int | None:
            self._exec(txn, "SELECT kind, SUM(entries) FROM entry_totals GROUP BY kind")
            counts = {kind: int(n) for kind, n in txn.fetchall()}
            if not worth_rebuilding(counts.get("proxy", 0), sum(counts.values()), min_rows):
                return None
            return clear_rebuild_txn(txn)

        return await self._run("clear_proxy_rebuild", _txn)

    async def cleared_rows_page(self, after: int, limit: int) -> list[tuple[int, str, str, str, str]]:
        """The rows the last `clear_proxy_rebuild` deleted, by id after ``after``: (id, type, repository, key, digest).

        Read on the writer's connection, which holds them (a temp table; `drop_cleared_rows` ends it).
        """
        return await self._run("cleared_rows_page", cleared_page_txn, after, limit)

    async def drop_cleared_rows(self) -> None:
        """Forget the rows the last `clear_proxy_rebuild` deleted (its temp table), once they are dealt with."""

        def _txn(txn: Cursor) -> None:
            self._exec(txn, "DROP TABLE IF EXISTS temp.cleared_rows")

        await self._run("drop_cleared_rows", _txn)

    async def evictable_size(self) -> int:
        """Bytes on disk that eviction could free: digests referenced only by proxy entries.

        Read from ``byte_totals``, which triggers keep (index/totals_schema.py):
        one row, however many entries.
        """

        def _txn(txn: Cursor) -> int:
            self._exec(txn, "SELECT evictable_size FROM byte_totals WHERE id = 1")
            return int(fetch_value(txn))

        return await self._run("evictable_size", _txn)

    async def cache_totals(self) -> CacheTotals:
        """Entry counts by type and the bytes on disk (each digest once), from the maintained totals."""

        def _txn(txn: Cursor) -> CacheTotals:
            self._exec(txn, "SELECT type, kind, entries FROM entry_totals")
            counts = {(t, k): int(n) for t, k, n in txn.fetchall()}
            self._exec(txn, "SELECT total_size FROM byte_totals WHERE id = 1")
            total = fetch_value(txn)

            def of(type_: str | None = None, kind: str | None = None) -> int:
                return sum(n for (t, k), n in counts.items() if type_ in (None, t) and kind in (None, k))

            return CacheTotals(
                entries=of(),
                manifests=of("manifest"),
                blobs=of("blob"),
                maven=of("maven"),
                proxy=of(kind="proxy"),
                total_size=int(total),
            )

        return await self._run("cache_totals", _txn)
