"""Quotas on hosted content: the ``quotas`` rows and the usage queries a push is checked against.

Usage is never stored: it is read from the rows that already say what is
hosted, through indexes those tables have, so it cannot drift from the
content.  For a repository glob the query is a key range on the glob's
literal prefix (``team-a/`` for ``team-a/*``): ``blob_refs``' primary key
(repository, digest, manifest), ``entries``' unique (type, repository, key)
and ``tags``' primary key (repository, tag) answer it without reading other
namespaces; the glob itself is matched in Python on the rows of that range
(`core.operations.quotas`), where shared blobs are also counted once.  A
Maven repository's usage is one aggregate over the (type, repository) range
of ``entries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harbor_cache.index.engine import Store, fetch_all, fetch_one


@dataclass(frozen=True)
class QuotaRow:
    """One quota as stored: ``repositories`` is a glob or ``maven:<id>``; ``max_tags`` None is no limit."""

    id: int
    repositories: str
    max_bytes: int
    max_tags: int | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class HostedRange:
    """What is hosted in the repositories of one name range: the rows a glob is matched against.

    ``blobs`` are (repository, digest, size) for every blob a repository
    claims or needs; ``manifests`` (repository, digest, size) for hosted
    manifests; ``tags`` (repository, tag) for hosted tags.
    """

    blobs: list[tuple[str, str, int]]
    manifests: list[tuple[str, str, int]]
    tags: list[tuple[str, str]]


def _range(prefix: str) -> tuple[str, list[Any]]:
    """SQL (for column ``repository``) and arguments selecting names that start with ``prefix``."""
    if not prefix:
        return "", []
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return " AND {col} >= ? AND {col} < ?", [prefix, upper]


class QuotasStore(Store):
    """The ``quotas`` table, and usage read from ``blob_refs``, ``entries`` and ``tags``."""

    async def list_quotas(self) -> list[QuotaRow]:
        def _txn(txn: Any) -> list[QuotaRow]:
            self._exec(txn, "SELECT * FROM quotas ORDER BY id")
            return fetch_all(txn, QuotaRow)

        return await self._run("list_quotas", _txn)

    async def get_quota(self, quota_id: int) -> QuotaRow | None:
        def _txn(txn: Any) -> QuotaRow | None:
            self._exec(txn, "SELECT * FROM quotas WHERE id = ?", (quota_id,))
            return fetch_one(txn, QuotaRow)

        return await self._run("get_quota", _txn)

    async def create_quota(
        self, repositories: str, max_bytes: int, max_tags: int | None, now: float
    ) -> QuotaRow | None:
        """Insert a quota; None when one for the same ``repositories`` exists."""

        def _txn(txn: Any) -> QuotaRow | None:
            self._exec(
                txn,
                """INSERT INTO quotas (repositories, max_bytes, max_tags, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?) ON CONFLICT (repositories) DO NOTHING""",
                (repositories, max_bytes, max_tags, now, now),
            )
            if txn.rowcount != 1:
                return None
            self._exec(txn, "SELECT * FROM quotas WHERE repositories = ?", (repositories,))
            return fetch_one(txn, QuotaRow)

        return await self._run("create_quota", _txn)

    async def update_quota(
        self, quota_id: int, repositories: str, max_bytes: int, max_tags: int | None, now: float
    ) -> QuotaRow | str:
        """Replace a quota's fields; "missing" or "taken" (another quota has these repositories)."""

        def _txn(txn: Any) -> QuotaRow | str:
            self._exec(txn, "SELECT 1 FROM quotas WHERE id = ?", (quota_id,))
            if txn.fetchone() is None:
                return "missing"
            self._exec(txn, "SELECT 1 FROM quotas WHERE repositories = ? AND id <> ?", (repositories, quota_id))
            if txn.fetchone() is not None:
                return "taken"
            self._exec(
                txn,
                "UPDATE quotas SET repositories = ?, max_bytes = ?, max_tags = ?, updated_at = ? WHERE id = ?",
                (repositories, max_bytes, max_tags, now, quota_id),
            )
            self._exec(txn, "SELECT * FROM quotas WHERE id = ?", (quota_id,))
            row = fetch_one(txn, QuotaRow)
            assert row is not None  # (found above, in this transaction)
            return row

        return await self._run("update_quota", _txn)

    async def delete_quota(self, quota_id: int) -> bool:
        def _txn(txn: Any) -> bool:
            self._exec(txn, "DELETE FROM quotas WHERE id = ?", (quota_id,))
            return txn.rowcount == 1

        return await self._run("delete_quota", _txn)

    async def hosted_in_range(self, prefix: str) -> HostedRange:
        """Hosted blobs, manifests and tags of every repository whose name starts with ``prefix``."""

        def _txn(txn: Any) -> HostedRange:
            where, args = _range(prefix)
            self._exec(
                txn,
                """SELECT r.repository, r.digest, e.size FROM blob_refs AS r
                   JOIN entries AS e ON e.type = 'blob' AND e.repository = '' AND e.key = r.digest
                   WHERE 1 = 1"""
                + where.format(col="r.repository"),
                args,
            )
            blobs = [(str(r), str(d), int(s)) for r, d, s in txn.fetchall()]
            self._exec(
                txn,
                "SELECT repository, key, size FROM entries WHERE type = 'manifest' AND kind = 'hosted'"
                + where.format(col="repository"),
                args,
            )
            manifests = [(str(r), str(k), int(s)) for r, k, s in txn.fetchall()]
            self._exec(
                txn, "SELECT repository, tag FROM tags WHERE kind = 'hosted'" + where.format(col="repository"), args
            )
            tags = [(str(r), str(t)) for r, t in txn.fetchall()]
            return HostedRange(blobs, manifests, tags)

        return await self._run("hosted_in_range", _txn)

    async def maven_hosted_usage(self, repository: str) -> tuple[int, int]:
        """(bytes, files) deployed into one hosted Maven repository (checksum files included)."""

        def _txn(txn: Any) -> tuple[int, int]:
            self._exec(
                txn,
                """SELECT COALESCE(SUM(size), 0), COUNT(*) FROM entries
                   WHERE type = 'maven' AND repository = ? AND kind = 'hosted'""",
                (repository,),
            )
            size, count = txn.fetchone()
            return int(size or 0), int(count or 0)

        return await self._run("maven_hosted_usage", _txn)

    async def maven_file_size(self, repository: str, key: str) -> int | None:
        """The size of the file deployed at ``key`` (None: none there): what a redeploy replaces."""

        def _txn(txn: Any) -> int | None:
            self._exec(
                txn, "SELECT size FROM entries WHERE type = 'maven' AND repository = ? AND key = ?", (repository, key)
            )
            r = txn.fetchone()
            return int(r[0]) if r is not None else None

        return await self._run("maven_file_size", _txn)
