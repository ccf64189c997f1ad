"""What the console browses: a filtered, sorted page of cache entries, and images with their tags."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, contains_pattern, fetch_all, fetch_dicts, fetch_value
from harbor_cache.index.rows import Entry, ImageRepository, ImageTag


class ConsoleStore(Store):
    """Read-only queries over entries and tags, shaped for the console's tables."""

    #: sort keys of GET /api/v1/cache/entries -> column (id breaks ties)
    ENTRY_SORTS = {
        "size": "size",
        "last_access": "last_access",
        "hits": "access_count",
        "created": "created_at",
        "repository": "repository",
    }

    @staticmethod
    def _entry_filters(
        front: str | None, kind: str | None, repository: str | None, text: str | None
    ) -> tuple[list[str], list]:
        where, args = [], []
        if front == "oci":
            where.append("type IN ('manifest', 'blob')")
        elif front == "maven":
            where.append("type = 'maven'")
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if repository is not None:
            where.append("repository = ?")
            args.append(repository)
        if text:
            # LIKE with an escape character: the same on sqlite and PostgreSQL, wildcards taken literally
            where.append("(lower(repository) LIKE ? ESCAPE '!' OR lower(key) LIKE ? ESCAPE '!')")
            args += [contains_pattern(text)] * 2
        return where, args

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
    ) -> tuple[int, list[Entry]]:
        """(matching count, one page of entries) for the console's cache table."""
        column = self.ENTRY_SORTS[sort]
        direction = "DESC" if descending else "ASC"
        where, args = self._entry_filters(front, kind, repository, text)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def _txn(txn: Cursor) -> tuple[int, list[Entry]]:
            self._exec(txn, "SELECT COUNT(*) FROM entries" + clause, args)
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
