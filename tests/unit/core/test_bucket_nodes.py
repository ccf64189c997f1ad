"""Two nodes that share the index and a bucket but no data directory: the cold path across them.

Node B's data directory is its own; its index file is a symlink to node A's
(one sqlite file standing for the shared PostgreSQL); both have the same
in-memory bucket.  A blob in flight on A is not fetched by B: B's clients
wait for A's commit and are served the object from the bucket, and the
access log says so (cache status "coalesced", upstream "bucket").  On one
shared data directory (no bucket) the same requests are "coalesced" under
the upstream's name.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import globalLogPublisher

from harbor_cache.core.flight.leases import LeaseBook
from tests.unit.base import MavenCacheCase, OciCacheCase
from tests.unit.core.test_bucket_core import MemoryBucket


def access_lines(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (e["path"], e["cache_status"], e["upstream"])
        for e in events
        if e.get("log_namespace") == "harbor_cache.access" and "path" in e
    ]


class Nodes:
    """Mixin: ``self.a`` and ``self.b`` with lease books; B on its own data directory when ``bucket``."""

    def two_nodes(self: Any, bucket: bool) -> None:
        self.a = self.app
        if bucket:
            self.bucket = MemoryBucket()
            other = self.mktemp()
            os.makedirs(other)
            os.symlink(
                os.path.abspath(os.path.join(self.directory, "index.sqlite")), os.path.join(other, "index.sqlite")
            )
            self.b = self.start_app(other, migrate=False, current=False)
            for app in (self.a, self.b):
                app.storage.use_bucket(self.bucket, 1 << 30)
            self.assertNotEqual(self.a.storage.root, self.b.storage.root)
        else:
            self.b = self.start_app(self.directory, current=False)
        for node, app in (("a", self.a), ("b", self.b)):
            app.downloads.leases = LeaseBook(app.index, node, self.clock, ttl=10, poll=0.25)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def advance(self: Any, seconds: float) -> None:
        self.clock.advance(seconds)
        self.flush()


class OciAcrossNodesTests(Nodes, OciCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.layer = os.urandom(300_000)
        self.digest = self.upstream.add_blob(self.layer)
        self.path = "/v2/library/app/blobs/" + self.digest

    def pull_on_both(self) -> None:
        self.upstream.hold[self.digest] = 100_000
        on_a = self.request("GET", self.path, app=self.a)
        body_a = self.read_body(self.successResultOf(on_a))
        on_b = [self.request("GET", self.path, app=self.b) for _ in range(2)]
        self.advance(1)
        for d in on_b:
            self.assertNoResult(d)  # waiting for A's download, not asking upstream
        self.upstream.release()
        self.flush()
        self.assertEqual(self.successResultOf(body_a), self.layer)
        self.advance(0.25)
        for d in on_b:
            self.assertEqual(self.successResultOf(self.read_body(self.successResultOf(d))), self.layer)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)

    def test_the_waiting_node_reads_the_bucket_and_logs_it(self) -> None:
        self.two_nodes(bucket=True)
        self.pull_on_both()
        self.assertEqual(self.bucket.fills, 1)  # B's one fill of its own tier, for both its clients
        self.assertEqual(self.b.storage.stat_blob(self.digest), len(self.layer))
        self.assertEqual(
            sorted(access_lines(self.events)),
            [(self.path, "coalesced", "bucket")] * 2 + [(self.path, "miss", "fake")],
        )

    def test_on_a_shared_directory_the_waiting_node_says_coalesced(self) -> None:
        self.two_nodes(bucket=False)
        self.pull_on_both()
        self.assertEqual(
            sorted(access_lines(self.events)),
            [(self.path, "coalesced", "fake")] * 2 + [(self.path, "miss", "fake")],
        )


class MavenAcrossNodesTests(Nodes, MavenCacheCase):
    def test_the_waiting_node_reads_the_bucket_and_logs_it(self) -> None:
        jar = os.urandom(200_000)
        self.upstream.put("org/x/1/x-1.jar", jar)
        self.two_nodes(bucket=True)
        path = "/artifacts/central/org/x/1/x-1.jar"
        self.upstream.hold = True
        on_a = self.request("GET", path, app=self.a)
        on_b = self.request("GET", path, app=self.b)
        self.advance(1)
        self.assertNoResult(on_b)
        self.upstream.release()
        self.flush()
        self.assertEqual(self.successResultOf(self.read_body(self.successResultOf(on_a))), jar)
        self.advance(0.25)
        self.assertEqual(self.successResultOf(self.read_body(self.successResultOf(on_b))), jar)
        self.assertEqual(self.upstream.count("GET", "org/x/1/x-1.jar"), 1)
        self.assertIn((path, "coalesced", "bucket"), access_lines(self.events))
