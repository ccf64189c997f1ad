"""``GET /api/v1/users/me`` (api/front.py, api/access.py): who the caller is and what they may do."""

from __future__ import annotations

from harbor_cache.api.openapi.common import STRING, TIMESTAMP, json_body, obj, operation, ref

_ACTIONS = {"type": "string", "enum": ["pull", "push", "delete", "admin"]}

SCHEMAS = {
    "EffectiveGrant": obj(
        ["repositories", "actions"],
        repositories={
            "type": "string",
            "description": "An OCI repository glob (* crosses /) or maven:<repository id|*>[/<path prefix>]",
        },
        actions={"type": "array", "items": _ACTIONS},
    ),
    "Permissions": obj(
        ["server_admin", "grants"],
        server_admin={"type": "boolean", "description": "May run the server (the admin-only operations)"},
        grants={
            "type": "array",
            "items": ref("EffectiveGrant"),
            "description": "Every grant that applies: the role's (as global grants), the user's own, their groups'",
        },
    ),
    "Me": obj(
        ["id", "username", "role", "created_at", "updated_at", "permissions"],
        id={"type": "integer", "minimum": 1},
        username=STRING,
        role={"type": "string"},
        created_at=TIMESTAMP,
        updated_at=TIMESTAMP,
        permissions=ref("Permissions"),
    ),
}


def paths() -> dict:
    """The /api/v1/users/me path."""
    return {
        "/api/v1/users/me": {
            "get": operation(
                "whoAmI",
                "The caller and their effective permissions",
                {"200": json_body(ref("Me"), "The caller's user, with what they may do where.")},
                tag="management",
                role="any authenticated user",
                description="The console shows or hides push, delete and admin controls from `permissions`; "
                "the server checks every request itself.",
            )
        },
    }
