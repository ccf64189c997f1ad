"""The index's upstream rows, generation and config-file rows, on SQLite and PostgreSQL (what a cluster shares)."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.upstreams import config_from_row, row_from_config
from harbor_cache.index import Index, migrations
from harbor_cache.settings.startup import UpstreamConfig
from harbor_cache.testing import InlinePool
from tests import pg_support
from tests.unit.base import run, sqlite_pool

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

    def test_declared_upstreams_are_applied_at_every_start(self):
        """The file's upstreams are created, updated (an API row of that name taken over) and removed
        among the file's; other API rows stay; nothing changed, no generation step."""
        run(self, self.index.create_upstream(row_from_config(HUB), 1.0))  # e.g. seeded by an older version
        run(self, self.index.create_upstream(row_from_config(QUAY), 1.0))
        moved = UpstreamConfig(**{**HUB.__dict__, "url": "http://127.0.0.1:9", "priority": 3})
        ghcr = UpstreamConfig(name="ghcr", url="http://127.0.0.1:3", prefix="gh", routes=())
        changes = run(self, self.index.apply_declared_upstreams([row_from_config(moved), row_from_config(ghcr)], 2.0))
        self.assertEqual(changes, [("hub", "updated", ["url", "priority", "managed_by"]), ("ghcr", "created", [])])
        generation, rows = run(self, self.index.list_upstreams())
        self.assertEqual(generation, 3)
        self.assertEqual(
            [(r.name, r.managed_by) for r in rows], [("hub", "config"), ("quay", "api"), ("ghcr", "config")]
        )
        self.assertEqual(config_from_row(rows[0]), moved)
        # the same file again: nothing to do
        again = [row_from_config(moved), row_from_config(ghcr)]
        self.assertEqual(run(self, self.index.apply_declared_upstreams(again, 3.0)), [])
        self.assertEqual(run(self, self.index.upstreams_generation()), 3)
        # hub left the file, ghcr changed: hub removed, quay (the API's) untouched
        ghcr2 = UpstreamConfig(**{**ghcr.__dict__, "priority": 5})
        changes = run(self, self.index.apply_declared_upstreams([row_from_config(ghcr2)], 4.0))
        self.assertEqual(changes, [("hub", "removed", []), ("ghcr", "updated", ["priority"])])
        # an empty [[upstreams]]: every one of the file's goes, the API's stay
        self.assertEqual(run(self, self.index.apply_declared_upstreams([], 5.0)), [("ghcr", "removed", [])])
        generation, rows = run(self, self.index.list_upstreams())
        self.assertEqual((generation, [(r.name, r.managed_by) for r in rows]), (5, [("quay", "api")]))
        # applying the file counts as the first start's seeding: the default never lands later
        self.assertFalse(run(self, self.index.seed_upstreams([row_from_config(HUB)], 6.0)))

    def test_rows_from_before_the_migration_are_the_apis(self):
        """Migration 10 adds managed_by: rows already there (seeded or created) become 'api'."""
        index = Index(self.open_pool())
        every = migrations.MIGRATIONS
        self.patch(migrations, "MIGRATIONS", every[:9])
        run(self, index.migrate())

        def insert(txn):
            index._exec(
                txn,
                """INSERT INTO upstreams (name, url, routes, priority, allow_push, library_prefix,
                   created_at, updated_at) VALUES ('old', 'http://127.0.0.1:1', '["*"]', 0, 0, 0, 1, 1)""",
            )

        self.successResultOf(index._run("insert", insert))
        migrations.MIGRATIONS = every
        self.assertEqual(run(self, index.migrate()), len(every))
        _, rows = run(self, index.list_upstreams())
        self.assertEqual([(r.name, r.managed_by) for r in rows], [("old", "api")])


class SqliteUpstreamRowsTests(UpstreamRowsMixin, SynchronousTestCase):
    def open_pool(self):
        return sqlite_pool(self)


class PostgresUpstreamRowsTests(UpstreamRowsMixin, SynchronousTestCase):
    def open_pool(self):
        return self.open_pool_at(pg_support.fresh_schema_url(self))

    def open_pool_at(self, url):
        pool = InlinePool.postgres(url)
        self.addCleanup(pool.close)
        return pool

    def test_nodes_starting_together_apply_one_after_the_other(self):
        """Another node mid-apply (meta row written, a row inserted, not committed): this node's apply
        waits for it and then finds that row, instead of failing on a duplicate name."""
        import threading
        import time

        import psycopg2

        url = pg_support.fresh_schema_url(self)
        index = Index(self.open_pool_at(url))
        run(self, index.migrate())
        run(self, index.apply_declared_upstreams([], 1.0))
        other = psycopg2.connect(url)
        self.addCleanup(other.close)
        cur = other.cursor()
        cur.execute("UPDATE upstreams_meta SET seeded_at = COALESCE(seeded_at, 1) WHERE id = 1")
        cur.execute(
            """INSERT INTO upstreams (name, url, routes, priority, allow_push, library_prefix, managed_by,
               created_at, updated_at) VALUES ('ghcr', 'http://127.0.0.1:3', '[]', 0, 0, 0, 'config', 1, 1)"""
        )
        ghcr = UpstreamConfig(name="ghcr", url="http://127.0.0.1:3", prefix="gh", routes=())
        outcome: list = []
        node = Index(self.open_pool_at(url))
        worker = threading.Thread(
            target=lambda: Deferred.fromCoroutine(node.apply_declared_upstreams([row_from_config(ghcr)], 2.0)).addBoth(
                outcome.append
            )
        )
        worker.start()
        watcher = psycopg2.connect(url)
        self.addCleanup(watcher.close)
        watcher.autocommit = True
        deadline = time.monotonic() + 10
        while not outcome and time.monotonic() < deadline:  # until this node waits for a lock
            with watcher.cursor() as w:
                w.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                if w.fetchone()[0]:
                    break
        other.commit()
        worker.join(10)
        self.assertEqual(outcome, [[("ghcr", "updated", ["prefix"])]])
