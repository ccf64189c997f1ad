"""How the management API shows a quota: its fields and its usage now (`core.operations.quotas`)."""

from __future__ import annotations

from typing import Any

from harbor_cache.core.operations.quotas import QuotaRow, Usage, maven_id
from harbor_cache.grammar.timestamps import iso8601


def quota_view(quota: QuotaRow, usage: Usage | None = None) -> dict[str, Any]:
    """A quota as ``/api/v1/quotas`` answers it; ``used_tags`` and ``max_tags`` are null for Maven ones."""
    view: dict[str, Any] = {
        "id": quota.id,
        "repositories": quota.repositories,
        "max_bytes": quota.max_bytes,
        "max_tags": quota.max_tags,
        "created_at": iso8601(quota.created_at),
        "updated_at": iso8601(quota.updated_at),
    }
    if usage is not None:
        view["used_bytes"] = usage.used_bytes
        view["used_tags"] = None if maven_id(quota.repositories) is not None else usage.used_tags
    return view
