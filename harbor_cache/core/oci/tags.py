"""Proxied tags: revalidated upstream after ``cache.tag_ttl_seconds``, served stale when it cannot answer; tag lists."""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.logger import Logger

from harbor_cache.core.oci.manifests import ProxyManifests
from harbor_cache.core.oci.proxy import ManifestResult, TagState, map_upstream_failure
from harbor_cache.core.operations.diskspace import is_disk_full
from harbor_cache.errors import (
    ManifestUnknown,
    NameUnknown,
)
from harbor_cache.grammar.mediatypes import MANIFEST_ACCEPT
from harbor_cache.upstream.body import discard_body
from harbor_cache.upstream.http import UpstreamError, UpstreamNotFound
from harbor_cache.upstream.registry import read_limited

log = Logger()


class ProxyTags(ProxyManifests):
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

    async def refresh_tag(self, name: str, tag: str) -> ManifestResult:
        """`get_manifest_by_tag` without trusting the tag TTL: asked upstream now (a HEAD, then a GET if it
        changed), through the same single-flight a client's pull joins (sync runs)."""
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
            raise map_upstream_failure(e, "manifest") from None
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
