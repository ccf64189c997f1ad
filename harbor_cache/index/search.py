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
from harbor_cache.index.engine import Store, contains_pattern

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

# A tier with fewer hits than this is fetched whole and sorted; one with more is walked on the recency index.
DENSE = 1000
# PostgreSQL: rank 2 (substring hits) first looks at this many newest rows (bench/RESULTS.md, Issue 29).
WINDOW = 10000

_COLUMNS = "s.id, s.kind, s.repository, s.src, s.name, s.digest, s.size, s.hosted, s.updated_at"
_HEAD = "substr(s.text, 1, 200) >= ? AND substr(s.text, 1, 200) < ?"


def _hit(row: Sequence, rank: int) -> SearchHit:
    """A row of `_COLUMNS` as a hit of ``rank``."""
    id_, kind, repository, src, name, digest, size, hosted, updated_at = row
    return SearchHit(id_, kind, repository, src, name, digest, size, hosted, updated_at, rank)


@dataclass(frozen=True, slots=True)
class _Tier:
    """One rank's hits: ``source``/``where`` through its own index, ``probe`` checked row by row on a walk."""

    source: str
    where: str
    args: list
    probe: str
    probe_args: list


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
        """Up to ``limit`` hits after ``after``, best first; Maven repositories in ``hidden_maven`` left out.

        Each rank (tier) is its own bounded query, best tier first, until the
        page is full: sorting every hit of a dense query (tens of thousands)
        cost more than the whole 50 ms budget at 1M rows (bench/RESULTS.md,
        Issue 29), so no query here sorts more than `DENSE` rows.
        """
        filters, filter_args = "", []
        if kinds:
            # sqlite: "+" keeps the planner off the (kind, repository, src) index, which would scan a whole kind
            filters += f" AND {'+' if self.dialect == 'sqlite' else ''}s.kind IN ({', '.join('?' * len(kinds))})"
            filter_args += list(kinds)
        if hidden_maven:
            filters += f" AND NOT (s.kind = 'maven' AND s.repository IN ({', '.join('?' * len(hidden_maven))}))"
            filter_args += list(hidden_maven)

        def _txn(txn: Cursor) -> list[SearchHit]:
            hits: list[SearchHit] = []
            for rank in range(after[0] if after is not None else 0, 3):
                if len(hits) >= limit:
                    break
                position = (after[1], after[2]) if after is not None and rank == after[0] else None
                tier = self._tier_sql(match, rank)
                if tier is not None:
                    hits += self._tier(txn, rank, tier, filters, filter_args, position, limit - len(hits))
            return hits

        return await self._read("search", _txn)

    def _tier(
        self,
        txn: Cursor,
        rank: int,
        tier: _Tier,
        filters: str,
        filter_args: list,
        position: tuple[float, int] | None,
        need: int,
    ) -> list[SearchHit]:
        """The first ``need`` hits of one rank after ``position`` (updated_at, id), newest first.

        First the tier's hits through its own index (the name index, or the
        text index), at most `DENSE` of them: fewer means that is all of them,
        sorted here.  More means the tier is dense, and then walking the
        recency index newest first and checking each row finds a page after
        about ``need * rows / hits`` rows, however many hits there are.
        """
        keyset, keyset_args = "", []
        if position is not None:
            keyset, keyset_args = " AND (s.updated_at, s.id) < (?, ?)", [position[0], position[1]]
        recent = "search_items AS s INDEXED BY search_items_recent" if self.dialect == "sqlite" else "search_items AS s"
        if rank == 2 and self.dialect == "postgresql":
            # the newest WINDOW rows first: a dense query fills its page there before the GIN index is opened
            # (a common trigram's posting list costs 20-50 ms; on sqlite FTS5 is cheaper than the window)
            self._exec(
                txn,
                f"SELECT {_COLUMNS} FROM (SELECT * FROM {recent} WHERE 1 = 1{keyset} "
                f"ORDER BY s.updated_at DESC, s.id DESC LIMIT {WINDOW}) AS s WHERE {tier.probe}{filters} "
                "ORDER BY s.updated_at DESC, s.id DESC LIMIT ?",
                [*keyset_args, *tier.probe_args, *filter_args, need],
            )
            rows = txn.fetchall()
            if len(rows) == need:
                return [_hit(row, rank) for row in rows]
        self._exec(
            txn,
            f"SELECT {_COLUMNS} FROM {tier.source} WHERE {tier.where}{filters}{keyset} LIMIT {DENSE}",
            [*tier.args, *filter_args, *keyset_args],
        )
        rows = txn.fetchall()
        if len(rows) < DENSE:
            rows = sorted(rows, key=lambda row: (row[8], row[0]), reverse=True)[:need]
            return [_hit(row, rank) for row in rows]
        if self.dialect == "postgresql":
            # the GIN index only does bitmap scans: off, the planner walks the recency index instead
            self._exec(txn, "SET LOCAL enable_bitmapscan = off")
        self._exec(
            txn,
            f"SELECT {_COLUMNS} FROM {recent} WHERE {tier.probe}{filters}{keyset} "
            "ORDER BY s.updated_at DESC, s.id DESC LIMIT ?",
            [*tier.probe_args, *filter_args, *keyset_args, need],
        )
        rows = txn.fetchall()
        if self.dialect == "postgresql":
            self._exec(txn, "SET LOCAL enable_bitmapscan = on")
        return [_hit(row, rank) for row in rows]

    def _tier_sql(self, match: SearchMatch, rank: int) -> _Tier | None:
        """How one rank's hits are found (None: this query has none of that rank).

        Rank 0 is ``lower(name) = exact``, rank 1 a name starting with it
        (and not equal), rank 2 every other hit; a name is always part of its
        text, so the name tiers only check the text row by row.
        """
        probe, probe_args = self._probe_sql(match)
        drive_source, drive, drive_args = self._drive_sql(match)
        prefix = contains_pattern(match.exact)[1:]
        if not match.exact:  # Maven coordinates without a:, every hit starts with "": all are rank 1
            if rank != 1:
                return None
            return _Tier(drive_source, drive, drive_args, probe, probe_args)
        if rank == 0:
            where = f"lower(s.name) = ? AND {probe}"
            return _Tier("search_items AS s", where, [match.exact, *probe_args], where, [match.exact, *probe_args])
        if rank == 1:
            op = ("~>=~", "~<~") if self.dialect == "postgresql" else (">=", "<")
            where = (
                f"lower(s.name) {op[0]} ? AND lower(s.name) {op[1]} ? AND lower(s.name) LIKE ? ESCAPE '!' "
                f"AND lower(s.name) <> ? AND {probe}"
            )
            args = [match.exact, match.exact + _TOP, prefix, match.exact, *probe_args]
            return _Tier("search_items AS s", where, args, where, args)
        not_prefix = "NOT (lower(s.name) LIKE ? ESCAPE '!')"
        return _Tier(
            drive_source,
            f"{drive} AND {not_prefix}",
            [*drive_args, prefix],
            f"{probe} AND {not_prefix}",
            [*probe_args, prefix],
        )

    def _drive_sql(self, match: SearchMatch) -> tuple[str, str, list]:
        """The text index's answer to ``match``: (FROM, WHERE, arguments)."""
        if match.starts is not None:
            # the expression of the search_items_head index (a short prefix: the head holds it)
            return "search_items AS s", _HEAD, [match.starts, match.starts + _TOP]
        if self.dialect == "sqlite":
            # CROSS JOIN: sqlite keeps the text index as the outer loop (the page's rows come from it)
            source = "search_fts CROSS JOIN search_items AS s ON s.id = search_fts.rowid"
            if match.contains is not None:
                return source, "search_fts MATCH ?", ['"' + match.contains.replace('"', '""') + '"']
            return source, "search_fts.text LIKE ?", [match.like]
        if match.contains is not None:
            return "search_items AS s", "s.text LIKE ? ESCAPE '!'", [contains_pattern(match.contains)]
        return "search_items AS s", "s.text LIKE ?", [match.like]

    def _probe_sql(self, match: SearchMatch) -> tuple[str, list]:
        """``match`` checked on one row, no text index (the same rows `_drive_sql` finds)."""
        if match.starts is not None:
            return _HEAD, [match.starts, match.starts + _TOP]
        if match.contains is not None:
            return ("instr(s.text, ?) > 0" if self.dialect == "sqlite" else "strpos(s.text, ?) > 0"), [match.contains]
        assert match.like is not None, "a SearchMatch selects by contains, starts or like"
        if self.dialect == "postgresql":
            # not the GIN index's expression: a name tier checks its rows, it does not intersect 40 ms of GIN
            return "(s.text || '') LIKE ?", [match.like]
        return "s.text LIKE ?", [match.like]
