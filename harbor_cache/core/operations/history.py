"""Traffic history for the dashboard's charts: counters in time buckets, kept in the index.

Why buckets in the index and not Prometheus: the charts must survive a
restart and add up over the nodes sharing an index, and must not depend on a
scraper being set up.  Each request only increments an in-memory counter
(`count`, `request`: one dict update keyed by the minute); `flush` (a timer
every `FLUSH_SECONDS`, and at stop) adds what accumulated to the index, one
UPSERT per (granularity, bucket, kind, label), so several nodes flushing the
same minute add up.  Minute rows are kept `KEEP_MINUTES` seconds (the hour
and day charts), hour rows `KEEP_HOURS` (the week chart); older rows are
pruned by the flush at most once an hour.

Kinds and labels (labels come from bounded sets: cache statuses of the
access line, configured upstream names):

- ``requests`` / cache status: requests answered with content
- ``served_bytes`` / cache status: body bytes sent for them
- ``upstream_bytes`` / upstream: body bytes received from upstreams
- ``upstream_errors`` / upstream: failed upstream requests
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from harbor_cache.errors import IndexUnavailable

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

log = Logger()

MINUTE = 60
HOUR = 3600
#: how often each node adds its in-memory counters to the index
FLUSH_SECONDS = 10.0
#: how long minute buckets are kept (a day, plus an hour of slack)
KEEP_MINUTES = 25 * HOUR
#: how long hour buckets are kept (a week, plus a day of slack)
KEEP_HOURS = 8 * 24 * HOUR
# Pending (minute, kind, label) keys past which counts are flushed at once (a bound on memory during an outage).
MAX_PENDING = 10_000

KINDS = ("requests", "served_bytes", "upstream_bytes", "upstream_errors")


@dataclass(frozen=True)
class Range:
    """One chart range: which granularity is read, over how long, folded into which step."""

    granularity: int
    span: int
    step: int


RANGES: dict[str, Range] = {
    "hour": Range(MINUTE, HOUR, MINUTE),
    "day": Range(MINUTE, 24 * HOUR, 5 * MINUTE),
    "week": Range(HOUR, 7 * 24 * HOUR, HOUR),
}


class StatsHistory:
    """This node's counters since the last flush, and the series the dashboard reads."""

    def __init__(self, index: Index, clock: IReactorTime) -> None:
        self._index = index
        self._clock = clock
        self._pending: dict[tuple[int, str, str], int] = {}
        self._pruned_at: float | None = None

    def count(self, kind: str, label: str, delta: int = 1) -> None:
        """Add ``delta`` to ``kind``/``label`` in the current minute (memory only)."""
        key = (int(self._clock.seconds()) // MINUTE * MINUTE, kind, label)
        pending = self._pending
        pending[key] = pending.get(key, 0) + delta

    def request(self, cache_status: str, sent_bytes: int) -> None:
        """One answered content request (from the site's log): its cache status and body bytes."""
        minute = int(self._clock.seconds()) // MINUTE * MINUTE
        pending = self._pending
        key = (minute, "requests", cache_status)
        pending[key] = pending.get(key, 0) + 1
        if sent_bytes:
            key = (minute, "served_bytes", cache_status)
            pending[key] = pending.get(key, 0) + sent_bytes

    @property
    def pending(self) -> int:
        """How many (minute, kind, label) counters wait for the next flush."""
        return len(self._pending)

    async def flush(self) -> int:
        """Add the accumulated counters to the index; returns how many rows were written.

        On failure the counts are kept for the next flush (so an index
        outage delays the history, it does not lose it), up to `MAX_PENDING`
        keys; past that the oldest are dropped with a warning.
        """
        if not self._pending:
            await self._prune_if_due()
            return 0
        pending, self._pending = self._pending, {}
        hours: dict[tuple[int, str, str], int] = {}
        rows: list[tuple[int, int, str, str, int]] = []
        for (minute, kind, label), value in pending.items():
            rows.append((MINUTE, minute, kind, label, value))
            hour_key = (minute // HOUR * HOUR, kind, label)
            hours[hour_key] = hours.get(hour_key, 0) + value
        rows.extend((HOUR, hour, kind, label, value) for (hour, kind, label), value in hours.items())
        try:
            await self._index.add_stats(rows)
        except Exception as e:
            if not isinstance(e, IndexUnavailable):  # (the index logs its outage once)
                log.failure("flushing the traffic history failed; will retry")
            for key, value in pending.items():
                self._pending[key] = self._pending.get(key, 0) + value
            if len(self._pending) > MAX_PENDING:
                log.warn("traffic history: {n} counters wait for the index; dropping the oldest", n=len(self._pending))
                for key in sorted(self._pending)[: len(self._pending) - MAX_PENDING]:
                    del self._pending[key]
            return 0
        await self._prune_if_due()
        return len(rows)

    async def _prune_if_due(self) -> None:
        now = self._clock.seconds()
        if self._pruned_at is not None and now - self._pruned_at < HOUR:
            return
        self._pruned_at = now
        try:
            await self._index.prune_stats(MINUTE, int(now) - KEEP_MINUTES)
            await self._index.prune_stats(HOUR, int(now) - KEEP_HOURS)
        except Exception as e:
            if not isinstance(e, IndexUnavailable):
                log.failure("pruning the traffic history failed")

    async def series(self, range_name: str) -> dict[str, Any]:
        """The charts' data for one of `RANGES` (this node's counts flushed first, so they are included).

        ``buckets`` are the start times (epoch seconds) of the steps, oldest
        first, the last one the step now under way; every series has one
        value per bucket.  ``totals`` sum the whole range; ``saved_bytes`` is
        what was served beyond what was fetched upstream.
        """
        spec = RANGES[range_name]
        await self.flush()
        now = int(self._clock.seconds())
        end = now // spec.step * spec.step + spec.step
        start = end - spec.span
        count = spec.span // spec.step
        rows = await self._index.stats_between(spec.granularity, start, end)
        series: dict[str, dict[str, list[int]]] = {kind: {} for kind in KINDS}
        for row in rows:
            values = series.setdefault(row.kind, {}).setdefault(row.label, [0] * count)
            values[(row.bucket_start - start) // spec.step] += row.value
        totals = {kind: sum(sum(v) for v in series.get(kind, {}).values()) for kind in KINDS}
        served, upstream = totals["served_bytes"], totals["upstream_bytes"]
        saved = max(served - upstream, 0)
        return {
            "range": range_name,
            "step_seconds": spec.step,
            "buckets": [start + i * spec.step for i in range(count)],
            "series": {kind: dict(sorted(labels.items())) for kind, labels in series.items()},
            "totals": {
                **totals,
                "saved_bytes": saved,
                "saved_ratio": round(saved / served, 4) if served else None,
            },
        }
