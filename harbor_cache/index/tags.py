"""Tags and the catalog: which tag names which manifest, and which repositories exist."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_one
from harbor_cache.index.rows import Tag


class TagsStore(Store):
    """Tags of cached and hosted repositories (a hosted tag is never overwritten by a cached one)."""

    async def get_tag(self, repository: str, tag: str) -> Tag | None:
        def _txn(txn: Cursor) -> Tag | None:
            self._exec(txn, "SELECT * FROM tags WHERE repository = ? AND tag = ?", (repository, tag))
            return fetch_one(txn, Tag)

        return await self._read("get_tag", _txn)

    async def put_tag(
        self, repository: str, tag: str, digest: str, kind: str, media_type: str | None, now: float
    ) -> None:
        """Point a tag at a digest; a hosted tag is never overwritten by a proxy one."""

        def _txn(txn: Cursor) -> None:
            self._exec(
                txn,
                """INSERT INTO tags (repository, tag, digest, kind, media_type, fetched_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (repository, tag) DO UPDATE SET
                       digest = excluded.digest, kind = excluded.kind, media_type = excluded.media_type,
                       fetched_at = excluded.fetched_at, updated_at = excluded.updated_at
                   WHERE tags.kind = 'proxy' OR excluded.kind = 'hosted'""",
                (repository, tag, digest, kind, media_type, now, now),
            )

        await self._run("put_tag", _txn)

    async def mark_tag_fetched(self, repository: str, tag: str, now: float) -> None:
        def _txn(txn: Cursor) -> None:
            self._exec(txn, "UPDATE tags SET fetched_at = ? WHERE repository = ? AND tag = ?", (now, repository, tag))

        await self._run("mark_tag_fetched", _txn)

    async def delete_hosted_tag(self, repository: str, tag: str) -> str | None:
        """Remove a hosted tag; returns the digest it pointed at, None when there was no hosted tag."""

        def _txn(txn: Cursor) -> str | None:
            self._exec(
                txn, "SELECT digest FROM tags WHERE repository = ? AND tag = ? AND kind = 'hosted'", (repository, tag)
            )
            r = txn.fetchone()
            if r is None:
                return None
            self._exec(txn, "DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag))
            return r[0]

        return await self._run("delete_hosted_tag", _txn)

    async def list_tags_page(self, repository: str, last: str | None, limit: int | None) -> list[str]:
        """Tags of a repository in byte order, after ``last``; at most ``limit`` (None: all)."""

        def _txn(txn: Cursor) -> list[str]:
            sql = "SELECT tag FROM tags WHERE repository = ? AND tag > ? ORDER BY tag"
            args: list = [repository, last or ""]
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            self._exec(txn, sql, args)
            return [r[0] for r in txn.fetchall()]

        return await self._read("list_tags_page", _txn)

    async def repository_known(self, repository: str) -> bool:
        """Whether any tag or manifest is recorded under this repository name."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "SELECT 1 FROM tags WHERE repository = ? LIMIT 1", (repository,))
            if txn.fetchone() is not None:
                return True
            self._exec(txn, "SELECT 1 FROM entries WHERE type = 'manifest' AND repository = ? LIMIT 1", (repository,))
            return txn.fetchone() is not None

        return await self._read("repository_known", _txn)
