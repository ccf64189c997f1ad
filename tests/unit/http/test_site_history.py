"""`HarborSite.log` feeds the traffic history: one in-memory count per content request, on both paths."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from twisted.trial import unittest

from harbor_cache.http.resources import Root
from harbor_cache.http.site import HarborSite
from harbor_cache.metrics import Metrics


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def request(self, cache_status: str, sent_bytes: int) -> None:
        self.calls.append((cache_status, sent_bytes))


def finished(cache_status: str | None, sent: int) -> Any:
    """What `HarborSite.log` reads of a finished request (a `QuickRequest` has the same attributes)."""
    return SimpleNamespace(
        started_at=time.monotonic(),
        channel_lost=False,
        code=200,
        method=b"GET",
        uri=b"/v2/x/blobs/sha256:aa",
        front="oci",
        sentLength=sent,
        cache_status=cache_status,
        upstream=None,
    )


class SiteHistoryTests(unittest.TestCase):
    def test_content_requests_are_counted_with_status_and_bytes(self) -> None:
        history = Recorder()
        site = HarborSite(Root(), Metrics(), history=history)
        site.log(finished("hit", 1234))
        site.log(finished("stale", 0))
        site.log(finished(None, 99))  # an API call: no cache status, not counted
        self.assertEqual(history.calls, [("hit", 1234), ("stale", 0)])

    def test_no_history_no_count(self) -> None:
        site = HarborSite(Root(), Metrics())
        site.log(finished("hit", 1))  # (nothing to count into: no error)
