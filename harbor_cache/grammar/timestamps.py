"""Timestamps as the seeds write them: ISO 8601, UTC, whole seconds, "Z"."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso8601(seconds: float | None) -> str | None:
    """Epoch seconds as ``2025-08-07T10:30:00Z``; None stays None."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def parse_iso8601(text: str) -> float | None:
    """``2025-08-07``, ``2025-08-07T10:30``, ``2025-08-07T10:30:00Z`` (or with an offset) as epoch seconds.

    A time without a zone is read as UTC (the server writes UTC everywhere),
    so a filter typed in the console means the same on every host; anything
    else is None, for the caller to refuse with a 400.
    """
    if not 10 <= len(text) <= 32 or not text[:4].isdigit():
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
