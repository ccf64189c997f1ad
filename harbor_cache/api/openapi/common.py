"""The pieces every part of the OpenAPI document is built from.

Each front's module (probes, oci, maven, management, console) writes its paths
with `operation` and these helpers, so a path entry says only what is its own:
its summary, parameters, body and the answers that differ from the rest.  The
answers many operations share (a bearer token's 401/403, a bad JSON body, an
upstream that fails) are written once here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

JSON = "application/json"

Security = list[dict[str, list[str]]]

TIMESTAMP = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, e.g. 2024-01-15T10:30:00Z"}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_TIMESTAMP = {"anyOf": [TIMESTAMP, {"type": "null"}]}
COUNT = {"type": "integer", "minimum": 0}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
STRING = {"type": "string"}
BINARY = {"type": "string", "format": "binary"}


#: an opaque page cursor (`http.cursors`): URL-safe base64, at most `http.cursors.MAX_CURSOR` characters
CURSOR = {"type": "string", "maxLength": 4096, "pattern": "^[A-Za-z0-9_-]*$"}


def ref(name: str) -> dict:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict, description: str, headers: dict | None = None) -> dict:
    """A response with a JSON body of ``schema``."""
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def error(description: str, headers: dict | None = None) -> dict:
    """A response in the error format of /v2 and /api/v1 (schema Error)."""
    return json_body(ref("Error"), description, headers)


def errors(answers: dict[int, str]) -> dict:
    """Error responses by status: ``{404: "No user ..."}`` -> ``{"404": error("No user ...")}``."""
    return {str(status): error(description) for status, description in answers.items()}


def plain(answers: dict[int, str]) -> dict:
    """Responses described by text alone (no body schema), by status."""
    return {str(status): {"description": description} for status, description in answers.items()}


def header(description: str, schema: dict | None = None, required: bool = True) -> dict:
    """A response header."""
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


def obj(required: list[str] | None = None, **properties: Any) -> dict:
    """An object schema; ``required`` lists the properties that are always there."""
    out: dict[str, Any] = {"type": "object"}
    if required is not None:
        out["required"] = required
    out["properties"] = properties
    return out


def array_of(item: dict) -> dict:
    """An array schema of ``item``."""
    return {"type": "array", "items": item}


def path_param(name: str, schema: dict, description: str) -> dict:
    """A path parameter (always required)."""
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_param(name: str, schema: dict, description: str, required: bool = False) -> dict:
    """A query parameter."""
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def page(items_name: str, item: dict, extra: dict | None = None) -> dict:
    """One page of a paged console list: total, offset, limit and the items."""
    props = {
        "total": COUNT,
        "offset": COUNT,
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
        items_name: array_of(item),
    }
    props.update(extra or {})
    return {"type": "object", "required": ["total", "offset", "limit", items_name], "properties": props}


WWW_AUTHENTICATE = {
    "WWW-Authenticate": header('"Bearer", or "Bearer error=\\"invalid_token\\", ..." when a token was sent')
}

# The answers every authenticated /api/v1 operation may give besides its own.
AUTH_ERRORS = {
    "401": error(
        "No token, a malformed, tampered or expired token, or a token of a deleted user (code UNAUTHORIZED).",
        WWW_AUTHENTICATE,
    ),
    "403": error(
        "The caller's current role is too low (code DENIED).",
        {"WWW-Authenticate": header('Bearer error="insufficient_scope", ...')},
    ),
}
BAD_BODY = errors(
    {
        400: "The body is not a JSON object or a field is invalid (code BAD_REQUEST).",
        413: "The body is larger than 64 KiB (code SIZE_INVALID).",
    }
)
# What a read through to an upstream may answer (the OCI front and the console's manifest view).
UPSTREAM_ERRORS = errors(
    {
        502: "The upstream answered badly (code UPSTREAM_ERROR).",
        503: "No upstream could answer (code UPSTREAM_UNAVAILABLE).",
    }
)

ERROR_SCHEMA = obj(
    ["errors"],
    errors=array_of(
        obj(["code", "message"], code={"type": "string", "examples": ["UNAUTHORIZED"]}, message=STRING, detail={})
    ),
)


def operation(
    operation_id: str,
    summary: str,
    responses: dict,
    *,
    tag: str,
    role: str | None = None,
    body: dict | None = None,
    request_body: dict | None = None,
    parameters: list | None = None,
    description: str | None = None,
    security: Security | None = None,
) -> dict:
    """One operation of a path.

    ``role``: the management role the operation needs; it adds the bearer
    security, the **Required role** line of the description and
    `AUTH_ERRORS`.  ``body``: a required JSON request body of this schema;
    ``request_body``: any other request body, as written.  ``security``:
    the schemes of an operation without ``role`` (``[]`` for a public one).
    """
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": dict(responses), "operationId": operation_id}
    if description or role:
        text = description or ""
        if role:
            text = (text + "\n\n" if text else "") + f"**Required role:** {role}"
        op["description"] = text
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if request_body is not None:
        op["requestBody"] = request_body
    if role is not None:
        op["security"] = [{"bearerAuth": []}]
        op["responses"].update(AUTH_ERRORS)
    elif security is not None:
        op["security"] = security
    return op


class Op(NamedTuple):
    """One admin CRUD operation as `admin_collection` and `admin_item` take it.

    ``errors``: the error answers of this operation alone (a 409, say),
    besides those the builder adds.
    """

    operation_id: str
    summary: str
    errors: dict | None = None


def _admin(op: Op, responses: dict, **rest: Any) -> dict:
    return operation(
        op.operation_id, op.summary, {**responses, **(op.errors or {})}, tag="management", role="admin", **rest
    )


def admin_collection(
    path: str,
    item: str,
    body: dict,
    *,
    list_op: Op,
    listed: dict,
    listed_as: str,
    create_op: Op,
    bad: dict = BAD_BODY,
) -> dict:
    """The collection path of an admin resource: GET lists, POST creates.

    Written once because every admin resource (users, upstreams, quotas,
    retention, immutable tags, sync) answers alike: the list is ``listed``
    (described ``listed_as``); a create answers 201 with the new ``item``
    and its Location ``{path}/{id}``, or the errors of a bad body (``bad``).
    """
    return {
        "get": _admin(list_op, {"200": json_body(listed, listed_as)}),
        "post": _admin(
            create_op,
            {
                "201": json_body(ref(item), "Created.", {"Location": header(path + "/{id}")}),
                **bad,
            },
            body=body,
        ),
    }


def admin_item(
    item: str,
    noun: str,
    parameters: list,
    not_found: dict,
    *,
    get: Op | None = None,
    put: Op | None = None,
    delete: Op | None = None,
    body: dict | None = None,
    bad: dict = BAD_BODY,
    changed: str = "changed",
) -> dict:
    """The item path (``.../{id}``) of an admin resource: those of GET, PUT and DELETE it has.

    Each answers ``not_found`` for an unknown id (``parameters``); GET gives
    "The {noun}.", PUT takes ``body`` and gives "The {changed} {noun}." or
    the errors of a bad body (``bad``), DELETE answers 204.
    """
    out: dict[str, Any] = {}
    if get is not None:
        out["get"] = _admin(
            get,
            {"200": json_body(ref(item), f"The {noun}."), **not_found},
            parameters=parameters,
        )
    if put is not None:
        out["put"] = _admin(
            put,
            {"200": json_body(ref(item), f"The {changed} {noun}."), **not_found, **bad},
            parameters=parameters,
            body=body,
        )
    if delete is not None:
        out["delete"] = _admin(
            delete,
            {"204": {"description": "Deleted."}, **not_found},
            parameters=parameters,
        )
    return out
