"""/api/v1/quotas (api/front.py, core/operations/quotas.py): limits on hosted content, with their usage."""

from __future__ import annotations

from harbor_cache.api.openapi.common import (
    COUNT,
    STRING,
    TIMESTAMP,
    Op,
    admin_collection,
    admin_item,
    array_of,
    errors,
    obj,
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
        "/api/v1/quotas": admin_collection(
            "/api/v1/quotas",
            "Quota",
            ref("QuotaChange"),
            list_op=Op("listQuotas", "Quotas with their usage now"),
            listed=ref("QuotaList"),
            listed_as="Quotas by id.",
            create_op=Op(
                "createQuota", "Add a quota (pushes beyond it are refused with 403 DENIED from now on)", _TAKEN
            ),
            bad=_BAD,
        ),
        "/api/v1/quotas/{id}": admin_item(
            "Quota",
            "quota",
            _QUOTA_ID,
            _NO_QUOTA,
            get=Op("getQuota", "One quota with its usage"),
            put=Op("updateQuota", "Change a quota", _TAKEN),
            delete=Op("deleteQuota", "Remove a quota (nothing hosted is removed)"),
            body=ref("QuotaChange"),
            bad=_BAD,
        ),
    }
