"""/api/v1/robots: robot accounts for CI (`core.identity.robots.RobotService` decides).

Attached to `ApiFront`'s Klein app like api/policies.py (importing this
module adds the routes; service.py does and calls `attach`), so it shares
the front's authentication and error handlers.  Every signed-in user may
call these routes; the service decides what each caller may see and do.

The secret is in the answer of create and rotate only (with
``Cache-Control: no-store``); it never reaches a log line or an audit record.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from harbor_cache.api.front import ANY_USER, ApiFront, read_json_object, requires
from harbor_cache.auth.permissions import grants_json, load_grants
from harbor_cache.core.identity.robots import RobotService
from harbor_cache.core.seams import User
from harbor_cache.errors import NotFound
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.responses import json_response

log = Logger()

app = ApiFront.app


def attach(front: ApiFront, robots: RobotService) -> None:
    """Give the management front the robot service these routes call (the service wires it)."""
    front.robots = robots  # type: ignore[attr-defined]


def _robots(front: Any) -> RobotService:
    robots = getattr(front, "robots", None)
    if robots is None:
        raise NotFound("robot accounts are not enabled")
    return robots


def _time(value: float | None) -> str | None:
    return None if value is None else iso8601(value)


def robot_view(row: User, secret: str | None = None) -> dict[str, Any]:
    """A robot as the API shows it; ``secret`` only in the answers of create and rotate."""
    view: dict[str, Any] = {
        "id": row.id,
        "name": row.username,
        "description": row.description,
        "grants": grants_json(load_grants(row.grants)),
        "expires_at": _time(row.expires_at),
        "disabled": bool(row.disabled),
        "created_by": row.created_by,
        "created_at": iso8601(row.created_at),
        "updated_at": iso8601(row.updated_at),
        "last_used_at": _time(row.last_used_at),
        "last_used_addr": row.last_used_addr,
    }
    if secret is not None:
        view["secret"] = secret
    return view


def _with_secret(request: Any, row: User, secret: str, status: int = 200) -> bytes:
    request.setHeader(b"Cache-Control", b"no-store")
    return json_response(request, robot_view(row, secret), status)


@app.route("/api/v1/robots", methods=["GET"])
@requires(ANY_USER)
async def list_robots(self: Any, request: Any, caller: User) -> bytes:
    return json_response(request, {"robots": [robot_view(r) for r in await _robots(self).visible(caller)]})


@app.route("/api/v1/robots", methods=["POST"])
@requires(ANY_USER)
async def create_robot(self: Any, request: Any, caller: User) -> bytes:
    row, secret = await _robots(self).create(caller, read_json_object(request))
    view = robot_view(row)
    detail = {"id": row.id, "grants": view["grants"], "expires_at": view["expires_at"]}
    await self.record(request, "robot.create", caller.username, row.username, detail)
    log.info("{username} created robot account {robot}", username=caller.username, robot=row.username)
    request.setHeader(b"Location", b"/api/v1/robots/%d" % row.id)
    return _with_secret(request, row, secret, 201)


@app.route("/api/v1/robots/<id:robot_id>", methods=["GET"])
@requires(ANY_USER)
async def get_robot(self: Any, request: Any, robot_id: int, caller: User) -> bytes:
    return json_response(request, robot_view(await _robots(self).get(caller, robot_id)))


@app.route("/api/v1/robots/<id:robot_id>", methods=["PUT"])
@requires(ANY_USER)
async def update_robot(self: Any, request: Any, robot_id: int, caller: User) -> bytes:
    row, changes = await _robots(self).update(caller, robot_id, read_json_object(request))
    action = "robot.disable" if changes.get("disabled") is True else "robot.update"
    await self.record(request, action, caller.username, row.username, {"id": row.id, **changes})
    return json_response(request, robot_view(row))


@app.route("/api/v1/robots/<id:robot_id>/secret", methods=["POST"])
@requires(ANY_USER)
async def rotate_robot_secret(self: Any, request: Any, robot_id: int, caller: User) -> bytes:
    row, secret = await _robots(self).rotate(caller, robot_id)
    await self.record(request, "robot.rotate", caller.username, row.username, {"id": row.id})
    log.info("{username} rotated the secret of {robot}", username=caller.username, robot=row.username)
    return _with_secret(request, row, secret)


@app.route("/api/v1/robots/<id:robot_id>", methods=["DELETE"])
@requires(ANY_USER)
async def delete_robot(self: Any, request: Any, robot_id: int, caller: User) -> bytes:
    gone = await _robots(self).delete(caller, robot_id)
    await self.record(request, "robot.delete", caller.username, gone.username, {"id": robot_id})
    request.setResponseCode(204)
    return b""
