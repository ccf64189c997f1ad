"""HarborApp: the one place that builds and wires the object graph.

Every collaborator (index, storage, upstreams, caches, fronts, the site) is
built here, in `HarborApp.__init__`; `harbor_cache.daemon.make_service` puts the
app into the twistd service tree, and `harbor_cache.testing.build_app` builds
the same app for the tests.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.twisted import MetricsResource
from treq.client import HTTPClient
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, HTTPConnectionPool

from harbor_cache import __version__
from harbor_cache.api.console import ConsoleApi
from harbor_cache.api.front import ApiFront
from harbor_cache.api.gc import GcFront
from harbor_cache.api.health import HealthFront
from harbor_cache.api.history import attach as attach_history
from harbor_cache.api.openapi import build_document
from harbor_cache.api.policies import attach as attach_policies
from harbor_cache.api.search import attach as attach_search
from harbor_cache.api.sync import attach as attach_sync
from harbor_cache.auth import (
    ArtifactTokens,
    ManagementTokens,
    RegistryTokens,
    check_password,
    hash_password,
    load_or_create_rsa_key,
    load_or_create_secret,
)
from harbor_cache.core.flight.access import AccessRecorder
from harbor_cache.core.flight.downloads import Downloads
from harbor_cache.core.flight.leases import LeaseBook
from harbor_cache.core.hosted.gc import GarbageCollector, detached
from harbor_cache.core.hosted.immutable import ImmutableTags
from harbor_cache.core.hosted.registry import HostedRegistry
from harbor_cache.core.hosted.retention import Retention
from harbor_cache.core.identity.credentials import PasswordChecker
from harbor_cache.core.identity.users import UserService
from harbor_cache.core.maven.cache import MavenCache
from harbor_cache.core.oci.cache import OciCache
from harbor_cache.core.operations.audit import AuditLog
from harbor_cache.core.operations.diskspace import DiskSpace
from harbor_cache.core.operations.eviction import Evictor
from harbor_cache.core.operations.history import StatsHistory
from harbor_cache.core.operations.nodes import NodeName
from harbor_cache.core.operations.orphans import OrphanSweeper
from harbor_cache.core.operations.quotas import QuotaBook
from harbor_cache.core.operations.search import Search
from harbor_cache.core.operations.sync import SyncRules
from harbor_cache.core.operations.upstream_health import HealthMonitor
from harbor_cache.core.operations.upstreams import UpstreamCatalog
from harbor_cache.grammar.public_url import PublicURL
from harbor_cache.http.access_log import AccessLogFile, open_access_file
from harbor_cache.http.resources import ConsoleFiles, NotFoundResource, RedirectToUI, Root
from harbor_cache.http.site import HarborSite
from harbor_cache.index import Index, dialect_of_url, open_pool
from harbor_cache.index.engine import open_ping_pool, open_sqlite_read_pool
from harbor_cache.maven.front import MavenFront
from harbor_cache.metrics import Metrics
from harbor_cache.oci.auth import RegistryAuthorizer
from harbor_cache.oci.front import OciFront
from harbor_cache.oci.hosted import HostedFront
from harbor_cache.process import logged
from harbor_cache.service_identity import attach_identity, build_credentials
from harbor_cache.settings.runtime import RuntimeSettings
from harbor_cache.settings.startup import Config, UpstreamConfig
from harbor_cache.storage import Storage, StorageIO, ThreadIO
from harbor_cache.storage.private_files import make_private_dir, make_private_file
from harbor_cache.storage.process_lock import ProcessLock
from harbor_cache.upstream.maven import MavenUpstream
from harbor_cache.upstream.registry import RegistryUpstream, UpstreamSet

log = Logger()

# A password's bcrypt hash (whether a password matches a stored hash is a `PasswordChecker`).
PasswordHasher = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class TokenKeys:
    """The keys that sign tokens; every node of one data directory shares them."""

    registry: bytes  # HMAC key of /v2 registry tokens
    management: bytes  # HMAC key of /api/v1 management tokens
    artifact_key: rsa.RSAPrivateKey  # signs Maven artifact tokens (published as JWKS)

    @classmethod
    def in_data_dir(cls, data_dir: str) -> TokenKeys:
        """The keys in ``data_dir``, each created (mode 0600) by the first node to start."""
        return cls(
            registry=load_or_create_secret(os.path.join(data_dir, "registry-secret")),
            management=load_or_create_secret(os.path.join(data_dir, "jwt-secret")),
            artifact_key=load_or_create_rsa_key(os.path.join(data_dir, "artifact-key.pem")),
        )


class HarborApp:
    """Everything the process holds, built from a Config; fronts and core hang off it.

    The collaborators that touch the outside world are keyword arguments, so
    production and tests wire the same object graph (tests pass the doubles
    of `harbor_cache.testing`). Each one left out is built for production:

    - ``clock``: time and timers for every component (default ``reactor``).
    - ``db_pool``: the index's pool, anything with adbapi's ``runInteraction``
      (default: `open_pool` on ``[index] url`` or ``index.sqlite`` in the data dir).
    - ``io``: where blocking file work runs, a `StorageIO` (default: `ThreadIO`
      on a pool of its own, started and stopped by `make_service`).
    - ``http``: the treq-like client every upstream (registry and Maven) uses
      (default: a persistent Agent pool, closed by `stop`).
    - ``hash_password`` / ``check_password``: the bcrypt functions of `auth`
      (they run on their own thread pool) for the admin created at first start,
      the user service and the one `Credentials` check of the three fronts.
    - ``token_keys``: the keys that sign tokens (default: read from, or created
      in, the data directory by `TokenKeys.in_data_dir`).
    - ``worker``: the number of this worker process of ``[server] workers``
      (`harbor_cache.supervisor`): node ``<node>-w<i>``, leases as among nodes.

    ``reactor`` is needed only for those defaults (the global one when None).
    """

    def __init__(
        self,
        config: Config,
        reactor: Any = None,
        *,
        clock: IReactorTime | None = None,
        db_pool: Any = None,
        io: StorageIO | None = None,
        http: Any = None,
        hash_password: PasswordHasher = hash_password,
        check_password: PasswordChecker = check_password,
        token_keys: TokenKeys | None = None,
        worker: int | None = None,
    ):
        if reactor is None and None in (clock, db_pool, io, http):
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.hash_password = hash_password
        self.check_password = check_password
        self.db_pool = db_pool
        self.read_pool: Any = None  # sqlite's read-only connections (production only: tests use db_pool for all)
        self.ping_pool: Any = None
        self.http = http
        self._io = io
        self.worker = worker  # [server] workers: this process's number (None: the only process)
        self.data_dir = os.path.abspath(config.data_dir)
        make_private_dir(self.data_dir)
        self.token_keys = token_keys if token_keys is not None else TokenKeys.in_data_dir(self.data_dir)
        self.metrics = Metrics()
        self._build_io()
        self._build_oci()
        self._build_management()
        self._build_maven()
        self._build_sync()
        self.root = Root()
        self._mount_fronts()
        # [log] access_file (default logs/access.log; "-": None, the main log), one per worker.
        self.access_file: AccessLogFile | None = open_access_file(
            config.access_log_file, self.data_dir, self.clock, config.access_max_bytes, config.access_keep, worker
        )
        self.site = HarborSite(
            self.root, self.metrics, limits=config.limits, access_file=self.access_file, history=self.history
        )

    @property
    def token_issuer(self) -> str:
        """``iss`` of registry and artifact tokens: the public URL when one is configured, else a
        fixed name (a request's Host may differ from one request to the next)."""
        return self.config.public_url or "harbor-cache"

    def _build_io(self) -> None:
        """Storage, index, runtime settings, the upstream HTTP client and the in-flight table."""
        reactor, clock, config = self.reactor, self.clock, self.config
        # A PostgreSQL index may be shared by several nodes on one data directory, any index by the workers of
        # one server: then temp files are per node (worker) and downloads and eviction take leases.
        postgresql = dialect_of_url(config.index_url) == "postgresql"
        self.shared_index = postgresql or self.worker is not None
        self.node_name = config.node_name or socket.gethostname()
        if self.worker is not None:
            self.node_name = "%s-w%d" % (self.node_name, self.worker)
        self.io_pool: ThreadPool | None = None
        self.cpu_pool: ThreadPool | None = None
        io = self._io
        # Shaping and encoding the bodies that grow with the index (image lists, browse): off the reactor,
        # on a pool of their own so a big listing never holds a file-I/O thread (tests: the injected io, inline).
        self.offload: StorageIO | None = io
        if io is None:
            self.io_pool = ThreadPool(minthreads=1, maxthreads=4, name="harbor-io")
            io = ThreadIO(reactor, self.io_pool)
            self.cpu_pool = ThreadPool(minthreads=0, maxthreads=2, name="harbor-cpu")
            self.offload = ThreadIO(reactor, self.cpu_pool)
        self.storage = Storage(self.data_dir, io, node=self.node_name if self.shared_index else None)
        if config.storage.s3:  # the bucket is the store, blobs/ this node's local tier (storage/bucket.py)
            from harbor_cache.storage.bucket import attach_bucket  # botocore: only with backend = "s3"

            attach_bucket(self.storage, config.storage, reactor, clock)
        if self.db_pool is None:
            index_path = os.path.join(self.data_dir, "index.sqlite")
            if not postgresql:
                make_private_file(index_path)
            self.db_pool = open_pool(
                config.index_url, index_path, config.index_pool_size, config.index_sqlite_writer_cache_mib * 1024
            )
            # Reads beside the one sqlite writer (PostgreSQL's pool already has several connections),
            # and /health's ping on a connection of its own on either engine (index.engine).
            if not self.shared_index:
                self.read_pool = open_sqlite_read_pool(index_path, config.index_sqlite_readers)
            self.ping_pool = open_ping_pool(config.index_url, index_path)
        self.index = Index(self.db_pool, self.read_pool, self.ping_pool)
        self.leases = (
            LeaseBook(self.index, self.node_name, clock, ttl=config.lease_seconds) if self.shared_index else None
        )
        # One live process per node name (PostgreSQL), or server per data directory (sqlite: the workers' parent
        # holds the lock for them, and their names are unique under it).
        self.node = NodeName(self.index, self.node_name, clock, config.lease_seconds) if postgresql else None
        self.process_lock = ProcessLock(self.data_dir) if not self.shared_index else None
        self.settings = RuntimeSettings(self.index, clock)
        self.audit = AuditLog(self.index, clock, self.settings)
        self.access = AccessRecorder(self.index, clock)
        # The dashboard's traffic history: counted in memory by the site, downloads and outcomes, flushed by a timer.
        self.history = StatsHistory(self.index, clock)
        self.access.history = self.history
        self.http_pool: HTTPConnectionPool | None = None
        if self.http is None:
            self.http_pool = HTTPConnectionPool(reactor, persistent=True)
            self.http_pool.maxPersistentPerHost = 16
            self.http_pool.cachedConnectionTimeout = 120
            agent: Any = Agent(
                reactor, connectTimeout=config.upstream_connect_timeout, pool=self.http_pool
            )  # an IAgent
            self.http = HTTPClient(agent)
        self.downloads = Downloads(
            self.storage, clock, self.metrics, idle_timeout=config.upstream_idle_timeout, leases=self.leases
        )
        self.downloads.history = self.history

    def _build_oci(self) -> None:
        """The OCI cache core, the hosted registry, registry tokens and the /v2 front."""
        clock, config = self.clock, self.config
        self.upstreams = UpstreamSet([self._registry_upstream(u) for u in config.upstreams])
        self.upstream_health = HealthMonitor(self.upstreams, self.settings, self.metrics, clock, audit=self.audit)
        self.upstream_catalog = UpstreamCatalog(
            index=self.index,
            upstream_set=self.upstreams,
            health=self.upstream_health,
            build=self._registry_upstream,
            seed=() if config.upstreams_declared else config.upstreams,
            declared=config.upstreams if config.upstreams_declared else None,
            config_file=config.config_file,
            maven_repositories=tuple(r for r in config.maven_repositories if r.is_proxy),
            clock=clock,
        )
        self.oci = OciCache(
            index=self.index,
            storage=self.storage,
            downloads=self.downloads,
            upstreams=self.upstreams,
            settings=self.settings,
            access=self.access,
            metrics=self.metrics,
            clock=clock,
            health=self.upstream_health,
        )
        self.upstream_catalog.listeners.append(self.oci.upstreams_changed)
        self.public_url = PublicURL(config.public_url, config.trusted_proxies)
        self.registry_tokens = RegistryTokens(self.token_keys.registry, clock, issuer=self.token_issuer)
        # One username/password check for /v2/, the Maven front and the management API.
        self.credentials = build_credentials(self)
        self.registry_policy = RegistryAuthorizer(
            self.index, self.settings, self.registry_tokens, self.public_url, clock, self.credentials
        )
        self.hosted = HostedRegistry(
            cache=self.oci,
            index=self.index,
            storage=self.storage,
            metrics=self.metrics,
            clock=clock,
            node=self.node_name,
        )
        hosted_front = HostedFront(self.hosted, self.registry_policy, self.metrics, audit=self.audit)
        self.oci_front = OciFront(
            self.oci, self.settings, self.metrics, policy=self.registry_policy, extensions=hosted_front.routes()
        )

    def _registry_upstream(self, config: UpstreamConfig) -> RegistryUpstream:
        return RegistryUpstream(
            config, self.http, self.clock, header_timeout=self.config.upstream_idle_timeout, metrics=self.metrics
        )

    def _build_management(self) -> None:
        """Users, management tokens, eviction, /health and the /api/v1 front."""
        clock = self.clock
        self.space = DiskSpace(self.storage, self.settings, on_low=self.evict_soon)
        self.downloads.space = self.space
        self.hosted.space = self.space  # pushes that would end below the floor: 507 before the body is read
        self.hosted.quotas = self.quotas = QuotaBook(self.index, clock, self.config.maven_repositories, self.audit)
        self._eviction_asked = False
        self.site_front = HealthFront(self.index, self.storage, self.metrics, space=self.space)
        self.management_tokens = ManagementTokens(self.token_keys.management, clock)
        self.users = UserService(self.index, clock, self.credentials, hasher=self.hash_password)
        self.evictor = Evictor(
            index=self.index,
            storage=self.storage,
            downloads=self.downloads,
            settings=self.settings,
            access=self.access,
            clock=clock,
            single_writer=not self.shared_index,
        )
        self.evictor.invalidators.append(self.oci.invalidate)
        self.console_api = ConsoleApi(
            queries=self.index,  # typed ConsoleQueries: the front sees the console's reads, not the Index
            downloads=self.downloads,
            evictor=self.evictor,
            settings=self.settings,
            oci=self.oci,
            hosted=self.hosted,
            metrics=self.metrics,
            site_front=self.site_front,
            clock=clock,
            public_url=self.public_url,
            offload=self.offload,
        )
        self.evictor.space = self.space
        self.evictor.orphans = OrphanSweeper(
            index=self.index, storage=self.storage, settings=self.settings, clock=clock, busy=self.evictor.busy_digests
        )
        self.gc = GarbageCollector(
            index=self.index,
            storage=self.storage,
            settings=self.settings,
            metrics=self.metrics,
            clock=clock,
            audit=self.audit,
            leases=self.leases,
            node=self.node_name,
        )
        self.gc.invalidators.append(self.oci.invalidate)
        self.api_front = ApiFront(
            users=self.users,
            tokens=self.management_tokens,
            settings=self.settings,
            evictor=self.evictor,
            openapi_document=build_document(__version__),
            upstreams=self.upstream_catalog,
            audit=self.audit,
            console=self.console_api,
            on_cache_change=self.refresh_gauges_soon,
            gc=GcFront(self.gc, self.settings, detached),
            quotas=self.quotas,
            offload=self.offload,
        )
        self.hosted.immutable = ImmutableTags(self.index, clock)
        self.retention = Retention(self.index, self.hosted, self.settings, clock, self.audit, self.leases)
        attach_policies(self.api_front, self.retention, self.hosted.immutable)
        attach_history(self.api_front, self.history)
        private_maven = (r.id for r in self.config.maven_repositories if r.private)
        attach_search(self.api_front, Search(self.index, private_maven))
        attach_identity(self)

    def _build_maven(self) -> None:
        """Maven repositories on the shared download core, artifact tokens and the Kagami front."""
        clock, config = self.clock, self.config
        self.artifact_tokens = ArtifactTokens(
            self.token_keys.artifact_key, self.token_issuer, clock, config.artifact_token_max_hours
        )
        self.maven = MavenCache(
            repositories=config.maven_repositories,
            upstreams={
                r.id: MavenUpstream(r, self.http, clock, header_timeout=config.upstream_idle_timeout)
                for r in config.maven_repositories
                if r.is_proxy
            },
            index=self.index,
            storage=self.storage,
            downloads=self.downloads,
            settings=self.settings,
            access=self.access,
            metrics=self.metrics,
            clock=clock,
        )
        self.evictor.invalidators.append(self.maven.invalidate)
        self.maven_front = MavenFront(
            self.maven,
            self.artifact_tokens,
            self.index,
            self.metrics,
            self.credentials,
            audit=self.audit,
            public_url=self.public_url,
        )
        self.maven_front.deployer.space, self.maven_front.deployer.quotas = self.space, self.quotas
        self.maven.offload = self.maven_front.offload = self.offload

    def _build_sync(self) -> None:
        """Scheduled pre-fetch: sync rules pull through the OCI and Maven cores (ticked by daemon.py)."""
        self.sync = SyncRules(
            index=self.index,
            oci=self.oci,
            maven=self.maven,
            space=self.space,
            settings=self.settings,
            clock=self.clock,
            metrics=self.metrics,
            node=self.node_name,
            audit=self.audit,
            leases=self.leases,
        )
        attach_sync(self.api_front, self.sync)

    def _mount_fronts(self) -> None:
        site_resource = self.site_front.app.resource()
        self.root.mount(b"health", site_resource)
        self.root.mount(b"healthz", site_resource)
        self.root.mount(b"livez", site_resource)
        self.root.mount(b"readyz", site_resource)
        self.root.put(b"metrics", MetricsResource(registry=self.metrics.registry))  # type: ignore[arg-type]
        ui = ConsoleFiles(os.path.join(os.path.dirname(__file__), "ui"))
        ui.childNotFound = NotFoundResource()  # type: ignore[assignment]
        self.root.put(b"ui", ui)
        self.root.put(b"favicon.ico", RedirectToUI(b"/ui/favicon.svg"))
        self.root.mount(b"v2", self.oci_front.app.resource(), hot=self.oci_front.hot_manifest)
        self.root.mount(b"api", self.api_front.app.resource())
        maven_resource = self.maven_front.app.resource()
        for segment in (b"repositories", b"token", b".well-known"):
            self.root.mount(segment, maven_resource)
        self.root.mount(b"artifacts", maven_resource, hot=self.maven_front.hot_artifact)

    async def start(self) -> None:
        # The data directory or the node name first: the temp files cleaned below must be a dead process's.
        if self.process_lock is not None:
            self.process_lock.hold()
        version = await self.index.migrate()
        if self.node is not None:
            await self.node.claim()
        removed = self.storage.clean_temp()
        if self.storage.bucket is not None:
            await self.storage.io.run(self.storage.load_tier)
            await self.storage.trim_tier()  # local_cache_bytes may have been lowered since the last run
            self.storage.bucket.start_probing()
        if removed:
            log.info("removed {count} temp files left by the previous run", count=removed)
        await self.settings.load()
        await self.access.load()
        await self.ensure_admin()
        if not self.storage.ensure_reserve():  # one fallocate, like clean_temp above: start-up only
            log.warn("no room for {path}: clearing the cache on a full disk may fail", path=self.storage.reserve_path)
        await self.upstream_catalog.start()
        recorded = await self.hosted.record_legacy_blob_refs()
        if recorded:
            log.info("recorded the blobs of {count} hosted manifests pushed before blob claims", count=recorded)
        self.console_api.started_at = self.clock.seconds()
        log.info(
            "harbor-cache {version} ready: data in {data_dir}, index schema {schema}",
            version=__version__,
            data_dir=self.data_dir,
            schema=version,
        )

    def run_eviction(self) -> defer.Deferred:
        """One eviction pass (the TimerService waits for it, so passes never overlap).

        A failed pass is logged and swallowed: an error would stop the LoopingCall.
        """
        d = defer.Deferred.fromCoroutine(self._evict_once())
        d.addErrback(logged("eviction pass failed"))
        d.addCallback(lambda _: self.refresh_gauges())
        return d

    def run_gc_if_due(self) -> defer.Deferred:
        """A scheduled garbage collection when ``gc.interval_seconds`` have passed (failures logged, never raised)."""
        d = defer.Deferred.fromCoroutine(self.gc.run_if_due())
        d.addErrback(logged("garbage collection failed"))
        return d

    def refresh_gauges(self) -> defer.Deferred:
        """Set the cache size and entry gauges of /metrics from the index (errors logged, never raised)."""

        async def work():
            totals = await self.index.cache_totals()
            self.metrics.cache_bytes.set(totals.total_size)
            self.metrics.cache_entries.labels("proxy").set(totals.proxy)
            self.metrics.cache_entries.labels("hosted").set(totals.entries - totals.proxy)
            if self.storage.bucket is not None:
                self.metrics.storage_bucket_bytes.set(totals.total_size + self.storage.bucket.orphan_bytes)
                self.metrics.storage_local_tier_bytes.set(self.storage.tier.bytes if self.storage.tier else 0)
            await self.quotas.publish(self.metrics)

        d = defer.Deferred.fromCoroutine(work())
        d.addErrback(logged("could not refresh cache gauges"))
        return d

    def refresh_gauges_soon(self) -> None:
        self.refresh_gauges()

    def prune_audit(self) -> defer.Deferred:
        d = defer.Deferred.fromCoroutine(self.audit.prune())
        d.addErrback(logged("audit log pruning failed"))
        return d

    async def _evict_once(self) -> None:
        """Several nodes: only the one holding the "eviction" lease runs a pass; the others skip theirs."""
        if self.leases is None:
            await self.evictor.run()
            return
        lease = await self.leases.try_hold("eviction")
        if lease is None:
            return
        try:
            await self.evictor.run()
        finally:
            await lease.release()

    def evict_soon(self) -> None:
        """An eviction pass now (a download was refused for want of space); one at a time."""
        if self._eviction_asked:
            return
        self._eviction_asked = True

        def _done(_):
            self._eviction_asked = False

        self.run_eviction().addBoth(_done)

    async def ensure_admin(self) -> None:
        """First start: create `admin` with a random password (or $HARBOR_CACHE_ADMIN_PASSWORD)."""
        if await self.index.count_users():
            return
        chosen = os.environ.get("HARBOR_CACHE_ADMIN_PASSWORD")
        password = chosen or secrets.token_urlsafe(18)
        hashed = await self.hash_password(password)
        await self.index.create_user("admin", hashed, "admin", self.clock.seconds())
        if chosen:
            log.info("created user admin with the password from HARBOR_CACHE_ADMIN_PASSWORD")
            return
        path = os.path.join(self.data_dir, "admin-password")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        # Never the password itself: log files are often world-readable and shipped elsewhere.
        log.info("created user admin; its password is in {path} (readable by this user only)", path=path)

    def reload_settings(self) -> defer.Deferred:
        """Pick up runtime settings changed on another node; a failed reload is logged and retried."""
        d = defer.Deferred.fromCoroutine(self.settings.reload())
        d.addErrback(logged("reloading runtime settings failed"))
        return d

    def expire_uploads(self) -> defer.Deferred:
        """Remove idle upload sessions (of any node); a failed pass is logged and retried next time."""
        d = defer.Deferred.fromCoroutine(self.hosted.expire_uploads())
        d.addErrback(logged("expiring upload sessions failed"))
        return d

    def poll_upstreams(self) -> defer.Deferred:
        """Pick up upstream changes made on another node; a failed poll is logged and retried."""
        d = defer.Deferred.fromCoroutine(self.upstream_catalog.poll())
        d.addErrback(logged("reloading upstreams failed"))
        return d

    async def stop(self) -> None:
        self.upstream_health.stop()
        if self.storage.bucket is not None:
            await self.storage.bucket.close()
        await self.access.flush()
        await self.history.flush()
        if self.http_pool is not None:
            await self.http_pool.closeCachedConnections()
        if self.node is not None:
            await self.node.release()
        if self.process_lock is not None:
            self.process_lock.release()
