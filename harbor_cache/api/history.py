"""/api/v1/dashboard/history: the traffic history the dashboard charts (any signed-in user).

The route is added to `ApiFront`'s Klein app (importing this module adds it;
service.py does and calls `attach`), so it shares the front's
authentication, error handlers and ``/api`` mount.  The series come from
`core.operations.history.StatsHistory`.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.api.console import query_arg
from harbor_cache.api.front import ANY_USER, ApiFront, requires
from harbor_cache.core.operations.history import RANGES, StatsHistory
from harbor_cache.errors import BadRequest, NotFound
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import json_response

app = ApiFront.app


def attach(front: ApiFront, history: StatsHistory) -> None:
    """Give the management front the traffic history this route reads (the service wires it)."""
    front.history = history  # type: ignore[attr-defined]


def _history(front: Any) -> StatsHistory:
    history = getattr(front, "history", None)
    if history is None:
        raise NotFound("the traffic history is not enabled")
    return history


def range_arg(request: HarborRequest) -> str:
    """``range``: hour (default), day or week."""
    raw = query_arg(request, "range")
    if raw is None:
        return "hour"
    if raw not in RANGES:
        raise BadRequest("range must be one of: " + ", ".join(RANGES), {"range": raw[:32]})
    return raw


@app.route("/api/v1/dashboard/history", methods=["GET"])
@requires(ANY_USER)
async def dashboard_history(self: ApiFront, request: HarborRequest, caller: Any) -> bytes:
    return json_response(request, await _history(self).series(range_arg(request)))
