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
        # minute -> kind -> label -> count, since the last flush
        self._pending: dict[int, dict[str, dict[str, int]]] = {}
        # The current minute's bounds and its "requests" / "served_bytes" dicts: a request costs one clock
        # read, a comparison and one or two dict updates (no key tuple built per request).
        self._minute_start = 0.0
        self._minute_end = 0.0
        self._requests: dict[str, int] = {}
        self._served: dict[str, int] = {}
        self._pruned_at: float | None = None

    def _minute(self, now: float) -> dict[str, dict[str, int]]:
        """The counters of the minute ``now`` is in (and make it the current one)."""
        minute = int(now) // MINUTE * MINUTE
        kinds = self._pending.setdefault(minute, {})
        self._minute_start, self._minute_end = float(minute), float(minute + MINUTE)
        self._requests = kinds.setdefault("requests", {})
        self._served = kinds.setdefault("served_bytes", {})
        return kinds

    def count(self, kind: str, label: str, delta: int = 1) -> None:
        """Add ``delta`` to ``kind``/``label`` in the current minute (memory only)."""
        labels = self._minute(self._clock.seconds()).setdefault(kind, {})
        labels[label] = labels.get(label, 0) + delta

    def request(self, cache_status: str, sent_bytes: int) -> None:
        """One answered content request (from the site's log): its cache status and body bytes."""
        now = self._clock.seconds()
        if not self._minute_start <= now < self._minute_end:
            self._minute(now)
        counts = self._requests
        counts[cache_status] = counts.get(cache_status, 0) + 1
        if sent_bytes:
            served = self._served
            served[cache_status] = served.get(cache_status, 0) + sent_bytes

    def _take(self) -> dict[tuple[int, str, str], int]:
        """Everything pending, as (minute, kind, label) -> count; memory starts over."""
        pending, self._pending = self._pending, {}
        self._minute_end = 0.0  # the next request finds its minute in the new dict
        return {
            (minute, kind, label): value
            for minute, kinds in pending.items()
            for kind, labels in kinds.items()
            for label, value in labels.items()
            if value
        }

    def _give_back(self, counts: dict[tuple[int, str, str], int]) -> None:
        """Counts a failed flush did not write, back in memory (the oldest dropped past `MAX_PENDING`)."""
        merged = self._take()
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value
        if len(merged) > MAX_PENDING:
            log.warn("traffic history: {n} counters wait for the index; dropping the oldest", n=len(merged))
            for key in sorted(merged)[: len(merged) - MAX_PENDING]:
                del merged[key]
        for (minute, kind, label), value in merged.items():
            labels = self._pending.setdefault(minute, {}).setdefault(kind, {})
            labels[label] = labels.get(label, 0) + value

    @property
    def pending(self) -> int:
        """How many (minute, kind, label) counters wait for the next flush."""
        return sum(1 for kinds in self._pending.values() for labels in kinds.values() for v in labels.values() if v)

    async def flush(self) -> int:
        """Add the accumulated counters to the index; returns how many rows were written.

        On failure the counts are kept for the next flush (so an index
        outage delays the history, it does not lose it), up to `MAX_PENDING`
        keys; past that the oldest are dropped with a warning.
        """
        counts = self._take()
        if not counts:
            await self._prune_if_due()
            return 0
        hours: dict[tuple[int, str, str], int] = {}
        rows: list[tuple[int, int, str, str, int]] = []
        for (minute, kind, label), value in counts.items():
            rows.append((MINUTE, minute, kind, label, value))
            hour_key = (minute // HOUR * HOUR, kind, label)
            hours[hour_key] = hours.get(hour_key, 0) + value
        rows.extend((HOUR, hour, kind, label, value) for (hour, kind, label), value in hours.items())
        try:
            await self._index.add_stats(rows)
        except Exception as e:
            if not isinstance(e, IndexUnavailable):  # (the index logs its outage once)
                log.failure("flushing the traffic history failed; will retry")
            self._give_back(counts)
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
