"""Upstream health and auto-block, as Nexus does it.

Every ``upstreams.probe_interval_seconds`` each OCI upstream gets a ``GET /v2/``
probe (every ``upstreams.failing_probe_interval_seconds`` while it fails); any HTTP answer below 500 counts as reachable (401 is how a registry
asks for a token).  Probes and transport failures of real requests both count:
after ``upstreams.block_after_failures`` failures in a row an upstream is
*blocked* for ``upstreams.block_seconds``, and the OCI core skips it in its
priority fallback (what is cached is still served, stale with ``Warning``).
A success, probe or request, clears the failures and the block at once, so an
upstream that comes back is used again within a failing-probe interval.  When a cool-down
ends without a success the upstream is tried again (state ``failing``), and
one more failure blocks it for another cool-down.

Each node keeps its own health: it is what this node can reach.

Blocks and unblocks are written to the main log, in the access log's
namespace (``harbor_cache.access``: they explain the 503s and stale answers
around them; with ``[log] access_file`` they stay in the main log, as that
file holds request lines only), and to the audit log as ``upstream.block``
and ``upstream.unblock`` by no user (actor null), so the console shows when
and why an upstream was skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.logger import Logger

from harbor_cache.grammar.timestamps import iso8601

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from harbor_cache.core.operations.audit import AuditLog
    from harbor_cache.metrics import Metrics
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.upstream.registry import RegistryUpstream, UpstreamSet

log = Logger()
TICK_SECONDS = 1.0
# Blocks and unblocks are logged in the access namespace (see the module docstring).
access_log = Logger(namespace="harbor_cache.access")


@dataclass
class UpstreamHealth:
    """What this node knows about one upstream's reachability."""

    last_check: float | None = None
    latency_ms: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    blocked_until: float | None = None

    def is_blocked(self, now: float) -> bool:
        return self.blocked_until is not None and now < self.blocked_until

    def status(self, now: float) -> str:
        if self.is_blocked(now):
            return "blocked"
        if self.consecutive_failures:
            return "failing"
        return "unknown" if self.last_check is None else "healthy"

    def view(self, now: float) -> dict:
        return {
            "status": self.status(now),
            "last_check": iso8601(self.last_check),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "blocked_until": iso8601(self.blocked_until) if self.is_blocked(now) else None,
        }


class HealthMonitor:
    """Probes the OCI upstreams, records request outcomes, blocks and unblocks."""

    def __init__(
        self,
        upstreams: UpstreamSet,
        settings: RuntimeSettings,
        metrics: Metrics,
        clock: IReactorTime,
        audit: AuditLog | None = None,
    ) -> None:
        self.upstreams = upstreams  # the live UpstreamSet (replaced lists are picked up each round)
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.audit = audit  # blocks and unblocks are recorded there (None: not recorded)
        self._call: IDelayedCall | None = None
        self._health: dict[str, UpstreamHealth] = {}
        self._probing: set[str] = set()

    def health_of(self, name: str) -> UpstreamHealth:
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = UpstreamHealth()
        return health

    def is_blocked(self, upstream: RegistryUpstream) -> bool:
        return self.health_of(upstream.name).is_blocked(self.clock.seconds())

    # -- outcomes ----------------------------------------------------------

    def succeeded(self, upstream: RegistryUpstream, latency_ms: float | None = None) -> None:
        health = self.health_of(upstream.name)
        was_blocked = health.blocked_until is not None
        health.consecutive_failures = 0
        health.last_error = None
        health.blocked_until = None
        if latency_ms is not None:
            health.latency_ms = latency_ms
        if was_blocked:
            access_log.info("upstream {upstream} unblocked: it answers again", upstream=upstream.name)
            self._audit("upstream.unblock", upstream.name, None)
        self._export(upstream)

    def failed(self, upstream: RegistryUpstream, error: str) -> None:
        health = self.health_of(upstream.name)
        now = self.clock.seconds()
        health.consecutive_failures += 1
        health.last_error = error
        limit = self.settings.get("upstreams.block_after_failures")
        if limit and health.consecutive_failures >= limit and not health.is_blocked(now):
            cool_down = self.settings.get("upstreams.block_seconds")
            health.blocked_until = now + cool_down
            access_log.warn(
                "upstream {upstream} blocked for {seconds}s after {failures} failures in a row: {error}",
                upstream=upstream.name,
                seconds=cool_down,
                failures=health.consecutive_failures,
                error=error,
            )
            detail = {"seconds": cool_down, "failures": health.consecutive_failures, "error": error}
            self._audit("upstream.block", upstream.name, detail)
        self._export(upstream)

    def _audit(self, action: str, name: str, detail: dict | None) -> None:
        """An audit record, written in the background (`AuditLog.record` never fails)."""
        if self.audit is not None:
            defer.Deferred.fromCoroutine(self.audit.record(action, actor=None, target=name, detail=detail))

    def _export(self, upstream: RegistryUpstream) -> None:
        name = upstream.name
        health = self.health_of(name)
        now = self.clock.seconds()
        self.metrics.upstream_up.labels(name).set(1 if health.status(now) == "healthy" else 0)
        self.metrics.upstream_blocked.labels(name).set(1 if health.is_blocked(now) else 0)
        self.metrics.upstream_failures.labels(name).set(health.consecutive_failures)
        if health.latency_ms is not None:
            self.metrics.upstream_latency.labels(name).set(health.latency_ms / 1000)

    def forget(self, name: str) -> None:
        """Drop the health and gauges of an upstream that was removed or changed."""
        self._health.pop(name, None)
        for gauge in (
            self.metrics.upstream_up,
            self.metrics.upstream_blocked,
            self.metrics.upstream_failures,
            self.metrics.upstream_latency,
            self.metrics.upstream_ratelimit_limit,
            self.metrics.upstream_ratelimit_remaining,
        ):
            try:
                gauge.remove(name)
            except KeyError:
                pass

    # -- probes ------------------------------------------------------------

    async def probe(self, upstream: RegistryUpstream) -> None:
        started = time.monotonic()
        self.health_of(upstream.name).last_check = self.clock.seconds()
        try:
            code = await upstream.probe()
        except Exception as e:  # UpstreamError and anything the transport raises
            self.failed(upstream, str(e) or type(e).__name__)
            return
        latency = (time.monotonic() - started) * 1000
        if code >= 500:
            self.health_of(upstream.name).latency_ms = latency
            self.failed(upstream, f"GET /v2/ answered {code}")
        else:
            self.succeeded(upstream, latency)

    async def probe_all(self) -> None:
        """One round: every upstream at once (a slow one does not delay the others)."""
        await defer.DeferredList(
            [defer.Deferred.fromCoroutine(self.probe(u)) for u in list(self.upstreams.upstreams)],
            consumeErrors=True,
        )

    def start(self) -> None:
        """Probe every upstream at once, then each on its own schedule (see `_tick`)."""
        self._stopped = False
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        self._call = self.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        """Once a second: start the probes that are due.

        A healthy upstream is due every ``upstreams.probe_interval_seconds``;
        one that is failing or blocked every
        ``upstreams.failing_probe_interval_seconds`` (never less often), so a
        registry that comes back is unblocked within seconds.  Each upstream
        has at most one probe in flight, and a slow one delays no other.
        Settings are re-read at every tick.
        """
        self._call = None
        now = self.clock.seconds()
        interval = self.settings.get("upstreams.probe_interval_seconds")
        failing_interval = min(interval, self.settings.get("upstreams.failing_probe_interval_seconds"))
        for upstream in list(self.upstreams.upstreams):
            if upstream.name in self._probing:
                continue
            health = self.health_of(upstream.name)
            if health.blocked_until is not None and not health.is_blocked(now):
                self._export(upstream)  # a cool-down ended: the gauges say so
            period = failing_interval if health.consecutive_failures else interval
            if health.last_check is not None and now < health.last_check + period:
                continue
            self._probing.add(upstream.name)
            d = defer.Deferred.fromCoroutine(self.probe(upstream))
            d.addErrback(lambda f: log.failure("upstream probe failed", f))
            d.addBoth(self._probe_done, upstream.name)
        if not self._stopped:
            self._schedule(TICK_SECONDS)

    def _probe_done(self, _result: object, name: str) -> None:
        self._probing.discard(name)

    _stopped = False

    def stop(self) -> None:
        """No more rounds; a round in flight ends by itself (its requests time out)."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
