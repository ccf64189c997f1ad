"""Upstream blocks and unblocks: where they are written (the access namespace of the main log, the audit log).

On the app `harbor_cache.testing.build_app` wires (its HealthMonitor, AuditLog
and sqlite index); time from a Clock, the upstream a name-only stand-in:
`HealthMonitor.failed` and `succeeded` are what probes and requests call.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.testing import build_app

T0 = 1_700_000_000.0


class BlockRecordTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.app = build_app(self.mktemp(), clock=self.clock)
        self.addCleanup(self.app.db_pool.close)
        self.health = self.app.upstream_health
        self.hub = SimpleNamespace(name="hub")
        self.access_lines = []

        def observe(event):
            if event.get("log_namespace") == "harbor_cache.access":
                self.access_lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def audit(self):
        _, rows = self.successResultOf(defer.ensureDeferred(self.app.index.audit_page(offset=0, limit=50)))
        return [(r.action, r.actor, r.target, json.loads(r.detail) if r.detail else None) for r in reversed(rows)]

    def test_block_and_unblock_are_logged_and_audited_once_each(self):
        """The third failure in a row blocks (one record, with cool-down, count and error); further failures
        while blocked add nothing; the success that unblocks is one record; later successes add nothing."""
        for _ in range(4):
            self.health.failed(self.hub, "connection refused")
        self.assertTrue(self.health.is_blocked(self.hub))
        self.assertEqual(
            self.audit(),
            [("upstream.block", None, "hub", {"seconds": 60, "failures": 3, "error": "connection refused"})],
        )
        self.clock.advance(5)
        self.health.succeeded(self.hub)
        self.health.succeeded(self.hub)
        self.assertEqual(
            [a[:3] for a in self.audit()], [("upstream.block", None, "hub"), ("upstream.unblock", None, "hub")]
        )
        self.assertEqual(len([line for line in self.access_lines if "hub blocked for 60s" in line]), 1)
        self.assertEqual(len([line for line in self.access_lines if "hub unblocked" in line]), 1)

    def test_the_audit_filter_offers_the_actions(self):
        """The console's audit filter (core.operations.audit.ACTIONS) knows both actions."""
        from harbor_cache.core.operations.audit import ACTIONS

        self.assertIn("upstream.block", ACTIONS)
        self.assertIn("upstream.unblock", ACTIONS)
