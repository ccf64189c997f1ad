"""/api/v1/retention and /api/v1/immutable-tags (api/policies.py): hosted-content policies."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BAD_BODY,
    STRING,
    TIMESTAMP,
    Op,
    admin_collection,
    admin_item,
    array_of,
    errors,
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
        "/api/v1/retention": admin_collection(
            "/api/v1/retention",
            "RetentionRule",
            ref("RetentionRuleChange"),
            list_op=Op("listRetentionRules", "Tag retention rules"),
            listed=ref("RetentionRuleList"),
            listed_as="Rules by id.",
            create_op=Op("createRetentionRule", "Add a tag retention rule (applied every retention.interval_seconds)"),
        ),
        "/api/v1/retention/run": {
            "post": _admin(
                "runRetention",
                "Apply every retention rule now (or, with dry_run, list what would be deleted)",
                {"200": json_body(ref("RetentionRun"), "What went (or would go)."), **BAD_BODY},
                request_body=_RUN_BODY,
            ),
        },
        "/api/v1/retention/{id}": admin_item(
            "RetentionRule",
            "rule",
            _ID,
            _NO_RULE,
            get=Op("getRetentionRule", "One retention rule"),
            put=Op("updateRetentionRule", "Replace a retention rule"),
            delete=Op("deleteRetentionRule", "Remove a retention rule"),
            body=ref("RetentionRuleChange"),
        ),
        "/api/v1/retention/{id}/run": {
            "post": _admin(
                "runRetentionRule",
                "Apply one retention rule now (or, with dry_run, list what would be deleted)",
                {"200": json_body(ref("RetentionRun"), "What went (or would go)."), **_NO_RULE, **BAD_BODY},
                parameters=_ID,
                request_body=_RUN_BODY,
            ),
        },
        "/api/v1/immutable-tags": admin_collection(
            "/api/v1/immutable-tags",
            "ImmutableRule",
            ref("ImmutableRuleChange"),
            list_op=Op("listImmutableTagRules", "Immutable-tag rules"),
            listed=ref("ImmutableRuleList"),
            listed_as="Rules by id.",
            create_op=Op(
                "createImmutableTagRule",
                "Add an immutable-tag rule: matching hosted tags can no longer be moved or deleted",
            ),
        ),
        "/api/v1/immutable-tags/{id}": admin_item(
            "ImmutableRule",
            "rule",
            _ID,
            _NO_RULE,
            delete=Op("deleteImmutableTagRule", "Remove an immutable-tag rule"),
        ),
    }
