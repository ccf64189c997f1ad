"""GET /api/v1/search: one search over repositories, tags, manifests and Maven files (`core.operations.search`).

Attached to `ApiFront`'s Klein app like api/policies.py (importing this
module adds the route; service.py does), so it shares the front's
authentication and error handlers.  Any user who may read the management API
may search; private Maven repositories are searched for admins only.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.api.access import caller_permissions
from harbor_cache.api.console import query_arg
from harbor_cache.api.front import ANY_USER, ApiFront, requires
from harbor_cache.core.operations.search import Search, parse_limit
from harbor_cache.errors import BadRequest, NotFound
from harbor_cache.http.responses import json_response

app = ApiFront.app


def attach(front: ApiFront, search: Search) -> None:
    """Give the management front the search these routes call (the service wires it)."""
    front.search = search  # type: ignore[attr-defined]


@app.route("/api/v1/search", methods=["GET"])
@requires(ANY_USER)
async def search(self: Any, request: Any, caller: Any) -> bytes:
    engine = getattr(self, "search", None)
    if engine is None:
        raise NotFound("search is not enabled")
    q = query_arg(request, "q")
    if q is None:
        raise BadRequest("q: required")
    page = await engine.run(
        q,
        is_admin=caller_permissions(request).server_admin,
        permissions=caller_permissions(request),
        cursor=query_arg(request, "cursor"),
        limit=parse_limit(query_arg(request, "limit")),
        kind=query_arg(request, "kind"),
    )
    return json_response(request, page)
