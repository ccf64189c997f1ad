"""/api/v1/groups (api/groups.py, core/identity/groups.py), and the grant schemas users and groups share."""

from __future__ import annotations

from harbor_cache.api.openapi.common import (
    STRING,
    TIMESTAMP,
    Op,
    admin_collection,
    admin_item,
    array_of,
    errors,
    obj,
    path_param,
    ref,
)

_ACTIONS = ["pull", "push", "delete", "admin"]
_ROLE_OR_NULL = {
    "type": ["string", "null"],
    "enum": ["admin", "read-write", "read-only", None],
    "description": "A role every member gets (a shorthand for global grants), or null",
}
_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": "^[^\\s:]+$",
    "description": "The username rules: printable, no whitespace, no ':'",
}
_MEMBERS = array_of({**STRING, "description": "A username"})

SCHEMAS = {
    "Grant": {
        "type": "object",
        "required": ["repositories", "actions"],
        "additionalProperties": False,
        "description": "Actions allowed on repositories matching a pattern; admin implies pull, push and delete",
        "properties": {
            "repositories": {
                "type": "string",
                "minLength": 1,
                "maxLength": 512,
                "description": 'An OCI repository glob ("team-a/*": * also crosses /, ? one character) or '
                '"maven:<repository id or *>[/<path prefix>]" ("maven:releases/com/example")',
            },
            "actions": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": _ACTIONS}},
        },
    },
    "Grants": {"type": "array", "maxItems": 200, "items": ref("Grant")},
    "Group": obj(
        ["id", "name", "description", "role", "grants", "members", "source", "created_at", "updated_at"],
        id={"type": "integer", "minimum": 1},
        name=STRING,
        description=STRING,
        role=_ROLE_OR_NULL,
        grants=ref("Grants"),
        members={**_MEMBERS, "description": "Usernames of the members (local and directory memberships)"},
        source={"type": "string", "enum": ["local", "ldap", "oidc"]},
        created_at=TIMESTAMP,
        updated_at=TIMESTAMP,
    ),
    "GroupList": obj(["groups"], groups=array_of(ref("Group"))),
    "GroupCreate": {
        "type": "object",
        "required": ["name"],
        "description": "Other fields are ignored; description defaults to empty, role to null, grants and "
        "members to none.",
        "properties": {
            "name": _NAME,
            "description": {"type": "string", "maxLength": 1024},
            "role": _ROLE_OR_NULL,
            "grants": ref("Grants"),
            "members": _MEMBERS,
        },
    },
    "GroupUpdate": {
        "type": "object",
        "description": "All fields optional; only those given change (role null: no role). members replaces "
        "the local memberships; those from a directory (LDAP, OIDC) stay.",
        "properties": {
            "name": _NAME,
            "description": {"type": "string", "maxLength": 1024},
            "role": _ROLE_OR_NULL,
            "grants": ref("Grants"),
            "members": _MEMBERS,
        },
    },
}

_GROUP_ID = [path_param("id", {"type": "integer"}, "Group id")]
_NO_GROUP = errors({404: "No group with this id (code NOT_FOUND)."})
_BAD = errors(
    {
        400: "Not a JSON object, a bad name, role or grant (the message names it), or a member that is no "
        "user (the message names the username) (code BAD_REQUEST).",
        413: "The body is larger than 64 KiB (code SIZE_INVALID).",
    }
)
_TAKEN = errors({409: "Another group has this name (code CONFLICT)."})


def paths() -> dict:
    """The /api/v1/groups paths."""
    return {
        "/api/v1/groups": admin_collection(
            "/api/v1/groups",
            "Group",
            ref("GroupCreate"),
            list_op=Op("listGroups", "Groups with their members"),
            listed=ref("GroupList"),
            listed_as="Groups by name.",
            create_op=Op("createGroup", "Add a group (its grants and role apply to its members at once)", _TAKEN),
            bad=_BAD,
        ),
        "/api/v1/groups/{id}": admin_item(
            "Group",
            "group",
            _GROUP_ID,
            _NO_GROUP,
            get=Op("getGroup", "One group with its members"),
            put=Op("updateGroup", "Change a group", _TAKEN),
            delete=Op("deleteGroup", "Remove a group and its memberships (the users stay)"),
            body=ref("GroupUpdate"),
            bad=_BAD,
        ),
    }
