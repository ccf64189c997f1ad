"""/api/v1/retention and /api/v1/immutable-tags (api/policies.py): hosted-content policies."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BAD_BODY,
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

_GLOB = {
    "type": "string",
    "description": "A glob over whole names: * matches any run of characters (/ included), ? one; "
    "other characters are those of repository names (tags: of tags). Anything else is 400.",
}
_NULLABLE_COUNT = {"type": ["integer", "null"], "minimum": 0}

SCHEMAS = {
    "RetentionRule": obj(
        ["id", "repositories", "keep_last", "keep_days", "keep_tags", "created_at", "updated_at"],
        id={"type": "integer"},
        repositories=_GLOB,
        keep_last={**_NULLABLE_COUNT, "description": "Keep the N most recently pushed tags"},
        keep_days={**_NULLABLE_COUNT, "description": "Keep tags pushed in the last D days"},
        keep_tags={**array_of(STRING), "description": "Always keep tags matching any of these globs"},
        created_at=TIMESTAMP,
        updated_at=TIMESTAMP,
    ),
    "RetentionRuleList": obj(["rules"], rules=array_of(ref("RetentionRule"))),
    "RetentionRuleChange": {
        "type": "object",
        "description": "repositories is required, and at least one of keep_last, keep_days, keep_tags. "
        "A tag survives if ANY keep clause keeps it. PUT replaces the whole rule. Other fields are ignored.",
        "properties": {
            "repositories": _GLOB,
            "keep_last": _NULLABLE_COUNT,
            "keep_days": _NULLABLE_COUNT,
            "keep_tags": {"type": ["array", "null"], "items": STRING},
        },
    },
    "RetentionRun": obj(
        ["dry_run", "rules", "tags", "deleted"],
        dry_run={"type": "boolean"},
        rules={**array_of({"type": "integer"}), "description": "The rules applied"},
        tags={
            **array_of(
                obj(
                    ["repository", "tag", "digest", "pushed_at"],
                    repository=STRING,
                    tag=STRING,
                    digest=STRING,
                    pushed_at=TIMESTAMP,
                )
            ),
            "description": "The tags deleted (dry run: that would be deleted)",
        },
        deleted={"type": "integer", "minimum": 0},
    ),
    "RetentionRunRequest": {
        "type": "object",
        "description": "Optional body; without it (or with dry_run false) the tags are deleted.",
        "properties": {"dry_run": {"type": "boolean"}},
    },
    "ImmutableRule": obj(
        ["id", "repositories", "tags", "created_at"],
        id={"type": "integer"},
        repositories=_GLOB,
        tags=_GLOB,
        created_at=TIMESTAMP,
    ),
    "ImmutableRuleList": obj(["rules"], rules=array_of(ref("ImmutableRule"))),
    "ImmutableRuleChange": {
        "type": "object",
        "description": "Both globs are required. Other fields are ignored.",
        "properties": {"repositories": _GLOB, "tags": _GLOB},
    },
}

_admin = partial(operation, tag="management", role="admin")
_ID = [path_param("id", {"type": "integer"}, "Rule id")]
_NO_RULE = errors({404: "No rule with this id (code NOT_FOUND)."})
_RUN_BODY = {"required": False, "content": {"application/json": {"schema": ref("RetentionRunRequest")}}}


def paths() -> dict:
    """The policy paths."""
    return {
        "/api/v1/retention": {
            "get": _admin(
                "listRetentionRules",
                "Tag retention rules",
                {"200": json_body(ref("RetentionRuleList"), "Rules by id.")},
            ),
            "post": _admin(
                "createRetentionRule",
                "Add a tag retention rule (applied every retention.interval_seconds)",
                {
                    "201": json_body(ref("RetentionRule"), "Created.", {"Location": header("/api/v1/retention/{id}")}),
                    **BAD_BODY,
                },
                body=ref("RetentionRuleChange"),
            ),
        },
        "/api/v1/retention/run": {
            "post": _admin(
                "runRetention",
                "Apply every retention rule now (or, with dry_run, list what would be deleted)",
                {"200": json_body(ref("RetentionRun"), "What went (or would go)."), **BAD_BODY},
                request_body=_RUN_BODY,
            ),
        },
        "/api/v1/retention/{id}": {
            "get": _admin(
                "getRetentionRule",
                "One retention rule",
                {"200": json_body(ref("RetentionRule"), "The rule."), **_NO_RULE},
                parameters=_ID,
            ),
            "put": _admin(
                "updateRetentionRule",
                "Replace a retention rule",
                {"200": json_body(ref("RetentionRule"), "The changed rule."), **_NO_RULE, **BAD_BODY},
                parameters=_ID,
                body=ref("RetentionRuleChange"),
            ),
            "delete": _admin(
                "deleteRetentionRule",
                "Remove a retention rule",
                {"204": {"description": "Deleted."}, **_NO_RULE},
                parameters=_ID,
            ),
        },
        "/api/v1/retention/{id}/run": {
            "post": _admin(
                "runRetentionRule",
                "Apply one retention rule now (or, with dry_run, list what would be deleted)",
                {"200": json_body(ref("RetentionRun"), "What went (or would go)."), **_NO_RULE, **BAD_BODY},
                parameters=_ID,
                request_body=_RUN_BODY,
            ),
        },
        "/api/v1/immutable-tags": {
            "get": _admin(
                "listImmutableTagRules",
                "Immutable-tag rules",
                {"200": json_body(ref("ImmutableRuleList"), "Rules by id.")},
            ),
            "post": _admin(
                "createImmutableTagRule",
                "Add an immutable-tag rule: matching hosted tags can no longer be moved or deleted",
                {
                    "201": json_body(
                        ref("ImmutableRule"), "Created.", {"Location": header("/api/v1/immutable-tags/{id}")}
                    ),
                    **BAD_BODY,
                },
                body=ref("ImmutableRuleChange"),
            ),
        },
        "/api/v1/immutable-tags/{id}": {
            "delete": _admin(
                "deleteImmutableTagRule",
                "Remove an immutable-tag rule",
                {"204": {"description": "Deleted."}, **_NO_RULE},
                parameters=_ID,
            ),
        },
    }
