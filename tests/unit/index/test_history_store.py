"""``stats_buckets``: two nodes' flushes add up, reads by range, pruning; on sqlite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.history import HOUR, MINUTE, StatsHistory
from harbor_cache.index import Index
from harbor_cache.testing import InlinePool, resolved
from tests.unit.base import postgres_pool

T0 = 1_700_006_400


class HistoryStoreTests(SynchronousTestCase):
    def make_pool(self) -> Any:
        pool = InlinePool(self.mktemp())
        self.addCleanup(pool.close)
        return pool

    def setUp(self) -> None:
        self.index = Index(self.make_pool())
        resolved(Deferred.fromCoroutine(self.index.migrate()))

    def rows(self, granularity: int, since: int = 0, until: int = 2**40) -> list[tuple[int, str, str, int]]:
        got = resolved(Deferred.fromCoroutine(self.index.stats_between(granularity, since, until)))
        return [(r.bucket_start, r.kind, r.label, r.value) for r in got]

    def test_two_nodes_add_up(self) -> None:
        """Two nodes (two StatsHistory on one index) counting the same minute: the stored value is the sum."""
        clock = Clock()
        clock.advance(T0 + 5)
        a, b = StatsHistory(self.index, clock), StatsHistory(self.index, clock)
        a.request("hit", 1000)
        b.request("hit", 500)
        b.request("joined", 10)
        resolved(Deferred.fromCoroutine(a.flush()))
        resolved(Deferred.fromCoroutine(b.flush()))
        expected = [
            (T0, "requests", "hit", 2),
            (T0, "requests", "joined", 1),
            (T0, "served_bytes", "hit", 1500),
            (T0, "served_bytes", "joined", 10),
        ]
        self.assertEqual(self.rows(MINUTE), expected)
        self.assertEqual(self.rows(HOUR), expected)
        series = resolved(Deferred.fromCoroutine(a.series("hour")))
        self.assertEqual(series["totals"]["requests"], 3)

    def test_upsert_adds_and_ranges_are_half_open(self) -> None:
        add = self.index.add_stats
        resolved(
            Deferred.fromCoroutine(add([(MINUTE, T0, "requests", "hit", 2), (MINUTE, T0 + 60, "requests", "hit", 1)]))
        )
        resolved(Deferred.fromCoroutine(add([(MINUTE, T0, "requests", "hit", 3), (HOUR, T0, "requests", "hit", 9)])))
        self.assertEqual(self.rows(MINUTE), [(T0, "requests", "hit", 5), (T0 + 60, "requests", "hit", 1)])
        self.assertEqual(self.rows(MINUTE, T0, T0 + 60), [(T0, "requests", "hit", 5)])
        self.assertEqual(self.rows(HOUR), [(T0, "requests", "hit", 9)])

    def test_big_values_fit(self) -> None:
        """Byte counts past 2**31 (INTEGER is BIGINT on PostgreSQL)."""
        big = 5 * 2**40
        resolved(Deferred.fromCoroutine(self.index.add_stats([(HOUR, T0, "served_bytes", "hit", big)])))
        resolved(Deferred.fromCoroutine(self.index.add_stats([(HOUR, T0, "served_bytes", "hit", big)])))
        self.assertEqual(self.rows(HOUR), [(T0, "served_bytes", "hit", 2 * big)])

    def test_prune_only_touches_one_granularity(self) -> None:
        rows = [(MINUTE, T0, "requests", "hit", 1), (MINUTE, T0 + 60, "requests", "hit", 1)]
        resolved(Deferred.fromCoroutine(self.index.add_stats([*rows, (HOUR, T0, "requests", "hit", 2)])))
        self.assertEqual(resolved(Deferred.fromCoroutine(self.index.prune_stats(MINUTE, T0 + 60))), 1)
        self.assertEqual(self.rows(MINUTE), [(T0 + 60, "requests", "hit", 1)])
        self.assertEqual(self.rows(HOUR), [(T0, "requests", "hit", 2)])


class HistoryStoreOnPostgresTests(HistoryStoreTests):
    """The same on PostgreSQL (the UPSERT's ``stats_buckets.value + excluded.value``, BIGINT values)."""

    def make_pool(self) -> Any:
        return postgres_pool(self)
