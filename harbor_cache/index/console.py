"""What the console browses: a filtered, sorted page of cache entries, and images with their tags."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_dicts, fetch_value
from harbor_cache.index.listings import ListingsStore, _entry_filters, unindexed
from harbor_cache.index.rows import Entry, ImageRepository, ImageTag


class ConsoleStore(Store):
    """Read-only queries over entries and tags, shaped for the console's tables."""

    #: the sort keys of GET /api/v1/cache/entries (each with an index, migration 21)
    ENTRY_SORTS = ListingsStore.ENTRY_SORTS

    async def cache_entries_page(
        self,
        *,
        offset: int,
        limit: int,
        sort: str,
        descending: bool,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
        count_cap: int = 100_000,
    ) -> tuple[int, list[Entry]]:
        """(matching count, one page of entries) by ``offset``: kept for clients that page by number.

        The walk follows the sort key's index (no sort of the whole table),
        but an offset still steps over every row before the page; the API's
        ``cursor`` seeks instead (`ListingsStore.cache_entries_after`).  The
        count stops at ``count_cap`` rows (`count_entries_capped`).
        """
        column = self.ENTRY_SORTS[sort]
        direction = "DESC" if descending else "ASC"
        where, args = _entry_filters(front, kind, repository, text, unindexed(self))
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def _txn(txn: Cursor) -> tuple[int, list[Entry]]:
            self._exec(
                txn, f"SELECT COUNT(*) FROM (SELECT 1 FROM entries{clause} LIMIT ?) AS capped", (*args, count_cap)
            )
            total = int(fetch_value(txn))
            self._exec(
                txn,
                f"""SELECT * FROM entries{clause}
                    ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?""",
                (*args, limit, offset),
            )
            return total, fetch_all(txn, Entry)

        return await self._read("cache_entries_page", _txn)

    async def image_repositories(self) -> list[ImageRepository]:
        """Every OCI repository with a tag or a manifest: name, hosted/cached tag and manifest counts, last update."""

        def _txn(txn: Cursor) -> list[ImageRepository]:
            self._exec(
                txn,
                """SELECT repository,
                          SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) AS hosted_tags,
                          SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END) AS cached_tags,
                          MAX(updated_at) AS updated_at
                   FROM tags GROUP BY repository""",
            )
            tags = {r["repository"]: r for r in fetch_dicts(txn)}
            self._exec(
                txn,
                """SELECT repository,
                          SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) AS hosted_manifests,
                          SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END) AS cached_manifests,
                          MAX(fetched_at) AS fetched_at
                   FROM entries WHERE type = 'manifest' GROUP BY repository""",
            )
            manifests = {r["repository"]: r for r in fetch_dicts(txn)}
            out = []
            for name in sorted(set(tags) | set(manifests)):
                t, m = tags.get(name, {}), manifests.get(name, {})
                out.append(
                    ImageRepository(
                        name=name,
                        hosted_tags=int(t.get("hosted_tags") or 0),
                        cached_tags=int(t.get("cached_tags") or 0),
                        hosted_manifests=int(m.get("hosted_manifests") or 0),
                        cached_manifests=int(m.get("cached_manifests") or 0),
                        updated_at=max(x for x in (t.get("updated_at"), m.get("fetched_at"), 0) if x is not None),
                    )
                )
            return out

        return await self._read("image_repositories", _txn)

    async def image_tags(self, repository: str) -> list[ImageTag]:
        """Tags of one repository with what they point at, by tag."""

        def _txn(txn: Cursor) -> list[ImageTag]:
            self._exec(
                txn,
                """SELECT t.tag, t.digest, t.kind, t.media_type, t.updated_at, e.size
                   FROM tags t LEFT JOIN entries e
                        ON e.type = 'manifest' AND e.repository = t.repository AND e.key = t.digest
                   WHERE t.repository = ? ORDER BY t.tag""",
                (repository,),
            )
            return fetch_all(txn, ImageTag)

        return await self._read("image_tags", _txn)
