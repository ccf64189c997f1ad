"""/api/v1/quotas (api/front.py, core/operations/quotas.py): limits on hosted content, with their usage."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    COUNT,
    STRING,
    TIMESTAMP,
    array_of,
    errors,
    header,
    json_body,
    obj,
    operation,
    path_param,
    ref,
)

_LIMIT = {"type": "integer", "minimum": 1}
_NULLABLE_LIMIT = {"type": ["integer", "null"], "minimum": 1}

SCHEMAS = {
    "Quota": obj(
        ["id", "repositories", "max_bytes", "max_tags", "used_bytes", "used_tags", "created_at", "updated_at"],
        id={"type": "integer"},
        repositories={
            **STRING,
            "description": 'A repository glob ("team-a/*", fnmatch: * also crosses /) or "maven:<hosted repository id>"',
        },
        max_bytes=_LIMIT,
        max_tags={**_NULLABLE_LIMIT, "description": "Hosted tags allowed (null: no limit; always null for Maven)"},
        used_bytes={
            **COUNT,
            "description": "Hosted blobs claimed or needed by matching repositories (each digest once) plus their "
            "hosted manifests; for Maven the deployed files",
        },
        used_tags={"type": ["integer", "null"], "minimum": 0, "description": "Hosted tags (null for Maven)"},
        created_at=TIMESTAMP,
        updated_at=TIMESTAMP,
    ),
    "QuotaList": obj(["quotas"], quotas=array_of(ref("Quota"))),
    "QuotaChange": {
        "type": "object",
        "required": ["repositories", "max_bytes"],
        "description": "Other fields are ignored. PUT replaces every field (max_tags left out: no limit).",
        "properties": {
            "repositories": STRING,
            "max_bytes": _LIMIT,
            "max_tags": _NULLABLE_LIMIT,
        },
    },
}

_admin = partial(operation, tag="management", role="admin")
_QUOTA_ID = [path_param("id", {"type": "integer"}, "Quota id")]
_NO_QUOTA = errors({404: "No quota with this id (code NOT_FOUND)."})
_BAD = errors(
    {
        400: "Not a JSON object, a bad glob, an unknown or non-hosted Maven repository id, max_tags on a Maven "
        "quota, or a limit that is not a positive integer (code BAD_REQUEST).",
        413: "The body is larger than 64 KiB (code SIZE_INVALID).",
    }
)
_TAKEN = errors({409: "A quota for the same repositories exists (code CONFLICT)."})


def paths() -> dict:
    """The /api/v1/quotas paths."""
    return {
        "/api/v1/quotas": {
            "get": _admin(
                "listQuotas",
                "Quotas with their usage now",
                {"200": json_body(ref("QuotaList"), "Quotas by id.")},
            ),
            "post": _admin(
                "createQuota",
                "Add a quota (pushes beyond it are refused with 403 DENIED from now on)",
                {
                    "201": json_body(ref("Quota"), "Created.", {"Location": header("/api/v1/quotas/{id}")}),
                    **_TAKEN,
                    **_BAD,
                },
                body=ref("QuotaChange"),
            ),
        },
        "/api/v1/quotas/{id}": {
            "get": _admin(
                "getQuota",
                "One quota with its usage",
                {"200": json_body(ref("Quota"), "The quota."), **_NO_QUOTA},
                parameters=_QUOTA_ID,
            ),
            "put": _admin(
                "updateQuota",
                "Change a quota",
                {"200": json_body(ref("Quota"), "The changed quota."), **_NO_QUOTA, **_TAKEN, **_BAD},
                parameters=_QUOTA_ID,
                body=ref("QuotaChange"),
            ),
            "delete": _admin(
                "deleteQuota",
                "Remove a quota (nothing hosted is removed)",
                {"204": {"description": "Deleted."}, **_NO_QUOTA},
                parameters=_QUOTA_ID,
            ),
        },
    }
