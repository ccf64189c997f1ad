"""The reactor-lag probe: a tick's lateness lands in harbor_cache_reactor_lag_seconds, the worst in the max gauge."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.http.reactor_lag import ReactorLagProbe
from harbor_cache.metrics import Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value = metrics.registry.get_sample_value(name, labels or None)
    return value


class ReactorLagProbeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.metrics = Metrics()
        self.probe = ReactorLagProbe(self.clock, self.metrics)
        self.probe.start()
        self.addCleanup(self.probe.stop)

    def test_ticks_on_time_record_no_lag(self):
        for _ in range(10):
            self.clock.advance(0.01)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_seconds_count"), 10)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_seconds_sum"), 0)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_max_seconds"), 0)

    def test_a_stall_is_measured_once_and_the_next_tick_is_on_time_again(self):
        """The reactor busy for 0.3 s: that tick is 0.29 s late (the worst); the next ones are on time again."""
        self.clock.advance(0.01)
        self.clock.advance(0.3)  # one call, as a reactor that ran something for 0.3 s
        self.assertAlmostEqual(sample(self.metrics, "harbor_cache_reactor_lag_max_seconds"), 0.29, places=6)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_seconds_bucket", le="0.25"), 1)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_seconds_bucket", le="0.5"), 2)
        for _ in range(5):
            self.clock.advance(0.01)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_seconds_bucket", le="0.005"), 6)
        self.assertAlmostEqual(self.probe.worst, 0.29, places=6)

    def test_stop_ends_the_ticks(self):
        self.probe.stop()
        self.clock.advance(1)
        self.assertEqual(sample(self.metrics, "harbor_cache_reactor_lag_seconds_count"), 0)
