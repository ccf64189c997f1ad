"""The reactor-lag probe: how late the reactor runs a timer due every 10 ms.

Whatever runs on the reactor thread for long (a big JSON body encoded
inline, a loop over a million rows) delays every other request and every
timer by as much; this measures that delay from the inside, so a benchmark
(bench/scale_bench.py) or an operator can read it from /metrics:
``harbor_cache_reactor_lag_seconds`` (a histogram of each tick's lateness)
and ``harbor_cache_reactor_lag_max_seconds`` (the worst since start).
Opt-in (``[server] reactor_lag_probe``): a timer 100 times a second costs
little, but not nothing.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from harbor_cache.metrics import Metrics

INTERVAL = 0.01


class ReactorLagProbe:
    """A `LoopingCall` every `INTERVAL` seconds that records how much later than due each tick ran."""

    def __init__(self, clock: IReactorTime, metrics: Metrics, interval: float = INTERVAL) -> None:
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self.worst = 0.0
        self._due = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def start(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now = self.clock.seconds()
        lateness = max(0.0, now - self._due)
        # LoopingCall skips the ticks a stall swallowed and keeps its grid; the next one is due one interval on.
        self._due = now + self.interval - (lateness % self.interval)
        self.metrics.reactor_lag.observe(lateness)
        if lateness > self.worst:
            self.worst = lateness
            self.metrics.reactor_lag_max.set(lateness)
