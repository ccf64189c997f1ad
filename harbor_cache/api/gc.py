"""``/api/v1/gc``: garbage collection of hosted content, on demand and its history (admin only).

Routes are declared on `api.front.ApiFront` (which checks the caller); this
module parses the body and shapes the answers.  The decisions are in
`core.hosted.gc`.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.errors import BadRequest
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.responses import json_response

# How many runs GET /api/v1/gc lists at most (gc.history bounds what is kept).
MAX_LISTED_RUNS = 10_000


def gc_run_view(run: dict[str, Any]) -> dict[str, Any]:
    """A collection as the API shows it: epoch seconds become ISO 8601."""
    return {**run, "started_at": iso8601(run["started_at"]), "finished_at": iso8601(run["finished_at"])}


def dry_run_of(body: dict[str, Any]) -> bool:
    """``dry_run`` of a POST body (absent: false); anything but a boolean is 400."""
    value = body.get("dry_run", False)
    if not isinstance(value, bool):
        raise BadRequest("dry_run must be a boolean", {"dry_run": value})
    return value


class GcFront:
    """The answers of POST and GET /api/v1/gc over a `core.hosted.gc.GarbageCollector`."""

    def __init__(self, collector: Any, settings: Any, detach: Any) -> None:
        self.collector = collector
        self.settings = settings
        # Runs a collection to its end even when the client leaves (`core.hosted.gc.detached`).
        self.detach = detach

    async def run(self, request: Any, body: dict[str, Any], actor: str) -> bytes:
        dry_run = dry_run_of(body)
        report = await self.detach(self.collector.collect(dry_run=dry_run, actor=actor, request=request))
        return json_response(request, gc_run_view(report))

    async def history(self, request: Any) -> bytes:
        runs = await self.collector.runs(self.settings.get("gc.history"))
        return json_response(
            request,
            {
                "running": self.collector.running,
                "grace_seconds": self.settings.get("gc.grace_seconds"),
                "interval_seconds": self.settings.get("gc.interval_seconds"),
                "runs": [gc_run_view(r) for r in runs],
            },
        )
