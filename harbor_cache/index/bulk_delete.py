"""Set-based deletion of a batch of entries: totals and search table adjusted per batch, not per row.

The triggers of `totals_schema` and `search_schema` keep the maintained
totals and the search table in step with ``entries`` row by row: on sqlite
that is 100-400 µs of trigger work for each deleted row, so a clear of a
million rows took minutes (issue 30).  A batch deletion here instead works
out the batch's whole effect in a few statements over the batch (a temp
table of its rows) and deletes the rows with those per-row triggers skipped:

* sqlite: the triggers that a deletion fires carry ``WHEN NOT EXISTS
  (SELECT 1 FROM bulk_delete)``; the batch puts the one row of
  ``bulk_delete`` in its transaction and takes it out before it commits, so
  no other connection ever sees it (one writer; readers see committed data);
* PostgreSQL: the trigger functions return at once when the
  transaction-local setting ``harbor_cache.bulk_delete`` is ``on``
  (``set_config(..., true)``: gone at commit or rollback, other sessions
  never see it).

Everything else (inserts, updates, a single deletion, any other store's
deletes) goes through the triggers as before.  tests/unit/index/test_bulk_delete
checks that a batch leaves the totals and the search table equal to the
per-row path's on both engines.
"""

from __future__ import annotations

from harbor_cache.index import search_schema, totals_schema
from harbor_cache.index.cursor import Cursor
from harbor_cache.index.search_schema import only

_GUARD_SQ = "NOT EXISTS (SELECT 1 FROM bulk_delete)"
_GUARD_PG = "current_setting('harbor_cache.bulk_delete', true) = 'on'"

# The sqlite triggers a deletion of entries fires (directly or through digest_refs and search_items).
_SQ_GUARDED = {
    "totals_entries_del": totals_schema._SQLITE,
    "totals_digests_upd": totals_schema._SQLITE,
    "totals_digests_del": totals_schema._SQLITE,
    "search_manifests_del": search_schema._SQLITE,
    "search_maven_del": search_schema._SQLITE,
    "search_fts_del": search_schema._SQLITE,
}


def _guarded_sqlite(name: str) -> str:
    """The trigger ``name`` as its schema module creates it, with the bulk guard added to its WHEN."""
    (statement,) = [s for s in _SQ_GUARDED[name] if s.startswith(f"CREATE TRIGGER {name} ")]
    head, body = statement.split(" BEGIN", 1)
    head += f" AND {_GUARD_SQ}" if " WHEN " in head else f" WHEN {_GUARD_SQ}"
    return f"{head} BEGIN{body}"


def _pg_guard(statements: list[str]) -> list[str]:
    return [f"IF {_GUARD_PG} THEN RETURN NULL; END IF", *statements]


_PG_ENTRIES = search_schema._PG_ENTRIES.replace(
    "BEGIN\n", f"BEGIN\n    IF TG_OP = 'DELETE' AND {_GUARD_PG} THEN RETURN NULL; END IF;\n", 1
)

BULK_DELETE_MIGRATION: list[str] = [
    only("sqlite", "CREATE TABLE bulk_delete (id INTEGER PRIMARY KEY CHECK (id = 1))"),
    *[only("sqlite", f"DROP TRIGGER {name}") for name in _SQ_GUARDED],
    *[only("sqlite", _guarded_sqlite(name)) for name in _SQ_GUARDED],
    only(
        "postgresql",
        totals_schema._pg_function("totals_entries_removed", _pg_guard(totals_schema._PG_REMOVED)),
    ),
    only(
        "postgresql",
        totals_schema._pg_function("totals_bytes_removed", _pg_guard([totals_schema._pg_bytes("removed", "-")])),
    ),
    only(
        "postgresql",
        totals_schema._pg_function(
            "totals_bytes_changed",
            _pg_guard([totals_schema._pg_bytes("removed", "-"), totals_schema._pg_bytes("added", "+")]),
        ),
    ),
    only("postgresql", _PG_ENTRIES),
]
"""Migration: the guard table (sqlite) and the guarded triggers / trigger functions (both engines)."""

SQLITE_GUARDED_TRIGGERS = [_guarded_sqlite(name) for name in _SQ_GUARDED]
"""The guarded sqlite triggers (for a bench that refreshes a kept file's triggers)."""

# -- the batch ----------------------------------------------------------------------------

_BATCH_TABLE = {
    "sqlite": """CREATE TEMP TABLE IF NOT EXISTS evict_batch (
        id INTEGER PRIMARY KEY, type TEXT, kind TEXT, repository TEXT, key TEXT, digest TEXT, size INTEGER)""",
    "postgresql": """CREATE TEMP TABLE IF NOT EXISTS evict_batch (
        id BIGINT PRIMARY KEY, type TEXT, kind TEXT, repository TEXT, key TEXT, digest TEXT, size BIGINT)
        ON COMMIT DELETE ROWS""",
}

_IN_BATCH = "digest IN (SELECT digest FROM evict_batch)"


def _bytes_of_batch_digests(sign: str) -> str:
    """Take out (``-``) or put back (``+``) the bytes of the batch's digests as digest_refs holds them now.

    One pass over those digests for both sums (a row-value SET: sqlite >= 3.15, PostgreSQL).
    """
    return f"""UPDATE byte_totals SET (total_size, evictable_size) = (
        SELECT byte_totals.total_size {sign} COALESCE(SUM(d.size), 0),
               byte_totals.evictable_size {sign} COALESCE(SUM(CASE WHEN d.hosted_refs = 0 THEN d.size ELSE 0 END), 0)
        FROM digest_refs AS d WHERE d.{_IN_BATCH})
        WHERE id = 1"""


_TOTALS = [
    _bytes_of_batch_digests("-"),
    """UPDATE digest_refs SET proxy_refs = digest_refs.proxy_refs - r.p, hosted_refs = digest_refs.hosted_refs - r.h,
            size_refs = digest_refs.size_refs - r.at_max
        FROM (SELECT x.digest, SUM(CASE WHEN x.kind = 'proxy' THEN 1 ELSE 0 END) AS p,
                     SUM(CASE WHEN x.kind = 'hosted' THEN 1 ELSE 0 END) AS h,
                     SUM(CASE WHEN x.size = d.size THEN 1 ELSE 0 END) AS at_max
              FROM evict_batch AS x JOIN digest_refs AS d ON d.digest = x.digest GROUP BY x.digest) AS r
        WHERE digest_refs.digest = r.digest""",
    f"DELETE FROM digest_refs WHERE {_IN_BATCH} AND proxy_refs + hosted_refs <= 0",
    """UPDATE entry_totals SET entries = entries - (
        SELECT COUNT(*) FROM evict_batch AS b WHERE b.type = entry_totals.type AND b.kind = entry_totals.kind)""",
]

# after the rows left entries: the largest sizes that went are recounted from what is left
_AFTER = [totals_schema._recount(f"{_IN_BATCH} AND size_refs <= 0"), _bytes_of_batch_digests("+")]

_SEARCH_ROWS = """SELECT s.id FROM evict_batch AS b
    JOIN search_items AS s ON s.kind = b.type AND s.repository = b.repository AND s.src = b.key
    WHERE b.type IN ('manifest', 'maven')"""
_IMAGE_ROWS = """SELECT id FROM search_items WHERE kind = 'image' AND src = '' AND refs <= 0
    AND repository IN (SELECT repository FROM evict_batch WHERE type = 'manifest')"""


def _search(dialect: str) -> list[str]:
    """The per-row search triggers' effect for the whole batch (sqlite also feeds its FTS table)."""

    def fts_out(rows: str) -> list[str]:
        if dialect != "sqlite":
            return []
        return [
            f"""INSERT INTO search_fts (search_fts, rowid, text)
                SELECT 'delete', id, text FROM search_items WHERE id IN ({rows})"""
        ]

    return [
        *fts_out(_SEARCH_ROWS),
        f"DELETE FROM search_items WHERE id IN ({_SEARCH_ROWS})",
        """UPDATE search_items SET refs = search_items.refs - m.n
            FROM (SELECT repository, COUNT(*) AS n FROM evict_batch WHERE type = 'manifest'
                  GROUP BY repository) AS m
            WHERE search_items.kind = 'image' AND search_items.src = '' AND search_items.repository = m.repository""",
        *fts_out(_IMAGE_ROWS),
        f"DELETE FROM search_items WHERE id IN ({_IMAGE_ROWS})",
    ]


def bulk_delete_txn(dialect: str, txn: Cursor, ids: list[int]) -> None:
    """Delete the entries ``ids`` (whatever their kind) with the totals and search table adjusted per batch.

    Runs inside the caller's transaction; on PostgreSQL the caller has
    locked the rows (``FOR UPDATE``) so none changes under it.  ``ids``:
    up to a few thousand (the placeholders of one statement).
    """
    if not ids:
        return
    mark = "%s" if dialect == "postgresql" else "?"
    txn.execute(_BATCH_TABLE[dialect])
    txn.execute("DELETE FROM evict_batch")
    txn.execute(
        f"""INSERT INTO evict_batch (id, type, kind, repository, key, digest, size)
            SELECT id, type, kind, repository, key, digest, size FROM entries
            WHERE id IN ({", ".join([mark] * len(ids))})""",
        tuple(ids),
    )
    if dialect == "sqlite":
        txn.execute("INSERT INTO bulk_delete (id) VALUES (1)")
    else:
        # a temp table has no statistics: without them PostgreSQL plans each "IN (SELECT ... FROM
        # evict_batch)" as a scan of the other table, not lookups by its index
        txn.execute("ANALYZE evict_batch")
        # and the recount's correlated subqueries look costly enough to the planner that it JIT-compiles
        # them: about 0.4 s per statement, far more than running them (transaction-local, like the guard)
        txn.execute("SELECT set_config('jit', 'off', true), set_config('harbor_cache.bulk_delete', 'on', true)")
    for statement in [*_TOTALS, *_search(dialect)]:
        txn.execute(statement)
    txn.execute("DELETE FROM entries WHERE id IN (SELECT id FROM evict_batch)")
    for statement in _AFTER:
        txn.execute(statement)
    if dialect == "sqlite":
        txn.execute("DELETE FROM bulk_delete")
    else:
        txn.execute("SELECT set_config('harbor_cache.bulk_delete', 'off', true)")
    txn.execute("DELETE FROM evict_batch")
