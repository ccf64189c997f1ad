"""The OCI distribution API under /v2/ (oci/front.py and oci/hosted.py).

OCI repository names contain "/"; OpenAPI path parameters cannot, so
``{name}`` in these paths stands for one or more segments.  Pulls are open to
anonymous callers (when registry.anonymous_pull allows), pushes and deletes
need Basic or bearer credentials.
"""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BINARY,
    STRING,
    UPSTREAM_ERRORS,
    Security,
    array_of,
    error,
    errors,
    header,
    json_body,
    obj,
    operation,
    path_param,
    query_param,
    ref,
)

SCHEMAS = {
    "RegistryToken": obj(
        ["token"], token=STRING, access_token=STRING, expires_in={"type": "integer"}, issued_at=STRING
    ),
    "Catalog": obj(repositories=array_of(STRING)),
    "TagList": obj(name=STRING, tags=array_of(STRING)),
}

PULL: Security = [{"basicAuth": []}, {"bearerAuth": []}, {}]
PUSH: Security = PULL[:2]

_pull = partial(operation, tag="oci", security=PULL)
_push = partial(operation, tag="oci", security=PUSH)

_NAME = path_param(
    "name",
    STRING,
    "Repository name; may contain '/', e.g. library/nginx. A first segment that is an "
    "upstream's prefix selects that upstream's namespace and is stripped upstream "
    "(quay/library/nginx is library/nginx on quay).",
)
_NS = query_param(
    "ns",
    STRING,
    "containerd's registry host (quay.io): the namespace of the upstream whose registry it is; "
    "404 NAME_UNKNOWN when no upstream serves it",
)
_REFERENCE = path_param("reference", STRING, "Tag or digest")
_DIGEST = path_param(
    "digest",
    {"type": "string", "pattern": "^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"},
    "Content digest, e.g. sha256:...",
)
_SESSION = path_param("session_id", STRING, "Upload session id")

_UNAUTHORIZED = {
    "401": error(
        "Credentials needed (docker token flow); see WWW-Authenticate.",
        {"WWW-Authenticate": header('Bearer realm="<base>/v2/token",service="harbor-cache",scope=...')},
    )
}
_DENIED = errors(
    {
        403: "The caller's role may not do this, the name is in a read-only proxy namespace, or (manifest PUT "
        "and DELETE) an immutable-tag rule protects the tag (code DENIED; the message says which, naming the rule)."
    }
)
_BAD_NAME = errors({400: "NAME_INVALID or DIGEST_INVALID."})
_CONTENT_HEADERS = {
    "Docker-Content-Digest": header("Digest of the content"),
    "Content-Length": header("Bytes", {"type": "integer"}),
    "Content-Type": header("Media type"),
}
_PULL_ERRORS = {
    **_BAD_NAME,
    **_UNAUTHORIZED,
    **UPSTREAM_ERRORS,
    **errors(
        {
            507: "A cold blob the disk cannot hold (below cache.min_free_bytes): code INSUFFICIENT_STORAGE, "
            "sent before any byte of the body."
        }
    ),
}
_UPLOAD_HEADERS = {
    "Location": header("Upload URL"),
    "Docker-Upload-UUID": header("Session id"),
    "Range": header("Bytes received, 0-N"),
}
_STORED_HEADERS = {"Docker-Content-Digest": header("Digest")}
_PUSH_ERRORS = {
    **errors(
        {
            400: "DIGEST_INVALID, SIZE_INVALID, NAME_INVALID or MANIFEST_INVALID.",
            404: "BLOB_UPLOAD_UNKNOWN or BLOB_UNKNOWN.",
        }
    ),
    **_UNAUTHORIZED,
    **_DENIED,
}
_UPLOAD_ERRORS = {
    **_PUSH_ERRORS,
    **errors(
        {
            413: "Content-Length over limits.max_upload_bytes (code SIZE_INVALID), before the body is read.",
            507: "The body would take the disk below cache.min_free_bytes (before it is read), or the disk filled "
            "up while it was written; nothing is kept (code INSUFFICIENT_STORAGE).",
        }
    ),
}


def _stored(description: str, location: str) -> dict:
    """A 201 of a push: where the content is and its digest."""
    return {"description": description, "headers": {"Location": header(location), **_STORED_HEADERS}}


def _paging(last: str) -> list[dict]:
    return [
        query_param("n", {"type": "integer", "minimum": 0}, "Page size"),
        query_param("last", STRING, f"Last {last} of the previous page"),
    ]


def _manifest_pulls() -> dict:
    """GET and HEAD of a manifest: the responses."""
    return {
        "200": {
            "description": "The manifest as stored (no conversion); Warning: 110 when served stale.",
            "headers": _CONTENT_HEADERS,
            "content": {"*/*": {"schema": {}}},
        },
        "304": {"description": "If-None-Match named the manifest's ETag (its digest)."},
        **errors({404: "MANIFEST_UNKNOWN (also for a reference that is not a valid tag) or NAME_UNKNOWN."}),
        **_PULL_ERRORS,
    }


def _blob_pulls() -> dict:
    """GET and HEAD of a blob: the responses."""
    octets = {"application/octet-stream": {"schema": BINARY}}
    return {
        "200": {"description": "The blob.", "headers": _CONTENT_HEADERS, "content": octets},
        "206": {
            "description": "A single byte range (Range: bytes=a-b).",
            "headers": _CONTENT_HEADERS,
            "content": octets,
        },
        **errors({416: "The range cannot be served (code RANGE_INVALID).", 404: "BLOB_UNKNOWN."}),
        **_PULL_ERRORS,
    }


def paths() -> dict:
    """The /v2/ paths."""
    manifest, blob = _manifest_pulls(), _blob_pulls()
    return {
        "/v2/": {
            "get": _pull(
                "v2Base",
                "API version check",
                {
                    "200": json_body(
                        {"type": "object"}, "{}", {"Docker-Distribution-API-Version": header("registry/2.0")}
                    ),
                    **_UNAUTHORIZED,
                },
            )
        },
        "/v2/token": {
            "get": operation(
                "v2Token",
                "Registry token (docker token flow; Basic credentials)",
                {"200": json_body(ref("RegistryToken"), "A token with the actions the role allows."), **_UNAUTHORIZED},
                tag="oci",
                security=[{"basicAuth": []}, {}],
                parameters=[
                    query_param("service", STRING, "harbor-cache"),
                    query_param("scope", STRING, "repository:<name>:pull,push"),
                ],
            )
        },
        "/v2/_catalog": {
            "get": _pull(
                "v2Catalog",
                "Repository names",
                {"200": json_body(ref("Catalog"), "Names, paginated."), **_UNAUTHORIZED},
                parameters=_paging("name"),
            )
        },
        "/v2/{name}/tags/list": {
            "get": _pull(
                "v2Tags",
                "Tags of a repository",
                {
                    "200": json_body(
                        ref("TagList"),
                        "Tags, paginated. For a proxied name: the upstream's list merged with "
                        "the cached tags; Warning: 110 when the upstream could not answer and "
                        "the list is the cache's alone.",
                    ),
                    **errors({404: "NAME_UNKNOWN."}),
                    **_UNAUTHORIZED,
                },
                parameters=[_NAME, _NS, *_paging("tag")],
            )
        },
        "/v2/{name}/manifests/{reference}": {
            "get": _pull(
                "getManifest", "Pull a manifest by tag or digest", manifest, parameters=[_NAME, _REFERENCE, _NS]
            ),
            "head": _pull("headManifest", "Manifest headers only", manifest, parameters=[_NAME, _REFERENCE, _NS]),
            "put": _push(
                "putManifest",
                "Push a manifest (hosted content; role read-write or admin)",
                {
                    "201": _stored("Stored.", "Manifest URL"),
                    **errors({413: "Manifest over 4 MiB (code SIZE_INVALID)."}),
                    **_PUSH_ERRORS,
                },
                parameters=[_NAME, _REFERENCE],
            ),
            "delete": _push(
                "deleteManifest",
                "Delete a manifest by digest",
                {"202": {"description": "Deleted."}, **_PUSH_ERRORS},
                parameters=[_NAME, _REFERENCE],
            ),
        },
        "/v2/{name}/blobs/{digest}": {
            "get": _pull("getBlob", "Pull a blob (Range supported)", blob, parameters=[_NAME, _DIGEST, _NS]),
            "head": _pull("headBlob", "Blob headers only", blob, parameters=[_NAME, _DIGEST, _NS]),
            "delete": _push(
                "deleteBlob",
                "Remove this repository's claim on a hosted blob (the file goes when nothing holds it)",
                {
                    "202": {"description": "Released."},
                    **_PUSH_ERRORS,
                    **errors({409: "A hosted manifest of this repository still needs the blob (code DENIED)."}),
                },
                parameters=[_NAME, _DIGEST],
            ),
        },
        "/v2/{name}/blobs/uploads/": {
            "post": _push(
                "startUpload",
                "Start an upload (or mount with ?mount=&from=, or monolithic with ?digest=)",
                {
                    "201": _stored("Mounted or uploaded in one request.", "Blob URL"),
                    "202": {"description": "Upload session started.", "headers": _UPLOAD_HEADERS},
                    **_UPLOAD_ERRORS,
                },
                parameters=[
                    _NAME,
                    query_param("mount", STRING, "Digest to mount"),
                    query_param("from", STRING, "Repository to mount from"),
                    query_param("digest", STRING, "Digest of a monolithic upload"),
                ],
            ),
        },
        "/v2/{name}/blobs/uploads/{session_id}": _upload_session(),
        "/v2/{name}/referrers/{digest}": {
            "get": _pull(
                "getReferrers",
                "Manifests whose subject is this digest (OCI referrers API; HEAD too)",
                {
                    "200": {
                        "description": "Their descriptors as an OCI image index (empty when there are none); "
                        "OCI-Filters-Applied: artifactType when that filter was applied. When the upstream "
                        "cannot answer, the last answer (or the hosted referrers alone) with "
                        'Warning: 110 - "Response is Stale" - never an error.',
                        "content": {"application/vnd.oci.image.index.v1+json": {"schema": {"type": "object"}}},
                    },
                    **_BAD_NAME,
                    **_UNAUTHORIZED,
                },
                parameters=[
                    _NAME,
                    _DIGEST,
                    query_param("artifactType", STRING, "Only referrers of this artifact type"),
                ],
                description="Those pushed here come first. For a proxied name the upstream's follow: its "
                "referrers API (artifactType passed through and also applied here), else, when it answers 404, "
                "the referrers tag schema (the sha256-<hex> tag holding an image index of the referrers). The "
                "upstream's answer is cached for cache.tag_ttl_seconds, like a tag, and served stale when the "
                "upstream fails.",
            ),
        },
    }


def _upload_session() -> dict:
    """/v2/{name}/blobs/uploads/{session_id}: an upload under way."""
    session = [_NAME, _SESSION]
    return {
        "get": _push(
            "uploadStatus",
            "Upload progress",
            {"204": {"description": "Progress.", "headers": _UPLOAD_HEADERS}, **_PUSH_ERRORS},
            parameters=session,
        ),
        "patch": _push(
            "uploadChunk",
            "Upload a chunk (Content-Range: a-b)",
            {
                "202": {"description": "Chunk stored.", "headers": _UPLOAD_HEADERS},
                **_UPLOAD_ERRORS,
                **errors({416: "Chunk out of order (code BLOB_UPLOAD_INVALID)."}),
            },
            parameters=session,
        ),
        "put": _push(
            "finishUpload",
            "Finish an upload (?digest= required; optional last chunk)",
            {"201": _stored("Stored.", "Blob URL"), **_UPLOAD_ERRORS},
            parameters=[*session, query_param("digest", STRING, "Final digest", True)],
        ),
        "delete": _push(
            "cancelUpload",
            "Cancel an upload",
            {"204": {"description": "Cancelled."}, **_PUSH_ERRORS},
            parameters=session,
        ),
    }
