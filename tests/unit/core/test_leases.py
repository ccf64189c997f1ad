"""Two nodes on one index and one store: a cold blob is fetched once, and a dead node's lease expires.

Two whole harbor-cache harnesses (fakes, Clock) share one data directory and
one sqlite index file, each with its own lease book ("a" and "b"), as two
processes share a PostgreSQL index in production. The lease SQL itself runs
on both engines in `tests.unit.index.test_index`.
"""

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.flight.downloads import lease_name
from harbor_cache.core.flight.leases import LeaseBook
from tests.fakes import FakeRegistry, Harness


class TwoNodeTests(SynchronousTestCase):
    def setUp(self):
        self.up = FakeRegistry()
        self.layer = os.urandom(300_000)
        self.digest = self.up.add_blob(self.layer)
        shared = self.mktemp()
        self.a = Harness(shared, self.up)
        self.b = Harness(shared, self.up)
        for node, h in (("a", self.a), ("b", self.b)):
            h.downloads.leases = LeaseBook(h.index, node, h.clock, ttl=10, poll=0.25)
        self.path = "/v2/library/app/blobs/" + self.digest

    def advance(self, seconds):
        for h in (self.a, self.b):
            h.clock.advance(seconds)
            h.flush()

    def test_blob_in_flight_on_one_node_is_not_fetched_by_the_other(self):
        """B's clients wait while A downloads, then get A's committed file: one upstream GET in all."""
        self.up.hold[self.digest] = 100_000
        on_a = self.a.request("GET", self.path)
        body_a = self.a.body(self.successResultOf(on_a))
        on_b = [self.b.request("GET", self.path) for _ in range(3)]
        self.advance(1)
        for d in on_b:
            self.assertNoResult(d)  # waiting for A, not asking upstream
        self.assertEqual(self.up.count("GET", "/blobs/"), 1)
        self.up.release()
        self.a.flush()
        self.assertEqual(self.successResultOf(body_a), self.layer)
        self.advance(0.25)
        for d in on_b:
            response = self.successResultOf(d)
            self.assertEqual(response.code, 200)
            self.assertEqual(self.successResultOf(self.b.body(response)), self.layer)
        self.assertEqual(self.up.count("GET", "/blobs/"), 1)
        free = self.successResultOf(
            Deferred.fromCoroutine(
                self.a.index.acquire_lease(lease_name(("blob", self.digest)), "probe", self.a.clock.seconds(), 1)
            )
        )
        self.assertTrue(free, "the lease outlived the download")

    def test_dead_nodes_lease_blocks_only_until_it_expires(self):
        """A lease left by a node that died (never renewed) is taken over after its expiry, not before."""
        name = lease_name(("blob", self.digest))
        self.assertTrue(
            self.successResultOf(
                Deferred.fromCoroutine(self.a.index.acquire_lease(name, "a", self.a.clock.seconds(), 10))
            )
        )
        on_b = self.b.request("GET", self.path)
        self.advance(9)
        self.assertNoResult(on_b)
        self.assertEqual(self.up.count("GET", "/blobs/"), 0)
        self.advance(1.5)
        response = self.successResultOf(on_b)
        self.assertEqual(self.successResultOf(self.b.body(response)), self.layer)
        self.assertEqual(self.up.count("GET", "/blobs/"), 1)

    def test_live_holder_renews_its_lease(self):
        """A download slower than the lease lifetime keeps its lease: the other node never starts a second one."""
        self.up.hold[self.digest] = 100_000
        on_a = self.a.request("GET", self.path)
        body_a = self.a.body(self.successResultOf(on_a))
        on_b = self.b.request("GET", self.path)
        for _ in range(10):
            self.advance(2.5)  # 25 s in all: 2.5 lease lifetimes (under the 30 s upstream idle timeout)
        self.assertNoResult(on_b)
        self.assertEqual(self.up.count("GET", "/blobs/"), 1)
        self.up.release()
        self.a.flush()
        self.assertEqual(self.successResultOf(body_a), self.layer)
        self.advance(0.25)
        self.assertEqual(self.successResultOf(self.b.body(self.successResultOf(on_b))), self.layer)
        self.assertEqual(self.up.count("GET", "/blobs/"), 1)


class TwoMavenNodeTests(SynchronousTestCase):
    """The same for Maven files: a file in flight on node A is served to B's client from A's commit."""

    def setUp(self):
        from tests.maven_fakes import FakeMavenRepo, MavenHarness

        self.up = FakeMavenRepo()
        self.jar = os.urandom(200_000)
        self.up.put("org/x/1/x-1.jar", self.jar)
        shared = self.mktemp()
        self.a = MavenHarness(shared, self.up)
        self.b = MavenHarness(shared, self.up)
        for node, h in (("a", self.a), ("b", self.b)):
            h.downloads.leases = LeaseBook(h.index, node, h.clock, ttl=10, poll=0.25)

    def test_file_in_flight_on_one_node_is_not_fetched_by_the_other(self):
        path = "/artifacts/central/org/x/1/x-1.jar"
        self.up.hold = True
        on_a = self.a.request("GET", path)
        on_b = self.b.request("GET", path)
        self.b.clock.advance(1)
        self.b.flush()
        self.assertNoResult(on_b)
        self.up.release()
        self.a.flush()
        self.assertEqual(self.successResultOf(self.a.body(self.successResultOf(on_a))), self.jar)
        self.b.clock.advance(0.25)
        self.b.flush()
        self.assertEqual(self.successResultOf(self.b.body(self.successResultOf(on_b))), self.jar)
        self.assertEqual(self.up.count("GET", "org/x/1/x-1.jar"), 1)
