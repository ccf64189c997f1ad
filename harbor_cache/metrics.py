"""Prometheus metrics, on a registry of our own (never the process-global one).

The seed's four plain counters come first; the labelled ones break the same
events down by front (``oci``/``maven``) and source: the upstream's name for
OCI (for a hit or a stale serve, the upstream the content came from;
``hosted`` for pushed content), the repository id for Maven.  Both are
configured names, so the series stay bounded.  Label names match the fields
of our log lines.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Every label value a client can influence comes from a fixed set: each new
# value is a new time series kept forever (5,000 made-up methods once grew
# /metrics to 111 MB). Anything else is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
KNOWN_FRONTS = frozenset({"oci", "maven", "api", "site", "ui", "-"})


def method_label(method: bytes | str) -> str:
    text = method.decode("latin-1") if isinstance(method, bytes) else method
    return text if text in KNOWN_METHODS else "other"


def status_label(status: str) -> str:
    return status if status == "aborted" or (status.isascii() and status.isdigit() and len(status) == 3) else "other"


def front_label(front: object) -> str:
    return front if isinstance(front, str) and front in KNOWN_FRONTS else "other"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.health_checks = Counter("harbor_cache_health_checks", "Health checks answered", registry=r)
        self.requests = Counter("harbor_cache_requests", "HTTP requests answered", registry=r)
        self.hits = Counter("harbor_cache_hits", "Content served from the cache", registry=r)
        self.misses = Counter("harbor_cache_misses", "Content fetched from upstream", registry=r)

        labels = ("front", "source")
        self.source_hits = Counter("harbor_cache_source_hits", "Cache hits by front and source", labels, registry=r)
        self.source_misses = Counter(
            "harbor_cache_source_misses", "Cache misses by front and source", labels, registry=r
        )
        self.coalesced = Counter(
            "harbor_cache_coalesced_waits", "Requests that joined a download already in flight", labels, registry=r
        )
        self.upstream_bytes = Counter(
            "harbor_cache_upstream_bytes", "Bytes received from upstreams", labels, registry=r
        )
        self.served_bytes = Counter("harbor_cache_served_bytes", "Body bytes sent to clients", ("front",), registry=r)
        self.redirects = Counter(
            "harbor_cache_redirects",
            "Blob GETs answered 307 to a presigned URL of the object store ([storage] redirect)",
            ("front",),
            registry=r,
        )
        self.upstream_errors = Counter(
            "harbor_cache_upstream_errors", "Failed upstream requests", ("front", "source", "reason"), registry=r
        )
        self.stale_served = Counter(
            "harbor_cache_stale_served", "Stale content served while upstream was unavailable", labels, registry=r
        )
        self.inflight = Gauge(
            "harbor_cache_inflight_downloads", "Upstream downloads in progress", ("front",), registry=r
        )
        # Refreshed from the index by the service (a timer, and after clears and deletes).
        self.cache_bytes = Gauge("harbor_cache_cache_bytes", "Bytes of content on disk (each digest once)", registry=r)
        # [storage] backend = "s3" only: the bucket's committed content (+ orphans not yet removed), and
        # this node's local tier of it.
        self.storage_bucket_bytes = Gauge(
            "harbor_cache_storage_bucket_bytes", "Bytes of content in the object store's bucket", registry=r
        )
        self.storage_local_tier_bytes = Gauge(
            "harbor_cache_storage_local_tier_bytes",
            "Bytes of the bucket's content on this node's local tier",
            registry=r,
        )
        self.cache_entries = Gauge(
            "harbor_cache_cache_entries", "Index entries by kind (proxy, hosted)", ("kind",), registry=r
        )
        self.pushes = Counter("harbor_cache_pushes", "Manifests and blobs pushed", ("type",), registry=r)
        self.push_bytes = Counter("harbor_cache_push_bytes", "Bytes received by pushes", registry=r)
        self.evicted = Counter("harbor_cache_evicted_entries", "Entries removed by eviction", ("reason",), registry=r)
        per_upstream = ("upstream",)
        self.upstream_up = Gauge(
            "harbor_cache_upstream_up", "1 when the last probe or request succeeded", per_upstream, registry=r
        )
        self.upstream_blocked = Gauge(
            "harbor_cache_upstream_blocked", "1 while the upstream is blocked", per_upstream, registry=r
        )
        self.upstream_failures = Gauge(
            "harbor_cache_upstream_consecutive_failures",
            "Failed probes and requests in a row",
            per_upstream,
            registry=r,
        )
        self.upstream_latency = Gauge(
            "harbor_cache_upstream_probe_latency_seconds", "Time the last GET /v2/ probe took", per_upstream, registry=r
        )
        self.upstream_ratelimit_limit = Gauge(
            "harbor_cache_upstream_ratelimit_limit",
            "The upstream's ratelimit-limit header (Docker Hub)",
            per_upstream,
            registry=r,
        )
        self.upstream_ratelimit_remaining = Gauge(
            "harbor_cache_upstream_ratelimit_remaining",
            "The upstream's ratelimit-remaining header (Docker Hub)",
            per_upstream,
            registry=r,
        )
        self.quota_used_bytes = Gauge(
            "harbor_cache_quota_used_bytes", "Bytes a quota counts now", ("quota",), registry=r
        )
        self.quota_limit_bytes = Gauge("harbor_cache_quota_limit_bytes", "A quota's max_bytes", ("quota",), registry=r)
        self.quota_used_tags = Gauge(
            "harbor_cache_quota_used_tags", "Hosted tags a quota counts now", ("quota",), registry=r
        )
        self.responses = Counter(
            "harbor_cache_http_responses", "HTTP responses by method and status", ("method", "status"), registry=r
        )
        self.request_seconds = Histogram(
            "harbor_cache_request_seconds",
            "Time to answer a request (until the last byte)",
            ("front",),
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
            registry=r,
        )
        # [server] reactor_lag_probe (http.reactor_lag): how late a 10 ms timer ran, i.e. how long the reactor was busy.
        self.reactor_lag = Histogram(
            "harbor_cache_reactor_lag_seconds",
            "How much later than due the reactor ran a 10 ms timer (reactor_lag_probe)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.reactor_lag_max = Gauge(
            "harbor_cache_reactor_lag_max_seconds", "The worst reactor lag since start (reactor_lag_probe)", registry=r
        )
        # Garbage collection of hosted content (core.hosted.gc): real runs only, dry runs count nothing.
        self.gc_runs = Counter("harbor_cache_gc_runs", "Garbage collections of hosted content", registry=r)
        self.gc_removed = Counter(
            "harbor_cache_gc_removed", "Hosted manifests and blobs removed by garbage collection", ("type",), registry=r
        )
        self.gc_freed_bytes = Counter(
            "harbor_cache_gc_freed_bytes", "Bytes of files removed by garbage collection", registry=r
        )
        self.sync_runs = Counter("harbor_cache_sync_runs", "Sync rule runs ended, by status", ("status",), registry=r)
        self.sync_bytes = Counter(
            "harbor_cache_sync_fetched_bytes",
            "Bytes sync runs fetched from upstream, by rule id",
            ("sync",),
            registry=r,
        )
