"""What the web console reads and does beyond the seed's management API.

`ConsoleApi` parses query strings and shapes JSON for the ``/api/v1`` routes
the console needs (cache entries, in-flight downloads, the config schema,
the audit log, a dashboard summary, container images); `api.front.ApiFront`
declares the routes, checks the caller and records audit entries.  The
decisions stay in the core: deleting an entry is `Evictor.delete_entry`,
a manifest comes from `OciCache` (pull-through, as a client would get it),
a hosted tag goes through `HostedRegistry.delete_manifest`.

Every list is paged with ``offset``/``limit`` (limit 1..500, default 50) and
answers ``{"total": N, "offset": o, "limit": l, <items>: [...]}``; the cache
entries, images and tags lists page by keyset instead (``cursor`` from the
previous page's ``next``, `api.listings`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from harbor_cache import __version__
from harbor_cache.api.listings import entries_page, images_page, tags_page
from harbor_cache.auth.permissions import Permissions
from harbor_cache.core.operations.audit import ACTIONS
from harbor_cache.core.seams import AuditRecord, ConsoleQueries, Entry
from harbor_cache.errors import (
    BadRequest,
    Conflict,
    ErrorCode,
    ManifestInvalid,
    NameInvalid,
    NotFound,
    NotHosted,
)
from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.grammar.digests import is_digest_reference
from harbor_cache.grammar.mediatypes import INDEX_TYPES
from harbor_cache.grammar.names import is_valid_repository_name, is_valid_tag
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.grammar.public_url import PublicURL
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import Offload

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_TEXT = 256


def query_arg(request: HarborRequest, name: str) -> str | None:
    """A query parameter as text (the first one), None when absent or empty."""
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        text = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{name} is not UTF-8") from None
    if len(text) > MAX_TEXT:
        raise BadRequest(f"{name} is longer than {MAX_TEXT} characters", {name: text[:32]})
    if not is_clean_text(text):
        # Filters reach SQL, and PostgreSQL refuses NUL in text: bad input, never a 500.
        raise BadRequest(f"{name} may not contain control characters")
    return text or None


def int_arg(request: HarborRequest, name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter: ASCII digits only (`numbers.parse_decimal`), within the bounds."""
    raw = query_arg(request, name)
    if raw is None:
        return default
    value = parse_decimal(raw)
    if value is None or not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be an integer from {minimum} to {maximum}", {name: raw})
    return value


def choice_arg(request: HarborRequest, name: str, choices, default: str | None = None) -> str | None:
    raw = query_arg(request, name)
    if raw is None:
        return default
    if raw not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(sorted(choices))}", {name: raw})
    return raw


def page_args(request: HarborRequest) -> tuple[int, int]:
    return (int_arg(request, "offset", 0, 0, 1 << 40), int_arg(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE))


def entry_view(row: Entry) -> dict[str, Any]:
    return {
        "id": row.id,
        "front": "maven" if row.type == "maven" else "oci",
        "kind": row.kind,
        "type": row.type,
        "repository": row.repository,
        "key": row.key,
        "digest": row.digest,
        "size": row.size,
        "media_type": row.media_type,
        "upstream": row.upstream,
        "created_at": iso8601(row.created_at),
        "fetched_at": iso8601(row.fetched_at),
        "last_access": iso8601(row.last_access),
        "hits": row.access_count,
    }


def audit_view(row: AuditRecord) -> dict[str, Any]:
    detail = None
    if row.detail:
        try:
            detail = json.loads(row.detail)
        except ValueError:
            detail = {"text": row.detail}
    return {
        "id": row.id,
        "at": iso8601(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "detail": detail,
        "client": row.client,
    }


def download_label(key) -> tuple[str, str]:
    """(repository, what) for an in-flight key: ("blob", digest) or ("maven", repo, path)."""
    if isinstance(key, tuple) and len(key) == 3 and key[0] == "maven":
        return str(key[1]), str(key[2])
    if isinstance(key, tuple) and len(key) == 2:
        return "", str(key[1])
    return "", str(key)


def _may_see_download(permissions: Permissions | None, key) -> bool:
    """True when the caller may pull what an in-flight download fetches (a blob: when they may pull every name)."""
    if permissions is None:
        return True
    if isinstance(key, tuple) and len(key) == 3 and key[0] == "maven":
        return permissions.may_maven("pull", str(key[1]), str(key[2]))
    return permissions.sees_everything(maven=False)


def _descriptor(d: dict) -> dict[str, Any]:
    return {
        "digest": d.get("digest"),
        "size": d.get("size") if isinstance(d.get("size"), int) else None,
        "media_type": d.get("mediaType"),
    }


def _strings(obj) -> dict[str, str]:
    if not isinstance(obj, dict):
        return {}
    return {str(k): str(v) for k, v in obj.items()}


def manifest_view(body: bytes, digest: str, media_type: str) -> dict[str, Any]:
    """Media type, platforms (an index) or config and layers with the total (an image)."""
    try:
        document = json.loads(body)
    except ValueError:
        raise ManifestInvalid("stored manifest is not JSON", {"digest": digest}) from None
    if not isinstance(document, dict):
        raise ManifestInvalid("stored manifest is not a JSON object", {"digest": digest})
    view: dict[str, Any] = {
        "digest": digest,
        "media_type": media_type,
        "size": len(body),
        "annotations": _strings(document.get("annotations")),
        "artifact_type": document.get("artifactType"),
    }
    if media_type in INDEX_TYPES or isinstance(document.get("manifests"), list):
        view["kind"] = "index"
        platforms = []
        for child in document.get("manifests") or []:
            if not isinstance(child, dict):
                continue
            platform = child.get("platform")
            if not isinstance(platform, dict):
                platform = {}
            platforms.append(
                {
                    **_descriptor(child),
                    "os": platform.get("os"),
                    "architecture": platform.get("architecture"),
                    "variant": platform.get("variant"),
                    "os_version": platform.get("os.version"),
                    "annotations": _strings(child.get("annotations")),
                }
            )
        view["platforms"] = platforms
        return view
    view["kind"] = "image"
    layers = [d for d in (document.get("layers") or []) if isinstance(d, dict)]
    if not layers and isinstance(document.get("fsLayers"), list):  # schema 1: digests only
        layers = [{"digest": d.get("blobSum")} for d in document["fsLayers"] if isinstance(d, dict)]
    view["config"] = _descriptor(document["config"]) if isinstance(document.get("config"), dict) else None
    view["layers"] = [{**_descriptor(d), "annotations": _strings(d.get("annotations"))} for d in layers]
    view["total_size"] = sum(layer["size"] or 0 for layer in view["layers"])
    view["image_size"] = view["total_size"] + ((view["config"] or {}).get("size") or 0)
    return view


class ConsoleApi:
    """Collaborators the console's endpoints read; `ApiFront` calls these after checking the caller."""

    def __init__(
        self,
        *,
        queries: ConsoleQueries,
        downloads,
        evictor,
        settings,
        oci,
        hosted,
        metrics,
        site_front,
        clock,
        public_url: PublicURL | str | None = None,
        started_at: float | None = None,
        offload: Offload | None = None,
    ):
        self.queries = queries
        self.downloads = downloads
        self.evictor = evictor
        self.settings = settings
        self.oci = oci
        self.hosted = hosted
        self.metrics = metrics
        self.site_front = site_front
        self.clock = clock
        self.public_url = PublicURL.of(public_url)
        # Shapes the lists that grow with the index (images, tags) off the reactor (None: inline).
        self.offload = offload
        self.started_at = clock.seconds() if started_at is None else started_at

    # -- cache entries -------------------------------------------------------------

    async def entries(self, request: HarborRequest) -> dict[str, Any]:
        """A keyset page of cache entries (`api.listings.entries_page`)."""
        return await entries_page(self, request)

    async def _name_blobs(self, views: list[dict[str, Any]]) -> None:
        """A blob row's ``image``: a repository known to use it (one query for the page), else None.

        Hosted blobs are known by their claims, proxied ones by the manifests stored since
        ``blob_images`` exists; ``image_count`` says how many repositories use it.
        """
        digests = [v["key"] for v in views if v["type"] == "blob"]
        owners = await self.queries.blob_owners(digests) if digests else {}
        for v in views:
            if v["type"] == "blob":
                names = owners.get(v["key"], [])
                v["image"] = names[0] if names else None
                v["image_count"] = len(names)

    async def delete_entry(self, entry_id: int) -> dict[str, Any]:
        """Remove one proxied entry; NotFound, or Conflict for hosted content."""
        row = await self.queries.get_entry_by_id(entry_id)
        if row is None:
            raise NotFound("no cache entry with this id", {"id": entry_id})
        if row.kind == "hosted":
            raise Conflict(
                "hosted content is deleted through the registry or artifact API, not the cache", {"id": entry_id}
            )
        if not await self.evictor.delete_entry(entry_id):
            raise NotFound("no cache entry with this id", {"id": entry_id})
        return entry_view(row)

    # -- downloads -------------------------------------------------------------------

    def downloads_now(self, permissions: Permissions | None = None) -> dict[str, Any]:
        """Downloads in flight; with ``permissions``, only those of what the caller may pull."""
        now = self.clock.seconds()
        out = []
        everything = permissions is None or (
            permissions.sees_everything(maven=False) and permissions.sees_everything(maven=True)
        )
        for dl in list(self.downloads.inflight.values()):
            repository, what = download_label(dl.key)
            if not everything and not _may_see_download(permissions, dl.key):
                continue
            done = dl.temp.received if dl.temp is not None else 0
            started = getattr(dl, "started_at", None) or now
            elapsed = max(now - started, 0.0)
            out.append(
                {
                    "front": dl.front,
                    "source": dl.source,
                    "repository": repository,
                    "target": what,
                    "bytes_done": done,
                    "total": dl.length,
                    "rate": round(done / elapsed, 1) if elapsed > 0 else 0.0,
                    "clients": dl.joined + 1,
                    "started_at": iso8601(started),
                    "elapsed_seconds": round(elapsed, 3),
                    "state": "body" if dl.temp is not None else "connecting",
                }
            )
        out.sort(key=lambda d: d["started_at"] or "")
        return {"downloads": out}

    # -- config -----------------------------------------------------------------------

    def config_schema(self) -> dict[str, Any]:
        keys = self.settings.schema()
        for k in keys:
            k["updated_at"] = iso8601(k["updated_at"])
        return {"keys": keys}

    # -- audit ------------------------------------------------------------------------

    async def audit(self, request: HarborRequest) -> dict[str, Any]:
        from harbor_cache.api.audit import audit_filters  # api.audit imports this module's helpers

        offset, limit = page_args(request)
        total, rows = await self.queries.audit_page(offset=offset, limit=limit, **audit_filters(request))
        return {
            "total": total,
            "offset": offset,
            "limit": limit,
            "actions": list(ACTIONS),
            "entries": [audit_view(r) for r in rows],
        }

    # -- dashboard ----------------------------------------------------------------------

    def _source_counters(self) -> list[dict[str, Any]]:
        table: dict[tuple[str, str], dict[str, Any]] = {}

        def add(counter, field):
            for metric in counter.collect():
                for sample in metric.samples:
                    if not sample.name.endswith("_total"):
                        continue
                    key = (sample.labels.get("front", ""), sample.labels.get("source", ""))
                    row = table.setdefault(
                        key,
                        {
                            "front": key[0],
                            "source": key[1],
                            "hits": 0,
                            "misses": 0,
                            "upstream_bytes": 0,
                            "errors": 0,
                            "coalesced": 0,
                        },
                    )
                    row[field] += int(sample.value)

        m = self.metrics
        add(m.source_hits, "hits")
        add(m.source_misses, "misses")
        add(m.upstream_bytes, "upstream_bytes")
        add(m.upstream_errors, "errors")
        add(m.coalesced, "coalesced")
        return [table[k] for k in sorted(table)]

    def _served_bytes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for metric in self.metrics.served_bytes.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels.get("front", "")] = int(sample.value)
        return out

    async def dashboard(self) -> dict[str, Any]:
        stats = await self.evictor.stats()
        problems = await self.site_front.problems()
        now = self.clock.seconds()
        return {
            "version": __version__,
            "status": "degraded" if problems else "healthy",
            "problems": problems,
            "started_at": iso8601(self.started_at),
            "uptime_seconds": int(max(now - self.started_at, 0)),
            "server_time": iso8601(now),
            "cache": {
                **stats,
                "max_size": self.settings.get("cache.max_size"),
                "eviction_policy": self.settings.get("cache.eviction_policy"),
            },
            "sources": self._source_counters(),
            "served_bytes": self._served_bytes(),
            "inflight": len(self.downloads.inflight),
            "last_eviction": dict(self.evictor.last_pass),
        }

    # -- container images ---------------------------------------------------------------

    def _pull_host(self, request: HarborRequest) -> str:
        base = self.public_url.for_request(request)
        return urlsplit(base).netloc or base

    def pull_lines(self, request: HarborRequest, name: str, reference: str) -> dict[str, str]:
        """``docker pull`` / ``podman pull`` of this server (server.public_url, else the request's Host)."""
        return _pull_lines(self._pull_host(request), name, reference)

    def _identity(self, key: str) -> tuple[str, str]:
        identify = getattr(self.oci, "image_identity", None)
        return identify(key) if identify is not None else ("", key)

    async def images(self, request: HarborRequest, visible: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """One page of images, one row per upstream image (`api.listings.images_page`)."""
        return await images_page(self, request, visible)

    @staticmethod
    def repository_arg(request: HarborRequest) -> str:
        """The ``repository`` query argument, checked (400 when missing or not a repository name)."""
        return ConsoleApi._name(request)

    @staticmethod
    def _name(request: HarborRequest) -> str:
        name = query_arg(request, "repository")
        if name is None:
            raise BadRequest("repository is required")
        if not is_valid_repository_name(name):
            raise NameInvalid("invalid repository name", {"repository": name})
        return name

    @staticmethod
    def _reference(request: HarborRequest) -> str:
        reference = query_arg(request, "reference")
        if reference is None:
            raise BadRequest("reference is required")
        if is_digest_reference(reference):
            from harbor_cache.grammar.digests import parse_digest

            try:
                return str(parse_digest(reference))
            except ValueError:
                raise BadRequest("invalid digest", {"reference": reference}, code=ErrorCode.DIGEST_INVALID) from None
        if not is_valid_tag(reference):
            raise BadRequest("invalid tag", {"reference": reference}, code=ErrorCode.TAG_INVALID)
        return reference

    async def image_tags(self, request: HarborRequest) -> dict[str, Any]:
        """One page of a repository's tags (`api.listings.tags_page`)."""
        return await tags_page(self, request)

    async def image_manifest(self, request: HarborRequest) -> dict[str, Any]:
        name, reference = self._name(request), self._reference(request)
        if is_digest_reference(reference):
            result = await self.oci.get_manifest_by_digest(name, reference)
        else:
            result = await self.oci.get_manifest_by_tag(name, reference)
        view = manifest_view(result.body, result.digest, result.media_type)
        if view["kind"] == "index":
            await self._platform_sizes(view["platforms"], name)
        view.update(
            {
                "repository": name,
                "reference": reference,
                "cache_status": result.cache_status,
                "pull": self.pull_lines(request, name, reference),
            }
        )
        return view

    async def _platform_sizes(self, platforms: list[dict[str, Any]], name: str) -> None:
        """Each platform's ``image_size`` (config + layers of its manifest), from manifests we hold.

        Only stored manifests are read (memory, disk or the bucket, `OciCache.stored_manifest`): viewing
        an index never asks upstream for every platform. A platform not cached here gets None.
        """
        stored = getattr(self.oci, "stored_manifest", None)
        for platform in platforms:
            platform["image_size"] = None
            digest = platform.get("digest")
            if stored is None or not isinstance(digest, str):
                continue
            body = await stored(digest, name)
            if body is None:
                continue
            try:
                child = manifest_view(body, digest, platform.get("media_type") or "")
            except ManifestInvalid:
                continue
            if child["kind"] == "image":
                platform["image_size"] = child["image_size"]

    async def delete_tag(self, request: HarborRequest) -> tuple[str, str]:
        name = self._name(request)
        tag = query_arg(request, "tag")
        if tag is None or not is_valid_tag(tag):
            raise BadRequest("a valid tag is required", {"tag": tag}, code=ErrorCode.TAG_INVALID)

        try:
            await self.hosted.delete_manifest(name, tag, True)
        except NotHosted:
            raise Conflict(
                "only hosted (pushed) tags can be deleted; cached tags follow their upstream",
                {"repository": name, "tag": tag},
            ) from None
        return name, tag


def _pull_lines(host: str, name: str, reference: str) -> dict[str, str]:
    ref = f"{name}@{reference}" if is_digest_reference(reference) else f"{name}:{reference}"
    return {"docker": f"docker pull {host}/{ref}", "podman": f"podman pull {host}/{ref}"}
