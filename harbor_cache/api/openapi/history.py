"""/api/v1/dashboard/history (api/history.py, core/operations/history.py): the dashboard's traffic charts."""

from __future__ import annotations

from harbor_cache.api.openapi.common import COUNT, errors, json_body, obj, operation, query_param, ref

_SERIES = {
    "type": "object",
    "description": "One array per label, one value per bucket (same length as buckets)",
    "additionalProperties": {"type": "array", "items": COUNT},
}

SCHEMAS = {
    "DashboardHistory": obj(
        ["range", "step_seconds", "buckets", "series", "totals"],
        range={"type": "string", "enum": ["hour", "day", "week"]},
        step_seconds={"type": "integer", "description": "Bucket width: 60 (hour), 300 (day) or 3600 (week)"},
        buckets={
            "type": "array",
            "items": {"type": "integer"},
            "description": "Bucket start times (epoch seconds, UTC), oldest first; the last is the one under way",
        },
        series=obj(
            ["requests", "served_bytes", "upstream_bytes", "upstream_errors"],
            requests={**_SERIES, "description": "Content requests by cache status (hit, miss, stale, joined, ...)"},
            served_bytes={**_SERIES, "description": "Body bytes sent to clients by cache status"},
            upstream_bytes={**_SERIES, "description": "Body bytes received from upstreams, by upstream"},
            upstream_errors={**_SERIES, "description": "Failed upstream requests, by upstream"},
        ),
        totals=obj(
            [
                "requests",
                "served_bytes",
                "upstream_bytes",
                "upstream_errors",
                "saved_bytes",
                "saved_ratio",
            ],
            requests=COUNT,
            served_bytes=COUNT,
            upstream_bytes=COUNT,
            upstream_errors=COUNT,
            saved_bytes={**COUNT, "description": "served_bytes minus upstream_bytes (not below 0): bandwidth saved"},
            saved_ratio={
                "type": ["number", "null"],
                "description": "saved_bytes / served_bytes (0..1); null when nothing was served",
            },
        ),
    ),
}


def paths() -> dict:
    """The /api/v1/dashboard/history path."""
    return {
        "/api/v1/dashboard/history": {
            "get": operation(
                "dashboardHistory",
                "Traffic over the last hour, day or week, from counters every node adds in time buckets",
                {
                    "200": json_body(ref("DashboardHistory"), "The series of the range."),
                    **errors({400: "range is not hour, day or week (code BAD_REQUEST)."}),
                },
                tag="console",
                role="any authenticated user",
                parameters=[
                    query_param(
                        "range",
                        {"type": "string", "enum": ["hour", "day", "week"]},
                        "hour (default: minute buckets), day (5-minute buckets) or week (hour buckets)",
                    )
                ],
                description="Nodes flush their counters every 10 s; this node's are flushed before answering. "
                "Minute buckets are kept 25 hours, hour buckets 8 days.",
            )
        },
    }
