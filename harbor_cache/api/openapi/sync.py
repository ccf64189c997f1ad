"""/api/v1/sync (api/sync.py): scheduled pre-fetch rules, runs and history."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    COUNT,
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    STRING,
    TIMESTAMP,
    Op,
    admin_collection,
    admin_item,
    array_of,
    errors,
    header,
    json_body,
    obj,
    operation,
    path_param,
    ref,
)

_INTERVAL = {
    "type": "integer",
    "description": "Seconds between runs; at least sync.min_interval_seconds (default 300), at most 30 days",
}
_STRINGS = array_of(STRING)

SCHEMAS = {
    "SyncRun": obj(
        [
            "id",
            "rule_id",
            "node",
            "started_at",
            "finished_at",
            "status",
            "manifests",
            "blobs",
            "bytes",
            "tags_seen",
            "error",
        ],
        id={"type": "integer"},
        rule_id={"type": "integer"},
        node=STRING,
        started_at=TIMESTAMP,
        finished_at=NULLABLE_TIMESTAMP,
        status={
            "type": "string",
            "enum": ["running", "succeeded", "stopped", "failed"],
            "description": "stopped: a limit ended it (upstream rate limit, disk floor); error says which",
        },
        manifests={**COUNT, "description": "Manifests fetched from upstream (unchanged ones are not counted)"},
        blobs={**COUNT, "description": "Blobs fetched from upstream"},
        bytes={**COUNT, "description": "Bytes fetched from upstream"},
        tags_seen={**COUNT, "description": "Tags listed upstream (Maven: metadata files read)"},
        error=NULLABLE_STRING,
    ),
    "SyncRunList": obj(["runs"], runs=array_of(ref("SyncRun"))),
    "SyncRule": {
        "type": "object",
        "required": ["id", "kind", "interval_seconds", "enabled", "created_at", "updated_at", "last_run"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["oci", "maven"]},
            "upstream": STRING,
            "repositories": _STRINGS,
            "tags": _STRINGS,
            "newest": {"type": ["integer", "null"], "minimum": 1},
            "platforms": _STRINGS,
            "maven_repository": STRING,
            "artifacts": _STRINGS,
            "interval_seconds": _INTERVAL,
            "enabled": {"type": "boolean"},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "last_run": {"anyOf": [ref("SyncRun"), {"type": "null"}]},
        },
    },
    "SyncRuleList": obj(["rules"], rules=array_of(ref("SyncRule"))),
    "SyncRuleChange": {
        "type": "object",
        "description": "An OCI rule: upstream (an OCI upstream's name), repositories (names as clients pull them, "
        "served by that upstream), tags (globs: * and ?), optional newest (keep the N newest matching tags by "
        "version; tags without a version come after) and platforms (os/arch[/variant]: of an index, only these "
        "platforms' manifests and blobs). A Maven rule: maven_repository (a proxy repository) and artifacts "
        "(group:artifact; their maven-metadata.xml is fetched). Both: interval_seconds, enabled (default true). "
        "PUT replaces the whole rule. Anything invalid is 400.",
        "required": ["interval_seconds"],
        "properties": {
            "upstream": STRING,
            "repositories": _STRINGS,
            "tags": _STRINGS,
            "newest": {"type": ["integer", "null"], "minimum": 1, "maximum": 10000},
            "platforms": _STRINGS,
            "maven_repository": STRING,
            "artifacts": _STRINGS,
            "interval_seconds": _INTERVAL,
            "enabled": {"type": "boolean"},
        },
    },
}

_admin = partial(operation, tag="management", role="admin")
_ID = [path_param("id", {"type": "integer"}, "Rule id")]
_NO_RULE = errors({404: "No sync rule with this id (code NOT_FOUND)."})


def paths() -> dict:
    """The sync paths."""
    return {
        "/api/v1/sync": admin_collection(
            "/api/v1/sync",
            "SyncRule",
            ref("SyncRuleChange"),
            list_op=Op("listSyncRules", "Sync rules (scheduled pre-fetch), each with its last run"),
            listed=ref("SyncRuleList"),
            listed_as="Rules by id.",
            create_op=Op("createSyncRule", "Add a sync rule"),
        ),
        "/api/v1/sync/{id}": admin_item(
            "SyncRule",
            "rule",
            _ID,
            _NO_RULE,
            get=Op("getSyncRule", "One sync rule"),
            put=Op("updateSyncRule", "Replace a sync rule"),
            delete=Op("deleteSyncRule", "Remove a sync rule and its history"),
            body=ref("SyncRuleChange"),
        ),
        "/api/v1/sync/{id}/run": {
            "post": _admin(
                "runSyncRule",
                "Start a run of a sync rule now",
                {
                    "202": json_body(
                        ref("SyncRun"),
                        "Started: the running run (its progress: GET /api/v1/sync/{id}/runs).",
                        {"Location": header("/api/v1/sync/{id}/runs")},
                    ),
                    **_NO_RULE,
                    **errors({409: "A run of this rule is in progress, here or on another node (code CONFLICT)."}),
                },
                parameters=_ID,
            ),
        },
        "/api/v1/sync/{id}/runs": {
            "get": _admin(
                "listSyncRuns",
                "A sync rule's runs, newest first (the last 100)",
                {"200": json_body(ref("SyncRunList"), "Runs."), **_NO_RULE},
                parameters=_ID,
            ),
        },
    }
