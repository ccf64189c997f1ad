"""The OpenAPI 3.1 document of the whole server, served at ``GET /api/v1/openapi.json``.

Written from the seeds (seeds/harbor-cache-api.md, seeds/kagami-api.md) and
API-NOTES.md, and kept true to what the fronts do: when an endpoint, a status
code or a field changes, change it here in the same commit.  The management
API part is checked against the live server by
``tests/integration/test_openapi_fuzz.py`` (schemathesis): every status code a
``/api/v1`` operation can answer is listed, and every body matches its schema.

Request schemas are never stricter than the server (a body the schema
forbids is refused by the server too), so schemathesis' negative tests hold.

OCI repository names contain "/"; OpenAPI path parameters cannot, so
``{name}`` in the ``/v2/`` paths stands for one or more segments.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.settings.runtime import SETTINGS

JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str, headers: dict | None = None) -> dict:
    return _json(_ref("Error"), description, headers)


def _header(description: str, schema: dict | None = None, required: bool = True) -> dict:
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


WWW_AUTHENTICATE = {
    "WWW-Authenticate": _header('"Bearer", or "Bearer error=\\"invalid_token\\", ..." when a token was sent')
}

# The answers every authenticated /api/v1 operation may give besides its own.
AUTH_ERRORS = {
    "401": _error(
        "No token, a malformed, tampered or expired token, or a token of a deleted user (code UNAUTHORIZED).",
        WWW_AUTHENTICATE,
    ),
    "403": _error(
        "The caller's current role is too low (code DENIED).",
        {"WWW-Authenticate": _header('Bearer error="insufficient_scope", ...')},
    ),
}
BAD_BODY = {
    "400": _error("The body is not a JSON object or a field is invalid (code BAD_REQUEST)."),
    "413": _error("The body is larger than 64 KiB (code SIZE_INVALID)."),
}


def _op(
    summary: str,
    responses: dict,
    *,
    role: str | None = None,
    body: dict | None = None,
    parameters: list | None = None,
    tags: list[str],
    description: str | None = None,
    operation_id: str | None = None,
    security: list | None = None,
) -> dict:
    op: dict[str, Any] = {"summary": summary, "tags": tags, "responses": dict(responses)}
    if operation_id:
        op["operationId"] = operation_id
    if description or role:
        text = description or ""
        if role:
            text = (text + "\n\n" if text else "") + f"**Required role:** {role}"
        op["description"] = text
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if role is not None:
        op["security"] = [{"bearerAuth": []}]
        op["responses"].update(AUTH_ERRORS)
    elif security is not None:
        op["security"] = security
    return op


def _path_param(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query_param(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


TIMESTAMP = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, e.g. 2024-01-15T10:30:00Z"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "examples": ["UNAUTHORIZED"]},
                        "message": {"type": "string"},
                        "detail": {},
                    },
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {
            "status": {"type": "string", "enum": ["healthy", "degraded"]},
            "version": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Liveness": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {"status": {"type": "string", "enum": ["alive"]}, "version": {"type": "string"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "version": {"type": "string"},
            "problems": {
                "type": "array",
                "items": {"type": "string", "enum": ["index", "data_dir", "disk_space"]},
            },
        },
    },
    "LoginRequest": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
    },
    "LoginResponse": {
        "type": "object",
        "required": ["token", "expires_in"],
        "properties": {
            "token": {"type": "string", "description": "HS256 JWT: sub, username, role, exp, iat"},
            "expires_in": {"type": "integer", "const": 86400},
        },
    },
    "CacheStats": {
        "type": "object",
        "required": [
            "total_size",
            "total_size_human",
            "entry_count",
            "manifest_count",
            "blob_count",
            "hit_count",
            "miss_count",
            "hit_rate",
        ],
        "properties": {
            "total_size": {"type": "integer", "minimum": 0, "description": "Bytes on disk, each digest once"},
            "total_size_human": {
                "type": "string",
                "examples": ["1.00 GB"],
                "description": '1024-based, two decimals ("512 B" below 1 KB)',
            },
            "entry_count": {"type": "integer", "minimum": 0},
            "manifest_count": {"type": "integer", "minimum": 0},
            "blob_count": {
                "type": "integer",
                "minimum": 0,
                "description": "Every entry that is not a manifest (OCI blobs and Maven files)",
            },
            "hit_count": {"type": "integer", "minimum": 0},
            "miss_count": {"type": "integer", "minimum": 0},
            "hit_rate": {"type": "number", "minimum": 0, "maximum": 1},
        },
    },
    "Cleared": {
        "type": "object",
        "required": ["cleared"],
        "properties": {"cleared": {"type": "integer", "minimum": 0}},
    },
    "Cleaned": {
        "type": "object",
        "required": ["cleaned"],
        "properties": {"cleaned": {"type": "integer", "minimum": 0}},
    },
    "Role": {"type": "string", "enum": ["admin", "read-write", "read-only"]},
    "User": {
        "type": "object",
        "required": ["id", "username", "role", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "username": {"type": "string"},
            "role": _ref("Role"),
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "UserCreate": {
        "type": "object",
        "required": ["username", "password", "role"],
        "properties": {
            "username": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[^\\s:]+$",
                "description": "Printable, no whitespace, no ':'",
            },
            "password": {
                "type": "string",
                "minLength": 1,
                "maxLength": 72,
                "description": "At most 72 UTF-8 bytes (bcrypt)",
            },
            "role": _ref("Role"),
        },
    },
    "UserUpdate": {
        "type": "object",
        "description": "All fields optional; only those given are changed. The last admin cannot be demoted.",
        "properties": {
            "role": _ref("Role"),
            "password": {"type": "string", "minLength": 1, "maxLength": 72},
        },
    },
    "ConfigKey": {"type": "string", "enum": sorted(SETTINGS)},
    "ConfigEntry": {
        "type": "object",
        "required": ["key", "value", "updated_at"],
        "properties": {
            "key": _ref("ConfigKey"),
            "value": {"type": "string"},
            "updated_at": {
                **TIMESTAMP,
                "description": "When the value was stored; for a key at its default, when the default came into "
                "effect on this node (process start, or the reset that brought it back)",
            },
        },
    },
    "ConfigUpdate": {
        "type": "object",
        "required": ["entries"],
        "properties": {
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "value"],
                    "properties": {
                        "key": _ref("ConfigKey"),
                        "value": {
                            "type": ["string", "integer", "boolean"],
                            "description": "Text as stored; numbers and booleans are accepted too",
                        },
                    },
                },
            }
        },
    },
    "Updated": {
        "type": "object",
        "required": ["updated"],
        "properties": {"updated": {"type": "integer", "minimum": 0}},
    },
    "RegistryToken": {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string"},
            "access_token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "issued_at": {"type": "string"},
        },
    },
    "Catalog": {"type": "object", "properties": {"repositories": {"type": "array", "items": {"type": "string"}}}},
    "TagList": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    },
    "Repositories": {
        "type": "object",
        "required": ["repositories"],
        "properties": {
            "repositories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "url", "artifactCount", "totalSize", "lastUpdated", "isPrivate"],
                    "properties": {
                        "id": {"type": "string"},
                        "url": {"type": "string"},
                        "artifactCount": {"type": "integer"},
                        "totalSize": {"type": "integer"},
                        "lastUpdated": {"anyOf": [TIMESTAMP, {"type": "null"}]},
                        "isPrivate": {"type": "boolean"},
                        "type": {
                            "enum": ["proxy", "hosted", "group"],
                            "description": "hosted and group: url is this server's own address",
                        },
                        "members": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "A group's members, in the order they are asked",
                        },
                    },
                },
            }
        },
    },
    "Browse": {
        "type": "object",
        "required": ["repositoryId", "currentPath", "parentPath", "entries"],
        "properties": {
            "repositoryId": {"type": "string"},
            "currentPath": {"type": "string"},
            "parentPath": {"type": ["string", "null"]},
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type", "path", "lastModified"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": ["file", "directory"]},
                        "path": {"type": "string"},
                        "size": {"type": "integer", "description": "Files only"},
                        "lastModified": TIMESTAMP,
                    },
                },
            },
        },
    },
    "FileInfo": {
        "type": "object",
        "required": ["repositoryId", "path", "name", "type", "size", "lastModified", "contentType"],
        "properties": {
            "repositoryId": {"type": "string"},
            "path": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string", "const": "file"},
            "size": {"type": "integer"},
            "lastModified": TIMESTAMP,
            "contentType": {"type": "string"},
            "sha1": {"type": "string"},
            "sha256": {"type": "string"},
        },
    },
    "UpstreamHealth": {
        "type": "object",
        "required": ["status", "last_check", "latency_ms", "last_error", "consecutive_failures", "blocked_until"],
        "properties": {
            "status": {"type": "string", "enum": ["healthy", "failing", "blocked", "unknown"]},
            "last_check": {"anyOf": [TIMESTAMP, {"type": "null"}], "description": "Last GET /v2/ probe"},
            "latency_ms": {"type": ["number", "null"]},
            "last_error": {"type": ["string", "null"]},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "blocked_until": {
                "anyOf": [TIMESTAMP, {"type": "null"}],
                "description": "While blocked, the end of the cool-down",
            },
        },
    },
    "Upstream": {
        "type": "object",
        "required": [
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
        "properties": {
            "id": {
                "type": ["integer", "string"],
                "description": 'An integer for OCI upstreams; "maven:<id>" for Maven repositories',
            },
            "name": {"type": "string"},
            "kind": {
                "type": "string",
                "enum": ["oci", "maven"],
                "description": "Maven repositories are listed read-only (they come from the config file)",
            },
            "url": {"type": "string"},
            "registry": {"type": ["string", "null"], "description": "Registry host matched against containerd's ns="},
            "prefix": {"type": ["string", "null"], "description": "Path prefix that selects this upstream (stripped)"},
            "effective_prefix": {
                "type": ["string", "null"],
                "description": "The prefix in use: prefix, else the registry host",
            },
            "routes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Globs of the default namespace (no prefix, no ns) this upstream serves",
            },
            "priority": {"type": "integer", "description": "Lower is tried first"},
            "allow_push": {"type": "boolean", "description": "Pushes into this proxy namespace are allowed"},
            "library_prefix": {"type": "boolean"},
            "has_credentials": {
                "type": "boolean",
                "description": "Credentials are write-only: never shown. A change of the URL's origin (scheme, "
                "host, port) drops them unless the same request gives them again",
            },
            "managed_by": {
                "type": "string",
                "enum": ["config", "api"],
                "description": "config: declared in the config file, applied at every start, read-only here "
                "(PUT and DELETE answer 409); api: created through this API",
            },
            "health": _ref("UpstreamHealth"),
        },
    },
    "UpstreamList": {
        "type": "object",
        "required": ["upstreams"],
        "properties": {"upstreams": {"type": "array", "items": _ref("Upstream")}},
    },
    "UpstreamChange": {
        "type": "object",
        "description": "POST: name and url are required. PUT: every field is optional and keeps its value when "
        "left out; username/password left out are kept, null clears them, and a url with another origin "
        "(scheme, host, port) drops them unless they are given again. Other fields are ignored.",
        "properties": {
            "name": {"type": "string"},
            "url": {"type": "string", "description": "http:// or https:// base URL of the registry"},
            "kind": {"type": "string", "enum": ["oci"]},
            "registry": {"type": ["string", "null"]},
            "prefix": {"type": ["string", "null"]},
            "routes": {"type": "array", "items": {"type": "string"}},
            "priority": {"type": "integer"},
            "allow_push": {"type": "boolean"},
            "library_prefix": {"type": "boolean"},
            "username": {"type": ["string", "null"]},
            "password": {"type": ["string", "null"]},
        },
    },
    "UpstreamTest": {
        "type": "object",
        "required": ["reachable", "authenticated", "status", "error", "name"],
        "properties": {
            "name": {"type": "string"},
            "reachable": {"type": "boolean", "description": "GET /v2/ answered below 500"},
            "authenticated": {
                "type": ["boolean", "null"],
                "description": "A manifest HEAD through the token dance was not refused (401/403); "
                "null when that could not be told",
            },
            "status": {"type": ["integer", "null"], "description": "Status of GET /v2/"},
            "error": {"type": ["string", "null"]},
        },
    },
    "Jwks": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    },
}

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_TIMESTAMP = {"anyOf": [TIMESTAMP, {"type": "null"}]}
COUNT = {"type": "integer", "minimum": 0}


def _page(items_name: str, item: dict, extra: dict | None = None) -> dict:
    props = {
        "total": COUNT,
        "offset": COUNT,
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
        items_name: {"type": "array", "items": item},
    }
    props.update(extra or {})
    return {"type": "object", "required": ["total", "offset", "limit", items_name], "properties": props}


def _descriptor_schema(**extra) -> dict:
    props = {"digest": NULLABLE_STRING, "size": {"type": ["integer", "null"]}, "media_type": NULLABLE_STRING}
    props.update(extra)
    return {"type": "object", "required": ["digest", "size", "media_type"], "properties": props}


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

# The console's endpoints (issue 13; api/console.py).
SCHEMAS.update(
    {
        "CacheEntry": {
            "type": "object",
            "required": [
                "id",
                "front",
                "kind",
                "type",
                "repository",
                "key",
                "digest",
                "size",
                "media_type",
                "upstream",
                "created_at",
                "fetched_at",
                "last_access",
                "hits",
            ],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "front": {"type": "string", "enum": ["oci", "maven"]},
                "kind": {"type": "string", "enum": ["proxy", "hosted"]},
                "type": {"type": "string", "enum": ["manifest", "blob", "maven"]},
                "repository": {"type": "string", "description": 'OCI repository or Maven repository id ("" for blobs)'},
                "key": {"type": "string", "description": "Digest (OCI) or path (Maven)"},
                "digest": {"type": "string"},
                "size": COUNT,
                "media_type": NULLABLE_STRING,
                "upstream": NULLABLE_STRING,
                "created_at": TIMESTAMP,
                "fetched_at": TIMESTAMP,
                "last_access": TIMESTAMP,
                "hits": COUNT,
            },
        },
        "Download": {
            "type": "object",
            "required": [
                "front",
                "source",
                "repository",
                "target",
                "bytes_done",
                "total",
                "rate",
                "clients",
                "started_at",
                "elapsed_seconds",
                "state",
            ],
            "properties": {
                "front": {"type": "string", "enum": ["oci", "maven"]},
                "source": {"type": "string", "description": "Upstream name or Maven repository id"},
                "repository": {"type": "string"},
                "target": {"type": "string", "description": "Blob digest or Maven path"},
                "bytes_done": COUNT,
                "total": {"type": ["integer", "null"], "description": "Content-Length, when the upstream sent one"},
                "rate": {"type": "number", "minimum": 0, "description": "Bytes per second since the download began"},
                "clients": {"type": "integer", "minimum": 1, "description": "Requests served by this one download"},
                "started_at": TIMESTAMP,
                "elapsed_seconds": {"type": "number", "minimum": 0},
                "state": {"type": "string", "enum": ["connecting", "body"]},
            },
        },
        "ConfigSchemaKey": {
            "type": "object",
            "required": ["key", "type", "description", "default", "value", "updated_at"],
            "properties": {
                "key": _ref("ConfigKey"),
                "type": {"type": "string", "enum": ["integer", "boolean", "string"]},
                "description": {"type": "string"},
                "default": {"type": "string"},
                "value": {"type": "string", "description": "Current value, as stored"},
                "updated_at": {**NULLABLE_TIMESTAMP, "description": "When the value was stored; null at the default"},
                "minimum": {"type": "integer"},
                "maximum": {"type": "integer"},
                "enum": {"type": "array", "items": {"type": "string"}},
            },
        },
        "AuditRecord": {
            "type": "object",
            "required": ["id", "at", "actor", "action", "target", "detail", "client"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "at": TIMESTAMP,
                "actor": {"type": ["string", "null"], "description": "Username (the name tried, for a failed login)"},
                "action": {"type": "string"},
                "target": NULLABLE_STRING,
                "detail": {"type": ["object", "null"]},
                "client": {"type": ["string", "null"], "description": "Peer address"},
            },
        },
        "SourceCounters": {
            "type": "object",
            "required": ["front", "source", "hits", "misses", "upstream_bytes", "errors", "coalesced"],
            "properties": {
                "front": {"type": "string"},
                "source": {"type": "string"},
                "hits": COUNT,
                "misses": COUNT,
                "upstream_bytes": COUNT,
                "errors": COUNT,
                "coalesced": COUNT,
            },
        },
        "Dashboard": {
            "type": "object",
            "required": [
                "version",
                "status",
                "problems",
                "started_at",
                "uptime_seconds",
                "server_time",
                "cache",
                "sources",
                "served_bytes",
                "inflight",
                "last_eviction",
            ],
            "properties": {
                "version": {"type": "string"},
                "status": {"type": "string", "enum": ["healthy", "degraded"]},
                "problems": {"type": "array", "items": {"type": "string"}},
                "started_at": TIMESTAMP,
                "uptime_seconds": COUNT,
                "server_time": TIMESTAMP,
                "cache": {
                    "allOf": [
                        _ref("CacheStats"),
                        {
                            "type": "object",
                            "required": ["max_size", "eviction_policy"],
                            "properties": {"max_size": COUNT, "eviction_policy": {"type": "string"}},
                        },
                    ]
                },
                "sources": {
                    "type": "array",
                    "items": _ref("SourceCounters"),
                    "description": "Since this process started, by front and upstream / repository",
                },
                "served_bytes": {"type": "object", "additionalProperties": COUNT},
                "inflight": COUNT,
                "last_eviction": {"type": "object"},
            },
        },
        "ImageRepositories": {
            "type": "object",
            "required": ["repositories"],
            "properties": {
                "repositories": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "hosted", "cached", "tag_count", "manifest_count", "updated_at"],
                        "properties": {
                            "name": {"type": "string"},
                            "hosted": {"type": "boolean"},
                            "cached": {"type": "boolean"},
                            "tag_count": COUNT,
                            "manifest_count": COUNT,
                            "updated_at": NULLABLE_TIMESTAMP,
                        },
                    },
                }
            },
        },
        "PullLines": {
            "type": "object",
            "required": ["docker", "podman"],
            "properties": {"docker": {"type": "string"}, "podman": {"type": "string"}},
        },
        "ImageTags": {
            "type": "object",
            "required": ["repository", "tags"],
            "properties": {
                "repository": {"type": "string"},
                "tags": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["tag", "digest", "kind", "media_type", "size", "updated_at", "pull"],
                        "properties": {
                            "tag": {"type": "string"},
                            "digest": {"type": "string"},
                            "kind": {"type": "string", "enum": ["hosted", "cached"]},
                            "media_type": NULLABLE_STRING,
                            "size": {"type": ["integer", "null"]},
                            "updated_at": TIMESTAMP,
                            "pull": _ref("PullLines"),
                        },
                    },
                },
            },
        },
        "ImageManifest": {
            "type": "object",
            "required": [
                "repository",
                "reference",
                "digest",
                "media_type",
                "size",
                "kind",
                "annotations",
                "pull",
                "cache_status",
            ],
            "properties": {
                "repository": {"type": "string"},
                "reference": {"type": "string"},
                "digest": {"type": "string"},
                "media_type": {"type": "string"},
                "size": COUNT,
                "kind": {"type": "string", "enum": ["index", "image"]},
                "artifact_type": NULLABLE_STRING,
                "annotations": STRING_MAP,
                "cache_status": {"type": "string"},
                "pull": _ref("PullLines"),
                "platforms": {
                    "type": "array",
                    "description": "An index: one per child manifest",
                    "items": _descriptor_schema(
                        os=NULLABLE_STRING,
                        architecture=NULLABLE_STRING,
                        variant=NULLABLE_STRING,
                        os_version=NULLABLE_STRING,
                        annotations=STRING_MAP,
                    ),
                },
                "config": {"anyOf": [_descriptor_schema(), {"type": "null"}]},
                "layers": {"type": "array", "items": _descriptor_schema(annotations=STRING_MAP)},
                "total_size": {"type": "integer", "minimum": 0, "description": "Sum of the layer sizes"},
            },
        },
    }
)


def _management_paths() -> dict:
    user_id = _path_param("id", {"type": "integer", "minimum": 1}, "User id")
    config_key = _path_param("key", _ref("ConfigKey"), "Configuration key")
    not_found_user = {"404": _error("No user with this id (code NOT_FOUND).")}
    upstream_id = _path_param(
        "id", {"type": ["integer", "string"]}, 'Upstream id (an integer; "maven:<id>" for a Maven repository)'
    )
    not_found_upstream = {"404": _error("No upstream with this id (code NOT_FOUND).")}
    tags = ["management"]
    return {
        "/api/v1/auth/login": {
            "post": _op(
                "Log in: a management JWT",
                {
                    "200": _json(_ref("LoginResponse"), "A token valid for 24 hours."),
                    "401": _error(
                        "Wrong username or password (code UNAUTHORIZED); an unknown user costs the same time.",
                        WWW_AUTHENTICATE,
                    ),
                    **BAD_BODY,
                },
                body=_ref("LoginRequest"),
                tags=tags,
                operation_id="login",
                security=[],
            ),
        },
        "/api/v1/cache/stats": {
            "get": _op(
                "Cache statistics",
                {"200": _json(_ref("CacheStats"), "Computed from the index.")},
                role="any authenticated user",
                tags=tags,
                operation_id="cacheStats",
            ),
        },
        "/api/v1/cache": {
            "delete": _op(
                "Clear every proxied entry (hosted content is kept)",
                {"200": _json(_ref("Cleared"), "How many entries were removed.")},
                role="admin",
                tags=tags,
                operation_id="clearCache",
            ),
        },
        "/api/v1/cache/cleanup": {
            "post": _op(
                "Run eviction and retention now",
                {
                    "200": _json(_ref("Cleaned"), "How many entries were removed."),
                },
                role="admin",
                tags=tags,
                operation_id="cleanupCache",
                description="The same pass the eviction timer runs: retention (cache.retention_days), "
                "then eviction by cache.eviction_policy until proxied content <= cache.max_size.",
            ),
        },
        "/api/v1/users": {
            "get": _op(
                "List users",
                {"200": _json({"type": "array", "items": _ref("User")}, "Every user, by id.")},
                role="admin",
                tags=tags,
                operation_id="listUsers",
            ),
            "post": _op(
                "Create a user",
                {
                    "201": _json(_ref("User"), "Created.", {"Location": _header("/api/v1/users/{id}")}),
                    "409": _error("The username is taken (code CONFLICT)."),
                    **BAD_BODY,
                },
                role="admin",
                body=_ref("UserCreate"),
                tags=tags,
                operation_id="createUser",
            ),
        },
        "/api/v1/users/{id}": {
            "get": _op(
                "Get a user",
                {"200": _json(_ref("User"), "The user."), **not_found_user},
                role="admin",
                parameters=[user_id],
                tags=tags,
                operation_id="getUser",
            ),
            "put": _op(
                "Update a user's role and/or password",
                {
                    "200": _json(_ref("User"), "The updated user."),
                    "409": _error("Would demote the last admin (code CONFLICT)."),
                    **not_found_user,
                    **BAD_BODY,
                },
                role="admin",
                parameters=[user_id],
                body=_ref("UserUpdate"),
                tags=tags,
                operation_id="updateUser",
            ),
            "delete": _op(
                "Delete a user (their tokens stop working at once)",
                {
                    "204": {"description": "Deleted."},
                    "409": _error("The last admin cannot be deleted (code CONFLICT)."),
                    **not_found_user,
                },
                role="admin",
                parameters=[user_id],
                tags=tags,
                operation_id="deleteUser",
            ),
        },
        "/api/v1/config": {
            "get": _op(
                "All runtime configuration entries",
                {"200": _json({"type": "array", "items": _ref("ConfigEntry")}, "Every key, by name.")},
                role="admin",
                tags=tags,
                operation_id="listConfig",
            ),
            "put": _op(
                "Update configuration entries (all or nothing)",
                {
                    "200": _json(_ref("Updated"), "How many entries were stored; they apply without a restart."),
                    **BAD_BODY,
                },
                role="admin",
                body=_ref("ConfigUpdate"),
                tags=tags,
                operation_id="updateConfig",
                description="One unknown key or invalid value refuses the whole request (400) and changes nothing.",
            ),
        },
        "/api/v1/config/{key}": {
            "get": _op(
                "One configuration entry",
                {
                    "200": _json(_ref("ConfigEntry"), "The entry."),
                    "404": _error("Unknown key (code NOT_FOUND)."),
                },
                role="admin",
                parameters=[config_key],
                tags=tags,
                operation_id="getConfig",
            ),
            "delete": _op(
                "Restore a key's default",
                {
                    "204": {"description": "The key is back at its default."},
                    "404": _error("Unknown key (code NOT_FOUND)."),
                },
                role="admin",
                parameters=[config_key],
                tags=tags,
                operation_id="resetConfig",
            ),
        },
        "/api/v1/upstreams": {
            "get": _op(
                "OCI upstreams (and Maven repositories, read-only) with their health",
                {
                    "200": _json(_ref("UpstreamList"), "OCI upstreams by id, then Maven repositories."),
                },
                role="admin",
                tags=tags,
                operation_id="listUpstreams",
            ),
            "post": _op(
                "Add an OCI upstream (applies at once, on every node within seconds)",
                {
                    "201": _json(_ref("Upstream"), "Created.", {"Location": _header("/api/v1/upstreams/{id}")}),
                    "409": _error(
                        "The name is taken, or the prefix/registry clash with another upstream (code CONFLICT)."
                    ),
                    **BAD_BODY,
                },
                role="admin",
                body=_ref("UpstreamChange"),
                tags=tags,
                operation_id="createUpstream",
            ),
        },
        "/api/v1/upstreams/test": {
            "post": _op(
                "Check that an upstream is reachable and accepts its credentials (nothing is stored)",
                {
                    "200": _json(_ref("UpstreamTest"), "What the upstream answered."),
                    "404": _error("No upstream with this id (code NOT_FOUND)."),
                    "409": _error("The id is a Maven repository (code CONFLICT)."),
                    **BAD_BODY,
                },
                role="admin",
                body={
                    "allOf": [
                        _ref("UpstreamChange"),
                        {
                            "type": "object",
                            "properties": {
                                "id": {
                                    "type": ["integer", "string"],
                                    "description": "Test a stored upstream (with its credentials, unless url "
                                    "names another origin), changed by the other fields",
                                }
                            },
                        },
                    ]
                },
                tags=tags,
                operation_id="testUpstream",
            ),
        },
        "/api/v1/upstreams/{id}": {
            "get": _op(
                "One upstream",
                {"200": _json(_ref("Upstream"), "The upstream."), **not_found_upstream},
                role="admin",
                parameters=[upstream_id],
                tags=tags,
                operation_id="getUpstream",
            ),
            "put": _op(
                "Change an OCI upstream (fields left out keep their value)",
                {
                    "200": _json(_ref("Upstream"), "The changed upstream."),
                    "409": _error(
                        "Name or namespace clash, a Maven repository, or an upstream declared in the config file "
                        "(code CONFLICT)."
                    ),
                    **not_found_upstream,
                    **BAD_BODY,
                },
                role="admin",
                parameters=[upstream_id],
                body=_ref("UpstreamChange"),
                tags=tags,
                operation_id="updateUpstream",
            ),
            "delete": _op(
                "Remove an OCI upstream (cached content stays until evicted)",
                {
                    "204": {"description": "Deleted."},
                    "409": _error("A Maven repository or an upstream declared in the config file (code CONFLICT)."),
                    **not_found_upstream,
                },
                role="admin",
                parameters=[upstream_id],
                tags=tags,
                operation_id="deleteUpstream",
            ),
        },
        "/api/v1/openapi.json": {
            "get": _op(
                "This document",
                {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}},
                tags=tags,
                operation_id="openapi",
                security=[],
            ),
        },
    }


def _console_paths() -> dict:
    tags = ["console"]
    bad_query = {
        "400": _error("A query parameter is invalid (code BAD_REQUEST, NAME_INVALID, TAG_INVALID or DIGEST_INVALID).")
    }
    paging = [
        _query_param("offset", {"type": "integer", "minimum": 0}, "Rows to skip (default 0)"),
        _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (default 50)"),
    ]
    repository = _query_param("repository", {"type": "string"}, "OCI repository name, e.g. library/alpine", True)
    upstream = {
        "502": _error("The upstream answered badly (code UPSTREAM_ERROR)."),
        "503": _error("No upstream could answer (code UPSTREAM_UNAVAILABLE)."),
    }
    return {
        "/api/v1/dashboard": {
            "get": _op(
                "Everything the console's dashboard shows, in one answer",
                {
                    "200": _json(
                        _ref("Dashboard"),
                        "Health, version, uptime, cache totals against cache.max_size, counters by front and source.",
                    )
                },
                role="any authenticated user",
                tags=tags,
                operation_id="dashboard",
            )
        },
        "/api/v1/downloads": {
            "get": _op(
                "Upstream downloads in flight",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["downloads"],
                            "properties": {"downloads": {"type": "array", "items": _ref("Download")}},
                        },
                        "Oldest first; bytes done of total, rate, clients joined.",
                    )
                },
                role="any authenticated user",
                tags=tags,
                operation_id="listDownloads",
            )
        },
        "/api/v1/cache/entries": {
            "get": _op(
                "Cache entries, paged, sorted and filtered",
                {
                    "200": _json(
                        _page("entries", _ref("CacheEntry"), {"sort": {"type": "string"}, "order": {"type": "string"}}),
                        "One page and the number of matching entries.",
                    ),
                    **bad_query,
                },
                role="admin",
                tags=tags,
                operation_id="listCacheEntries",
                parameters=[
                    *paging,
                    _query_param(
                        "sort",
                        {"type": "string", "enum": ["size", "last_access", "hits", "created", "repository"]},
                        "Default last_access",
                    ),
                    _query_param("order", {"type": "string", "enum": ["asc", "desc"]}, "Default desc"),
                    _query_param("front", {"type": "string", "enum": ["oci", "maven"]}, "Only this front"),
                    _query_param("kind", {"type": "string", "enum": ["proxy", "hosted"]}, "Only proxied or hosted"),
                    _query_param("repository", {"type": "string", "maxLength": 256}, "Exactly this repository"),
                    _query_param(
                        "q",
                        {"type": "string", "maxLength": 256},
                        "Text contained in the repository or key (case-insensitive)",
                    ),
                ],
            )
        },
        "/api/v1/cache/entries/{id}": {
            "delete": _op(
                "Remove one proxied entry (its file too, once unreferenced)",
                {
                    "204": {"description": "Removed."},
                    "404": _error("No entry with this id (code NOT_FOUND)."),
                    "409": _error("The entry is hosted content (code CONFLICT): delete it through /v2 or /artifacts."),
                },
                role="admin",
                tags=tags,
                operation_id="deleteCacheEntry",
                parameters=[_path_param("id", {"type": "integer", "minimum": 1}, "Entry id")],
            )
        },
        "/api/v1/config/schema": {
            "get": _op(
                "Every runtime key: type, bounds, description, default, current",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["keys"],
                            "properties": {"keys": {"type": "array", "items": _ref("ConfigSchemaKey")}},
                        },
                        "By key.",
                    )
                },
                role="admin",
                tags=tags,
                operation_id="configSchema",
            )
        },
        "/api/v1/audit": {
            "get": _op(
                "The audit log, newest first",
                {
                    "200": _json(
                        _page(
                            "entries", _ref("AuditRecord"), {"actions": {"type": "array", "items": {"type": "string"}}}
                        ),
                        "One page, the number of matching records and every action name.",
                    ),
                    **bad_query,
                },
                role="admin",
                tags=tags,
                operation_id="auditLog",
                parameters=[
                    *paging,
                    _query_param(
                        "action", {"type": "string"}, "An action (user.create) or an area (user: every user.* action)"
                    ),
                    _query_param("actor", {"type": "string", "maxLength": 256}, "Exactly this username"),
                    _query_param("q", {"type": "string", "maxLength": 256}, "Text in the target or detail"),
                ],
            )
        },
        "/api/v1/images": {
            "get": _op(
                "OCI repositories this server hosts or has cached",
                {"200": _json(_ref("ImageRepositories"), "By name.")},
                role="any authenticated user",
                tags=tags,
                operation_id="listImages",
            )
        },
        "/api/v1/images/tags": {
            "get": _op(
                "Tags of a repository (as known here) and what they point at",
                {
                    "200": _json(_ref("ImageTags"), "By tag."),
                    "404": _error("No tag or manifest under this name (code NAME_UNKNOWN)."),
                    **bad_query,
                },
                role="any authenticated user",
                tags=tags,
                operation_id="listImageTags",
                parameters=[repository],
            ),
            "delete": _op(
                "Delete a hosted (pushed) tag",
                {
                    "204": {"description": "The tag is gone (the manifest stays, by digest)."},
                    "404": _error("No such tag (code MANIFEST_UNKNOWN)."),
                    "409": _error("The tag is cached from an upstream, not hosted (code CONFLICT)."),
                    **bad_query,
                },
                role="read-write or admin",
                tags=tags,
                operation_id="deleteImageTag",
                parameters=[repository, _query_param("tag", {"type": "string"}, "The tag", True)],
            ),
        },
        "/api/v1/images/manifest": {
            "get": _op(
                "A manifest, read as a client would pull it (cache, then upstream)",
                {
                    "200": _json(
                        _ref("ImageManifest"), "Media type, digest, platforms of an index or layers of an image."
                    ),
                    "404": _error("MANIFEST_UNKNOWN or NAME_UNKNOWN."),
                    **bad_query,
                    **upstream,
                },
                role="any authenticated user",
                tags=tags,
                operation_id="imageManifest",
                parameters=[repository, _query_param("reference", {"type": "string"}, "Tag or digest", True)],
            )
        },
    }


def _site_paths() -> dict:
    tags = ["health"]
    health = {
        "200": _json(_ref("Health"), "Index and data directory usable."),
        "503": _json(_ref("Health"), "Degraded: problems lists what failed."),
    }
    return {
        "/health": {"get": _op("Health check", health, tags=tags, operation_id="health", security=[])},
        "/healthz": {"get": _op("Alias for /health", health, tags=tags, operation_id="healthz", security=[])},
        "/livez": {
            "get": _op(
                "Liveness probe: the process answers (never fails for the index or the disk)",
                {"200": _json(_ref("Liveness"), "The process and its event loop answer.")},
                tags=tags,
                operation_id="livez",
                security=[],
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness probe: the node can serve",
                {
                    "200": _json(
                        _ref("Readiness"),
                        "Index reachable, data directory writable, free space above cache.min_free_bytes.",
                    ),
                    "503": _json(_ref("Readiness"), "Not ready: problems lists what failed."),
                },
                tags=tags,
                operation_id="readyz",
                security=[],
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                tags=tags,
                operation_id="metrics",
                security=[],
            ),
        },
    }


def _v2_paths() -> dict:
    tags = ["oci"]
    name = _path_param(
        "name",
        {"type": "string"},
        "Repository name; may contain '/', e.g. library/nginx. A first segment that is an "
        "upstream's prefix selects that upstream's namespace and is stripped upstream "
        "(quay/library/nginx is library/nginx on quay).",
    )
    ns = _query_param(
        "ns",
        {"type": "string"},
        "containerd's registry host (quay.io): the namespace of the upstream whose registry it is; "
        "404 NAME_UNKNOWN when no upstream serves it",
    )
    reference = _path_param("reference", {"type": "string"}, "Tag or digest")
    digest = _path_param(
        "digest",
        {"type": "string", "pattern": "^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"},
        "Content digest, e.g. sha256:...",
    )
    session = _path_param("session_id", {"type": "string"}, "Upload session id")
    unauthorized = {
        "401": _error(
            "Credentials needed (docker token flow); see WWW-Authenticate.",
            {"WWW-Authenticate": _header('Bearer realm="<base>/v2/token",service="harbor-cache",scope=...')},
        )
    }
    denied = {
        "403": _error(
            "The caller's role may not do this, or the name is in a read-only proxy namespace "
            "(code DENIED; the message says which)."
        )
    }
    content_headers = {
        "Docker-Content-Digest": _header("Digest of the content"),
        "Content-Length": _header("Bytes", {"type": "integer"}),
        "Content-Type": _header("Media type"),
    }
    upstream = {
        "502": _error("The upstream answered badly (code UPSTREAM_ERROR)."),
        "503": _error("No upstream could answer (code UPSTREAM_UNAVAILABLE)."),
        "507": _error(
            "A cold blob the disk cannot hold (below cache.min_free_bytes): code INSUFFICIENT_STORAGE, "
            "sent before any byte of the body."
        ),
    }
    any_body: dict[str, Any] = {"*/*": {"schema": {}}}
    manifest = {
        "200": {
            "description": "The manifest as stored (no conversion); Warning: 110 when served stale.",
            "headers": content_headers,
            "content": any_body,
        },
        "304": {"description": "If-None-Match named the manifest's ETag (its digest)."},
        "404": _error("MANIFEST_UNKNOWN (also for a reference that is not a valid tag) or NAME_UNKNOWN."),
        "400": _error("NAME_INVALID or DIGEST_INVALID."),
        **unauthorized,
        **upstream,
    }
    blob = {
        "200": {
            "description": "The blob.",
            "headers": content_headers,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        "206": {
            "description": "A single byte range (Range: bytes=a-b).",
            "headers": content_headers,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        "416": _error("The range cannot be served (code RANGE_INVALID)."),
        "404": _error("BLOB_UNKNOWN."),
        "400": _error("NAME_INVALID or DIGEST_INVALID."),
        **unauthorized,
        **upstream,
    }
    upload_headers = {
        "Location": _header("Upload URL"),
        "Docker-Upload-UUID": _header("Session id"),
        "Range": _header("Bytes received, 0-N"),
    }
    push_errors = {
        "400": _error("DIGEST_INVALID, SIZE_INVALID, NAME_INVALID or MANIFEST_INVALID."),
        "404": _error("BLOB_UPLOAD_UNKNOWN or BLOB_UNKNOWN."),
        **unauthorized,
        **denied,
    }
    upload_errors = {
        **push_errors,
        "413": _error("Content-Length over limits.max_upload_bytes (code SIZE_INVALID), before the body is read."),
        "507": _error(
            "The body would take the disk below cache.min_free_bytes (before it is read), or the disk filled "
            "up while it was written; nothing is kept (code INSUFFICIENT_STORAGE)."
        ),
    }
    security: list[dict[str, list[str]]] = [{"basicAuth": []}, {"bearerAuth": []}, {}]
    return {
        "/v2/": {
            "get": _op(
                "API version check",
                {
                    "200": _json(
                        {"type": "object"}, "{}", {"Docker-Distribution-API-Version": _header("registry/2.0")}
                    ),
                    **unauthorized,
                },
                tags=tags,
                operation_id="v2Base",
                security=security,
            )
        },
        "/v2/token": {
            "get": _op(
                "Registry token (docker token flow; Basic credentials)",
                {"200": _json(_ref("RegistryToken"), "A token with the actions the role allows."), **unauthorized},
                tags=tags,
                operation_id="v2Token",
                security=[{"basicAuth": []}, {}],
                parameters=[
                    _query_param("service", {"type": "string"}, "harbor-cache"),
                    _query_param("scope", {"type": "string"}, "repository:<name>:pull,push"),
                ],
            )
        },
        "/v2/_catalog": {
            "get": _op(
                "Repository names",
                {"200": _json(_ref("Catalog"), "Names, paginated."), **unauthorized},
                tags=tags,
                operation_id="v2Catalog",
                security=security,
                parameters=[
                    _query_param("n", {"type": "integer", "minimum": 0}, "Page size"),
                    _query_param("last", {"type": "string"}, "Last name of the previous page"),
                ],
            )
        },
        "/v2/{name}/tags/list": {
            "get": _op(
                "Tags of a repository",
                {
                    "200": _json(
                        _ref("TagList"),
                        "Tags, paginated. For a proxied name: the upstream's list merged with "
                        "the cached tags; Warning: 110 when the upstream could not answer and "
                        "the list is the cache's alone.",
                    ),
                    "404": _error("NAME_UNKNOWN."),
                    **unauthorized,
                },
                tags=tags,
                operation_id="v2Tags",
                security=security,
                parameters=[
                    name,
                    ns,
                    _query_param("n", {"type": "integer", "minimum": 0}, "Page size"),
                    _query_param("last", {"type": "string"}, "Last tag of the previous page"),
                ],
            )
        },
        "/v2/{name}/manifests/{reference}": {
            "get": _op(
                "Pull a manifest by tag or digest",
                manifest,
                parameters=[name, reference, ns],
                tags=tags,
                operation_id="getManifest",
                security=security,
            ),
            "head": _op(
                "Manifest headers only",
                manifest,
                parameters=[name, reference, ns],
                tags=tags,
                operation_id="headManifest",
                security=security,
            ),
            "put": _op(
                "Push a manifest (hosted content; role read-write or admin)",
                {
                    "201": {
                        "description": "Stored.",
                        "headers": {"Location": _header("Manifest URL"), "Docker-Content-Digest": _header("Digest")},
                    },
                    "413": _error("Manifest over 4 MiB (code SIZE_INVALID)."),
                    **push_errors,
                },
                parameters=[name, reference],
                tags=tags,
                operation_id="putManifest",
                security=security[:2],
            ),
            "delete": _op(
                "Delete a manifest by digest",
                {"202": {"description": "Deleted."}, **push_errors},
                parameters=[name, reference],
                tags=tags,
                operation_id="deleteManifest",
                security=security[:2],
            ),
        },
        "/v2/{name}/blobs/{digest}": {
            "get": _op(
                "Pull a blob (Range supported)",
                blob,
                parameters=[name, digest, ns],
                tags=tags,
                operation_id="getBlob",
                security=security,
            ),
            "head": _op(
                "Blob headers only",
                blob,
                parameters=[name, digest, ns],
                tags=tags,
                operation_id="headBlob",
                security=security,
            ),
            "delete": _op(
                "Remove this repository's claim on a hosted blob (the file goes when nothing holds it)",
                {
                    "202": {"description": "Released."},
                    "409": _error("A hosted manifest of this repository still needs the blob (code DENIED)."),
                    **push_errors,
                },
                parameters=[name, digest],
                tags=tags,
                operation_id="deleteBlob",
                security=security[:2],
            ),
        },
        "/v2/{name}/blobs/uploads/": {
            "post": _op(
                "Start an upload (or mount with ?mount=&from=, or monolithic with ?digest=)",
                {
                    "201": {
                        "description": "Mounted or uploaded in one request.",
                        "headers": {"Location": _header("Blob URL"), "Docker-Content-Digest": _header("Digest")},
                    },
                    "202": {"description": "Upload session started.", "headers": upload_headers},
                    **upload_errors,
                },
                parameters=[
                    name,
                    _query_param("mount", {"type": "string"}, "Digest to mount"),
                    _query_param("from", {"type": "string"}, "Repository to mount from"),
                    _query_param("digest", {"type": "string"}, "Digest of a monolithic upload"),
                ],
                tags=tags,
                operation_id="startUpload",
                security=security[:2],
            ),
        },
        "/v2/{name}/blobs/uploads/{session_id}": {
            "get": _op(
                "Upload progress",
                {"204": {"description": "Progress.", "headers": upload_headers}, **push_errors},
                parameters=[name, session],
                tags=tags,
                operation_id="uploadStatus",
                security=security[:2],
            ),
            "patch": _op(
                "Upload a chunk (Content-Range: a-b)",
                {
                    "202": {"description": "Chunk stored.", "headers": upload_headers},
                    "416": _error("Chunk out of order (code BLOB_UPLOAD_INVALID)."),
                    **upload_errors,
                },
                parameters=[name, session],
                tags=tags,
                operation_id="uploadChunk",
                security=security[:2],
            ),
            "put": _op(
                "Finish an upload (?digest= required; optional last chunk)",
                {
                    "201": {
                        "description": "Stored.",
                        "headers": {"Location": _header("Blob URL"), "Docker-Content-Digest": _header("Digest")},
                    },
                    **upload_errors,
                },
                parameters=[name, session, _query_param("digest", {"type": "string"}, "Final digest", True)],
                tags=tags,
                operation_id="finishUpload",
                security=security[:2],
            ),
            "delete": _op(
                "Cancel an upload",
                {"204": {"description": "Cancelled."}, **push_errors},
                parameters=[name, session],
                tags=tags,
                operation_id="cancelUpload",
                security=security[:2],
            ),
        },
        "/v2/{name}/referrers/{digest}": {
            "get": _op(
                "Manifests pushed here whose subject is this digest (OCI referrers API; HEAD too)",
                {
                    "200": {
                        "description": "Their descriptors as an OCI image index (empty when there are none); "
                        "OCI-Filters-Applied: artifactType when that filter was applied.",
                        "content": {"application/vnd.oci.image.index.v1+json": {"schema": {"type": "object"}}},
                    },
                    "400": _error("NAME_INVALID or DIGEST_INVALID."),
                    **unauthorized,
                },
                parameters=[
                    name,
                    digest,
                    _query_param("artifactType", {"type": "string"}, "Only referrers of this artifact type"),
                ],
                tags=tags,
                operation_id="getReferrers",
                security=security,
            ),
        },
    }


def _maven_paths() -> dict:
    tags = ["maven"]
    repo_id = _path_param("repositoryId", {"type": "string"}, "Repository identifier")
    artifact_path = _path_param(
        "artifactPath", {"type": "string"}, "Path inside the repository; may contain '/', e.g. org/x/y/1.0/y-1.0.jar"
    )
    security: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"basicAuth": []}, {}]
    kagami_401 = {
        "401": {
            "description": "Private repository without credentials, or an invalid token.",
            "headers": {"WWW-Authenticate": _header('Bearer, or Bearer error="invalid_token", ...')},
        }
    }
    kagami_403 = {
        "403": {
            "description": "The token lacks the repository or scope.",
            "headers": {"WWW-Authenticate": _header('Bearer error="insufficient_scope", ...')},
        }
    }
    file_headers = {
        "Content-Type": _header("By extension (.jar application/java-archive, .pom application/xml, ...)"),
        "Content-Length": _header("Bytes", {"type": "integer"}),
        "Last-Modified": _header("HTTP date"),
    }
    return {
        "/repositories": {
            "get": _op(
                "Configured Maven repositories with statistics",
                {"200": _json(_ref("Repositories"), "Every repository.")},
                tags=tags,
                operation_id="listRepositories",
                security=[{}],
            )
        },
        "/repositories/{repositoryId}/browse": {
            "get": _op(
                "Directory listing of cached content",
                {
                    "200": _json(_ref("Browse"), "Entries at path (root when path is omitted)."),
                    "400": {"description": "Invalid repository id or path."},
                    **kagami_401,
                    **kagami_403,
                },
                parameters=[repo_id, _query_param("path", {"type": "string"}, "Path inside the repository")],
                tags=tags,
                operation_id="browseRepository",
                security=security,
            )
        },
        "/repositories/{repositoryId}/info": {
            "get": _op(
                "Details of one file",
                {
                    "200": _json(_ref("FileInfo"), "The file."),
                    "400": {"description": "Invalid repository id, missing path, or file not found."},
                    **kagami_401,
                    **kagami_403,
                },
                parameters=[repo_id, _query_param("path", {"type": "string"}, "File path", True)],
                tags=tags,
                operation_id="fileInfo",
                security=security,
            )
        },
        "/artifacts/{repositoryId}/{artifactPath}": {
            "get": _op(
                "Download an artifact (fetched from upstream on a miss)",
                {
                    "200": {
                        "description": "The file.",
                        "headers": file_headers,
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400": {"description": "Invalid path."},
                    "404": {"description": "Repository or file not found (also a directory)."},
                    "414": {"description": "Path over 2048 characters (code URI_TOO_LONG)."},
                    **kagami_401,
                    **kagami_403,
                    "502": {"description": "The upstream answered badly."},
                    "503": {"description": "The upstream could not be reached."},
                    "507": {"description": "A cold file the disk cannot hold (code INSUFFICIENT_STORAGE)."},
                },
                parameters=[repo_id, artifact_path],
                tags=tags,
                operation_id="getArtifact",
                security=security,
            ),
            "head": _op(
                "Artifact headers only",
                {
                    "200": {"description": "Headers of the file.", "headers": file_headers},
                    "404": {"description": "Repository or file not found."},
                    **kagami_401,
                    **kagami_403,
                },
                parameters=[repo_id, artifact_path],
                tags=tags,
                operation_id="headArtifact",
                security=security,
            ),
            "delete": _op(
                "Remove a file or directory from the cache (upstream untouched; scope artifacts:delete)",
                {
                    "204": {"description": "Deleted."},
                    "400": {"description": "Invalid path."},
                    "404": {"description": "Repository or file not found."},
                    **kagami_401,
                    **kagami_403,
                },
                parameters=[repo_id, artifact_path],
                tags=tags,
                operation_id="deleteArtifact",
                security=security[:2],
            ),
            "put": _op(
                "Deploy a file into a hosted repository (mvn deploy; Basic user:password of a read-write "
                "or admin user, or a token with artifacts:write)",
                {
                    "201": {"description": "Deployed."},
                    "200": {"description": "Replaced (SNAPSHOT, maven-metadata.xml, or a redeploy the policy allows)."},
                    "400": {
                        "description": "Invalid path; a checksum file that is malformed, names a file not "
                        "deployed, or does not match it (DIGEST_INVALID)."
                    },
                    "404": {"description": "Repository not found."},
                    "405": {"description": "A proxy or group repository (deploy to a hosted one)."},
                    "409": {
                        "description": "A release file already deployed, and the repository's redeploy policy "
                        "is deny (answered before the body is read). The message is also the status line's reason "
                        "phrase."
                    },
                    "413": {"description": "Content-Length over limits.max_upload_bytes, before the body is read."},
                    "507": {
                        "description": "The file would take the disk below cache.min_free_bytes (before the body "
                        "is read), or the disk filled up while it was written (code INSUFFICIENT_STORAGE)."
                    },
                    **kagami_401,
                    **kagami_403,
                },
                parameters=[repo_id, artifact_path],
                tags=tags,
                operation_id="deployArtifact",
                security=security[:2],
            ),
        },
        "/token": {
            "post": _op(
                "Mint an RS256 artifact token (Basic username/password of a user)",
                {
                    "200": {"description": "The raw JWT.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": {"description": "Unknown scope or repository, or a bad expires_in."},
                    "401": {
                        "description": "No or wrong credentials.",
                        "headers": {"WWW-Authenticate": _header("Basic")},
                    },
                    "403": {"description": "A scope beyond the caller's role."},
                },
                tags=tags,
                operation_id="mintArtifactToken",
                security=[{"basicAuth": []}],
                description="Form fields: expires_in (hours, default 3), repositories and scope "
                "(comma-separated; artifacts:read, artifacts:delete, artifacts:write; "
                "delete and write only for read-write and admin users).",
            )
        },
        "/.well-known/jwks.json": {
            "get": _op(
                "Public keys that verify artifact tokens",
                {"200": _json(_ref("Jwks"), "JWK set.")},
                tags=tags,
                operation_id="jwks",
                security=[{}],
            )
        },
    }


def build_document(version: str) -> dict:
    """The whole OpenAPI 3.1 document (a fresh dict each call)."""
    paths: dict[str, Any] = {}
    for part in (_site_paths(), _v2_paths(), _management_paths(), _console_paths(), _maven_paths()):
        paths.update(part)
    paths["/artifacts/{repositoryId}/{artifactPath}"]["put"]["requestBody"] = {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
    # The /token form body is described on the operation rather than in a schema
    # with required fields: every field is optional.
    paths["/token"]["post"]["requestBody"] = {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "expires_in": {"type": "integer", "minimum": 1},
                        "repositories": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "harbor-cache",
            "version": version,
            "description": "Pull-through cache for OCI registries and Maven repositories, "
            "with a management API. Errors of /v2 and /api/v1 use "
            '{"errors": [{"code", "message", "detail"}]}. Any operation that needs the index answers '
            "503 with code INDEX_UNAVAILABLE (and Retry-After) while the index database does not answer.",
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
