"""The sync store (index/sync.py) on sqlite and PostgreSQL: rules, run rows, last runs, history trimming."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import Index
from harbor_cache.index import sync as sync_store
from tests.unit.base import postgres_pool, sqlite_pool


class SyncStoreMixin(SynchronousTestCase):
    def open_pool(self) -> Any:
        raise NotImplementedError

    def run_(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def setUp(self) -> None:
        self.index = Index(self.open_pool())
        self.run_(self.index.migrate())

    def test_rules_and_runs(self) -> None:
        spec = {"upstream": "hub", "repositories": ["library/python"]}
        rule = self.run_(self.index.create_sync_rule("oci", spec, 600, True, 10.0))
        self.assertEqual((rule.kind, rule.fields, rule.interval_seconds, bool(rule.enabled)), ("oci", spec, 600, True))
        changed = self.run_(self.index.update_sync_rule(rule.id, "oci", spec, 900, False, 20.0))
        self.assertEqual((changed.interval_seconds, changed.enabled, changed.updated_at), (900, 0, 20.0))
        self.assertIsNone(self.run_(self.index.update_sync_rule(999, "oci", spec, 900, False, 20.0)))
        run = self.run_(self.index.start_sync_run(rule.id, "a", 30.0))
        self.assertEqual((run.status, run.manifests, run.finished_at), ("running", 0, None))
        big = 5 << 40  # bytes beyond 2 GiB survive PostgreSQL
        self.run_(
            self.index.update_sync_run(
                run.id, manifests=2, blobs=3, bytes_=big, tags_seen=7, status="stopped", error="why", finished_at=40.0
            )
        )
        later = self.run_(self.index.start_sync_run(rule.id, "b", 50.0))
        last = self.run_(self.index.last_sync_runs())
        self.assertEqual(list(last), [rule.id])
        self.assertEqual(last[rule.id].id, later.id)
        history = self.run_(self.index.list_sync_runs(rule.id, 10))
        self.assertEqual([r.id for r in history], [later.id, run.id])
        self.assertEqual((history[1].bytes, history[1].error, history[1].finished_at), (big, "why", 40.0))
        self.assertTrue(self.run_(self.index.delete_sync_rule(rule.id)))
        self.assertEqual(self.run_(self.index.list_sync_runs(rule.id, 10)), [])
        self.assertFalse(self.run_(self.index.delete_sync_rule(rule.id)))

    def test_history_is_trimmed(self) -> None:
        self.patch(sync_store, "MAX_RUNS_KEPT", 3)
        rule = self.run_(self.index.create_sync_rule("oci", {}, 600, True, 10.0))
        ids = [self.run_(self.index.start_sync_run(rule.id, "a", float(t))).id for t in range(5)]
        self.assertEqual([r.id for r in self.run_(self.index.list_sync_runs(rule.id, 10))], ids[::-1][:3])


class SqliteSyncStoreTests(SyncStoreMixin):
    def open_pool(self) -> Any:
        return sqlite_pool(self)


class PostgresSyncStoreTests(SyncStoreMixin):
    def open_pool(self) -> Any:
        return postgres_pool(self)


del SyncStoreMixin
