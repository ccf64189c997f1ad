"""Search over repositories, tags, manifests and Maven files: one keyset-paged query on ``search_items``.

The table and the triggers that keep it in sync are in
`harbor_cache.index.search_schema`.  A query matches the lowercased
``text`` through the engine's trigram index (sqlite FTS5 ``MATCH`` / ``LIKE``
on ``search_fts``; PostgreSQL ``LIKE`` answered by the ``pg_trgm`` GIN
index), ranks each hit on its ``name`` (0 exact, 1 prefix, 2 anything
else) and pages by ``(rank, updated_at DESC, id DESC)``.  What the words of
a query mean (``g:``/``a:``/``v:``, digests) is decided in
`harbor_cache.core.operations.search`; this module only runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twisted.logger import Logger

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, contains_pattern, fetch_all

log = Logger()

# Past every code point: "text < prefix + _TOP" is "text starts with prefix" for the b-tree.
_TOP = "\U0010ffff"


@dataclass(frozen=True, slots=True)
class SearchMatch:
    """How a query selects rows; exactly one of ``contains``, ``starts``, ``like`` is set (lowercase).

    ``contains``: the text holds this string (3 characters or more: the trigram index);
    ``starts``: the text starts with it (a range on the b-tree index);
    ``like``: a LIKE pattern over the text (``%`` and ``_`` wildcards; Maven coordinates).
    ``exact`` / ``prefix`` rank a hit by its name.
    """

    exact: str
    contains: str | None = None
    starts: str | None = None
    like: str | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One row of ``search_items`` as a search answers it, with its rank."""

    id: int
    kind: str
    repository: str
    src: str
    name: str
    digest: str | None
    size: int | None
    hosted: int
    updated_at: float
    rank: int


SearchKey = tuple[int, float, int]
"""Where a page ends: (rank, updated_at, id) of its last hit."""


class SearchStore(Store):
    """Runs a search; `search_backend` says which text index answers it."""

    _search_backend: str | None = None

    async def search_backend(self) -> str:
        """ "fts5", "pg_trgm", or "scan" (PostgreSQL without the extension: logged once)."""
        if self._search_backend is not None:
            return self._search_backend

        def _txn(txn: Cursor) -> str:
            if self.dialect == "sqlite":
                return "fts5"
            self._exec(txn, "SELECT 1 FROM pg_indexes WHERE indexname = 'search_items_trgm'")
            return "pg_trgm" if txn.fetchone() is not None else "scan"

        backend = await self._run("search_backend", _txn)
        if backend == "scan":
            log.warn(
                "search: the pg_trgm extension could not be created (contrib missing, or the role may not "
                "CREATE EXTENSION); substring searches scan search_items. Run CREATE EXTENSION pg_trgm as a "
                "superuser and re-create the index (docs/operations.md, Search)"
            )
        self._search_backend = backend
        return backend

    async def search(
        self,
        match: SearchMatch,
        *,
        kinds: Sequence[str] = (),
        hidden_maven: Sequence[str] = (),
        after: SearchKey | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Up to ``limit`` hits after ``after``, best first; Maven repositories in ``hidden_maven`` left out."""
        where, args = self._match_sql(match)
        if kinds:
            where += f" AND s.kind IN ({', '.join('?' * len(kinds))})"
            args += list(kinds)
        if hidden_maven:
            where += f" AND NOT (s.kind = 'maven' AND s.repository IN ({', '.join('?' * len(hidden_maven))}))"
            args += list(hidden_maven)
        prefix = contains_pattern(match.exact)[1:]
        sql = f"""SELECT * FROM (
                      SELECT s.id, s.kind, s.repository, s.src, s.name, s.digest, s.size, s.hosted, s.updated_at,
                             CASE WHEN lower(s.name) = ? THEN 0 WHEN lower(s.name) LIKE ? ESCAPE '!' THEN 1
                                  ELSE 2 END AS rank
                      FROM search_items AS s WHERE {where}
                  ) AS hits"""
        params: list = [match.exact, prefix, *args]
        if after is not None:
            rank, at, last = after
            sql += " WHERE rank > ? OR (rank = ? AND (updated_at < ? OR (updated_at = ? AND id < ?)))"
            params += [rank, rank, at, at, last]
        sql += " ORDER BY rank, updated_at DESC, id DESC LIMIT ?"
        params.append(limit)

        def _txn(txn: Cursor) -> list[SearchHit]:
            self._exec(txn, sql, params)
            return fetch_all(txn, SearchHit)

        return await self._run("search", _txn)

    def _match_sql(self, match: SearchMatch) -> tuple[str, list]:
        if match.starts is not None:
            # the expression of the search_items_head index (a short prefix: the head holds it)
            return "substr(s.text, 1, 200) >= ? AND substr(s.text, 1, 200) < ?", [match.starts, match.starts + _TOP]
        if match.contains is not None:
            if self.dialect == "sqlite":
                phrase = '"' + match.contains.replace('"', '""') + '"'
                return "s.id IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?)", [phrase]
            return "s.text LIKE ? ESCAPE '!'", [contains_pattern(match.contains)]
        assert match.like is not None, "a SearchMatch selects by contains, starts or like"
        if self.dialect == "sqlite":
            return "s.id IN (SELECT rowid FROM search_fts WHERE text LIKE ?)", [match.like]
        return "s.text LIKE ?", [match.like]
