"""Traffic history in time buckets (table ``stats_buckets``): what the dashboard's charts read.

Each node keeps its counters in memory (`core.operations.history`) and adds
them here every few seconds, one UPSERT per (granularity, bucket, kind,
label) that *adds* to the stored value, so nodes sharing the index add up
and a restart loses nothing already flushed.  Two granularities are kept
side by side (minute rows for the last day, hour rows for the week) rather
than rolled up, so no job has to move rows between them; old rows are
deleted by `prune_stats`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all


@dataclass(frozen=True)
class StatsBucket:
    """One stored counter: ``value`` of ``kind``/``label`` in the bucket starting at ``bucket_start``."""

    bucket_start: int
    kind: str
    label: str
    value: int


class HistoryStore(Store):
    """The ``stats_buckets`` table."""

    async def add_stats(self, rows: Iterable[tuple[int, int, str, str, int]]) -> None:
        """Add (granularity, bucket_start, kind, label, delta) to the stored buckets, in one transaction."""
        batch = list(rows)
        if not batch:
            return

        def _txn(txn: Cursor) -> None:
            for row in batch:
                self._exec(
                    txn,
                    """INSERT INTO stats_buckets (granularity, bucket_start, kind, label, value)
                       VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT (granularity, bucket_start, kind, label)
                       DO UPDATE SET value = stats_buckets.value + excluded.value""",
                    row,
                )

        await self._run("add_stats", _txn)

    async def stats_between(self, granularity: int, since: int, until: int) -> list[StatsBucket]:
        """The buckets of one granularity starting in [since, until), oldest first."""

        def _txn(txn: Cursor) -> list[StatsBucket]:
            self._exec(
                txn,
                """SELECT bucket_start, kind, label, value FROM stats_buckets
                   WHERE granularity = ? AND bucket_start >= ? AND bucket_start < ?
                   ORDER BY bucket_start, kind, label""",
                (granularity, since, until),
            )
            return fetch_all(txn, StatsBucket)

        return await self._read("stats_between", _txn)

    async def prune_stats(self, granularity: int, before: int) -> int:
        """Delete the buckets of one granularity that start before ``before``; returns how many."""

        def _txn(txn: Cursor) -> int:
            self._exec(
                txn, "DELETE FROM stats_buckets WHERE granularity = ? AND bucket_start < ?", (granularity, before)
            )
            return txn.rowcount

        return await self._run("prune_stats", _txn)
