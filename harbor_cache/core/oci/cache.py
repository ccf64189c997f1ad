"""The OCI cache core: decides hit, miss, join, revalidate or serve stale.

Blobs are content-addressed and shared by every repository name: a blob
known to the index is served from disk; otherwise one download per digest
(`Downloads`) feeds every client that asks.  Manifests are small: they are
fetched whole, verified against their digest, stored as blobs and kept in a
bounded memory cache so a warm pull by tag touches neither disk nor SQL.
Tags point at digests and are revalidated upstream with HEAD after
``cache.tag_ttl_seconds``; when the upstream cannot answer, the cached
manifest is served with ``stale=True`` (the front adds ``Warning: 110``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from harbor_cache.core.flight.access import NegativeCache, Outcomes, hit_source
from harbor_cache.core.flight.downloads import Adopted, Download, Downloads, Opened
from harbor_cache.core.flight.memory import BoundedMemory
from harbor_cache.core.flight.observable import SingleFlight
from harbor_cache.core.operations.diskspace import is_disk_full
from harbor_cache.core.seams import BlobStore, CacheIndex, CacheStatus
from harbor_cache.errors import (
    BlobUnknown,
    Denied,
    HarborError,
    ManifestUnknown,
    NameUnknown,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from harbor_cache.grammar.digests import InvalidDigest, digest_bytes, parse_digest
from harbor_cache.grammar.mediatypes import MANIFEST_ACCEPT, OCI_MANIFEST, InvalidManifest, detect_manifest_media_type
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.index.rows import Entry
from harbor_cache.storage import GrowingSource
from harbor_cache.upstream.body import discard_body
from harbor_cache.upstream.http import UpstreamError, UpstreamNotFound, header
from harbor_cache.upstream.registry import Route, read_limited
from harbor_cache.upstream.routing import route_matches

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


def _map_upstream_failure(e: BaseException, what: str) -> Exception:
    if isinstance(e, UpstreamError):
        if e.reason in BAD_CONTENT_REASONS:
            return UpstreamBadResponse(f"upstream sent a bad {what}", str(e))
        if e.code is not None and 400 <= e.code < 500:
            return UpstreamBadResponse(f"upstream refused the {what}", str(e))
        return UpstreamUnavailable(f"no upstream could serve the {what}", str(e))
    return UpstreamBadResponse(f"upstream failed while sending the {what}", f"{type(e).__name__}: {e}")


class OciCache:
    def __init__(
        self,
        *,
        index: CacheIndex,
        storage: BlobStore,
        downloads: Downloads,
        upstreams,
        settings,
        access,
        metrics,
        clock: IReactorTime,
        health=None,
    ):
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

    # -- blobs ---------------------------------------------------------------

    async def _blob_row(self, digest: str) -> tuple[int, int, str] | None:
        row = self._blob_rows.get(digest)
        if row is None:
            entry = await self.index.get_entry("blob", "", digest)
            if entry is None:
                return None
            row = self._blob_rows[digest] = (entry.id, entry.size, hit_source(entry))
        return row

    async def stored_blob_size(self, digest: str) -> int | None:
        """Size of a committed blob we hold, or None."""
        row = await self._blob_row(digest)
        if row is None:
            return None
        if self.storage.stat_blob(digest) is None:
            log.warn("index lists {digest} but its file is gone; treating as a miss", digest=digest)
            self._blob_rows.pop(digest, None)
            return None
        return row[1]

    async def get_blob(self, name: str, digest: str) -> BlobHandle:
        """A source to stream the blob from: stored, joined in flight, or a new download.

        Raises BlobUnknown (404 upstream), UpstreamUnavailable (503) or
        UpstreamBadResponse (502).
        """
        size = await self.stored_blob_size(digest)
        if size is not None:
            entry_id, _, source = self._blob_rows[digest]
            self.outcomes.hit(entry_id, source)
            return BlobHandle(digest, size, self.storage.open_stored(digest, size), "hit")
        key = ("blob", digest)
        dl = self.downloads.get(key)
        status: CacheStatus = "coalesced"
        if dl is None:
            if self.negative.known_missing(("blob", name, digest)):
                raise BlobUnknown("blob unknown to registry", {"digest": digest})
            dl = self.downloads.start(BlobDownload(self, name, digest))
            status = "miss"
        try:
            await dl.headers_ready.observe()
        except UpstreamNotFound:
            self.negative.remember(("blob", name, digest))
            raise BlobUnknown("blob unknown to registry", {"digest": digest}) from None
        except HarborError:
            raise  # e.g. InsufficientStorage: the disk cannot take it
        except Exception as e:
            raise _map_upstream_failure(e, "blob") from None
        if status == "miss":
            self.outcomes.miss(dl.source)
        assert dl.temp is not None  # the headers are in: the file exists
        return BlobHandle(digest, dl.length, dl.temp, status, dl.source)

    # -- tags ------------------------------------------------------------------

    async def list_proxied_tags(self, key: str, n: int | None, last: str | None) -> tuple[list[str], bool, bool]:
        """One page of a proxied repository's tags: (tags, more, stale).

        The first upstream that answers (by priority, blocked ones skipped)
        is asked with ``n``/``last``; what is cached under the key (pushed
        tags of a writable namespace included) is merged in.  When no
        upstream answers, the cached list is the answer and ``stale`` is
        True (the front adds ``Warning: 110``).  NameUnknown when neither
        knows the repository.
        """
        limit = None if n is None else n + 1
        cached = await self.index.list_tags_page(key, last, limit) if n != 0 else []
        query = {k: v for k, v in (("n", None if n is None else str(n)), ("last", last)) if v is not None}
        try:
            up, response = await self._first_answer(key, "GET", "tags", "list", query=query)
        except UpstreamNotFound:
            upstream_tags, upstream_more, stale = None, False, False
        except UpstreamError as e:
            log.warn("tags/list of {key} from the cache only: {error}", key=key, error=str(e))
            upstream_tags, upstream_more, stale = None, False, True
        else:
            upstream_more = bool(response.headers.getRawHeaders(b"Link"))
            try:
                document = json.loads(await read_limited(response))
                upstream_tags = [t for t in (document.get("tags") or []) if isinstance(t, str)]
                stale = False
            except (UpstreamError, ValueError, AttributeError) as e:
                self.outcomes.upstream_error(up.name, "body")
                log.warn(
                    "{upstream} sent an unreadable tag list for {key}: {error}", upstream=up.name, key=key, error=str(e)
                )
                upstream_tags, upstream_more, stale = None, False, True
        if upstream_tags is None and not cached and last is None and not stale:
            if not await self.index.repository_known(key):
                raise NameUnknown("repository name not known to registry", {"name": key})
        merged = sorted(set(cached) | set(t for t in (upstream_tags or []) if last is None or t > last))
        if n is None:
            return merged, False, stale
        return merged[:n], upstream_more or len(merged) > n, stale

    async def _first_answer(
        self,
        name: str,
        method: str,
        kind: str,
        reference: str,
        accept: str | None = None,
        query: dict[str, str] | None = None,
    ):
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

    async def _commit_blob(self, digest: str, size: int, source: str) -> Entry:
        entry = await self.index.put_entry(
            kind="proxy",
            type_="blob",
            repository="",
            key=digest,
            digest=digest,
            size=size,
            now=self.clock.seconds(),
            upstream=source,
        )
        self._blob_rows[digest] = (entry.id, entry.size, hit_source(entry))
        return entry

    async def _adopt_blob(self, digest: str) -> Adopted | None:
        """The blob as committed by another node sharing the index and the store, or None."""
        entry = await self.index.get_entry("blob", "", digest)
        if entry is None or self.storage.stat_blob(digest) is None:
            return None
        self._blob_rows[digest] = (entry.id, entry.size, hit_source(entry))
        return Adopted(entry, self.storage.open_stored(digest, entry.size))

    async def head_blob(self, name: str, digest: str) -> tuple[int | None, str]:
        """(size, cache status) without downloading a body: stored, in flight, or an upstream HEAD.

        A blob still being downloaded does not exist yet: pushing clients
        (skopeo, docker) HEAD a blob to decide whether to upload it, and the
        manifest PUT that follows needs it committed.  So the HEAD waits for
        the download's commit; if the download fails it asks the upstream.
        """
        size = await self.stored_blob_size(digest)
        if size is not None:
            entry_id, _, source = self._blob_rows[digest]
            self.outcomes.hit(entry_id, source)
            return size, "hit"
        dl = self.downloads.inflight.get(("blob", digest))
        if dl is not None:
            try:
                await dl.committed.observe()
            except Exception:
                pass  # the download failed; answer as if it had never run
            else:
                size = await self.stored_blob_size(digest)
                if size is not None:
                    return size, "coalesced"
        if self.negative.known_missing(("blob", name, digest)):
            raise BlobUnknown("blob unknown to registry", {"digest": digest})
        try:
            up, response = await self._first_answer(name, "HEAD", "blobs", digest)
        except UpstreamNotFound:
            self.negative.remember(("blob", name, digest))
            raise BlobUnknown("blob unknown to registry", {"digest": digest}) from None
        except UpstreamError as e:
            raise _map_upstream_failure(e, "blob") from None
        await discard_body(response)
        # Twisted reports length 0 for HEAD; the size is in the header.
        value = header(response, "Content-Length")
        return parse_decimal(value), "upstream"

    # -- manifests ------------------------------------------------------------

    async def _cached_manifest(self, name: str, digest: str) -> ManifestResult | None:
        row = self._manifest_rows.get((name, digest))
        if row is None:
            entry = await self.index.get_entry("manifest", name, digest)
            if entry is None:
                return None
            # A manifest row always has its media type; a missing one is served as the spec's default.
            row = (entry.id, entry.media_type or OCI_MANIFEST, entry.digest, hit_source(entry))
            self._manifest_rows[(name, digest)] = row
        item = self.manifests.get(digest)
        if item is None:
            try:
                body = await self.storage.read_bytes(row[2])
            except FileNotFoundError:
                log.warn("index lists manifest {digest} but its file is gone", digest=digest)
                self._manifest_rows.pop((name, digest), None)
                return None
            self.manifests.put(digest, (body, row[1]))
            item = (body, row[1])
        self.outcomes.hit(row[0], row[3])
        return ManifestResult(item[0], digest, item[1], "hit", source=row[3])

    async def _store_manifest(self, name: str, body: bytes, digest: str, media_type: str, source: str) -> None:
        """Keep a fetched manifest; when the disk is full it is served without being kept."""
        try:
            await self._store_manifest_files(name, body, digest, media_type, source)
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warn("disk full: manifest {digest} of {name} served without being cached", digest=digest, name=name)

    async def _store_manifest_files(self, name: str, body: bytes, digest: str, media_type: str, source: str) -> None:
        stored = await self.storage.store_bytes(body, digest if digest.startswith("sha256:") else None)
        entry = await self.index.put_entry(
            kind="proxy",
            type_="manifest",
            repository=name,
            key=digest,
            digest=stored,
            size=len(body),
            now=self.clock.seconds(),
            media_type=media_type,
            upstream=source,
        )
        self._manifest_rows[(name, digest)] = (entry.id, media_type, stored, hit_source(entry))
        self.manifests.put(digest, (body, media_type))

    async def _fetch_manifest(self, name: str, reference: str) -> tuple[bytes, str, str, str]:
        """GET from the first upstream that has it: (body, digest, media type, upstream name).

        Raises UpstreamNotFound, or UpstreamError (bad content carries a
        reason in BAD_CONTENT_REASONS).
        """
        up, response = await self._first_answer(name, "GET", "manifests", reference, accept=MANIFEST_ACCEPT)
        try:
            body = await read_limited(response)
        except UpstreamError as e:
            self.outcomes.upstream_error(up.name, e.reason)
            raise
        except Exception as e:
            self.outcomes.upstream_error(up.name, "body")
            raise UpstreamError(f"{up.name}: manifest body failed: {e}", "body") from None
        content_type = (response.headers.getRawHeaders(b"Content-Type") or [b""])[0].decode("latin-1")
        content_type = content_type.split(";")[0].strip() or None
        try:
            media_type = detect_manifest_media_type(body, content_type)
        except InvalidManifest as e:
            self.outcomes.upstream_error(up.name, "invalid_manifest")
            raise UpstreamError(f"{up.name} sent an invalid manifest: {e}", "invalid_manifest", 502) from None
        digest = self._verified_manifest_digest(body, reference, response, up.name)
        if digest is None:
            raise UpstreamError(f"{up.name} sent a manifest that does not match its digest", "digest_mismatch", 502)
        self.outcomes.miss(up.name)
        return body, digest, media_type, up.name

    async def _fetch_existing_manifest(self, name: str, reference: str) -> tuple[bytes, str, str, str]:
        """`_fetch_manifest`, with upstream's 404 remembered in the negative cache and raised as `ManifestUnknown`."""
        try:
            return await self._fetch_manifest(name, reference)
        except UpstreamNotFound:
            self.negative.remember(("manifest", name, reference))
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": reference}) from None

    def _verified_manifest_digest(self, body: bytes, reference: str, response, source: str) -> str | None:
        """The digest of a fetched manifest, or None when it contradicts what was asked or announced."""
        claimed = None
        if ":" in reference:
            claimed = reference
        else:
            header = response.headers.getRawHeaders(b"Docker-Content-Digest")
            if header:
                claimed = header[0].decode("latin-1").strip()
        if claimed is None:
            return str(digest_bytes(body, "sha256"))
        try:
            parsed = parse_digest(claimed)
        except InvalidDigest:
            if ":" in reference:
                return None
            return str(digest_bytes(body, "sha256"))
        if str(digest_bytes(body, parsed.algorithm)) != str(parsed):
            log.warn("manifest from {source} does not match {digest}", source=source, digest=claimed)
            self.outcomes.upstream_error(source, "digest_mismatch")
            return None
        return str(parsed)

    async def get_manifest_by_digest(self, name: str, digest: str) -> ManifestResult:
        cached = await self._cached_manifest(name, digest)
        if cached is not None:
            return cached
        if self.negative.known_missing(("manifest", name, digest)):
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": digest})

        async def work():
            try:
                body, got, media_type, source = await self._fetch_existing_manifest(name, digest)
            except UpstreamError as e:
                raise _map_upstream_failure(e, "manifest") from None
            await self._store_manifest(name, body, got, media_type, source)
            return ManifestResult(body, got, media_type, "miss", upstream=source)

        return await self._single.run(("manifest", name, digest), work)

    async def _tag_state(self, name: str, tag: str) -> TagState | None:
        state = self._tags.get((name, tag))
        if state is None:
            row = await self.index.get_tag(name, tag)
            if row is None:
                return None
            state = self._tags[(name, tag)] = TagState(row.digest, row.media_type, row.kind, row.fetched_at)
        return state

    def _fresh(self, state: TagState) -> bool:
        """Whether a tag may be served without asking upstream: pushed here, or fetched within the tag TTL."""
        return state.kind == "hosted" or self.clock.seconds() - state.fetched_at < self.settings.get(
            "cache.tag_ttl_seconds"
        )

    def memory_manifest_by_tag(self, name: str, tag: str, wanted: Callable[[str], bool]) -> ManifestResult | None:
        """What `get_manifest_by_tag` would answer at once from memory, when ``wanted(media_type)``; else None.

        Synchronous, for the front's hot path (no Deferred, no coroutine): a
        fresh tag whose manifest body is in memory.  The hit is counted only
        when a result is returned (``wanted`` lets the front refuse a media
        type first); None changes nothing.
        """
        state = self._tags.get((name, tag))
        if state is None or not self._fresh(state):
            return None
        row = self._manifest_rows.get((name, state.digest))
        item = self.manifests.get(state.digest) if row is not None else None
        if row is None or item is None or not wanted(item[1]):
            return None
        self.outcomes.hit(row[0], row[3])
        return ManifestResult(item[0], state.digest, item[1], "hit")

    async def get_manifest_by_tag(self, name: str, tag: str) -> ManifestResult:
        state = await self._tag_state(name, tag)
        if state is not None and self._fresh(state):
            cached = await self._cached_manifest(name, state.digest)
            if cached is not None:
                return cached
        if state is None and self.negative.known_missing(("manifest", name, tag)):
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": tag})
        return await self._single.run(("tag", name, tag), lambda: self._refresh_tag(name, tag))

    async def _refresh_tag(self, name: str, tag: str) -> ManifestResult:
        state = await self._tag_state(name, tag)
        if state is not None:
            result = await self._revalidate(name, tag, state)
            if result is not None:
                return result
        try:
            body, digest, media_type, source = await self._fetch_existing_manifest(name, tag)
        except UpstreamError as e:
            stale = await self._stale(name, state)
            if stale is not None:
                return stale
            raise _map_upstream_failure(e, "manifest") from None
        await self._store_manifest(name, body, digest, media_type, source)
        now = self.clock.seconds()
        try:
            await self.index.put_tag(name, tag, digest, "proxy", media_type, now)
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warn("disk full: tag {name}:{tag} served without being cached", name=name, tag=tag)
            return ManifestResult(body, digest, media_type, "miss")
        self._tags[(name, tag)] = TagState(digest, media_type, "proxy", now)
        self.negative.forget(("manifest", name, tag))
        return ManifestResult(body, digest, media_type, "miss", upstream=source)

    async def _stale(self, name: str, state: TagState | None) -> ManifestResult | None:
        if state is None:
            return None
        cached = await self._cached_manifest(name, state.digest)
        if cached is None:
            return None
        self.metrics.stale_served.labels("oci", cached.source).inc()
        cached.cache_status = "stale"
        cached.stale = True
        return cached

    async def _revalidate(self, name: str, tag: str, state: TagState) -> ManifestResult | None:
        """HEAD upstream: unchanged -> cached (TTL restarts); unreachable -> stale; else None (refetch)."""
        try:
            up, response = await self._first_answer(name, "HEAD", "manifests", tag, accept=MANIFEST_ACCEPT)
        except UpstreamNotFound:
            # Every upstream that serves this name says the tag is gone.
            self.forget_tag(name, tag)
            self.negative.remember(("manifest", name, tag))
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": tag}) from None
        except UpstreamError:
            return await self._stale(name, state)
        await discard_body(response)
        header = response.headers.getRawHeaders(b"Docker-Content-Digest")
        if not header or header[0].decode("latin-1").strip() != state.digest:
            return None  # changed (or no digest header): refetch
        cached = await self._cached_manifest(name, state.digest)
        if cached is None:
            return None
        now = self.clock.seconds()
        try:
            await self.index.mark_tag_fetched(name, tag, now)
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warn("disk full: tag {name}:{tag} revalidated, its new time kept in memory only", name=name, tag=tag)
        state.fetched_at = now
        cached.cache_status = "revalidated"
        cached.upstream = up.name
        return cached


class BlobDownload:
    """The `DownloadJob` of one proxied blob: keyed by digest alone, verified by it."""

    front = "oci"
    extra_hashes: tuple[str, ...] = ()
    adoptable = True

    def __init__(self, cache: OciCache, name: str, digest: str):
        self.cache = cache
        self.name = name
        self.digest = digest
        self.key = ("blob", digest)
        # Until one answers: the first upstream serving the name (`open` names the one that answered).
        upstreams = cache.route(name).upstreams
        self.source = upstreams[0].name if upstreams else "none"

    async def open(self) -> Opened:
        up, response = await self.cache._first_answer(self.name, "GET", "blobs", self.digest)
        return Opened(response, up.name)

    async def expected_digest(self) -> str:
        return self.digest

    async def commit(self, download: Download) -> Entry:
        assert download.temp is not None and download.temp.total is not None  # verified: its length is known
        return await self.cache._commit_blob(self.digest, download.temp.total, download.source)

    async def adopt(self) -> Adopted | None:
        return await self.cache._adopt_blob(self.digest)
