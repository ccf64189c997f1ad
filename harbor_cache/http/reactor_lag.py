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

from typing import Any

from twisted.internet.interfaces import IReactorTime

from harbor_cache.metrics import Metrics

INTERVAL = 0.01


class ReactorLagProbe:
    """A timer every `INTERVAL` seconds that records how much later than due each tick ran.

    Each tick schedules the next one ``interval`` from when it ran (not on a
    fixed grid like `LoopingCall`), so a stall is measured once, in full, and
    the next tick is judged afresh.
    """

    def __init__(self, clock: IReactorTime, metrics: Metrics, interval: float = INTERVAL) -> None:
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self.worst = 0.0
        self._due = 0.0
        self._call: Any = None

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        lateness = max(0.0, self.clock.seconds() - self._due)
        self.metrics.reactor_lag.observe(lateness)
        if lateness > self.worst:
            self.worst = lateness
            self.metrics.reactor_lag_max.set(lateness)
        self._schedule()
