"""/api/v1/sync: scheduled pre-fetch rules, their runs and history (admin only).

The routes are added to `ApiFront`'s Klein app (importing this module adds
them; service.py does), as api/policies.py does.  Handlers are called with
the `ApiFront` instance as ``self``; it holds ``sync``
(`core.operations.sync.SyncRules`), set by `attach`.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.api.front import ADMIN, ApiFront, read_json_object, requires
from harbor_cache.errors import NotFound
from harbor_cache.http.responses import json_response

app = ApiFront.app


def attach(front: ApiFront, sync: Any) -> None:
    """Give the management front the sync rules these routes call (the service wires them)."""
    front.sync = sync  # type: ignore[attr-defined]


def _sync(front: Any) -> Any:
    if getattr(front, "sync", None) is None:
        raise NotFound("sync rules are not enabled")
    return front.sync


def _target(view: dict[str, Any]) -> str:
    if view.get("kind") == "maven":
        return f"maven:{view.get('maven_repository')}"
    return f"{view.get('upstream')}:{','.join(view.get('repositories') or [])}"


@app.route("/api/v1/sync", methods=["GET"])
@requires(ADMIN)
async def list_sync_rules(self: Any, request: Any, caller: Any) -> bytes:
    return json_response(request, {"rules": await _sync(self).list_rules()})


@app.route("/api/v1/sync", methods=["POST"])
@requires(ADMIN)
async def create_sync_rule(self: Any, request: Any, caller: Any) -> bytes:
    view = await _sync(self).create(read_json_object(request))
    await self.record(request, "sync.create", caller.username, _target(view), {"id": view["id"]})
    request.setHeader(b"Location", b"/api/v1/sync/%d" % view["id"])
    return json_response(request, view, 201)


@app.route("/api/v1/sync/<id:rule_id>", methods=["GET"])
@requires(ADMIN)
async def get_sync_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    return json_response(request, await _sync(self).get(rule_id))


@app.route("/api/v1/sync/<id:rule_id>", methods=["PUT"])
@requires(ADMIN)
async def update_sync_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    view = await _sync(self).update(rule_id, read_json_object(request))
    await self.record(request, "sync.update", caller.username, _target(view), {"id": rule_id})
    return json_response(request, view)


@app.route("/api/v1/sync/<id:rule_id>", methods=["DELETE"])
@requires(ADMIN)
async def delete_sync_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    gone = await _sync(self).delete(rule_id)
    await self.record(request, "sync.delete", caller.username, _target(gone), {"id": rule_id})
    request.setResponseCode(204)
    return b""


@app.route("/api/v1/sync/<id:rule_id>/run", methods=["POST"])
@requires(ADMIN)
async def run_sync_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    """Starts the run and answers 202 with its ``running`` row; its progress is in ``/runs``."""
    run, _ = await _sync(self).start(rule_id)
    await self.record(request, "sync.run", caller.username, f"rule {rule_id}", {"id": rule_id, "run": run["id"]})
    request.setHeader(b"Location", b"/api/v1/sync/%d/runs" % rule_id)
    return json_response(request, run, 202)


@app.route("/api/v1/sync/<id:rule_id>/runs", methods=["GET"])
@requires(ADMIN)
async def list_sync_runs(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    return json_response(request, {"runs": await _sync(self).runs(rule_id)})
