"""The index's upstream rows and generation, on SQLite and on PostgreSQL (what a cluster shares)."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.upstreams import config_from_row, row_from_config
from harbor_cache.index import Index
from harbor_cache.settings.startup import UpstreamConfig
from harbor_cache.testing import InlinePool
from tests import pg_support

HUB = UpstreamConfig(
    name="hub",
    url="http://127.0.0.1:1",
    registry="docker.io",
    routes=("*",),
    priority=1,
    username="u",
    password="p",
    library_prefix=True,
)
QUAY = UpstreamConfig(
    name="quay", url="http://127.0.0.1:2", registry="quay.io", prefix="quay", routes=(), allow_push=True
)


def run(case, coro):
    return case.successResultOf(Deferred.fromCoroutine(coro))


class UpstreamRowsMixin:
    def setUp(self):
        self.index = Index(self.open_pool())
        run(self, self.index.migrate())

    def test_seed_once_and_round_trip(self):
        """The first seed stores every field as given (one generation step); a second seed does nothing."""
        self.assertEqual(run(self, self.index.upstreams_generation()), 0)
        self.assertTrue(run(self, self.index.seed_upstreams([row_from_config(HUB), row_from_config(QUAY)], 5.0)))
        self.assertFalse(run(self, self.index.seed_upstreams([row_from_config(HUB)], 6.0)))
        generation, rows = run(self, self.index.list_upstreams())
        self.assertEqual(generation, 1)
        self.assertEqual([config_from_row(r) for r in rows], [HUB, QUAY])

    def test_changes_bump_the_generation(self):
        """Create, update and delete each move the generation; name clashes and unknown ids change nothing."""
        created = run(self, self.index.create_upstream(row_from_config(HUB), 1.0))
        self.assertIsNone(run(self, self.index.create_upstream(row_from_config(HUB), 2.0)))
        other = run(self, self.index.create_upstream(row_from_config(QUAY), 2.0))
        self.assertEqual(run(self, self.index.upstreams_generation()), 2)
        moved = UpstreamConfig(**{**HUB.__dict__, "url": "http://127.0.0.1:9", "priority": 7})
        updated = run(self, self.index.update_upstream(created.id, row_from_config(moved), 3.0))
        self.assertEqual((config_from_row(updated), updated.created_at, updated.updated_at), (moved, 1.0, 3.0))
        clash = UpstreamConfig(**{**QUAY.__dict__, "name": "hub"})
        self.assertEqual(run(self, self.index.update_upstream(other.id, row_from_config(clash), 4.0)), "name_taken")
        self.assertEqual(run(self, self.index.update_upstream(999, row_from_config(QUAY), 4.0)), "missing")
        self.assertEqual(run(self, self.index.upstreams_generation()), 3)
        self.assertTrue(run(self, self.index.delete_upstream(created.id)))
        self.assertFalse(run(self, self.index.delete_upstream(created.id)))
        generation, rows = run(self, self.index.list_upstreams())
        self.assertEqual((generation, [r.name for r in rows]), (4, ["quay"]))


class SqliteUpstreamRowsTests(UpstreamRowsMixin, SynchronousTestCase):
    def open_pool(self):
        directory = self.mktemp()
        os.makedirs(directory)
        pool = InlinePool(os.path.join(directory, "index.sqlite"))
        self.addCleanup(pool.close)
        return pool


class PostgresUpstreamRowsTests(UpstreamRowsMixin, SynchronousTestCase):
    def open_pool(self):
        pool = InlinePool.postgres(pg_support.fresh_schema_url(self))
        self.addCleanup(pool.close)
        return pool
