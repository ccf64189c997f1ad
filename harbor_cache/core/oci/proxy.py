"""What every part of the OCI proxy shares: routes, memory state, bookkeeping, the first upstream to answer.

`ProxyBlobs`, `ProxyManifests` and `ProxyTags` (one module each, as
distribution splits proxyblobstore / proxymanifeststore / proxytagservice)
build on this; `OciCache` joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from harbor_cache.core.flight.access import NegativeCache, Outcomes
from harbor_cache.core.flight.downloads import Downloads
from harbor_cache.core.flight.memory import BoundedMemory
from harbor_cache.core.flight.observable import SingleFlight
from harbor_cache.core.seams import BlobStore, CacheIndex, CacheStatus
from harbor_cache.errors import (
    Denied,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from harbor_cache.storage import GrowingSource
from harbor_cache.upstream.body import discard_body
from harbor_cache.upstream.http import UpstreamError, UpstreamNotFound
from harbor_cache.upstream.registry import Route
from harbor_cache.upstream.routing import route_matches

if TYPE_CHECKING:
    from twisted.web.iweb import IResponse

    from harbor_cache.core.flight.access import AccessRecorder
    from harbor_cache.core.operations.upstream_health import HealthMonitor
    from harbor_cache.metrics import Metrics
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.upstream.registry import RegistryUpstream, UpstreamSet

log = Logger()

MANIFEST_MEMORY_BYTES = 64 << 20
# Upstream answered, but with content we must not serve: 502, not 503.
BAD_CONTENT_REASONS = frozenset({"digest_mismatch", "invalid_manifest", "too_large", "body"})


@dataclass
class BlobHandle:
    digest: str
    size: int | None
    source: GrowingSource
    cache_status: CacheStatus
    upstream: str | None = None  # the upstream it comes from (None: the disk)


@dataclass
class ManifestResult:
    body: bytes
    digest: str
    media_type: str
    cache_status: CacheStatus
    stale: bool = False
    upstream: str | None = None  # the upstream that answered this time (None: the cache alone)
    source: str = "unknown"  # from the cache: the upstream it came from (`hit_source`), which stale serves name


@dataclass
class TagState:
    digest: str
    media_type: str | None
    kind: str
    fetched_at: float


def _first_length(item: tuple[bytes, str]) -> int:
    return len(item[0])


def map_upstream_failure(e: BaseException, what: str) -> Exception:
    if isinstance(e, UpstreamError):
        if e.reason in BAD_CONTENT_REASONS:
            return UpstreamBadResponse(f"upstream sent a bad {what}", str(e))
        if e.code is not None and 400 <= e.code < 500:
            return UpstreamBadResponse(f"upstream refused the {what}", str(e))
        return UpstreamUnavailable(f"no upstream could serve the {what}", str(e))
    return UpstreamBadResponse(f"upstream failed while sending the {what}", f"{type(e).__name__}: {e}")


class ProxyCore:
    """The state the blob, manifest and tag parts share (memory of rows and tags, negative cache, outcomes)."""

    def __init__(
        self,
        *,
        index: CacheIndex,
        storage: BlobStore,
        downloads: Downloads,
        upstreams: UpstreamSet,
        settings: RuntimeSettings,
        access: AccessRecorder,
        metrics: Metrics,
        clock: IReactorTime,
        health: HealthMonitor | None = None,
    ) -> None:
        self.index = index
        self.health = health  # HealthMonitor: skips blocked upstreams, learns from each answer
        self.storage = storage
        self.downloads = downloads
        self.upstreams = upstreams
        self.settings = settings
        self.access = access
        self.metrics = metrics
        self.clock = clock
        self.negative = NegativeCache(clock, lambda: settings.get("cache.negative_ttl_seconds"))
        # Manifest bodies and media types by digest.
        self.manifests: BoundedMemory[tuple[bytes, str]] = BoundedMemory(MANIFEST_MEMORY_BYTES, _first_length)
        # digest -> (entry id, size, `hit_source`: the upstream it came from, for the hit and stale metrics)
        self._blob_rows: dict[str, tuple[int, int, str]] = {}
        # (name, digest) -> (entry id, media type, digest of the stored file, `hit_source`)
        self._manifest_rows: dict[tuple[str, str], tuple[int, str, str, str]] = {}
        self._tags: dict[tuple[str, str], TagState] = {}
        self._single = SingleFlight()
        self.outcomes = Outcomes("oci", access, metrics)

    # -- namespaces ---------------------------------------------------------

    def key_for(self, name: str, ns: str | None) -> str:
        """The cache key of a name asked with containerd's ``ns``; UnknownRegistry if none serves it."""
        return self.upstreams.key_for(name, ns)

    def route(self, key: str) -> Route:
        """The namespace, upstream name and upstreams of a cache key.

        In the default namespace, a name matching ``registry.hosted_names`` is
        hosted whatever the routes say: no upstream is asked, pushes are
        allowed.  A prefix namespace always belongs to its upstreams.
        """
        route = self.upstreams.route(key)
        if (
            route.prefix is None
            and route.upstreams
            and route_matches(list(self.settings.get("registry.hosted_names")), key)
        ):
            return Route(key, None, key, [])
        return route

    def image_identity(self, key: str) -> tuple[str, str]:
        """(registry, name there) of the upstream image a cache key names; ("", key) for a hosted name.

        Clients reach one upstream image by several keys: containerd's ``?ns=docker.io`` files
        ``library/test`` under ``docker.io/library/test``, a mirror-configured docker asks
        ``library/test``, and an upstream with ``library_prefix`` turns ``test`` into
        ``library/test``. The console merges the keys with one identity into one row.
        """
        route = self.route(key)
        if not route.upstreams:
            return "", key
        first = route.upstreams[0]
        # The registry host it serves (containerd's ns), else the host of its URL: what a client would name.
        registry = first.config.registry or urlsplit(first.config.url).netloc or first.name
        return registry.lower(), first.remote_name(route.remote)

    def upstreams_changed(self) -> None:
        """The upstream list was replaced: a 404 remembered from the old list may not hold any more."""
        self.negative.clear()

    def ensure_writable(self, key: str) -> None:
        """Refuse (403 DENIED) a push or delete under a name a read-only proxy serves.

        A name is hosted when no upstream claims it (no prefix, no route); a
        proxied one is writable only when each upstream serving it has
        ``allow_push``: otherwise a push would shadow the upstream's content
        for every client.
        """
        route = self.route(key)
        if route.writable:
            return
        names = ", ".join(u.name for u in route.upstreams if not u.config.allow_push)
        where = f"namespace {route.prefix!r}" if route.prefix else "the default namespace (by route)"
        raise Denied(
            f"{key} is in {where}, a read-only proxy of {names}; pushes and deletes are refused "
            f"(allow_push = true on the upstream makes it writable)",
            {"name": key, "namespace": route.prefix or "", "upstreams": names.split(", ")},
        )

    # -- bookkeeping --------------------------------------------------------

    def invalidate(self, type_: str, repository: str, key: str) -> None:
        """Forget memory state for an entry the index no longer has (eviction, delete)."""
        if type_ == "blob":
            self._blob_rows.pop(key, None)
        elif type_ == "manifest":
            self._manifest_rows.pop((repository, key), None)
            self.manifests.discard(key)
            for tag_key, state in list(self._tags.items()):
                if tag_key[0] == repository and state.digest == key:
                    del self._tags[tag_key]

    def forget_tag(self, repository: str, tag: str) -> None:
        self._tags.pop((repository, tag), None)

    def blob_pushed(self, name: str, digest: str) -> None:
        """A push stored ``digest`` under ``name``: drop what memory knew of its absence."""
        self.invalidate("blob", "", digest)
        self.negative.forget(("blob", name, digest))

    def manifest_pushed(self, name: str, digest: str, body: bytes, media_type: str, tag: str | None) -> None:
        """A push stored this manifest (under ``tag``): the next pull is served from memory, not from a
        remembered 404 or an older tag."""
        self.invalidate("manifest", name, digest)
        self.manifests.put(digest, (body, media_type))
        self.negative.forget(("manifest", name, digest))
        if tag is not None:
            self.forget_tag(name, tag)
            self.negative.forget(("manifest", name, tag))

    async def _first_answer(
        self,
        name: str,
        method: str,
        kind: str,
        reference: str,
        accept: str | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[RegistryUpstream, IResponse]:
        """The first 200 among the upstreams serving ``name``, by priority: (upstream, response).

        ``name`` is the cache key; its namespace picks the upstreams and the
        name they are asked for.  Blocked upstreams are skipped.  Raises
        UpstreamNotFound when every one said 404, else the last UpstreamError
        (unreachable, timed out, blocked, other statuses).
        """
        last_error: Exception | None = None
        route = self.route(name)
        for up in route.upstreams:
            if self.health is not None and self.health.is_blocked(up):
                last_error = UpstreamError(f"{up.name} is blocked after repeated failures", "blocked")
                continue
            try:
                response = await up.request(method, route.remote, kind, reference, accept=accept, query=query)
            except UpstreamError as e:
                self.outcomes.upstream_error(up.name, e.reason)
                if self.health is not None and e.code is None:
                    self.health.failed(up, str(e))
                if e.code in (401, 403):
                    # Docker Hub answers 401 for repositories it does not have:
                    # for this upstream the name is as good as unknown.
                    log.warn("{upstream} refused access to {name}: treated as not found", upstream=up.name, name=name)
                    continue
                last_error = e
                continue
            if self.health is not None:
                if response.code >= 500:
                    self.health.failed(up, f"{method} {kind} answered {response.code}")
                else:
                    self.health.succeeded(up)
            if response.code == 200:
                return up, response
            await discard_body(response)
            if response.code != 404:
                self.outcomes.upstream_error(up.name, f"http_{response.code}")
                last_error = UpstreamError(f"{up.name} answered {response.code}", "status", response.code)
        if last_error is None:
            raise UpstreamNotFound(name)
        raise last_error
