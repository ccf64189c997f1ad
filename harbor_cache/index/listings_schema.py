"""Migration 21 (issue 30): the indexes and the directory table that make every listing a seek.

The console's entry table pages by keyset (``ORDER BY <sort>, id`` from
where the last page stopped), so each documented sort key has an index that
ends in ``id``; a walk along it stops after one page, at any depth.  The
repository filter with the default sort (last access) has its own.

Maven browse lists one directory's children: its files through ``parent``
(the directory part of a Maven key, "" at the root; NULL for OCI rows) and
the index ``(repository, parent, key)`` over Maven rows only, and its
subdirectories through ``maven_dirs`` - one row per directory, keyed by
``(repository, parent, name)``, with the newest write below it (the seed's
``lastModified`` of a directory), inserted or raised on every Maven write
(`harbor_cache.index.listings.maven_write_txn`).  A directory whose files
are all gone stays in ``maven_dirs``; browse checks each listed directory
still holds something (one seek per listed directory, bounded by the page).

Both are back-filled from the existing rows with plain SQL that both engines
run: a key's directory is ``rtrim(key, <key without '/'>)`` less the final
slash (rtrim strips every trailing character that is not a '/'), and a
recursive query walks each directory up to the root.
"""

from __future__ import annotations


def _dir_of(column: str) -> str:
    """SQL for the directory part of a slash path ("" when it has no slash)."""
    stripped = f"rtrim({column}, replace({column}, '/', ''))"
    return f"CASE WHEN replace({column}, '/', '') = {column} THEN '' ELSE substr({stripped}, 1, length({stripped}) - 1) END"


def _name_of(column: str) -> str:
    """SQL for the last segment of a slash path."""
    stripped = f"rtrim({column}, replace({column}, '/', ''))"
    return f"CASE WHEN replace({column}, '/', '') = {column} THEN {column} ELSE substr({column}, length({stripped}) + 1) END"


#: fills ``parent`` of Maven rows that have none (rows written before migration 21, or by a bulk tool)
PARENT_BACKFILL = f"UPDATE entries SET parent = {_dir_of('key')} WHERE type = 'maven' AND parent IS NULL"

#: fills ``maven_dirs`` from the Maven rows' ``parent`` (every directory up to the root, newest write below it)
DIRS_BACKFILL = f"""WITH RECURSIVE d(repository, path, modified) AS (
            SELECT repository, parent, MAX(COALESCE(upstream_modified, created_at))
            FROM entries WHERE type = 'maven' AND parent <> '' GROUP BY repository, parent
            UNION ALL
            SELECT repository, {_dir_of("path")}, modified FROM d WHERE replace(path, '/', '') <> path
        )
        INSERT INTO maven_dirs (repository, parent, name, last_modified)
        SELECT repository, {_dir_of("path")}, {_name_of("path")}, MAX(modified) FROM d GROUP BY repository, path"""

LISTINGS_MIGRATION: list[str] = [
    "CREATE INDEX entries_page_access ON entries (last_access, id)",
    "CREATE INDEX entries_page_size ON entries (size, id)",
    "CREATE INDEX entries_page_hits ON entries (access_count, id)",
    "CREATE INDEX entries_page_created ON entries (created_at, id)",
    "CREATE INDEX entries_page_repository ON entries (repository, id)",
    "CREATE INDEX entries_page_repository_access ON entries (repository, last_access, id)",
    "ALTER TABLE entries ADD COLUMN parent TEXT",
    PARENT_BACKFILL,
    "CREATE INDEX entries_maven_parent ON entries (repository, parent, key) WHERE type = 'maven'",
    """CREATE TABLE maven_dirs (
        repository TEXT NOT NULL,
        parent TEXT NOT NULL,
        name TEXT NOT NULL,
        last_modified REAL NOT NULL,
        PRIMARY KEY (repository, parent, name)
    )""",
    DIRS_BACKFILL,
]
