"""Maintained totals: ``digest_refs``, ``entry_totals`` and ``byte_totals``, kept by triggers on ``entries``.

The cache statistics (every 15 s for the gauges, every ``/api/v1/cache/stats``)
and each eviction pass need the entry counts by type and kind, the bytes on
disk (each digest once, at the largest size any row gives it) and the bytes
eviction could free (digests no hosted row references).  Computed with
``GROUP BY digest`` that costs seconds at a million rows; kept here it is a
read of seven rows.

Why triggers and not the write transactions of `index/`: entries are written
by half a dozen stores (entries, hosted, maven, eviction, gc, clear, the
migrations themselves) and by raw SQL in tests and benches; a trigger runs
inside whichever transaction adds, changes or removes the row, so the totals
can never drift from the rows (the search table, `search_schema`, is kept the
same way).  Hit recording (``last_access``, ``access_count``) does not fire
them: only a change of digest, size, kind or type does.

* ``digest_refs``: one row per digest that some entry references, with its
  proxy and hosted reference counts and its size (the largest row size;
  ``size_refs`` counts the rows at that size, so a deletion recomputes the
  maximum from ``entries`` only when the last row at the maximum goes, which
  content addressing makes rare);
* ``entry_totals``: one row per (type, kind), six in all, the entry counts;
* ``byte_totals``: one row, ``total_size`` (every digest once) and
  ``evictable_size`` (digests with no hosted reference), kept by triggers
  on ``digest_refs``.

sqlite counts row by row (its triggers fire right after each row);
PostgreSQL counts inserts and deletions per statement from the statement's
transition table (see ``_PG_ADDED``: updating one row thousands of times in a
transaction is slow there).  On PostgreSQL the ``byte_totals`` row is one hot
row every entry write updates: writers of entries on several nodes serialize
on it until they commit (transactions that write entries are short).
"""

from __future__ import annotations

from harbor_cache.index.search_schema import only

_TABLES = [
    """CREATE TABLE digest_refs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        size_refs INTEGER NOT NULL,
        proxy_refs INTEGER NOT NULL,
        hosted_refs INTEGER NOT NULL
    )""",
    """CREATE TABLE entry_totals (
        type TEXT NOT NULL,
        kind TEXT NOT NULL,
        entries INTEGER NOT NULL,
        PRIMARY KEY (type, kind)
    )""",
    """CREATE TABLE byte_totals (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        total_size INTEGER NOT NULL,
        evictable_size INTEGER NOT NULL
    )""",
]

_BACKFILL = [
    """INSERT INTO digest_refs (digest, size, size_refs, proxy_refs, hosted_refs)
        SELECT e.digest, m.size, SUM(CASE WHEN e.size = m.size THEN 1 ELSE 0 END),
               SUM(CASE WHEN e.kind = 'proxy' THEN 1 ELSE 0 END), SUM(CASE WHEN e.kind = 'hosted' THEN 1 ELSE 0 END)
        FROM entries AS e JOIN (SELECT digest, MAX(size) AS size FROM entries GROUP BY digest) AS m
             ON m.digest = e.digest
        GROUP BY e.digest, m.size""",
    *[
        f"INSERT INTO entry_totals (type, kind, entries) VALUES ('{t}', '{k}', 0)"
        for t in ("manifest", "blob", "maven")
        for k in ("proxy", "hosted")
    ],
    """UPDATE entry_totals SET entries = (
        SELECT COUNT(*) FROM entries AS e WHERE e.type = entry_totals.type AND e.kind = entry_totals.kind)""",
    """INSERT INTO byte_totals (id, total_size, evictable_size)
        SELECT 1, COALESCE(SUM(size), 0), COALESCE(SUM(CASE WHEN hosted_refs = 0 THEN size ELSE 0 END), 0)
        FROM digest_refs""",
]


def _add(r: str, is_proxy: str, is_hosted: str) -> list[str]:
    """Statements that count row ``r`` (NEW) in."""
    return [
        f"""INSERT INTO digest_refs (digest, size, size_refs, proxy_refs, hosted_refs)
            VALUES ({r}.digest, {r}.size, 1, {is_proxy}, {is_hosted})
            ON CONFLICT (digest) DO UPDATE SET
                size = CASE WHEN excluded.size > digest_refs.size THEN excluded.size ELSE digest_refs.size END,
                size_refs = CASE WHEN excluded.size > digest_refs.size THEN 1
                                 WHEN excluded.size = digest_refs.size THEN digest_refs.size_refs + 1
                                 ELSE digest_refs.size_refs END,
                proxy_refs = digest_refs.proxy_refs + excluded.proxy_refs,
                hosted_refs = digest_refs.hosted_refs + excluded.hosted_refs""",
        f"UPDATE entry_totals SET entries = entries + 1 WHERE type = {r}.type AND kind = {r}.kind",
    ]


def _drop(r: str, is_proxy: str, is_hosted: str, same_size: str, recount: list[str]) -> list[str]:
    """Statements that count row ``r`` (OLD) out; run after the row left ``entries`` (or changed).

    ``recount``: what to do when the last row at the digest's largest size
    went (`_SQ_RECOUNT`, `_PG_MARK`).
    """
    return [
        f"""UPDATE digest_refs SET proxy_refs = proxy_refs - {is_proxy}, hosted_refs = hosted_refs - {is_hosted},
                size_refs = size_refs - {same_size}
            WHERE digest = {r}.digest""",
        f"DELETE FROM digest_refs WHERE digest = {r}.digest AND proxy_refs + hosted_refs <= 0",
        *recount,
        f"UPDATE entry_totals SET entries = entries - 1 WHERE type = {r}.type AND kind = {r}.kind",
    ]


def _recount(where: str, others: str = "") -> str:
    """Set a digest's size and size_refs from its rows in ``entries`` (``others``: leave a row out)."""
    return f"""UPDATE digest_refs SET
            size = (SELECT MAX(e.size) FROM entries AS e WHERE e.digest = digest_refs.digest{others.format(t="e")}),
            size_refs = (SELECT COUNT(*) FROM entries AS e WHERE e.digest = digest_refs.digest{others.format(t="e")}
                AND e.size = (SELECT MAX(m.size) FROM entries AS m
                              WHERE m.digest = digest_refs.digest{others.format(t="m")}))
        WHERE {where}"""


# sqlite fires a row trigger right after its row changed, so the rows it sees match the counts: the
# largest size is recounted at once.  In an update the row is still there with its new values, which
# `_add` counts next: the recount leaves it out.
_SQ_RECOUNT = [_recount("digest = OLD.digest AND size_refs <= 0")]
_SQ_RECOUNT_UPD = [_recount("digest = OLD.digest AND size_refs <= 0", " AND {t}.id <> NEW.id")]

# PostgreSQL fires the row triggers of a statement after the whole statement, so a row trigger sees rows
# that the triggers still to come will count: a recount there would count them twice.  The digest is
# marked instead, and a statement trigger (which runs after every row trigger) recounts the marked ones.
_PG_MARK = [
    """INSERT INTO digest_recount (digest) SELECT digest FROM digest_refs WHERE digest = OLD.digest AND size_refs <= 0
        ON CONFLICT (digest) DO NOTHING"""
]
_PG_RECOUNT = [
    _recount("digest IN (SELECT digest FROM digest_recount)"),
    "DELETE FROM digest_recount",
]


def _bytes(r: str, sign: str) -> str:
    return (
        f"UPDATE byte_totals SET total_size = total_size {sign} {r}.size, "
        f"evictable_size = evictable_size {sign} CASE WHEN {r}.hosted_refs = 0 THEN {r}.size ELSE 0 END WHERE id = 1"
    )


def _bytes_change() -> str:
    """One UPDATE of byte_totals for a changed digest_refs row (OLD out, NEW in)."""
    evictable = "CASE WHEN {r}.hosted_refs = 0 THEN {r}.size ELSE 0 END"
    return (
        "UPDATE byte_totals SET total_size = total_size - OLD.size + NEW.size, "
        f"evictable_size = evictable_size - {evictable.format(r='OLD')} + {evictable.format(r='NEW')} WHERE id = 1"
    )


def _body(statements: list[str]) -> str:
    return "\n".join(s + ";" for s in statements)


_SQ_PROXY, _SQ_HOSTED = "({r}.kind = 'proxy')", "({r}.kind = 'hosted')"


def _sq(r: str) -> tuple[str, str]:
    return _SQ_PROXY.format(r=r), _SQ_HOSTED.format(r=r)


_SQ_SAME = "(OLD.size = digest_refs.size)"

_CHANGED = (
    "OLD.digest IS NOT NEW.digest OR OLD.size IS NOT NEW.size OR OLD.kind IS NOT NEW.kind OR OLD.type IS NOT NEW.type"
)

_SQLITE = [
    f"""CREATE TRIGGER totals_entries_ins AFTER INSERT ON entries BEGIN
        {_body(_add("NEW", *_sq("NEW")))}
    END""",
    f"""CREATE TRIGGER totals_entries_del AFTER DELETE ON entries BEGIN
        {_body(_drop("OLD", *_sq("OLD"), _SQ_SAME, _SQ_RECOUNT))}
    END""",
    f"""CREATE TRIGGER totals_entries_upd AFTER UPDATE OF digest, size, kind, type ON entries WHEN {_CHANGED} BEGIN
        {_body(_drop("OLD", *_sq("OLD"), _SQ_SAME, _SQ_RECOUNT_UPD))}
        {_body(_add("NEW", *_sq("NEW")))}
    END""",
    f"""CREATE TRIGGER totals_digests_ins AFTER INSERT ON digest_refs BEGIN
        {_body([_bytes("NEW", "+")])}
    END""",
    f"""CREATE TRIGGER totals_digests_upd AFTER UPDATE ON digest_refs BEGIN
        {_body([_bytes_change()])}
    END""",
    f"""CREATE TRIGGER totals_digests_del AFTER DELETE ON digest_refs BEGIN
        {_body([_bytes("OLD", "-")])}
    END""",
]

_PG_PROXY, _PG_HOSTED = "({r}.kind = 'proxy')::int", "({r}.kind = 'hosted')::int"


def _pg(r: str) -> tuple[str, str]:
    return _PG_PROXY.format(r=r), _PG_HOSTED.format(r=r)


_PG_SAME = "(OLD.size = digest_refs.size)::int"

# PostgreSQL keeps each row version of a row updated again and again in one transaction (MVCC): a batch
# of 2,000 deletions updating byte_totals and entry_totals once per row walks ever longer version chains.
# So inserts and deletions of entries are counted per statement, from its transition table (one update of
# each totals row per statement); an update of digest, size, kind or type (rare: a pull of pushed
# content, a redeploy) is counted per row.  byte_totals follows digest_refs per statement too.


def _pg_function(name: str, statements: list[str]) -> str:
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    {_body(statements)}
    RETURN NULL;
END
$f$"""


_PG_ADDED = [
    """INSERT INTO digest_refs (digest, size, size_refs, proxy_refs, hosted_refs)
        SELECT a.digest, m.size, SUM((a.size = m.size)::int), SUM((a.kind = 'proxy')::int),
               SUM((a.kind = 'hosted')::int)
        FROM added AS a JOIN (SELECT digest, MAX(size) AS size FROM added GROUP BY digest) AS m
             ON m.digest = a.digest
        GROUP BY a.digest, m.size
        ON CONFLICT (digest) DO UPDATE SET
            size = GREATEST(digest_refs.size, excluded.size),
            size_refs = CASE WHEN excluded.size > digest_refs.size THEN excluded.size_refs
                             WHEN excluded.size = digest_refs.size THEN digest_refs.size_refs + excluded.size_refs
                             ELSE digest_refs.size_refs END,
            proxy_refs = digest_refs.proxy_refs + excluded.proxy_refs,
            hosted_refs = digest_refs.hosted_refs + excluded.hosted_refs""",
    """UPDATE entry_totals SET entries = entry_totals.entries + c.n
        FROM (SELECT type, kind, COUNT(*) AS n FROM added GROUP BY type, kind) AS c
        WHERE entry_totals.type = c.type AND entry_totals.kind = c.kind""",
]

_PG_REMOVED = [
    """UPDATE digest_refs SET proxy_refs = digest_refs.proxy_refs - r.p, hosted_refs = digest_refs.hosted_refs - r.h,
            size_refs = digest_refs.size_refs - r.at_max
        FROM (SELECT x.digest, SUM((x.kind = 'proxy')::int) AS p, SUM((x.kind = 'hosted')::int) AS h,
                     SUM((x.size = d.size)::int) AS at_max
              FROM removed AS x JOIN digest_refs AS d ON d.digest = x.digest GROUP BY x.digest) AS r
        WHERE digest_refs.digest = r.digest""",
    """DELETE FROM digest_refs WHERE digest IN (SELECT digest FROM removed) AND proxy_refs + hosted_refs <= 0""",
    # a statement trigger sees the table as the statement left it: the recount is exact here
    _recount("digest IN (SELECT digest FROM removed) AND size_refs <= 0"),
    """UPDATE entry_totals SET entries = entry_totals.entries - c.n
        FROM (SELECT type, kind, COUNT(*) AS n FROM removed GROUP BY type, kind) AS c
        WHERE entry_totals.type = c.type AND entry_totals.kind = c.kind""",
]

_PG_CHANGED = [
    """IF NEW.digest IS DISTINCT FROM OLD.digest OR NEW.size IS DISTINCT FROM OLD.size
          OR NEW.kind IS DISTINCT FROM OLD.kind OR NEW.type IS DISTINCT FROM OLD.type THEN
        """
    + _body(_drop("OLD", *_pg("OLD"), _PG_SAME, _PG_MARK))
    + "\n"
    + _body(_add("NEW", *_pg("NEW")))
    + "\n    END IF",
]


def _pg_bytes(table: str, sign: str) -> str:
    return (
        f"UPDATE byte_totals SET total_size = total_size {sign} (SELECT COALESCE(SUM(size), 0) FROM {table}), "
        f"evictable_size = evictable_size {sign} (SELECT COALESCE(SUM(CASE WHEN hosted_refs = 0 THEN size ELSE 0 END), 0) "
        f"FROM {table}) WHERE id = 1"
    )


_POSTGRES = [
    "CREATE TABLE digest_recount (digest TEXT PRIMARY KEY)",
    _pg_function("totals_entries_added", _PG_ADDED),
    _pg_function("totals_entries_removed", _PG_REMOVED),
    _pg_function("totals_entries_changed", _PG_CHANGED),
    _pg_function("totals_recount", _PG_RECOUNT),
    _pg_function("totals_bytes_added", [_pg_bytes("added", "+")]),
    _pg_function("totals_bytes_removed", [_pg_bytes("removed", "-")]),
    _pg_function("totals_bytes_changed", [_pg_bytes("removed", "-"), _pg_bytes("added", "+")]),
    "CREATE TRIGGER totals_entries_ins AFTER INSERT ON entries REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION totals_entries_added()",
    "CREATE TRIGGER totals_entries_del AFTER DELETE ON entries REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION totals_entries_removed()",
    "CREATE TRIGGER totals_entries_upd AFTER UPDATE OF digest, size, kind, type ON entries "
    "FOR EACH ROW EXECUTE FUNCTION totals_entries_changed()",
    "CREATE TRIGGER totals_recount AFTER UPDATE OF digest, size, kind, type ON entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION totals_recount()",
    "CREATE TRIGGER totals_bytes_ins AFTER INSERT ON digest_refs REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION totals_bytes_added()",
    "CREATE TRIGGER totals_bytes_del AFTER DELETE ON digest_refs REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION totals_bytes_removed()",
    "CREATE TRIGGER totals_bytes_upd AFTER UPDATE ON digest_refs REFERENCING OLD TABLE AS removed "
    "NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION totals_bytes_changed()",
]

TOTALS_MIGRATION: list[str] = [
    *_TABLES,
    *_BACKFILL,
    *[only("sqlite", s) for s in _SQLITE],
    *[only("postgresql", s) for s in _POSTGRES],
]
