"""How the management API reads the audit log: its filters and its CSV / JSON export (issue 29).

`audit_filters` turns the query string of ``GET /api/v1/audit`` and
``GET /api/v1/audit/export`` into the index's filter arguments, so both
answer the same records for the same address.  ``since`` / ``until`` take
ISO 8601 (a date, or a date and time; UTC unless an offset is given;
``until`` is exclusive).  ``logins=hide`` leaves out the successful API and
console logins (action ``login``), which are routine and would drown the rest;
failed logins (``login.failed``) stay.  The console asks for that by default
and offers a toggle; the API's default is to show everything.
``actor_kind=robot`` keeps the records of robot accounts (actors named
``robot$...``; the prefix is reserved for robots, so the kind is derived from
the name rather than stored: older records filter the same way), ``user`` those
of every other named actor.

The export is bounded, not streamed: at most ``audit.export_max_rows``
records, newest first, in one response; ``X-Audit-Truncated: true`` says that
more matched (narrow the time range to get the rest).  CSV cells that a
spreadsheet would run as a formula (leading ``=``, ``+``, ``-``, ``@``) are
prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from harbor_cache.api.console import audit_view, choice_arg, query_arg
from harbor_cache.core.operations.audit import ACTIONS
from harbor_cache.core.seams import ConsoleQueries
from harbor_cache.errors import BadRequest
from harbor_cache.grammar.timestamps import parse_iso8601
from harbor_cache.http.request import HarborRequest

CSV_COLUMNS = ("id", "at", "actor", "action", "target", "client", "detail")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _time_arg(request: HarborRequest, name: str) -> float | None:
    raw = query_arg(request, name)
    if raw is None:
        return None
    when = parse_iso8601(raw)
    if when is None:
        raise BadRequest(f"{name} must be an ISO 8601 date or time (2025-08-07 or 2025-08-07T10:30:00Z)", {name: raw})
    return when


def audit_filters(request: HarborRequest) -> dict[str, Any]:
    """The index's ``audit_page`` filters from the query string; BadRequest (400) for a bad one."""
    areas = set(ACTIONS) | {a.split(".")[0] for a in ACTIONS}
    since, until = _time_arg(request, "since"), _time_arg(request, "until")
    if since is not None and until is not None and until <= since:
        raise BadRequest("until must be later than since", {"since": query_arg(request, "since")})
    logins = choice_arg(request, "logins", ("show", "hide"), "show")
    return {
        "action": choice_arg(request, "action", areas),
        "actor": query_arg(request, "actor"),
        "text": query_arg(request, "q"),
        "since": since,
        "until": until,
        "exclude": "login" if logins == "hide" else None,
        "actor_kind": choice_arg(request, "actor_kind", ("user", "robot")),
    }


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


async def export(queries: ConsoleQueries, request: HarborRequest, max_rows: int) -> tuple[bytes, bool]:
    """(body, truncated) of ``GET /api/v1/audit/export``; sets Content-Type and Content-Disposition."""
    fmt = choice_arg(request, "format", ("csv", "json"), "csv")
    total, rows = await queries.audit_page(offset=0, limit=max_rows, **audit_filters(request))
    views = [audit_view(r) for r in rows]
    truncated = total > len(rows)
    request.setHeader(b"X-Audit-Truncated", b"true" if truncated else b"false")
    request.setHeader(b"Content-Disposition", f'attachment; filename="audit.{fmt}"'.encode())
    if fmt == "json":
        request.setHeader(b"Content-Type", b"application/json")
        body = {"total": total, "truncated": truncated, "entries": views}
        return json.dumps(body).encode(), truncated
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for view in views:
        writer.writerow([_cell(view[c]) for c in CSV_COLUMNS])
    request.setHeader(b"Content-Type", b"text/csv; charset=utf-8")
    return out.getvalue().encode("utf-8"), truncated
