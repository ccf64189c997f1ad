"""Maven entries: directory listings, per-repository statistics, and deploys into hosted repositories."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor, Row
from harbor_cache.index.engine import Store, fetch_all, fetch_written
from harbor_cache.index.listings import maven_write_txn
from harbor_cache.index.rows import Entry, MavenRepositoryStats


class MavenStore(Store):
    """Queries over ``type = 'maven'`` entries that the Maven front and the console need."""

    async def maven_entries_under(self, repository: str, prefix: str) -> list[Entry]:
        """Maven entries of ``repository`` whose key is under directory ``prefix`` ("" = all), by key.

        A key range (``prefix/`` up to ``prefix0``, "0" being the byte after
        "/") so the (type, repository, key) index answers it.
        """

        def _txn(txn: Cursor) -> list[Entry]:
            sql = "SELECT * FROM entries WHERE type = 'maven' AND repository = ?"
            args: list = [repository]
            if prefix:
                sql += " AND key >= ? AND key < ?"
                args += [prefix + "/", prefix + "0"]
            self._exec(txn, sql + " ORDER BY key", args)
            return fetch_all(txn, Entry)

        return await self._read("maven_entries_under", _txn)

    async def maven_repository_stats(self) -> dict[str, MavenRepositoryStats]:
        """Per Maven repository: files (checksums excluded), their bytes, and the last write time."""

        # Checksum suffixes go in as parameters (a literal % would clash with a "format" driver).
        suffixes = ["%.sha1", "%.sha256", "%.sha512", "%.md5"]
        is_checksum = " OR ".join(["key LIKE ?"] * len(suffixes))

        def _txn(txn: Cursor) -> dict[str, MavenRepositoryStats]:
            self._exec(
                txn,
                f"""SELECT repository,
                       SUM(CASE WHEN {is_checksum} THEN 0 ELSE 1 END) AS artifact_count,
                       SUM(CASE WHEN {is_checksum} THEN 0 ELSE size END) AS total_size,
                       MAX(fetched_at) AS last_updated
                   FROM entries WHERE type = 'maven' GROUP BY repository""",
                suffixes + suffixes,
            )
            return {
                repository: MavenRepositoryStats(repository, int(count or 0), int(size or 0), last)
                for repository, count, size, last in txn.fetchall()
            }

        return await self._read("maven_repository_stats", _txn)

    async def put_hosted_maven_file(
        self,
        *,
        repository: str,
        key: str,
        digest: str,
        size: int,
        media_type: str | None,
        sha1: str | None,
        now: float,
        overwrite: bool,
    ) -> tuple[str, Entry | None, str | None]:
        """Deploy one file into a hosted Maven repository, in one transaction.

        Returns ``(outcome, entry, previous digest)``: outcome "created",
        "replaced", or "exists" when a file is there and ``overwrite`` is
        false (nothing written; entry None).  Two deploys of one path racing
        on two nodes (PostgreSQL, READ COMMITTED) may both find no row: the
        INSERT is ``ON CONFLICT DO NOTHING``, so the one that inserts second
        waits for the first to commit, inserts nothing, and then reads the
        winner's row like any later deploy ("exists", or replaces it when
        ``overwrite``), instead of failing on the unique key.
        """

        def _existing(txn: Cursor) -> Row | None:
            self._exec(
                txn,
                "SELECT id, digest FROM entries WHERE type = 'maven' AND repository = ? AND key = ?",
                (repository, key),
            )
            return txn.fetchone()

        def _replace(txn: Cursor, row_id: int) -> None:
            self._exec(
                txn,
                """UPDATE entries SET kind = 'hosted', digest = ?, size = ?, media_type = ?, sha1 = ?,
                       upstream = NULL, upstream_modified = ?, fetched_at = ? WHERE id = ?""",
                (digest, size, media_type, sha1, now, now, row_id),
            )

        def _txn(txn: Cursor) -> tuple[str, Entry | None, str | None]:
            r = _existing(txn)
            if r is None:
                self._exec(
                    txn,
                    """INSERT INTO entries (kind, type, repository, key, digest, size, media_type, sha1, upstream,
                           upstream_modified, created_at, fetched_at, last_access, access_count)
                       VALUES ('hosted', 'maven', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 0)
                       ON CONFLICT (type, repository, key) DO NOTHING""",
                    (repository, key, digest, size, media_type, sha1, now, now, now, now),
                )
                if txn.rowcount != 1:  # another deploy of this path committed in between
                    r = _existing(txn)
            if r is not None and not overwrite:
                return "exists", None, r[1]
            if r is not None:
                _replace(txn, r[0])
            maven_write_txn(self, txn, repository, key, now)  # its directory, for browse
            self._exec(
                txn, "SELECT * FROM entries WHERE type = 'maven' AND repository = ? AND key = ?", (repository, key)
            )
            return (
                ("replaced" if r is not None else "created"),
                fetch_written(txn, Entry),
                (r[1] if r is not None else None),
            )

        return await self._run("put_hosted_maven_file", _txn)
