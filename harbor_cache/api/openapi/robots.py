"""/api/v1/robots (api/robots.py, core/identity/robots.py): robot accounts for CI."""

from __future__ import annotations

from harbor_cache.api.openapi.common import (
    BAD_BODY,
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    STRING,
    TIMESTAMP,
    array_of,
    errors,
    header,
    json_body,
    obj,
    operation,
    path_param,
    ref,
)

_WHO = "any authenticated user (not a robot); the rules are in the description"
_RULES = (
    "A server admin may create and manage any robot. Anyone else needs admin on every pattern the robot's grants "
    "name (grants no wider than their own); a 403 DENIED names the grant that is too wide. A caller sees the robots "
    "they created or administer; changing, enabling and rotating need admin on all of the robot's grants, disabling "
    "and deleting are also allowed to its creator. Robots may not call these operations."
)
_EXPIRES = {
    "type": ["integer", "null"],
    "minimum": -1,
    "description": "Days until the robot expires: 1 to robots.max_expiry_days (default 365); -1 or null: never. "
    "Left out on create: robots.max_expiry_days.",
}
_GRANTS = {
    **ref("Grants"),  # defined once, in openapi/groups.py
    "description": "What the robot may do (validated like every grants field; a malformed grant is 400).",
}

SCHEMAS = {
    "Robot": obj(
        [
            "id",
            "name",
            "description",
            "grants",
            "expires_at",
            "disabled",
            "created_by",
            "created_at",
            "updated_at",
            "last_used_at",
            "last_used_addr",
        ],
        id={"type": "integer"},
        name={**STRING, "description": "The login name: robot$<name>"},
        description=STRING,
        grants=array_of(ref("Grant")),
        expires_at={**NULLABLE_TIMESTAMP, "description": "null: never expires"},
        disabled={"type": "boolean"},
        created_by=NULLABLE_STRING,
        created_at=TIMESTAMP,
        updated_at=TIMESTAMP,
        last_used_at={
            **NULLABLE_TIMESTAMP,
            "description": "Last authenticated use (recorded at most once a minute per robot)",
        },
        last_used_addr={**NULLABLE_STRING, "description": "The client address of that use"},
    ),
    "RobotList": obj(["robots"], robots=array_of(ref("Robot"))),
    "RobotWithSecret": {
        "allOf": [
            ref("Robot"),
            obj(
                ["secret"],
                secret={
                    **STRING,
                    "description": "The robot's password, shown only in this answer (stored as a bcrypt hash)",
                },
            ),
        ]
    },
    "RobotCreate": {
        "type": "object",
        "required": ["name", "grants"],
        "description": "Other fields are ignored.",
        "properties": {
            "name": {**STRING, "description": "1-64 characters of a-z, 0-9, '.', '_', '-' (robot$ is prefixed)"},
            "description": STRING,
            "grants": _GRANTS,
            "expires_in_days": _EXPIRES,
        },
    },
    "RobotChange": {
        "type": "object",
        "description": "Fields left out stay as they are. Other fields are ignored.",
        "properties": {
            "description": STRING,
            "grants": _GRANTS,
            "disabled": {"type": "boolean", "description": "A disabled robot is refused everywhere (401)"},
            "expires_in_days": {**_EXPIRES, "description": "Counted from now; -1 or null: never"},
        },
    },
}

_ID = [path_param("id", {"type": "integer"}, "Robot id")]
_NO_ROBOT = errors({404: "No robot with this id that the caller may see (code NOT_FOUND)."})
_DENIED_TOO_WIDE = errors({403: "The caller may not grant this (names the grant) or is a robot (code DENIED)."})
_TAKEN = errors({409: "An account with this name exists (code CONFLICT)."})
_NO_STORE = {"Cache-Control": header("no-store")}


def _op(op_id: str, summary: str, responses: dict, **rest) -> dict:
    return operation(op_id, summary, responses, tag="management", role=_WHO, description=_RULES, **rest)


def paths() -> dict:
    """The /api/v1/robots paths."""
    return {
        "/api/v1/robots": {
            "get": _op("listRobots", "The robots the caller may see", {"200": json_body(ref("RobotList"), "By id.")}),
            "post": _op(
                "createRobot",
                "Create a robot account; its secret is in this answer only",
                {
                    "201": json_body(
                        ref("RobotWithSecret"),
                        "Created.",
                        {"Location": header("/api/v1/robots/{id}"), **_NO_STORE},
                    ),
                    **BAD_BODY,
                    **_DENIED_TOO_WIDE,
                    **_TAKEN,
                },
                body=ref("RobotCreate"),
            ),
        },
        "/api/v1/robots/{id}": {
            "get": _op(
                "getRobot", "One robot", {"200": json_body(ref("Robot"), "The robot."), **_NO_ROBOT}, parameters=_ID
            ),
            "put": _op(
                "updateRobot",
                "Change a robot's description, grants, expiry, or disable / enable it",
                {"200": json_body(ref("Robot"), "The changed robot."), **_NO_ROBOT, **BAD_BODY, **_DENIED_TOO_WIDE},
                parameters=_ID,
                body=ref("RobotChange"),
            ),
            "delete": _op(
                "deleteRobot",
                "Delete a robot (its secret and tokens stop working at once)",
                {"204": {"description": "Deleted."}, **_NO_ROBOT},
                parameters=_ID,
            ),
        },
        "/api/v1/robots/{id}/secret": {
            "post": _op(
                "rotateRobotSecret",
                "A new secret (in this answer only); the old one and every token minted with it stop working at once",
                {"200": json_body(ref("RobotWithSecret"), "The robot with its new secret.", _NO_STORE), **_NO_ROBOT},
                parameters=_ID,
            ),
        },
    }
