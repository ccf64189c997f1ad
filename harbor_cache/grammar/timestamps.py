"""Timestamps as the seeds write them: ISO 8601, UTC, whole seconds, "Z"."""

from __future__ import annotations

import time


def iso8601(seconds: float | None) -> str | None:
    """Epoch seconds as ``2025-08-07T10:30:00Z``; None stays None."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))
