"""The traffic history's in-memory counters, their flush into time buckets, pruning and the chart series.

`StatsHistory` on a real sqlite index (`migrated_index`) and a Clock; the
SQL itself on both engines is `tests.unit.index.test_history_store`, the
route and the hooks in a whole app `tests.unit.api.test_history_api`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from harbor_cache.core.operations import history as history_module
from harbor_cache.core.operations.history import HOUR, KEEP_HOURS, KEEP_MINUTES, MINUTE, StatsHistory
from harbor_cache.errors import IndexUnavailable
from tests.unit.base import migrated_index

# A whole hour (and day) boundary, so bucket arithmetic is easy to read.
T0 = 1_700_006_400
assert T0 % (24 * HOUR) == 0


class StatsHistoryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.index = migrated_index(self)
        self.history = StatsHistory(self.index, self.clock)

    def run_(self, coro: Any) -> Any:
        return self.successResultOf(defer.Deferred.fromCoroutine(coro))

    def rows(self, granularity: int) -> list[tuple[int, str, str, int]]:
        got = self.run_(self.index.stats_between(granularity, 0, 2**40))
        return [(r.bucket_start, r.kind, r.label, r.value) for r in got]

    def test_counts_stay_in_memory_until_the_flush(self) -> None:
        """A request only touches memory; the flush writes one row per minute bucket and one per hour."""
        self.history.request("hit", 100)
        self.history.request("hit", 50)
        self.history.request("miss", 0)
        self.assertEqual(self.rows(MINUTE), [])
        self.assertEqual(self.history.pending, 3)  # hit requests, hit bytes, miss requests (no bytes: no row)
        self.assertEqual(self.run_(self.history.flush()), 6)
        expected = [(T0, "requests", "hit", 2), (T0, "requests", "miss", 1), (T0, "served_bytes", "hit", 150)]
        self.assertEqual(self.rows(MINUTE), expected)
        self.assertEqual(self.rows(HOUR), expected)
        self.assertEqual(self.history.pending, 0)
        self.assertEqual(self.run_(self.history.flush()), 0)

    def test_minutes_are_separate_buckets_and_add_up_in_the_hour(self) -> None:
        """Counts are bucketed by the minute they happened in, even when flushed later together."""
        self.history.count("upstream_bytes", "hub", 10)
        self.clock.advance(59)
        self.history.count("upstream_bytes", "hub", 1)
        self.clock.advance(1)
        self.history.count("upstream_bytes", "hub", 5)
        self.clock.advance(HOUR)
        self.history.count("upstream_bytes", "hub", 7)
        self.run_(self.history.flush())
        self.assertEqual(
            self.rows(MINUTE),
            [
                (T0, "upstream_bytes", "hub", 11),
                (T0 + MINUTE, "upstream_bytes", "hub", 5),
                (T0 + HOUR + MINUTE, "upstream_bytes", "hub", 7),
            ],
        )
        self.assertEqual(self.rows(HOUR), [(T0, "upstream_bytes", "hub", 16), (T0 + HOUR, "upstream_bytes", "hub", 7)])

    def test_a_second_flush_adds_to_the_same_bucket(self) -> None:
        self.history.request("hit", 10)
        self.run_(self.history.flush())
        self.clock.advance(10)
        self.history.request("hit", 10)
        self.run_(self.history.flush())
        self.assertEqual(self.rows(MINUTE), [(T0, "requests", "hit", 2), (T0, "served_bytes", "hit", 20)])

    def test_a_failed_flush_keeps_the_counts_for_the_next(self) -> None:
        """While the index does not answer, nothing is lost: the next flush writes the sum."""
        real = self.index.add_stats

        async def down(rows: Any) -> None:
            raise IndexUnavailable("down")

        self.patch(self.index, "add_stats", down)
        self.history.request("miss", 7)
        self.assertEqual(self.run_(self.history.flush()), 0)
        self.history.request("miss", 3)
        self.patch(self.index, "add_stats", real)
        self.run_(self.history.flush())
        self.assertEqual(self.rows(MINUTE), [(T0, "requests", "miss", 2), (T0, "served_bytes", "miss", 10)])

    def test_pending_counts_are_bounded_during_an_outage(self) -> None:
        self.patch(history_module, "MAX_PENDING", 3)

        async def down(rows: Any) -> None:
            raise IndexUnavailable("down")

        self.patch(self.index, "add_stats", down)
        for _ in range(5):
            self.history.count("requests", "hit")
            self.clock.advance(MINUTE)
        self.run_(self.history.flush())
        self.assertEqual(self.history.pending, 3)

    def test_old_buckets_are_pruned_by_the_flush(self) -> None:
        """Minute rows older than KEEP_MINUTES and hour rows older than KEEP_HOURS go; newer ones stay."""
        self.history.count("requests", "hit")
        self.run_(self.history.flush())  # the first flush prunes (nothing old yet)
        self.clock.advance(KEEP_MINUTES + HOUR)
        self.history.count("requests", "miss")
        self.run_(self.history.flush())
        self.assertEqual([r[2] for r in self.rows(MINUTE)], ["miss"])
        self.assertEqual([r[2] for r in self.rows(HOUR)], ["hit", "miss"])
        self.clock.advance(KEEP_HOURS + HOUR)
        self.run_(self.history.flush())
        self.assertEqual(self.rows(HOUR), [])

    def test_hour_series_has_one_value_per_minute(self) -> None:
        """range=hour: 60 minute buckets ending with the current one; this node's counts are flushed first."""
        self.history.request("hit", 1000)
        self.clock.advance(30 * MINUTE)
        self.history.request("miss", 400)
        self.history.count("upstream_bytes", "hub", 400)
        self.history.count("upstream_errors", "hub")
        series = self.run_(self.history.series("hour"))
        self.assertEqual(series["step_seconds"], MINUTE)
        self.assertEqual(len(series["buckets"]), 60)
        self.assertEqual(series["buckets"][-1], T0 + 30 * MINUTE)
        self.assertEqual(series["buckets"][-31], T0)
        hits = series["series"]["requests"]["hit"]
        self.assertEqual((hits[-31], sum(hits)), (1, 1))
        self.assertEqual(series["series"]["requests"]["miss"][-1], 1)
        self.assertEqual(series["series"]["upstream_errors"], {"hub": [0] * 59 + [1]})
        self.assertEqual(
            series["totals"],
            {
                "requests": 2,
                "served_bytes": 1400,
                "upstream_bytes": 400,
                "upstream_errors": 1,
                "saved_bytes": 1000,
                "saved_ratio": round(1000 / 1400, 4),
            },
        )

    def test_day_series_folds_minutes_into_five_minute_steps(self) -> None:
        for _minute in range(5):
            self.history.count("requests", "hit")
            self.clock.advance(MINUTE)
        series = self.run_(self.history.series("day"))
        self.assertEqual((series["step_seconds"], len(series["buckets"])), (300, 288))
        self.assertEqual(series["series"]["requests"]["hit"][-2:], [5, 0])

    def test_week_series_reads_hour_buckets(self) -> None:
        self.history.count("requests", "stale", 3)
        self.clock.advance(2 * HOUR)
        series = self.run_(self.history.series("week"))
        self.assertEqual((series["step_seconds"], len(series["buckets"])), (HOUR, 168))
        self.assertEqual(series["series"]["requests"]["stale"][-3:], [3, 0, 0])
        self.assertEqual(series["totals"]["saved_ratio"], None)  # nothing served: no ratio
        self.clock.advance(8 * 24 * HOUR)
        self.assertEqual(self.run_(self.history.series("week"))["series"]["requests"], {})

    def test_an_empty_history_has_every_kind(self) -> None:
        series = self.run_(self.history.series("hour"))
        self.assertEqual(
            series["series"], {"requests": {}, "served_bytes": {}, "upstream_bytes": {}, "upstream_errors": {}}
        )
        self.assertEqual(series["totals"]["saved_bytes"], 0)
