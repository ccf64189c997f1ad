"""The console's endpoints under /api/v1 (issue 13; api/console.py): dashboard, downloads, entries, audit, images."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    COUNT,
    CURSOR,
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    STRING,
    STRING_MAP,
    TIMESTAMP,
    UPSTREAM_ERRORS,
    array_of,
    errors,
    json_body,
    obj,
    operation,
    page,
    path_param,
    query_param,
    ref,
)

_FRONT = {"type": "string", "enum": ["oci", "maven"]}
_ID = {"type": "integer", "minimum": 1}
_NULLABLE_INTEGER = {"type": ["integer", "null"]}
_NEXT = {
    "type": ["string", "null"],
    "description": "Opaque cursor of the next page (pass it back as cursor); null on the last page",
}


def _descriptor(**extra: dict) -> dict:
    """An OCI descriptor as the console shows it; every field may be null."""
    return obj(
        ["digest", "size", "media_type"],
        digest=NULLABLE_STRING,
        size=_NULLABLE_INTEGER,
        media_type=NULLABLE_STRING,
        **extra,
    )


SCHEMAS = {
    "CacheEntry": obj(
        [
            "id",
            "front",
            "kind",
            "type",
            "repository",
            "key",
            "digest",
            "size",
            "media_type",
            "upstream",
            "created_at",
            "fetched_at",
            "last_access",
            "hits",
        ],
        id=_ID,
        front=_FRONT,
        kind={"type": "string", "enum": ["proxy", "hosted"]},
        type={"type": "string", "enum": ["manifest", "blob", "maven"]},
        repository={"type": "string", "description": 'OCI repository or Maven repository id ("" for blobs)'},
        key={"type": "string", "description": "Digest (OCI) or path (Maven)"},
        digest=STRING,
        size=COUNT,
        media_type=NULLABLE_STRING,
        upstream=NULLABLE_STRING,
        created_at=TIMESTAMP,
        fetched_at=TIMESTAMP,
        last_access=TIMESTAMP,
        hits={**COUNT, "description": "Reads of the entry: hits, and the clients served while it downloaded"},
        image={
            **NULLABLE_STRING,
            "description": "Blob rows only: a repository known to use the blob (hosted claims, stored proxied "
            "manifests), null when none is known",
        },
        image_count={**COUNT, "description": "Blob rows only: how many repositories are known to use it"},
    ),
    "Download": obj(
        [
            "front",
            "source",
            "repository",
            "target",
            "bytes_done",
            "total",
            "rate",
            "clients",
            "started_at",
            "elapsed_seconds",
            "state",
        ],
        front=_FRONT,
        source={"type": "string", "description": "Upstream name or Maven repository id"},
        repository=STRING,
        target={"type": "string", "description": "Blob digest or Maven path"},
        bytes_done=COUNT,
        total={"type": ["integer", "null"], "description": "Content-Length, when the upstream sent one"},
        rate={"type": "number", "minimum": 0, "description": "Bytes per second since the download began"},
        clients={"type": "integer", "minimum": 1, "description": "Requests served by this one download"},
        started_at=TIMESTAMP,
        elapsed_seconds={"type": "number", "minimum": 0},
        state={"type": "string", "enum": ["connecting", "body"]},
    ),
    "ConfigSchemaKey": obj(
        ["key", "type", "description", "default", "value", "updated_at"],
        key=ref("ConfigKey"),
        type={"type": "string", "enum": ["integer", "boolean", "string"]},
        description=STRING,
        default=STRING,
        value={"type": "string", "description": "Current value, as stored"},
        updated_at={**NULLABLE_TIMESTAMP, "description": "When the value was stored; null at the default"},
        minimum={"type": "integer"},
        maximum={"type": "integer"},
        enum=array_of(STRING),
    ),
    "AuditRecord": obj(
        ["id", "at", "actor", "action", "target", "detail", "client"],
        id=_ID,
        at=TIMESTAMP,
        actor={"type": ["string", "null"], "description": "Username (the name tried, for a failed login)"},
        action=STRING,
        target=NULLABLE_STRING,
        detail={"type": ["object", "null"]},
        client={"type": ["string", "null"], "description": "Peer address"},
    ),
    "SourceCounters": obj(
        ["front", "source", "hits", "misses", "upstream_bytes", "errors", "coalesced"],
        front=STRING,
        source=STRING,
        hits=COUNT,
        misses=COUNT,
        upstream_bytes=COUNT,
        errors=COUNT,
        coalesced=COUNT,
    ),
    "Dashboard": obj(
        [
            "version",
            "status",
            "problems",
            "started_at",
            "uptime_seconds",
            "server_time",
            "cache",
            "sources",
            "served_bytes",
            "inflight",
            "last_eviction",
        ],
        version=STRING,
        status={"type": "string", "enum": ["healthy", "degraded"]},
        problems=array_of(STRING),
        started_at=TIMESTAMP,
        uptime_seconds=COUNT,
        server_time=TIMESTAMP,
        cache={
            "allOf": [
                ref("CacheStats"),
                obj(["max_size", "eviction_policy"], max_size=COUNT, eviction_policy=STRING),
            ]
        },
        sources={
            **array_of(ref("SourceCounters")),
            "description": "Since this process started, by front and upstream / repository",
        },
        served_bytes={"type": "object", "additionalProperties": COUNT},
        inflight=COUNT,
        last_eviction={"type": "object"},
    ),
    "ImageRepositories": obj(
        ["repositories", "next"],
        next=_NEXT,
        repositories=array_of(
            obj(
                ["name", "registry", "image", "paths", "hosted", "cached", "tag_count", "manifest_count", "updated_at"],
                name={
                    "type": "string",
                    "description": "The key to browse the tags by (of paths, the one with most tags)",
                },
                registry={"type": "string", "description": 'Upstream registry host, e.g. docker.io ("" when hosted)'},
                image={"type": "string", "description": "The image's name in that registry"},
                paths=array_of({**STRING, "description": "Every repository name clients reached this image by"}),
                hosted={"type": "boolean"},
                cached={"type": "boolean"},
                tag_count=COUNT,
                manifest_count=COUNT,
                updated_at=NULLABLE_TIMESTAMP,
            )
        ),
    ),
    "PullLines": obj(["docker", "podman"], docker=STRING, podman=STRING),
    "ImageTags": obj(
        ["repository", "tags", "next"],
        next=_NEXT,
        repository=STRING,
        tags=array_of(
            obj(
                ["tag", "digest", "kind", "media_type", "size", "updated_at", "pull"],
                tag=STRING,
                digest=STRING,
                kind={"type": "string", "enum": ["hosted", "cached"]},
                media_type=NULLABLE_STRING,
                size=_NULLABLE_INTEGER,
                updated_at=TIMESTAMP,
                pull=ref("PullLines"),
            )
        ),
    ),
    "ImageManifest": obj(
        [
            "repository",
            "reference",
            "digest",
            "media_type",
            "size",
            "kind",
            "annotations",
            "pull",
            "cache_status",
        ],
        repository=STRING,
        reference=STRING,
        digest=STRING,
        media_type=STRING,
        size=COUNT,
        kind={"type": "string", "enum": ["index", "image"]},
        artifact_type=NULLABLE_STRING,
        annotations=STRING_MAP,
        cache_status=STRING,
        pull=ref("PullLines"),
        platforms={
            "type": "array",
            "description": "An index: one per child manifest",
            "items": _descriptor(
                os=NULLABLE_STRING,
                architecture=NULLABLE_STRING,
                variant=NULLABLE_STRING,
                os_version=NULLABLE_STRING,
                annotations=STRING_MAP,
                image_size={
                    **_NULLABLE_INTEGER,
                    "description": "Config + layers of this platform's manifest; null when it is not cached here",
                },
            ),
        },
        config={"anyOf": [_descriptor(), {"type": "null"}]},
        layers=array_of(_descriptor(annotations=STRING_MAP)),
        total_size={"type": "integer", "minimum": 0, "description": "Sum of the layer sizes"},
        image_size={"type": "integer", "minimum": 0, "description": "An image: config + layers"},
    ),
}

_op = partial(operation, tag="console")
_ANYONE = "any authenticated user"
_ADMIN = "admin"
_BAD_QUERY = errors(
    {400: "A query parameter is invalid (code BAD_REQUEST, NAME_INVALID, TAG_INVALID or DIGEST_INVALID)."}
)
_PAGING = [
    query_param("offset", {"type": "integer", "minimum": 0}, "Rows to skip (default 0)"),
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (default 50)"),
]
_REPOSITORY = query_param("repository", STRING, "OCI repository name, e.g. library/alpine", True)
_TEXT = {"type": "string", "maxLength": 256}
_CURSOR = query_param("cursor", CURSOR, "The previous page's next: this page starts after it (a seek)")
_LIMIT_100 = query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (default 100)")


def _enum(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


def paths() -> dict:
    """The console's paths."""
    return {
        "/api/v1/dashboard": {
            "get": _op(
                "dashboard",
                "Everything the console's dashboard shows, in one answer",
                {
                    "200": json_body(
                        ref("Dashboard"),
                        "Health, version, uptime, cache totals against cache.max_size, counters by front and source.",
                    )
                },
                role=_ANYONE,
            )
        },
        "/api/v1/downloads": {
            "get": _op(
                "listDownloads",
                "Upstream downloads in flight",
                {
                    "200": json_body(
                        obj(["downloads"], downloads=array_of(ref("Download"))),
                        "Oldest first; bytes done of total, rate, clients joined.",
                    )
                },
                role=_ANYONE,
            )
        },
        "/api/v1/cache/entries": {
            "get": _op(
                "listCacheEntries",
                "Cache entries, paged, sorted and filtered",
                {
                    "200": json_body(
                        page(
                            "entries",
                            ref("CacheEntry"),
                            {
                                "sort": STRING,
                                "order": STRING,
                                "total_capped": {
                                    "type": "boolean",
                                    "description": "total stopped at console.entries_count_max",
                                },
                                "next": _NEXT,
                            },
                        ),
                        "One page and the number of matching entries.",
                    ),
                    **_BAD_QUERY,
                },
                role=_ADMIN,
                parameters=[
                    *_PAGING,
                    query_param(
                        "sort", _enum("size", "last_access", "hits", "created", "repository"), "Default last_access"
                    ),
                    query_param("order", _enum("asc", "desc"), "Default desc"),
                    query_param("front", _enum("oci", "maven"), "Only this front"),
                    query_param("kind", _enum("proxy", "hosted"), "Only proxied or hosted"),
                    query_param("repository", _TEXT, "Exactly this repository"),
                    query_param("q", _TEXT, "Text contained in the repository or key (case-insensitive)"),
                    _CURSOR,
                ],
            )
        },
        "/api/v1/cache/entries/{id}": {
            "delete": _op(
                "deleteCacheEntry",
                "Remove one proxied entry (its file too, once unreferenced)",
                {
                    "204": {"description": "Removed."},
                    **errors(
                        {
                            404: "No entry with this id (code NOT_FOUND).",
                            409: "The entry is hosted content (code CONFLICT): delete it through /v2 or /artifacts.",
                        }
                    ),
                },
                role=_ADMIN,
                parameters=[path_param("id", _ID, "Entry id")],
            )
        },
        "/api/v1/config/schema": {
            "get": _op(
                "configSchema",
                "Every runtime key: type, bounds, description, default, current",
                {"200": json_body(obj(["keys"], keys=array_of(ref("ConfigSchemaKey"))), "By key.")},
                role=_ADMIN,
            )
        },
        **_image_paths(),
    }


def _image_paths() -> dict:
    return {
        "/api/v1/images": {
            "get": _op(
                "listImages",
                "OCI repositories this server hosts or has cached",
                {"200": json_body(ref("ImageRepositories"), "One page, by name."), **_BAD_QUERY},
                role=_ANYONE,
                parameters=[_LIMIT_100, _CURSOR],
            )
        },
        "/api/v1/images/tags": {
            "get": _op(
                "listImageTags",
                "Tags of a repository (as known here) and what they point at",
                {
                    "200": json_body(ref("ImageTags"), "By tag."),
                    **errors({404: "No tag or manifest under this name (code NAME_UNKNOWN)."}),
                    **_BAD_QUERY,
                },
                role=_ANYONE,
                parameters=[_REPOSITORY, _LIMIT_100, _CURSOR],
            ),
            "delete": _op(
                "deleteImageTag",
                "Delete a hosted (pushed) tag",
                {
                    "204": {"description": "The tag is gone (the manifest stays, by digest)."},
                    **errors(
                        {
                            404: "No such tag (code MANIFEST_UNKNOWN).",
                            409: "The tag is cached from an upstream, not hosted (code CONFLICT).",
                        }
                    ),
                    **_BAD_QUERY,
                },
                role="read-write or admin",
                parameters=[_REPOSITORY, query_param("tag", STRING, "The tag", True)],
            ),
        },
        "/api/v1/images/manifest": {
            "get": _op(
                "imageManifest",
                "A manifest, read as a client would pull it (cache, then upstream)",
                {
                    "200": json_body(
                        ref("ImageManifest"), "Media type, digest, platforms of an index or layers of an image."
                    ),
                    **errors({404: "MANIFEST_UNKNOWN or NAME_UNKNOWN."}),
                    **_BAD_QUERY,
                    **UPSTREAM_ERRORS,
                },
                role=_ANYONE,
                parameters=[_REPOSITORY, query_param("reference", STRING, "Tag or digest", True)],
            )
        },
    }
