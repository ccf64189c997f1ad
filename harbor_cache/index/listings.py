"""Listings that cost one page whatever the index holds: keyset pages, index skip-scans, one directory.

Every query here seeks an index and reads one page (issue 30): the console's
entry table continues from the last row of the previous page (``(sort, id)``
after a cursor, never ``OFFSET``); repository names are found by a skip-scan
(``MIN(repository) > last`` again and again, one index seek per name, in one
recursive query) instead of ``DISTINCT`` over every row; a Maven directory
lists its files through ``parent`` and its subdirectories through
``maven_dirs`` (`harbor_cache.index.listings_schema`), never the rows below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, contains_pattern, fetch_all, fetch_dicts
from harbor_cache.index.rows import Entry, ImageRepository, ImageTag


def maven_write_txn(store: Store, txn: Cursor, repository: str, key: str, modified: float) -> None:
    """Record a Maven file's directory: its ``parent``, and each directory up to the root in ``maven_dirs``.

    Called inside the transaction that wrote the entry, so a listing never
    misses a file's directory; ``last_modified`` only goes up (the newest
    write below a directory is its ``lastModified``).  Directories are
    written deepest first, so two writers meet on the same rows in the same
    order.
    """
    parent = key.rpartition("/")[0]
    store._exec(
        txn,
        "UPDATE entries SET parent = ? WHERE type = 'maven' AND repository = ? AND key = ? AND parent IS NULL",
        (parent, repository, key),
    )
    path = parent
    while path:
        above, _, name = path.rpartition("/")
        # A directory as new as this write already has ancestors at least as new (each holds the newest
        # below it): stop there, without writing (or, on PostgreSQL, locking) the rows up to the root.
        # A proxied file carries its upstream Last-Modified, usually older, so most writes stop at once.
        store._exec(
            txn,
            "SELECT last_modified FROM maven_dirs WHERE repository = ? AND parent = ? AND name = ?",
            (repository, above, name),
        )
        held = txn.fetchone()
        if held is not None and held[0] >= modified:
            return
        store._exec(
            txn,
            f"""INSERT INTO maven_dirs (repository, parent, name, last_modified) VALUES (?, ?, ?, ?)
               ON CONFLICT (repository, parent, name) DO UPDATE
               SET last_modified = {store.greatest}(maven_dirs.last_modified, excluded.last_modified)""",
            (repository, above, name, modified),
        )
        path = above


def unindexed(store: Store) -> Callable[[str], str]:
    """A column as an expression no index answers: sqlite's unary "+", PostgreSQL's ``(column || '')``."""
    if store.dialect == "sqlite":
        return lambda column: "+" + column
    return lambda column: f"({column} || '')"


def _entry_filters(
    front: str | None,
    kind: str | None,
    repository: str | None,
    text: str | None,
    bare: Callable[[str], str] = lambda column: column,
) -> tuple[list[str], list[Any]]:
    """WHERE terms of the entry filters.

    ``bare`` (`unindexed`) keeps the planner off the type and kind indexes
    for a page: through them it would sort every matching row (a tenth to a
    half of the table) for one page; without them it walks the sort key's
    index and filters, reading a page's worth of rows divided by the share
    that matches (a rare kind costs more, never a sort).
    """
    where: list[str] = []
    args: list[Any] = []
    if front == "oci":
        where.append(f"{bare('type')} IN ('manifest', 'blob')")
    elif front == "maven":
        where.append(f"{bare('type')} = 'maven'")
    if kind is not None:
        where.append(f"{bare('kind')} = ?")
        args.append(kind)
    if repository is not None:
        where.append("repository = ?")
        args.append(repository)
    if text:
        # LIKE with an escape character: the same on sqlite and PostgreSQL, wildcards taken literally
        where.append("(lower(repository) LIKE ? ESCAPE '!' OR lower(key) LIKE ? ESCAPE '!')")
        args += [contains_pattern(text)] * 2
    return where, args


#: recursive skip-scan: the next ``?`` distinct names after ``?``, one index seek each
_SKIP_SCAN = """WITH RECURSIVE names(name, n) AS (
        SELECT (SELECT MIN(repository) FROM {table} WHERE {only}repository > ?), 1
        UNION ALL
        SELECT (SELECT MIN(repository) FROM {table} WHERE {only}repository > names.name), names.n + 1
        FROM names WHERE names.name IS NOT NULL AND names.n < ?
    )
    SELECT name FROM names WHERE name IS NOT NULL"""


class ListingsStore(Store):
    """Keyset pages of entries, skip-scans of repository names, one Maven directory's children."""

    #: sort keys of GET /api/v1/cache/entries -> column (id breaks ties); each has an index (migration 21)
    ENTRY_SORTS = {
        "size": "size",
        "last_access": "last_access",
        "hits": "access_count",
        "created": "created_at",
        "repository": "repository",
    }

    def entries_page_sql(
        self,
        *,
        sort: str,
        descending: bool,
        after: tuple[Any, int] | None,
        limit: int,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
    ) -> list[tuple[str, list[Any]]]:
        """The keyset page as statements run in turn, each with its arguments but the LIMIT (for EXPLAIN too).

        After a cursor (value, id) there are two: the rows tied on the value
        past the id (``column = ? AND id < ?``), then the rows past the value
        (``column < ?``).  Each seeks the (column, id) index on both engines;
        a row value ``(column, id) < (?, ?)`` would be one statement, but
        sqlite seeks only on its first column and then steps over every row
        tied with the cursor's value (all of them for ``hits`` when nothing
        was hit twice).
        """
        column = self.ENTRY_SORTS[sort]
        where, args = _entry_filters(front, kind, repository, text, unindexed(self))
        direction = "DESC" if descending else "ASC"
        past = "<" if descending else ">"
        order = f" ORDER BY {column} {direction}, id {direction} LIMIT ?"

        def statement(extra: list[str], extra_args: list[Any]) -> tuple[str, list[Any]]:
            terms = where + extra
            clause = (" WHERE " + " AND ".join(terms)) if terms else ""
            return f"SELECT * FROM entries{clause}{order}", [*args, *extra_args]

        if after is None:
            return [statement([], [])]
        return [
            statement([f"{column} = ?", f"id {past} ?"], [after[0], after[1]]),
            statement([f"{column} {past} ?"], [after[0]]),
        ]

    async def cache_entries_after(
        self,
        *,
        sort: str,
        descending: bool,
        after: tuple[Any, int] | None,
        limit: int,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
    ) -> list[Entry]:
        """Up to ``limit`` entries in ``sort`` order (id breaks ties) after the row ``after`` = (sort value, id)."""
        steps = self.entries_page_sql(
            sort=sort,
            descending=descending,
            after=after,
            limit=limit,
            front=front,
            kind=kind,
            repository=repository,
            text=text,
        )

        def _txn(txn: Cursor) -> list[Entry]:
            rows: list[Entry] = []
            for sql, args in steps:
                self._exec(txn, sql, [*args, limit - len(rows)])
                rows += fetch_all(txn, Entry)
                if len(rows) >= limit:
                    break
            return rows

        return await self._read("cache_entries_after", _txn)

    async def count_entries_capped(
        self,
        cap: int,
        *,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
    ) -> tuple[int, bool]:
        """(matching entries, counting stopped at ``cap``): a count that never reads more than ``cap`` rows."""
        where, args = _entry_filters(front, kind, repository, text)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def _txn(txn: Cursor) -> tuple[int, bool]:
            self._exec(txn, f"SELECT COUNT(*) FROM (SELECT 1 FROM entries{clause} LIMIT ?) AS capped", (*args, cap + 1))
            row = txn.fetchone()
            count = int(row[0]) if row else 0
            return min(count, cap), count > cap

        return await self._read("count_entries_capped", _txn)

    # -- repository names ------------------------------------------------------------------

    def _names_after_txn(self, txn: Cursor, last: str, limit: int) -> list[str]:
        """The first ``limit`` names with a tag or a manifest after ``last``: two skip-scans, merged."""
        names: set[str] = set()
        for table, only in (("tags", ""), ("entries", "type = 'manifest' AND ")):
            self._exec(txn, _SKIP_SCAN.format(table=table, only=only), (last, limit))
            names.update(r[0] for r in txn.fetchall())
        return sorted(names)[:limit]

    def catalog_sql(self) -> Sequence[str]:
        """The skip-scan statements (for EXPLAIN in tests)."""
        return [_SKIP_SCAN.format(table=t, only=o) for t, o in (("tags", ""), ("entries", "type = 'manifest' AND "))]

    async def list_repositories_page(self, last: str | None, limit: int | None) -> list[str]:
        """Repository names with a tag or a manifest, in byte order, after ``last``; at most ``limit``.

        ``limit`` None reads every name (tests and tools only: the API pages).
        """

        def _txn(txn: Cursor) -> list[str]:
            if limit is not None:
                return self._names_after_txn(txn, last or "", limit)
            out: list[str] = []
            cursor = last or ""
            while True:
                page = self._names_after_txn(txn, cursor, 1000)
                out += page
                if len(page) < 1000:
                    return out
                cursor = page[-1]

        return await self._read("list_repositories_page", _txn)

    async def image_repositories_page(self, names: list[str]) -> list[ImageRepository]:
        """Counts for the given repositories (a page of names): two grouped queries over their index ranges only."""

        def _txn(txn: Cursor) -> list[ImageRepository]:
            if not names:
                return []
            marks = ", ".join("?" * len(names))
            self._exec(
                txn,
                f"""SELECT repository, SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) AS hosted,
                          SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END) AS cached,
                          MAX(updated_at) AS updated_at
                   FROM tags WHERE repository IN ({marks}) GROUP BY repository""",
                names,
            )
            tags = {r["repository"]: r for r in fetch_dicts(txn)}
            self._exec(
                txn,
                f"""SELECT repository, SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) AS hosted,
                          SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END) AS cached,
                          MAX(fetched_at) AS fetched_at
                   FROM entries WHERE type = 'manifest' AND repository IN ({marks}) GROUP BY repository""",
                names,
            )
            manifests = {r["repository"]: r for r in fetch_dicts(txn)}
            out = []
            for name in names:
                t, m = tags.get(name, {}), manifests.get(name, {})
                out.append(
                    ImageRepository(
                        name=name,
                        hosted_tags=int(t.get("hosted") or 0),
                        cached_tags=int(t.get("cached") or 0),
                        hosted_manifests=int(m.get("hosted") or 0),
                        cached_manifests=int(m.get("cached") or 0),
                        updated_at=max(x for x in (t.get("updated_at"), m.get("fetched_at"), 0) if x is not None),
                    )
                )
            return out

        return await self._read("image_repositories_page", _txn)

    def image_tags_sql(self) -> str:
        return """SELECT t.tag, t.digest, t.kind, t.media_type, t.updated_at, e.size
                  FROM tags t LEFT JOIN entries e
                       ON e.type = 'manifest' AND e.repository = t.repository AND e.key = t.digest
                  WHERE t.repository = ? AND t.tag > ? ORDER BY t.tag LIMIT ?"""

    async def image_tags_page(self, repository: str, last: str, limit: int) -> list[ImageTag]:
        """Up to ``limit`` tags of one repository after ``last``, by tag, with the size of what each points at."""

        def _txn(txn: Cursor) -> list[ImageTag]:
            self._exec(txn, self.image_tags_sql(), (repository, last, limit))
            return fetch_all(txn, ImageTag)

        return await self._read("image_tags_page", _txn)

    # -- one Maven directory -------------------------------------------------------------------

    def maven_files_sql(self) -> str:
        return """SELECT * FROM entries WHERE type = 'maven' AND repository = ? AND parent = ? AND key > ?
                  ORDER BY key LIMIT ?"""

    def maven_dirs_sql(self) -> str:
        return """SELECT name, last_modified FROM maven_dirs WHERE repository = ? AND parent = ? AND name > ?
                  ORDER BY name LIMIT ?"""

    async def maven_children(
        self, repository: str, path: str, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[tuple[str, float]], list[Entry], bool]:
        """(subdirectories with their newest write, files, more to come): one page of directory ``path``.

        Directories come first, then files, each by name; ``after`` is
        ("d", name) or ("f", name), the last child of the previous page.  A
        directory in ``maven_dirs`` whose files are all gone is skipped (one
        seek each), so a page may need a few rounds; each reads at most
        ``limit`` rows.
        """
        prefix = path + "/" if path else ""

        def _holds_something(txn: Cursor, name: str) -> bool:
            self._exec(
                txn,
                "SELECT 1 FROM entries WHERE type = 'maven' AND repository = ? AND key >= ? AND key < ? LIMIT 1",
                (repository, f"{prefix}{name}/", f"{prefix}{name}0"),
            )
            return txn.fetchone() is not None

        def _txn(txn: Cursor) -> tuple[list[tuple[str, float]], list[Entry], bool]:
            dirs: list[tuple[str, float]] = []
            files: list[Entry] = []
            stage, last = after if after is not None else ("d", "")
            if stage == "d":
                while len(dirs) <= limit:
                    self._exec(txn, self.maven_dirs_sql(), (repository, path, last, limit + 1))
                    rows = txn.fetchall()
                    dirs += [(name, float(modified)) for name, modified in rows if _holds_something(txn, name)]
                    if len(rows) < limit + 1:
                        break
                    last = rows[-1][0]
                if len(dirs) > limit:
                    return dirs[:limit], [], True
                last = ""
            self._exec(txn, self.maven_files_sql(), (repository, path, last, limit - len(dirs) + 1))
            files = fetch_all(txn, Entry)
            more = len(dirs) + len(files) > limit
            return dirs, files[: limit - len(dirs)], more

        return await self._read("maven_children", _txn)
