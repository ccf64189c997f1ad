"""Two nodes on one index and one store: a cold blob is fetched once, and a dead node's lease expires.

Two whole harbor-cache apps (fakes, one Clock) share one data directory and
one sqlite index file, each with its own lease book ("a" and "b"), as two
processes share a PostgreSQL index in production. The lease SQL itself runs
on both engines in `tests.unit.index.test_index`.
"""

import os

from twisted.internet.defer import Deferred

from harbor_cache.core.flight.downloads import lease_name
from harbor_cache.core.flight.leases import LeaseBook
from tests.unit.base import MavenCacheCase, OciCacheCase


class TwoNodeTests(OciCacheCase):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(300_000)
        self.digest = self.upstream.add_blob(self.layer)
        self.a = self.app
        self.b = self.start_app(self.directory, current=False)  # another node on the same index and files
        for node, app in (("a", self.a), ("b", self.b)):
            app.downloads.leases = LeaseBook(app.index, node, self.clock, ttl=10, poll=0.25)
        self.path = "/v2/library/app/blobs/" + self.digest

    def advance(self, seconds):
        """Both nodes share one clock: advance it and run what is pending on both."""
        self.clock.advance(seconds)
        self.flush()

    def test_blob_in_flight_on_one_node_is_not_fetched_by_the_other(self):
        """B's clients wait while A downloads, then get A's committed file: one upstream GET in all."""
        self.upstream.hold[self.digest] = 100_000
        on_a = self.request("GET", self.path, app=self.a)
        body_a = self.read_body(self.successResultOf(on_a))
        on_b = [self.request("GET", self.path, app=self.b) for _ in range(3)]
        self.advance(1)
        for d in on_b:
            self.assertNoResult(d)  # waiting for A, not asking upstream
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        self.upstream.release()
        self.flush()
        self.assertEqual(self.successResultOf(body_a), self.layer)
        self.advance(0.25)
        for d in on_b:
            response = self.successResultOf(d)
            self.assertEqual(response.code, 200)
            self.assertEqual(self.successResultOf(self.read_body(response)), self.layer)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        free = self.successResultOf(
            Deferred.fromCoroutine(
                self.a.index.acquire_lease(lease_name(("blob", self.digest)), "probe", self.clock.seconds(), 1)
            )
        )
        self.assertTrue(free, "the lease outlived the download")

    def test_dead_nodes_lease_blocks_only_until_it_expires(self):
        """A lease left by a node that died (never renewed) is taken over after its expiry, not before."""
        name = lease_name(("blob", self.digest))
        self.assertTrue(
            self.successResultOf(
                Deferred.fromCoroutine(self.a.index.acquire_lease(name, "a", self.clock.seconds(), 10))
            )
        )
        on_b = self.request("GET", self.path, app=self.b)
        self.advance(9)
        self.assertNoResult(on_b)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 0)
        self.advance(1.5)
        response = self.successResultOf(on_b)
        self.assertEqual(self.successResultOf(self.read_body(response)), self.layer)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)

    def test_live_holder_renews_its_lease(self):
        """A download slower than the lease lifetime keeps its lease: the other node never starts a second one."""
        self.upstream.hold[self.digest] = 100_000
        on_a = self.request("GET", self.path, app=self.a)
        body_a = self.read_body(self.successResultOf(on_a))
        on_b = self.request("GET", self.path, app=self.b)
        for _ in range(10):
            self.advance(2.5)  # 25 s in all: 2.5 lease lifetimes (under the 30 s upstream idle timeout)
        self.assertNoResult(on_b)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        self.upstream.release()
        self.flush()
        self.assertEqual(self.successResultOf(body_a), self.layer)
        self.advance(0.25)
        self.assertEqual(self.successResultOf(self.read_body(self.successResultOf(on_b))), self.layer)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)


class TwoMavenNodeTests(MavenCacheCase):
    """The same for Maven files: a file in flight on node A is served to B's client from A's commit."""

    def setUp(self):
        super().setUp()
        self.jar = os.urandom(200_000)
        self.upstream.put("org/x/1/x-1.jar", self.jar)
        self.a = self.app
        self.b = self.start_app(self.directory, current=False)  # another node on the same index and files
        for node, app in (("a", self.a), ("b", self.b)):
            app.downloads.leases = LeaseBook(app.index, node, self.clock, ttl=10, poll=0.25)

    def test_file_in_flight_on_one_node_is_not_fetched_by_the_other(self):
        path = "/artifacts/central/org/x/1/x-1.jar"
        self.upstream.hold = True
        on_a = self.request("GET", path, app=self.a)
        on_b = self.request("GET", path, app=self.b)
        self.clock.advance(1)
        self.flush()
        self.assertNoResult(on_b)
        self.upstream.release()
        self.flush()
        self.assertEqual(self.successResultOf(self.read_body(self.successResultOf(on_a))), self.jar)
        self.clock.advance(0.25)
        self.flush()
        self.assertEqual(self.successResultOf(self.read_body(self.successResultOf(on_b))), self.jar)
        self.assertEqual(self.upstream.count("GET", "org/x/1/x-1.jar"), 1)
