"""The OpenAPI 3.1 document of the whole server, served at ``GET /api/v1/openapi.json``.

Written from the seeds (seeds/harbor-cache-api.md, seeds/kagami-api.md) and
API-NOTES.md, and kept true to what the fronts do: when an endpoint, a status
code or a field changes, change it here in the same commit.  One module per
front writes its paths and schemas (`probes`, `oci`, `maven`, `management`,
`upstreams`, `quotas`, `console`) from the builders of `common`; this one assembles them.

The management API part is checked against the live server by
``tests/integration/test_openapi_fuzz.py`` (schemathesis): every status code a
``/api/v1`` operation can answer is listed, and every body matches its schema.
Request schemas are never stricter than the server (a body the schema forbids
is refused by the server too), so schemathesis' negative tests hold.
``tests/unit/api/test_openapi.py`` checks that every served route is documented and
every documented path is served.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.api.openapi import (
    access,
    audit,
    console,
    favicon,
    gc,
    groups,
    history,
    management,
    maven,
    oci,
    oidc,
    policies,
    probes,
    quotas,
    robots,
    search,
    sync,
    upstreams,
)
from harbor_cache.api.openapi.common import ERROR_SCHEMA

__all__ = ["SCHEMAS", "build_document"]

_PARTS = (
    probes,
    oci,
    management,
    upstreams,
    policies,
    quotas,
    groups,
    console,
    audit,
    maven,
    gc,
    sync,
    history,
    favicon,
    search,
    oidc,
    robots,
    access,
)

SCHEMAS: dict[str, Any] = {"Error": ERROR_SCHEMA}
for _part in _PARTS:
    SCHEMAS.update(_part.SCHEMAS)


def build_document(version: str) -> dict:
    """The whole OpenAPI 3.1 document (a fresh dict each call)."""
    paths: dict[str, Any] = {}
    for part in _PARTS:
        paths.update(part.paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "harbor-cache",
            "version": version,
            "description": "Pull-through cache for OCI registries and Maven repositories, "
            "with a management API. Errors of /v2 and /api/v1 use "
            '{"errors": [{"code", "message", "detail"}]}. Any operation that needs the index answers '
            "503 with code INDEX_UNAVAILABLE (and Retry-After) while the index database does not answer. "
            "With [auth.ldap], a login that needs the directory answers 503 DIRECTORY_UNAVAILABLE while it does "
            'not answer. With [storage] backend = "s3", a request that needs the bucket (a commit, content not '
            "on this node's local tier) answers 503 STORAGE_UNAVAILABLE (and Retry-After) while it does not answer.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": "health"}, {"name": "oci"}, {"name": "management"}, {"name": "console"}, {"name": "maven"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            },
        },
    }
