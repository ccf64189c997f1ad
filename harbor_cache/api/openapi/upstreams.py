"""/api/v1/upstreams (api/front.py): the OCI upstreams, changed at run time, and the Maven repositories, read-only."""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BAD_BODY,
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    STRING,
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

_STRINGS = array_of(STRING)

SCHEMAS = {
    "UpstreamHealth": obj(
        ["status", "last_check", "latency_ms", "last_error", "consecutive_failures", "blocked_until"],
        status={
            "type": "string",
            "enum": ["healthy", "failing", "blocked", "unknown", "not_probed"],
            "description": "unknown: not probed yet; not_probed: never probed (Maven repositories)",
        },
        last_check={**NULLABLE_TIMESTAMP, "description": "Last GET /v2/ probe"},
        latency_ms={"type": ["number", "null"]},
        last_error=NULLABLE_STRING,
        consecutive_failures={"type": "integer", "minimum": 0},
        blocked_until={**NULLABLE_TIMESTAMP, "description": "While blocked, the end of the cool-down"},
    ),
    "Upstream": obj(
        [
            "id",
            "name",
            "kind",
            "url",
            "registry",
            "prefix",
            "routes",
            "priority",
            "allow_push",
            "managed_by",
            "health",
        ],
        id={
            "type": ["integer", "string"],
            "description": 'An integer for OCI upstreams; "maven:<id>" for Maven repositories',
        },
        name=STRING,
        kind={
            "type": "string",
            "enum": ["oci", "maven"],
            "description": "Maven repositories are listed read-only (they come from the config file)",
        },
        url=STRING,
        registry={"type": ["string", "null"], "description": "Registry host matched against containerd's ns="},
        prefix={"type": ["string", "null"], "description": "Path prefix that selects this upstream (stripped)"},
        effective_prefix={
            "type": ["string", "null"],
            "description": "The prefix in use: prefix, else the registry host",
        },
        routes={**_STRINGS, "description": "Globs of the default namespace (no prefix, no ns) this upstream serves"},
        priority={"type": "integer", "description": "Lower is tried first"},
        allow_push={"type": "boolean", "description": "Pushes into this proxy namespace are allowed"},
        library_prefix={"type": "boolean"},
        has_credentials={
            "type": "boolean",
            "description": "Credentials are write-only: never shown. A change of the URL's origin (scheme, "
            "host, port) drops them unless the same request gives them again",
        },
        managed_by={
            "type": "string",
            "enum": ["config", "api"],
            "description": "config: declared in the config file, applied at every start, read-only here "
            "(PUT and DELETE answer 409); api: created through this API",
        },
        config_file={
            "type": ["string", "null"],
            "description": "For managed_by config: the config file's path (null when not known or managed_by api)",
        },
        health=ref("UpstreamHealth"),
    ),
    "UpstreamList": obj(["upstreams"], upstreams=array_of(ref("Upstream"))),
    "UpstreamChange": {
        "type": "object",
        "description": "POST: name and url are required. PUT: every field is optional and keeps its value when "
        "left out; username/password left out are kept, null clears them, and a url with another origin "
        "(scheme, host, port) drops them unless they are given again. Other fields are ignored.",
        "properties": {
            "name": STRING,
            "url": {"type": "string", "description": "http:// or https:// base URL of the registry"},
            "kind": {"type": "string", "enum": ["oci"]},
            "registry": NULLABLE_STRING,
            "prefix": NULLABLE_STRING,
            "routes": _STRINGS,
            "priority": {"type": "integer"},
            "allow_push": {"type": "boolean"},
            "library_prefix": {"type": "boolean"},
            "username": NULLABLE_STRING,
            "password": NULLABLE_STRING,
        },
    },
    "UpstreamTest": obj(
        ["reachable", "authenticated", "status", "error", "name"],
        name=STRING,
        reachable={"type": "boolean", "description": "GET /v2/ answered below 500"},
        authenticated={
            "type": ["boolean", "null"],
            "description": "A manifest HEAD through the token dance was not refused (401/403); "
            "null when that could not be told",
        },
        status={"type": ["integer", "null"], "description": "Status of GET /v2/"},
        error=NULLABLE_STRING,
    ),
}

_admin = partial(operation, tag="management", role="admin")
_UPSTREAM_ID = [
    path_param("id", {"type": ["integer", "string"]}, 'Upstream id (an integer; "maven:<id>" for a Maven repository)')
]
_NO_UPSTREAM = errors({404: "No upstream with this id (code NOT_FOUND)."})
# /api/v1/upstreams/test: the fields of a change, and optionally the stored upstream they change.
_TEST_BODY = {
    "allOf": [
        ref("UpstreamChange"),
        obj(
            id={
                "type": ["integer", "string"],
                "description": "Test a stored upstream (with its credentials, unless url "
                "names another origin), changed by the other fields",
            }
        ),
    ]
}


def paths() -> dict:
    """The /api/v1/upstreams paths."""
    return {
        "/api/v1/upstreams": admin_collection(
            "/api/v1/upstreams",
            "Upstream",
            ref("UpstreamChange"),
            list_op=Op("listUpstreams", "OCI upstreams (and Maven repositories, read-only) with their health"),
            listed=ref("UpstreamList"),
            listed_as="OCI upstreams by id, then Maven repositories.",
            create_op=Op(
                "createUpstream",
                "Add an OCI upstream (applies at once, on every node within seconds)",
                errors({409: "The name is taken, or the prefix/registry clash with another upstream (code CONFLICT)."}),
            ),
        ),
        "/api/v1/upstreams/test": {
            "post": _admin(
                "testUpstream",
                "Check that an upstream is reachable and accepts its credentials (nothing is stored)",
                {
                    "200": json_body(ref("UpstreamTest"), "What the upstream answered."),
                    **_NO_UPSTREAM,
                    **errors({409: "The id is a Maven repository (code CONFLICT)."}),
                    **BAD_BODY,
                },
                body=_TEST_BODY,
            ),
        },
        "/api/v1/upstreams/{id}": admin_item(
            "Upstream",
            "upstream",
            _UPSTREAM_ID,
            _NO_UPSTREAM,
            get=Op("getUpstream", "One upstream"),
            put=Op(
                "updateUpstream",
                "Change an OCI upstream (fields left out keep their value)",
                errors(
                    {
                        409: "Name or namespace clash, a Maven repository, or an upstream declared in the config "
                        "file (code CONFLICT)."
                    }
                ),
            ),
            delete=Op(
                "deleteUpstream",
                "Remove an OCI upstream (cached content stays until evicted)",
                errors({409: "A Maven repository or an upstream declared in the config file (code CONFLICT)."}),
            ),
            body=ref("UpstreamChange"),
        ),
    }
