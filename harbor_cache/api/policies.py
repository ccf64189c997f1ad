"""/api/v1/retention and /api/v1/immutable-tags: the hosted-content policies (admin only).

The routes are added to `ApiFront`'s Klein app (importing this module adds
them; service.py does), so they share its authentication, error handlers and
``/api`` mount while api/front.py stays small.  Handlers are called with the
`ApiFront` instance as ``self``; it holds ``retention``
(`core.hosted.retention.Retention`) and ``immutable``
(`core.hosted.immutable.ImmutableTags`), set by the service.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from harbor_cache.api.front import ADMIN, ApiFront, read_json_object, requires
from harbor_cache.errors import BadRequest, NotFound
from harbor_cache.http.responses import json_response

log = Logger()

app = ApiFront.app


def attach(front: ApiFront, retention: Any, immutable: Any) -> None:
    """Give the management front the policy services these routes call (the service wires them)."""
    front.retention = retention  # type: ignore[attr-defined]
    front.immutable = immutable  # type: ignore[attr-defined]


def _retention(front: Any) -> Any:
    if getattr(front, "retention", None) is None:
        raise NotFound("tag retention is not enabled")
    return front.retention


def _immutable(front: Any) -> Any:
    if getattr(front, "immutable", None) is None:
        raise NotFound("immutable tags are not enabled")
    return front.immutable


def _run_body(request: Any) -> bool:
    """``dry_run`` of a run request; an empty body is a real run."""
    content = request.content
    data = content.read(1) if content is not None else b""
    if not data:
        return False
    content.seek(0)
    body = read_json_object(request)
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("dry_run: expected true or false")
    return dry_run


# -- retention ------------------------------------------------------------------------


@app.route("/api/v1/retention", methods=["GET"])
@requires(ADMIN)
async def list_retention_rules(self: Any, request: Any, caller: Any) -> bytes:
    return json_response(request, {"rules": await _retention(self).list()})


@app.route("/api/v1/retention", methods=["POST"])
@requires(ADMIN)
async def create_retention_rule(self: Any, request: Any, caller: Any) -> bytes:
    view = await _retention(self).create(read_json_object(request))
    await self.record(request, "retention.create", caller.username, view["repositories"], {"id": view["id"]})
    request.setHeader(b"Location", b"/api/v1/retention/%d" % view["id"])
    return json_response(request, view, 201)


@app.route("/api/v1/retention/run", methods=["POST"])
@requires(ADMIN)
async def run_retention(self: Any, request: Any, caller: Any) -> bytes:
    dry_run = _run_body(request)
    return json_response(request, await _retention(self).run(None, dry_run, actor=caller.username))


@app.route("/api/v1/retention/<id:rule_id>", methods=["GET"])
@requires(ADMIN)
async def get_retention_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    return json_response(request, await _retention(self).get(rule_id))


@app.route("/api/v1/retention/<id:rule_id>", methods=["PUT"])
@requires(ADMIN)
async def update_retention_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    view = await _retention(self).update(rule_id, read_json_object(request))
    await self.record(request, "retention.update", caller.username, view["repositories"], {"id": rule_id})
    return json_response(request, view)


@app.route("/api/v1/retention/<id:rule_id>", methods=["DELETE"])
@requires(ADMIN)
async def delete_retention_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    gone = await _retention(self).get(rule_id)
    await _retention(self).delete(rule_id)
    await self.record(request, "retention.delete", caller.username, gone["repositories"], {"id": rule_id})
    request.setResponseCode(204)
    return b""


@app.route("/api/v1/retention/<id:rule_id>/run", methods=["POST"])
@requires(ADMIN)
async def run_retention_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    dry_run = _run_body(request)
    return json_response(request, await _retention(self).run(rule_id, dry_run, actor=caller.username))


# -- immutable tags ---------------------------------------------------------------------


@app.route("/api/v1/immutable-tags", methods=["GET"])
@requires(ADMIN)
async def list_immutable_rules(self: Any, request: Any, caller: Any) -> bytes:
    return json_response(request, {"rules": await _immutable(self).list()})


@app.route("/api/v1/immutable-tags", methods=["POST"])
@requires(ADMIN)
async def create_immutable_rule(self: Any, request: Any, caller: Any) -> bytes:
    view = await _immutable(self).create(read_json_object(request))
    await self.record(
        request, "immutable.create", caller.username, view["repositories"], {"id": view["id"], "tags": view["tags"]}
    )
    request.setHeader(b"Location", b"/api/v1/immutable-tags/%d" % view["id"])
    return json_response(request, view, 201)


@app.route("/api/v1/immutable-tags/<id:rule_id>", methods=["DELETE"])
@requires(ADMIN)
async def delete_immutable_rule(self: Any, request: Any, rule_id: int, caller: Any) -> bytes:
    gone = await _immutable(self).delete(rule_id)
    await self.record(
        request, "immutable.delete", caller.username, gone["repositories"], {"id": rule_id, "tags": gone["tags"]}
    )
    request.setResponseCode(204)
    return b""
