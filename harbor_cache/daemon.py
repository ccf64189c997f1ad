"""The twistd service tree around `HarborApp`: what starts in which order, the timers, and the listener.

Start order (a MultiService starts children in order and stops them in
reverse): the I/O pool, the access log file, then `HarborState`, which runs
the app's async start-up (index pool and migrations, the runtime state,
the first admin user) before its children: the timers (eviction, access-time
flush, GC, gauges, ...), the upstream prober and the web listener.
`harbor.tac` and the twistd plugin both call `make_service`; `service.py`
builds and wires the app itself.  With ``[server] workers`` above 1 the
process becomes the workers' parent (`harbor_cache.supervisor`); each worker
(`harbor_cache.workers`) builds this tree on the socket its parent handed it,
and only worker 0 runs the timers that must run once per data directory.
"""

from __future__ import annotations

import os

from twisted.application import internet, service
from twisted.internet import defer, endpoints
from twisted.python.threadpool import ThreadPool

from harbor_cache.core.hosted.gc import GC_TICK_SECONDS
from harbor_cache.core.operations.history import FLUSH_SECONDS as HISTORY_FLUSH_SECONDS
from harbor_cache.core.operations.sync import SYNC_TICK_SECONDS
from harbor_cache.core.operations.upstream_health import HealthMonitor
from harbor_cache.http.access_log import AccessLogService
from harbor_cache.http.reactor_lag import ReactorLagProbe
from harbor_cache.process import start_failed
from harbor_cache.service import HarborApp
from harbor_cache.settings.startup import Config
from harbor_cache.workers import AdoptedPort, ReadySignal, WorkerRole, die_with_parent


class StartStopService(service.Service):
    """Starts and stops one object with ``start()``/``stop()`` (a thread pool, the upstream prober) with the app."""

    def __init__(self, target: ThreadPool | HealthMonitor | ReactorLagProbe):
        self.target = target

    def startService(self):
        super().startService()
        self.target.start()

    def stopService(self):
        super().stopService()
        self.target.stop()


def _timer(name: str, seconds: float, call, clock, parent: service.MultiService) -> None:
    """A named `TimerService` on ``clock`` under ``parent`` (runs never overlap: it waits for a Deferred)."""
    timer = internet.TimerService(seconds, call)
    timer.clock = clock
    timer.setName(name)
    timer.setServiceParent(parent)


# How often each node checks whether upstreams were changed (on any node).
UPSTREAM_POLL_SECONDS = 3.0


class HarborState(service.MultiService):
    """Runs the async start-up (migrations, settings, first admin), then starts its children.

    The listener and timers are children of this service, so nothing is
    served and no timer fires before the index is ready: no request is ever
    answered with the defaults of settings not yet loaded (an anonymous pull
    while ``registry.anonymous_pull`` is stored as false), and ``/health``
    never says healthy before the first admin exists.

    twistd calls ``privilegedStartService`` before ``startService``; a
    MultiService passes it on, and ``StreamServerEndpointService`` opens its
    port there. So it is *not* passed on: the port opens in ``startService``,
    after start-up (binding a port below 1024 therefore needs the capability
    to do so, not twistd's root-then-drop).
    """

    def __init__(self, app: HarborApp):
        super().__init__()
        self.app = app

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)

    def startService(self):
        service.Service.startService(self)
        d = defer.Deferred.fromCoroutine(self.app.start())
        d.addCallback(lambda _: [child.startService() for child in self if self.running])
        d.addErrback(self._failed)
        self.ready = d

    def _failed(self, failure):
        from twisted.internet import reactor

        start_failed(failure, reactor)

    def stopService(self):
        d = defer.maybeDeferred(super().stopService)
        d.addCallback(lambda _: defer.Deferred.fromCoroutine(self.app.stop()))
        return d


def make_service(config: Config, reactor=None, worker: WorkerRole | None = None) -> service.MultiService:
    """The server: the app's tree, or (``[server] workers`` > 1) the parent that runs the workers.

    ``worker``: this process's role among the workers (default: from the
    environment its parent gave it, None for a server of its own).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    if worker is None:
        worker = WorkerRole.from_env(os.environ)
    if worker is None and config.workers > 1:
        from harbor_cache.supervisor import ServerParent

        return ServerParent(config, reactor)
    if worker is not None:
        die_with_parent(worker.parent)
    app = HarborApp(config, reactor, worker=None if worker is None else worker.index)
    top = service.MultiService()
    top.harbor = app  # type: ignore[attr-defined]  # for tests and tools

    if app.io_pool is not None:
        StartStopService(app.io_pool).setServiceParent(top)
    if app.cpu_pool is not None:
        StartStopService(app.cpu_pool).setServiceParent(top)
    if app.access_file is not None:
        # Before the state (and its listener), so stopped after it; a MultiService does not wait for the state's
        # stop, so the lines of requests that end later are written through by the closed file (http.access_log).
        AccessLogService(app.access_file).setServiceParent(top)
    state = HarborState(app)
    state.setServiceParent(top)

    def flush_access():
        return defer.Deferred.fromCoroutine(app.access.flush())

    _timer("access-flush", config.access_flush_seconds, flush_access, reactor, state)

    def flush_history():
        return defer.Deferred.fromCoroutine(app.history.flush())

    _timer("history-flush", HISTORY_FLUSH_SECONDS, flush_history, reactor, state)
    if worker is None or worker.runs_timers:  # once per data directory: worker 0 of several
        _timer("eviction", config.eviction_interval_seconds, app.run_eviction, reactor, state)
        _timer("gc", GC_TICK_SECONDS, app.run_gc_if_due, reactor, state)
        _timer("audit-prune", 3600, app.prune_audit, reactor, state)
        _timer("retention", 60, app.retention.tick, reactor, state)
        _timer("sync", SYNC_TICK_SECONDS, app.sync.tick, reactor, state)
        _timer("upload-expiry", 60, app.expire_uploads, reactor, state)
    _timer("cache-gauges", 15, app.refresh_gauges, reactor, state)  # each worker's /metrics has the gauges
    _timer("upstream-poll", UPSTREAM_POLL_SECONDS, app.poll_upstreams, reactor, state)

    if app.shared_index:
        # Several nodes: runtime settings changed on another node apply here within this many seconds.
        _timer("settings-poll", UPSTREAM_POLL_SECONDS, app.reload_settings, reactor, state)

    probes = StartStopService(app.upstream_health)
    probes.setName("upstream-probes")
    probes.setServiceParent(state)

    if config.reactor_lag_probe:  # harbor_cache_reactor_lag_seconds on /metrics (docs/operations.md)
        lag = StartStopService(ReactorLagProbe(reactor, app.metrics))
        lag.setName("reactor-lag-probe")
        lag.setServiceParent(state)

    web: service.Service
    if worker is None:
        web = internet.StreamServerEndpointService(endpoints.serverFromString(reactor, config.listen), app.site)
    else:
        web = AdoptedPort(reactor, worker, app.site)
    web.setName("web")
    web.setServiceParent(state)
    if worker is not None:
        ReadySignal(worker).setServiceParent(state)  # last: the port is open, start-up done
    return top
