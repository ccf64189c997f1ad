"""The management API (api/front.py): login, cache, users, runtime configuration, this document.

Every status code an operation can answer is listed (schemathesis checks them
against the live server), and request schemas are never stricter than the
server, so its negative tests hold.  The upstreams' part is in `upstreams`.
"""

from __future__ import annotations

from functools import partial

from harbor_cache.api.openapi.common import (
    BAD_BODY,
    COUNT,
    JSON,
    STRING,
    TIMESTAMP,
    WWW_AUTHENTICATE,
    Op,
    admin_collection,
    admin_item,
    array_of,
    error,
    errors,
    json_body,
    obj,
    operation,
    path_param,
    ref,
)
from harbor_cache.settings.runtime import SETTINGS

_ROLE = ref("Role")
_GRANTS = ref("Grants")  # (defined with the groups, api/openapi/groups.py)
_SOURCE = {"type": "string", "enum": ["local", "ldap", "oidc"], "description": "Where the account comes from"}

SCHEMAS = {
    "LoginRequest": obj(["username", "password"], username=STRING, password=STRING),
    "LoginResponse": obj(
        ["token", "expires_in"],
        token={"type": "string", "description": "HS256 JWT: sub, username, role, exp, iat"},
        expires_in={"type": "integer", "const": 86400},
    ),
    "CacheStats": obj(
        [
            "total_size",
            "total_size_human",
            "entry_count",
            "manifest_count",
            "blob_count",
            "hit_count",
            "miss_count",
            "hit_rate",
            "storage_backend",
            "bucket_bytes",
            "local_tier_bytes",
        ],
        total_size={"type": "integer", "minimum": 0, "description": "Bytes on disk, each digest once"},
        total_size_human={
            "type": "string",
            "examples": ["1.00 GB"],
            "description": '1024-based, two decimals ("512 B" below 1 KB)',
        },
        entry_count=COUNT,
        manifest_count=COUNT,
        blob_count={
            "type": "integer",
            "minimum": 0,
            "description": "Every entry that is not a manifest (OCI blobs and Maven files)",
        },
        hit_count=COUNT,
        miss_count=COUNT,
        hit_rate={"type": "number", "minimum": 0, "maximum": 1},
        storage_backend={"type": "string", "enum": ["filesystem", "s3"], "description": "[storage] backend"},
        bucket_bytes={
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "s3: bytes in the bucket (committed content, each digest once, plus objects no entry "
            "points at yet); null for the filesystem backend",
        },
        local_tier_bytes={
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "s3: bytes of the bucket's content on this node's local tier ([storage] "
            "local_cache_bytes bounds it); null for the filesystem backend",
        },
    ),
    "Cleared": obj(["cleared"], cleared=COUNT),
    "Cleaned": obj(["cleaned"], cleaned=COUNT),
    "Updated": obj(["updated"], updated=COUNT),
    "Role": {"type": "string", "enum": ["admin", "read-write", "read-only"]},
    "User": obj(
        ["id", "username", "role", "grants", "source", "created_at", "updated_at"],
        id={"type": "integer", "minimum": 1},
        username=STRING,
        role=_ROLE,
        grants=_GRANTS,
        source=_SOURCE,
        created_at=TIMESTAMP,
        updated_at=TIMESTAMP,
    ),
    "UserCreate": obj(
        ["username", "password", "role"],
        username={
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^(?!robot\\$)[^\\s:]+$",
            "description": "Printable, no whitespace, no ':', not starting with robot$ (robot accounts' names)",
        },
        password={"type": "string", "minLength": 1, "maxLength": 72, "description": "At most 72 UTF-8 bytes (bcrypt)"},
        role=_ROLE,
        grants={**_GRANTS, "description": "The user's own grants, on top of the role's (default: none)"},
    ),
    "UserUpdate": {
        "type": "object",
        "description": "All fields optional; only those given are changed. The last admin cannot be demoted.",
        "properties": {
            "role": _ROLE,
            "password": {"type": "string", "minLength": 1, "maxLength": 72},
            "grants": {**_GRANTS, "description": "Replaces the user's own grants"},
        },
    },
    "ConfigKey": {"type": "string", "enum": sorted(SETTINGS)},
    "ConfigEntry": obj(
        ["key", "value", "updated_at"],
        key=ref("ConfigKey"),
        value=STRING,
        updated_at={
            **TIMESTAMP,
            "description": "When the value was stored; for a key at its default, when the default came into "
            "effect on this node (process start, or the reset that brought it back)",
        },
    ),
    "ConfigUpdate": obj(
        ["entries"],
        entries=array_of(
            obj(
                ["key", "value"],
                key=ref("ConfigKey"),
                value={
                    "type": ["string", "integer", "boolean"],
                    "description": "Text as stored; numbers and booleans are accepted too",
                },
            )
        ),
    ),
}

# Every operation here but login and this document needs a management token (``role``).
_op = partial(operation, tag="management")
_ADMIN = "admin"
_USER_ID = [path_param("id", {"type": "integer", "minimum": 1}, "User id")]
_CONFIG_KEY = [path_param("key", ref("ConfigKey"), "Configuration key")]
_NO_USER = errors({404: "No user with this id (code NOT_FOUND)."})
_NO_KEY = errors({404: "Unknown key (code NOT_FOUND)."})


def paths() -> dict:
    """The management paths (the upstreams' are in `upstreams.paths`)."""
    return {
        "/api/v1/auth/login": {
            "post": _op(
                "login",
                "Log in: a management JWT",
                {
                    "200": json_body(ref("LoginResponse"), "A token valid for 24 hours."),
                    "401": error(
                        "Wrong username or password (code UNAUTHORIZED); an unknown user costs the same time.",
                        WWW_AUTHENTICATE,
                    ),
                    **BAD_BODY,
                },
                body=ref("LoginRequest"),
                security=[],
            ),
        },
        "/api/v1/cache/stats": {
            "get": _op(
                "cacheStats",
                "Cache statistics",
                {"200": json_body(ref("CacheStats"), "Computed from the index.")},
                role="any authenticated user",
            ),
        },
        "/api/v1/cache": {
            "delete": _op(
                "clearCache",
                "Clear every proxied entry (hosted content is kept)",
                {"200": json_body(ref("Cleared"), "How many entries were removed.")},
                role=_ADMIN,
            ),
        },
        "/api/v1/cache/cleanup": {
            "post": _op(
                "cleanupCache",
                "Run eviction and retention now",
                {"200": json_body(ref("Cleaned"), "How many entries were removed.")},
                role=_ADMIN,
                description="The same pass the eviction timer runs: retention (cache.retention_days), "
                "then eviction by cache.eviction_policy until proxied content <= cache.max_size.",
            ),
        },
        **_user_paths(),
        **_config_paths(),
        "/api/v1/openapi.json": {
            "get": _op(
                "openapi",
                "This document",
                {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}},
                security=[],
            ),
        },
    }


def _user_paths() -> dict:
    return {
        "/api/v1/users": admin_collection(
            "/api/v1/users",
            "User",
            ref("UserCreate"),
            list_op=Op("listUsers", "List users"),
            listed=array_of(ref("User")),
            listed_as="Every user, by id.",
            create_op=Op("createUser", "Create a user", errors({409: "The username is taken (code CONFLICT)."})),
        ),
        "/api/v1/users/{id}": admin_item(
            "User",
            "user",
            _USER_ID,
            _NO_USER,
            get=Op("getUser", "Get a user"),
            put=Op(
                "updateUser",
                "Update a user's role, password and/or grants",
                errors({409: "Would demote the last admin (code CONFLICT)."}),
            ),
            delete=Op(
                "deleteUser",
                "Delete a user (their tokens stop working at once)",
                errors({409: "The last admin cannot be deleted (code CONFLICT)."}),
            ),
            body=ref("UserUpdate"),
            changed="updated",
        ),
    }


def _config_paths() -> dict:
    return {
        "/api/v1/config": {
            "get": _op(
                "listConfig",
                "All runtime configuration entries",
                {"200": json_body(array_of(ref("ConfigEntry")), "Every key, by name.")},
                role=_ADMIN,
            ),
            "put": _op(
                "updateConfig",
                "Update configuration entries (all or nothing)",
                {
                    "200": json_body(ref("Updated"), "How many entries were stored; they apply without a restart."),
                    **BAD_BODY,
                },
                role=_ADMIN,
                body=ref("ConfigUpdate"),
                description="One unknown key or invalid value refuses the whole request (400) and changes nothing.",
            ),
        },
        "/api/v1/config/{key}": {
            "get": _op(
                "getConfig",
                "One configuration entry",
                {"200": json_body(ref("ConfigEntry"), "The entry."), **_NO_KEY},
                role=_ADMIN,
                parameters=_CONFIG_KEY,
            ),
            "delete": _op(
                "resetConfig",
                "Restore a key's default",
                {"204": {"description": "The key is back at its default."}, **_NO_KEY},
                role=_ADMIN,
                parameters=_CONFIG_KEY,
            ),
        },
    }
