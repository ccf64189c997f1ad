"""/api/v1/users: people who log in (robots are /api/v1/robots), and ``/api/v1/users/me``.

The routes are added to `ApiFront`'s Klein app when this module is imported
(api/front.py does so at its end), as api/groups.py does, so they share its
authentication, error handlers and ``/api`` mount.  The rules are in
`core.identity.users.UserService`; this module parses, shapes and audits.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from harbor_cache.api.access import caller_permissions, permissions_view
from harbor_cache.api.front import ADMIN, ANY_USER, ApiFront, read_json_object, requires
from harbor_cache.auth.permissions import grants_json, load_grants
from harbor_cache.core.seams import User
from harbor_cache.errors import BadRequest
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import json_response

log = Logger()
app = ApiFront.app


def user_view(row: User) -> dict[str, Any]:
    """A user as the API shows it (never the password hash)."""
    return {
        "id": row.id,
        "username": row.username,
        "role": row.role,
        "grants": grants_json(load_grants(row.grants)),
        "source": row.source,
        "created_at": iso8601(row.created_at),
        "updated_at": iso8601(row.updated_at),
    }


@app.route("/api/v1/users", methods=["GET"])
@requires(ADMIN)
async def list_users(self, request: HarborRequest, caller: User):
    return json_response(request, [user_view(u) for u in await self.users.list()])


@app.route("/api/v1/users", methods=["POST"])
@requires(ADMIN)
async def create_user(self, request: HarborRequest, caller: User):
    body = read_json_object(request)
    if "grants" in body and body["grants"] is None:
        raise BadRequest("grants may be left out but not null")
    row = await self.users.create(body.get("username"), body.get("password"), body.get("role"), body.get("grants"))
    log.info(
        "{username} created user {created} ({role})", username=caller.username, created=row.username, role=row.role
    )
    view = user_view(row)
    detail: dict = {"role": row.role}
    if "grants" in body:
        detail["grants"] = view["grants"]
    await self.record(request, "user.create", caller.username, row.username, detail)
    request.setHeader(b"Location", b"/api/v1/users/%d" % row.id)
    return json_response(request, view, 201)


@app.route("/api/v1/users/me", methods=["GET"])
@requires(ANY_USER)
async def who_am_i(self, request: HarborRequest, caller: User):
    """The caller, with their effective permissions (the console hides what they cannot use)."""
    return json_response(request, {**user_view(caller), "permissions": permissions_view(caller_permissions(request))})


@app.route("/api/v1/users/<id:user_id>", methods=["GET"])
@requires(ADMIN)
async def get_user(self, request: HarborRequest, user_id, caller: User):
    return json_response(request, user_view(await self.users.get(user_id)))


@app.route("/api/v1/users/<id:user_id>", methods=["PUT"])
@requires(ADMIN)
async def update_user(self, request: HarborRequest, user_id, caller: User):
    body = read_json_object(request)
    for field in ("role", "password", "grants"):
        if field in body and body[field] is None:
            raise BadRequest(f"{field} may be left out but not null")
    row = await self.users.update(
        user_id, role=body.get("role"), password=body.get("password"), grants=body.get("grants")
    )
    view = user_view(row)
    changes: dict = {}
    if "role" in body:
        changes["role"] = row.role
    if "password" in body:
        changes["password_changed"] = True
    if "grants" in body:
        changes["grants"] = view["grants"]  # the grants now, as stored (a grant change is audited in full)
    await self.record(request, "user.update", caller.username, row.username, changes)
    return json_response(request, view)


@app.route("/api/v1/users/<id:user_id>", methods=["DELETE"])
@requires(ADMIN)
async def delete_user(self, request: HarborRequest, user_id, caller: User):
    gone = await self.users.get(user_id)
    await self.users.delete(user_id)
    await self.record(request, "user.delete", caller.username, gone.username, {"id": user_id})
    log.info("{username} deleted user id {id}", username=caller.username, id=user_id)
    request.setResponseCode(204)
    return b""
