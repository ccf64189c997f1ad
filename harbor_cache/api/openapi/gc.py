"""/api/v1/gc (api/front.py, answers in api/gc.py): garbage collection of hosted content, admin only."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BAD_BODY,
    COUNT,
    JSON,
    NULLABLE_STRING,
    TIMESTAMP,
    array_of,
    errors,
    json_body,
    obj,
    operation,
    ref,
)

_op = partial(operation, tag="management", role="admin")

SCHEMAS = {
    "GcRun": obj(
        [
            "id",
            "started_at",
            "finished_at",
            "duration_seconds",
            "node",
            "reason",
            "dry_run",
            "manifests",
            "blobs",
            "freed_bytes",
            "error",
        ],
        id={"type": ["integer", "null"], "description": "Null only when the run could not be recorded"},
        started_at=TIMESTAMP,
        finished_at=TIMESTAMP,
        duration_seconds={"type": "number", "minimum": 0},
        node={"type": "string", "description": "The node that ran it"},
        reason={"type": "string", "enum": ["manual", "schedule"]},
        dry_run={"type": "boolean", "description": "True: the figures are what a real run would remove"},
        manifests={**COUNT, "description": "Hosted manifests removed (or that would be)"},
        blobs={**COUNT, "description": "Hosted blobs removed (or that would be)"},
        freed_bytes={**COUNT, "description": "Bytes of the files removed (or that would be)"},
        error=NULLABLE_STRING,
    ),
    "GcRequest": obj([], dry_run={"type": "boolean", "default": False, "description": "Report only, remove nothing"}),
    "GcHistory": obj(
        ["running", "grace_seconds", "interval_seconds", "runs"],
        running={"type": "boolean", "description": "A collection is running on this node"},
        grace_seconds={**COUNT, "description": "gc.grace_seconds"},
        interval_seconds={**COUNT, "description": "gc.interval_seconds (0: only on demand)"},
        runs={**array_of(ref("GcRun")), "description": "The last gc.history runs of every node, newest first"},
    ),
}


def paths() -> dict:
    return {
        "/api/v1/gc": {
            "post": _op(
                "runGc",
                "Collect garbage of hosted content now (or a dry run)",
                {
                    "200": json_body(ref("GcRun"), "The run's report."),
                    **errors({409: "A collection is already running on this node or another (code CONFLICT)."}),
                    **BAD_BODY,
                },
                request_body={"required": False, "content": {JSON: {"schema": ref("GcRequest")}}},
                description="Removes hosted manifests that no tag, index or live subject keeps and that were "
                "not pushed within gc.grace_seconds, then hosted blobs no remaining manifest needs and no "
                "upload or mount claimed within gc.grace_seconds. Pushes go on meanwhile. Proxied content is "
                "never touched. The body is optional.",
            ),
            "get": _op(
                "listGc",
                "The last garbage collections",
                {"200": json_body(ref("GcHistory"), "Newest first.")},
            ),
        },
    }
