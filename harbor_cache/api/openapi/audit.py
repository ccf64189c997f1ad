"""/api/v1/audit and /api/v1/audit/export (api/audit.py): the audit log, filtered, paged or exported."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    STRING,
    array_of,
    errors,
    header,
    json_body,
    obj,
    operation,
    page,
    query_param,
    ref,
)

SCHEMAS: dict = {}

_op = partial(operation, tag="console", role="admin")
_TEXT = {"type": "string", "maxLength": 256}
_WHEN = {
    "type": "string",
    "description": "ISO 8601: 2025-08-07, 2025-08-07T10:30 or 2025-08-07T10:30:00Z (UTC unless an offset is given)",
}
_BAD_QUERY = errors(
    {
        400: "A filter is invalid: unknown action, a time that is not ISO 8601, until not after "
        "since, or an unknown format (code BAD_REQUEST)."
    }
)
_FILTERS = [
    query_param("action", STRING, "An action (user.create) or an area (user: every user.* action)"),
    query_param("actor", _TEXT, "Exactly this username"),
    query_param("q", _TEXT, "Text in the target or detail"),
    query_param("since", _WHEN, "Records at or after this time"),
    query_param("until", _WHEN, "Records before this time (exclusive)"),
    query_param(
        "logins",
        {"type": "string", "enum": ["show", "hide"]},
        "hide: leave out successful logins (action login, routine); failed logins stay. Default show; the console "
        "asks for hide and has a toggle",
    ),
    query_param(
        "actor_kind",
        {"type": "string", "enum": ["user", "robot"]},
        "robot: records of robot accounts (actors named robot$...); user: those of every other named actor "
        "(records without an actor are neither). Default: all",
    ),
]
_PAGING = [
    query_param("offset", {"type": "integer", "minimum": 0}, "Rows to skip (default 0)"),
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (default 50)"),
]


def paths() -> dict:
    """The audit log's paths."""
    return {
        "/api/v1/audit": {
            "get": _op(
                "auditLog",
                "The audit log, newest first",
                {
                    "200": json_body(
                        page("entries", ref("AuditRecord"), {"actions": array_of(STRING)}),
                        "One page, the number of matching records and every action name.",
                    ),
                    **_BAD_QUERY,
                },
                parameters=[*_PAGING, *_FILTERS],
            )
        },
        "/api/v1/audit/export": {
            "get": _op(
                "exportAuditLog",
                "The filtered audit log as CSV or JSON (a download)",
                {
                    "200": {
                        "description": "The newest `audit.export_max_rows` matching records (default 10000), newest "
                        "first. CSV columns: id, at, actor, action, target, client, detail (detail as JSON; cells "
                        "starting with = + - @ are prefixed with '). JSON: {total, truncated, entries}.",
                        "headers": {
                            "X-Audit-Truncated": header("true when more records matched than were exported"),
                            "Content-Disposition": header('attachment; filename="audit.csv" (or .json)'),
                        },
                        "content": {
                            "text/csv": {"schema": STRING},
                            "application/json": {
                                "schema": obj(
                                    ["total", "truncated", "entries"],
                                    total={"type": "integer", "minimum": 0},
                                    truncated={"type": "boolean"},
                                    entries=array_of(ref("AuditRecord")),
                                )
                            },
                        },
                    },
                    **_BAD_QUERY,
                },
                parameters=[
                    query_param("format", {"type": "string", "enum": ["csv", "json"]}, "Default csv"),
                    *_FILTERS,
                ],
            )
        },
    }
