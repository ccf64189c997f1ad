"""CPU per deleted row on sqlite: the set-based batch (index/bulk_delete.py) against the per-row triggers.

Copies a kept index file (bench/eviction_scale_bench.py --keep), deletes
``batches`` x ``batch`` proxy rows by id either through `bulk_delete_txn`
(MODE=bulk, per-statement CPU printed) or with one plain ``DELETE ... IN``
per batch that fires every trigger (MODE=rows), and prints CPU µs per row
(process time: on a shared machine wall time measures the load).

    MODE=bulk CS=-65536 python bench/bulk_delete_profile.py /tmp/sb30/keep/100000.sqlite 2000 10
    MODE=rows CS=-2000  python bench/bulk_delete_profile.py /tmp/sb30/keep/100000.sqlite 2000 10

    MODE=rebuild CS=-262144 python bench/bulk_delete_profile.py /tmp/sb30/keep/1000000.sqlite 0 0

CS: PRAGMA cache_size; MODE=rebuild: a clear's one transaction (index/clear_rebuild.py), per statement; NOTRIG=1 drops every trigger on entries first (the floor).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harbor_cache.index import bulk_delete, clear_rebuild  # noqa: E402
from harbor_cache.index.search_schema import dialect_of_statement  # noqa: E402


class Timed:
    """A cursor that adds each statement's CPU time to ``times`` (keyed by its head)."""

    def __init__(self, cursor: sqlite3.Cursor, times: dict[str, float]) -> None:
        self.cursor, self.times = cursor, times

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def execute(self, sql: str, args: Any = ()) -> Any:
        started = time.process_time()
        out = self.cursor.execute(sql, args)
        self.times[sql[:70]] = self.times.get(sql[:70], 0.0) + time.process_time() - started
        return out


def main() -> None:
    source, batch, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    work = tempfile.mkdtemp(prefix="bulk-profile-")
    path = os.path.join(work, "index.sqlite")
    shutil.copyfile(source, path)
    conn = sqlite3.connect(path, isolation_level=None)
    pragmas = ["journal_mode=WAL", "synchronous=NORMAL", "cache_size=" + os.environ.get("CS", "-2000")]
    if os.environ.get("MMAP"):
        pragmas.append("mmap_size=" + os.environ["MMAP"])
    if os.environ.get("WALCP"):
        pragmas.append("wal_autocheckpoint=" + os.environ["WALCP"])
    for pragma in pragmas:
        conn.execute("PRAGMA " + pragma)
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'bulk_delete'").fetchone():
        for statement in bulk_delete.BULK_DELETE_MIGRATION:
            if dialect_of_statement(statement) == "sqlite":
                conn.execute(statement.split("\n", 1)[1])
    if os.environ.get("NOTRIG"):
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'entries'"):
            conn.execute(f"DROP TRIGGER {name}")
    times: dict[str, float] = {}
    cursor = Timed(conn.cursor(), times)
    if os.environ.get("MODE") == "rebuild":  # the clear's one transaction (index/clear_rebuild.py), per statement
        started = time.process_time()
        cursor.execute("BEGIN")
        n = clear_rebuild.clear_rebuild_txn(cursor)  # type: ignore[arg-type]
        cursor.execute("COMMIT")
        spent = time.process_time() - started
        print(f"rebuild: {n} rows, {spent:.2f} s CPU = {spent / n * 1e6:.0f} µs/row")
        for head, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:14]:
            print(f"  {seconds:7.2f} s  {head!r}")
        return
    bulk = os.environ.get("MODE", "bulk") == "bulk"
    started, last, n = time.process_time(), 0, 0
    for _ in range(batches):
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM entries WHERE +kind = 'proxy' AND id > ? ORDER BY id LIMIT ?", (last, batch)
            )
        ]
        if not ids:
            break
        last = ids[-1]
        cursor.execute("BEGIN")
        if bulk:
            bulk_delete.bulk_delete_txn("sqlite", cursor, ids)  # type: ignore[arg-type]
        else:
            cursor.execute(f"DELETE FROM entries WHERE id IN ({', '.join('?' * len(ids))})", ids)
        cursor.execute("COMMIT")
        n += len(ids)
    if os.environ.get("WALCP"):
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    spent = time.process_time() - started
    print(f"{'bulk' if bulk else 'per-row triggers'}: {n} rows, {spent:.2f} s CPU = {spent / n * 1e6:.0f} µs/row")
    for head, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {seconds / n * 1e6:7.1f} µs/row  {head!r}")
    conn.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
