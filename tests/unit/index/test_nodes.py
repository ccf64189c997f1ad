"""One node name, one live process: the ``nodes`` claim, its heartbeat, and what a second process sees.

Two `NodeName` claims under one name on one index (sqlite through
`InlinePool`, one Clock) stand for two processes; the SQL runs on
PostgreSQL too in `NodesOnPostgresTests`.  The start-up refusal of a whole
process is `tests.integration.test_scaleout_it`.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations import nodes as nodes_module
from harbor_cache.core.operations.nodes import NodeName, NodeNameInUse
from harbor_cache.index import Index
from harbor_cache.testing import InlinePool, resolved
from tests.unit.base import postgres_pool

LEASE = 3.0


class NodeNameTests(SynchronousTestCase):
    def make_index(self):
        pool = InlinePool(self.mktemp())
        self.addCleanup(pool.close)
        return pool

    def setUp(self):
        self.pool = self.make_index()
        self.index = Index(self.pool)
        resolved(Deferred.fromCoroutine(self.index.migrate()))
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.events: list[dict] = []
        self.patch(nodes_module, "log", Logger(observer=self.events.append))

    def node(self, name="a", **kw):
        return NodeName(self.index, name, self.clock, LEASE, **kw)

    def claim(self, node) -> Deferred:
        return Deferred.fromCoroutine(node.claim())

    def row(self, name="a"):
        now = self.clock.seconds()
        return resolved(Deferred.fromCoroutine(self.index.claim_node(name, "probe", now, -1.0)))

    def test_a_free_name_is_claimed_at_once_and_refreshed(self):
        first = self.node()
        self.successResultOf(self.claim(first))
        self.clock.advance(LEASE / 3)
        self.clock.advance(LEASE / 3)
        held = self.row()
        self.assertEqual((held.instance, held.heartbeat_at), (first.instance, self.clock.seconds()))

    def test_a_second_live_process_is_refused_naming_the_setting(self):
        """The heartbeat moves while the newcomer watches: NodeNameInUse, within about a third of the lease."""
        first = self.node()
        self.successResultOf(self.claim(first))
        second = self.claim(self.node())
        self.assertNoResult(second)
        for _ in range(4):
            self.clock.advance(LEASE / 6)
        failure = self.failureResultOf(second, NodeNameInUse)
        message = str(failure.value)
        self.assertIn("'a'", message)
        self.assertIn("[index] node_name", message)
        self.assertIn(first.instance, message)
        self.assertEqual(self.row().instance, first.instance)

    def test_a_name_of_a_killed_process_is_taken_over_after_the_lease(self):
        """Its heartbeat stops moving: the restarted process waits at most lease_seconds, then holds the name."""
        dead = self.node()
        self.successResultOf(self.claim(dead))
        dead._heartbeat.stop()  # SIGKILL: no release
        self.clock.advance(1)
        restarted = self.node()
        claimed = self.claim(restarted)
        self.assertNoResult(claimed)
        for _ in range(int(LEASE * 2)):
            self.clock.advance(0.5)
        self.successResultOf(claimed)
        self.assertEqual(self.row().instance, restarted.instance)
        # The old holder, were it only frozen, learns on its next beat that it lost the name.
        self.successResultOf(dead._beat())
        self.assertTrue(dead.taken_over)
        self.assertIn("taken over", self.events[-1]["log_format"])

    def test_a_stale_name_is_taken_over_at_once(self):
        dead = self.node()
        self.successResultOf(self.claim(dead))
        dead._heartbeat.stop()
        self.clock.advance(LEASE + 1)
        self.successResultOf(self.claim(self.node()))

    def test_a_clean_stop_releases_the_name_for_an_immediate_restart(self):
        first = self.node()
        self.successResultOf(self.claim(first))
        self.successResultOf(Deferred.fromCoroutine(first.release()))
        self.assertFalse(first._heartbeat.running)
        again = self.node()
        self.successResultOf(self.claim(again))
        self.assertEqual(self.row().instance, again.instance)

    def test_other_names_do_not_clash(self):
        self.successResultOf(self.claim(self.node("a")))
        self.successResultOf(self.claim(self.node("b")))


class NodesOnPostgresTests(NodeNameTests):
    """The same on PostgreSQL (the claim's upsert with its WHERE, the heartbeat's row count)."""

    def make_index(self):
        return postgres_pool(self)
