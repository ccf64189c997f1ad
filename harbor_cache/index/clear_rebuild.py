"""A clear of most of the index in one transaction: derived tables rebuilt from what stays, not edited per row.

`bulk_delete` deletes a batch of rows and edits the maintained totals
(`totals_schema`) and the search table (`search_schema`) for them.  A clear
(``DELETE /api/v1/cache``) in batches of thousands costs about 120 µs a row
at a million entries on sqlite (bench/RESULTS.md, "Issue 30: clear at 1M,
round 2"): each batch dirties a page of every random-key B-tree (five indexes
of entries, digest_refs' key, four of search_items, the FTS5 trigram index)
per row or so, and each commit writes those pages to the WAL again, for
each of hundreds of batches.  When the clear removes most rows, it is
cheaper to do it in ONE transaction and rebuild what is derived from the rows
that stay (hosted entries and tags):

* ``entries``: one ``DELETE ... WHERE kind = 'proxy'`` with the per-row
  triggers guarded off (the ``bulk_delete`` row, as in a batch);
* ``digest_refs``: the digests no hosted row references go (all their rows
  were proxy rows); the others lose their proxy references and get their size
  recounted from the hosted rows;
* ``entry_totals``: the proxy counts are zero; ``byte_totals`` is summed
  again from ``digest_refs`` (a hundred thousand rows at most after a clear);
* ``search_items``: the rows of the deleted manifests and Maven files go,
  image rows lose their manifests' references (and go at zero), exactly as
  the per-row triggers would; the FTS5 index is rebuilt from its content
  table (``'rebuild'``: it re-reads the rows that stay) instead of a delete
  marker per trigram of every deleted row.

Every statement runs in the transaction that deletes the rows, so a crash
leaves either the whole clear or none of it, and no other writer ever sees
the tables half-way (sqlite has one writer; another process's write waits on
the database lock, up to its busy timeout).  The deleted rows' id, type,
repository, key and digest are kept in a temp table of the writer's
connection (``cleared_rows``) for the caller to page through afterwards
(caches to tell, files to unlink); lost with the connection, those files are
what the orphan sweep removes.

sqlite only: PostgreSQL's statement-level triggers already count a batch in
a few statements, and a transaction that long would hold row locks other
nodes wait on; it keeps the batches.  tests/unit/index/test_bulk_delete checks
the result equals the per-row path's.
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.totals_schema import _recount

CLEARED_TABLE = """CREATE TEMP TABLE IF NOT EXISTS cleared_rows (
    id INTEGER PRIMARY KEY, type TEXT, repository TEXT, key TEXT, digest TEXT)"""

_REBUILD = [
    "DELETE FROM cleared_rows",
    """INSERT INTO cleared_rows (id, type, repository, key, digest)
        SELECT id, type, repository, key, digest FROM entries WHERE kind = 'proxy'""",
    "INSERT INTO bulk_delete (id) VALUES (1)",
    "DELETE FROM entries WHERE kind = 'proxy'",
    # totals: what a digest_refs row counts is its entries; with every proxy row gone only the hosted ones
    "DELETE FROM digest_refs WHERE hosted_refs <= 0",
    _recount("proxy_refs > 0").replace("UPDATE digest_refs SET", "UPDATE digest_refs SET proxy_refs = 0,", 1),
    "UPDATE entry_totals SET entries = 0 WHERE kind = 'proxy'",
    """UPDATE byte_totals SET
        total_size = (SELECT COALESCE(SUM(size), 0) FROM digest_refs),
        evictable_size = (SELECT COALESCE(SUM(CASE WHEN hosted_refs = 0 THEN size ELSE 0 END), 0) FROM digest_refs)
        WHERE id = 1""",
    # search: the per-row triggers' deletions for the whole set, then the text index from what is left
    """DELETE FROM search_items WHERE id IN (SELECT s.id FROM cleared_rows AS b
        JOIN search_items AS s ON s.kind = b.type AND s.repository = b.repository AND s.src = b.key
        WHERE b.type IN ('manifest', 'maven'))""",
    """UPDATE search_items SET refs = search_items.refs - m.n
        FROM (SELECT repository, COUNT(*) AS n FROM cleared_rows WHERE type = 'manifest' GROUP BY repository) AS m
        WHERE search_items.kind = 'image' AND search_items.src = '' AND search_items.repository = m.repository""",
    """DELETE FROM search_items WHERE kind = 'image' AND src = '' AND refs <= 0
        AND repository IN (SELECT repository FROM cleared_rows WHERE type = 'manifest')""",
    "INSERT INTO search_fts (search_fts) VALUES ('rebuild')",
    "DELETE FROM bulk_delete",
]


def worth_rebuilding(proxy: int, entries: int, min_rows: int) -> bool:
    """A clear of ``proxy`` of ``entries`` rows is done by rebuilding when it removes most of them.

    The rebuild costs what stays as well (the text index is re-read whole):
    with few proxy rows, or a hosted-heavy index, batches are cheaper.
    """
    return proxy >= min_rows and proxy * 2 >= entries


def clear_rebuild_txn(txn: Cursor) -> int:
    """Delete every proxy entry (sqlite), rebuilding the derived tables; the number of entries deleted.

    The deleted rows are left in the temp table ``cleared_rows`` (`cleared_page_txn`).
    """
    txn.execute(CLEARED_TABLE)
    for statement in _REBUILD:
        txn.execute(statement)
    txn.execute("SELECT COUNT(*) FROM cleared_rows")
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def cleared_page_txn(txn: Cursor, after: int, limit: int) -> list[tuple[int, str, str, str, str]]:
    """The next ``limit`` rows of ``cleared_rows`` after id ``after``: (id, type, repository, key, digest).

    An empty list when there are none left, or no such table (another connection, or it was lost).
    """
    txn.execute(CLEARED_TABLE)
    txn.execute(
        "SELECT id, type, repository, key, digest FROM cleared_rows WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    )
    return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in txn.fetchall()]
