"""Batched bookkeeping for the warm path: no SQL write per hit.

Hits only touch memory here; `flush` (run every few seconds by a
LoopingCall, and at shutdown) writes the accumulated last-access times, hit
counts and hit/miss counters in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from harbor_cache.errors import IndexUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.operations.history import StatsHistory
    from harbor_cache.index import Index
    from harbor_cache.index.rows import Entry
    from harbor_cache.metrics import Metrics

log = Logger()


class AccessRecorder:
    def __init__(self, index: Index, clock: IReactorTime) -> None:
        self._index = index
        self._clock = clock
        self._touches: dict[int, tuple[float, int]] = {}
        self._counters: dict[str, int] = {}
        # Counters that are persisted, as loaded at start plus what happened since.
        self.totals: dict[str, int] = {}
        # The traffic history upstream errors are also counted in (set by the service).
        self.history: StatsHistory | None = None

    async def load(self) -> None:
        self.totals = await self._index.get_counters()

    def touch(self, entry_id: int, reads: int = 1) -> None:
        _, count = self._touches.get(entry_id, (0.0, 0))
        self._touches[entry_id] = (self._clock.seconds(), count + reads)

    def count(self, name: str, delta: int = 1) -> None:
        self._counters[name] = self._counters.get(name, 0) + delta
        self.totals[name] = self.totals.get(name, 0) + delta

    def forget(self, entry_ids: Iterable[int]) -> None:
        for entry_id in entry_ids:
            self._touches.pop(entry_id, None)

    async def flush(self) -> int:
        """Write what accumulated; returns how many entries were touched."""
        if not self._touches and not self._counters:
            return 0
        touches, self._touches = self._touches, {}
        counters, self._counters = self._counters, {}
        try:
            await self._index.record_access(touches, counters)
        except Exception as e:
            if not isinstance(e, IndexUnavailable):  # (the index logs its outage once)
                log.failure("flushing access times failed; will retry")
            for k, v in touches.items():
                when, count = self._touches.get(k, (0.0, 0))
                self._touches[k] = (max(when, v[0]), count + v[1])
            for name, n in counters.items():
                self._counters[name] = self._counters.get(name, 0) + n
            return 0
        return len(touches)


def hit_source(entry: Entry) -> str:
    """The ``source`` label of a hit on an index entry: the upstream it came from.

    Upstream names are configured, so the label set stays bounded.  Pushed
    content has no upstream ("hosted"); a proxied row that does not say
    (written before rows named their upstream) is "unknown".
    """
    if entry.upstream:
        return entry.upstream
    return "hosted" if entry.kind == "hosted" else "unknown"


class Outcomes:
    """What a front's cache core reports per request: hits, misses, upstream errors.

    One place for the three sinks each outcome goes to: the persisted
    counters (AccessRecorder, for /api/v1/cache/stats), the seed's plain
    counters, and the per-front, per-source labelled breakdown.
    """

    def __init__(self, front: str, access: AccessRecorder, metrics: Metrics) -> None:
        self.front = front
        self._access = access
        self._metrics = metrics
        self._source_hits: dict[str, Any] = {}  # labelled children, looked up once per source

    def hit(self, entry_id: int | None, source: str) -> None:
        if entry_id is not None:
            self._access.touch(entry_id)
        self._access.count("hits")
        self._metrics.hits.inc()
        child = self._source_hits.get(source)
        if child is None:
            child = self._source_hits[source] = self._metrics.source_hits.labels(self.front, source)
        child.inc()

    def served(self, entry_id: int, reads: int) -> None:
        """``reads`` clients got an entry while it was fetched (a miss and its coalesced joiners).

        Not hits (the hit/miss counters stay as they were), but reads of the entry: its access
        count and last access include them, as the console's hit column and LFU expect.
        """
        self._access.touch(entry_id, reads)

    def miss(self, source: str) -> None:
        self._access.count("misses")
        self._metrics.misses.inc()
        self._metrics.source_misses.labels(self.front, source).inc()

    def upstream_error(self, source: str, reason: str) -> None:
        self._metrics.upstream_errors.labels(self.front, source, reason).inc()
        history = self._access.history
        if history is not None:
            history.count("upstream_errors", source)


class NegativeCache:
    """Upstream 404s remembered for a while, so a missing thing costs one upstream request."""

    def __init__(self, clock: IReactorTime, ttl: Callable[[], float]) -> None:
        self._clock = clock
        self._ttl = ttl  # a callable: the TTL is a runtime setting
        self._until: dict[object, float] = {}

    def remember(self, key: object) -> None:
        ttl = self._ttl()
        if ttl > 0:
            self._until[key] = self._clock.seconds() + ttl
            if len(self._until) > 100_000:
                self._prune()

    def known_missing(self, key: object) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self._clock.seconds():
            del self._until[key]
            return False
        return True

    def forget(self, key: object) -> None:
        self._until.pop(key, None)

    def clear(self) -> None:
        """Forget every remembered 404 (the upstreams changed: their answers may too)."""
        self._until.clear()

    def _prune(self) -> None:
        now = self._clock.seconds()
        self._until = {k: v for k, v in self._until.items() if v > now}
