"""/api/v1/groups: groups of users, their role, grants and members (admin only).

The routes are added to `ApiFront`'s Klein app (importing this module adds
them; service.py does and calls `attach`), so they share its authentication,
error handlers and ``/api`` mount, as api/policies.py does.  The rules are in
`core.identity.groups.GroupService`; this module parses, shapes and audits
(``group.create``, ``group.update``, ``group.delete`` with what changed).
"""

from __future__ import annotations

from typing import Any

from harbor_cache.api.front import ADMIN, ApiFront, read_json_object, requires
from harbor_cache.auth.permissions import grants_json, load_grants
from harbor_cache.core.identity.groups import GroupRecord
from harbor_cache.errors import NotFound
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.responses import json_response

app = ApiFront.app

#: the fields of a group a PUT can change, as the audit record names them
_CHANGEABLE = ("name", "description", "role", "grants", "members")


def attach(front: ApiFront, groups: Any) -> None:
    """Give the management front the group service these routes call (`core.identity.groups.GroupService`)."""
    front.groups = groups  # type: ignore[attr-defined]


def group_view(record: GroupRecord) -> dict[str, Any]:
    """A group as ``/api/v1/groups`` answers it; ``members`` are usernames (local and directory ones)."""
    row, members = record
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "role": row.role,
        "grants": grants_json(load_grants(row.grants)),
        "members": members,
        "source": row.source,
        "created_at": iso8601(row.created_at),
        "updated_at": iso8601(row.updated_at),
    }


def _groups(front: Any) -> Any:
    if getattr(front, "groups", None) is None:
        raise NotFound("groups are not enabled")
    return front.groups


@app.route("/api/v1/groups", methods=["GET"])
@requires(ADMIN)
async def list_groups(self: Any, request: Any, caller: Any) -> bytes:
    return json_response(request, {"groups": [group_view(g) for g in await _groups(self).list()]})


@app.route("/api/v1/groups", methods=["POST"])
@requires(ADMIN)
async def create_group(self: Any, request: Any, caller: Any) -> bytes:
    view = group_view(await _groups(self).create(read_json_object(request)))
    detail = {k: view[k] for k in ("id", *_CHANGEABLE)}
    await self.record(request, "group.create", caller.username, view["name"], detail)
    request.setHeader(b"Location", b"/api/v1/groups/%d" % view["id"])
    return json_response(request, view, 201)


@app.route("/api/v1/groups/<id:group_id>", methods=["GET"])
@requires(ADMIN)
async def get_group(self: Any, request: Any, group_id: int, caller: Any) -> bytes:
    return json_response(request, group_view(await _groups(self).get(group_id)))


@app.route("/api/v1/groups/<id:group_id>", methods=["PUT"])
@requires(ADMIN)
async def update_group(self: Any, request: Any, group_id: int, caller: Any) -> bytes:
    body = read_json_object(request)
    before = group_view(await _groups(self).get(group_id))
    view = group_view(await _groups(self).update(group_id, body))
    changes = {k: {"from": before[k], "to": view[k]} for k in _CHANGEABLE if before[k] != view[k]}
    await self.record(request, "group.update", caller.username, view["name"], {"id": group_id, **changes})
    return json_response(request, view)


@app.route("/api/v1/groups/<id:group_id>", methods=["DELETE"])
@requires(ADMIN)
async def delete_group(self: Any, request: Any, group_id: int, caller: Any) -> bytes:
    gone = group_view(await _groups(self).delete(group_id))
    detail = {k: gone[k] for k in ("id", "role", "grants", "members")}
    await self.record(request, "group.delete", caller.username, gone["name"], detail)
    request.setResponseCode(204)
    return b""
