"""Set-based batch deletion (index/bulk_delete.py) leaves what the per-row triggers leave, on both engines.

Two indexes get the same random rows (OCI manifests, blobs and tags, Maven
files and their checksums; digests shared by proxy and hosted rows; sizes
that tie); one deletes batches through `delete_proxy_entries` (the bulk
path eviction and a clear use), the other the same rows one ``DELETE`` at
a time (every per-row trigger fires).  The maintained totals and the search
table must then be equal, and equal to a ``GROUP BY`` over the rows.
"""

from __future__ import annotations

import os
import random
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import Index
from harbor_cache.testing import InlinePool
from tests.unit.base import postgres_pool, sqlite_pool
from tests.unit.index.test_totals import recomputed, run, run_txn


def populate(index: Index, seed: int) -> None:
    rnd = random.Random(seed)
    digests = [f"sha256:{i:03x}" for i in range(40)]
    sizes = [0, 7, 7, 100, 1 << 33]
    for i in range(240):
        type_ = rnd.choice(("manifest", "blob", "maven"))
        repo = f"team{rnd.randrange(4)}/app{rnd.randrange(3)}"
        if type_ == "maven":
            key = f"com/acme/m{i % 9}/1.{i}/m-1.{i}" + rnd.choice((".jar", ".pom", ".jar.sha1", "-maven-metadata.xml"))
        else:
            key = f"sha256:{i:060x}{rnd.randrange(16):04x}"
        _put(index, type_, repo, key, rnd, digests, sizes, i)
        if type_ == "manifest" and rnd.random() < 0.4:
            _await(index.put_tag(repo, f"v{i}", key, "proxy", None, float(i)))


def _await(coro: Any) -> Any:
    from twisted.internet.defer import Deferred

    out: list[Any] = []
    Deferred.fromCoroutine(coro).addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def _put(index: Index, type_: str, repo: str, key: str, rnd: random.Random, digests: list, sizes: list, i: int) -> None:
    _await(
        index.put_entry(
            kind=rnd.choice(("proxy", "proxy", "proxy", "hosted")),
            type_=type_,
            repository=repo,
            key=key,
            digest=rnd.choice(digests),
            size=rnd.choice(sizes),
            now=float(i),
        )
    )


def snapshot(index: Index) -> dict[str, list]:
    """The maintained tables and the search table, without surrogate ids."""

    def _txn(txn: Any) -> dict[str, list]:
        out = {}
        for name, sql in {
            "digest_refs": "SELECT digest, size, size_refs, proxy_refs, hosted_refs FROM digest_refs ORDER BY digest",
            "entry_totals": "SELECT type, kind, entries FROM entry_totals ORDER BY type, kind",
            "byte_totals": "SELECT total_size, evictable_size FROM byte_totals",
            "search": """SELECT kind, repository, src, name, text, digest, size, hosted, refs, updated_at
                         FROM search_items ORDER BY kind, repository, src""",
            "entries": "SELECT id FROM entries ORDER BY id",
        }.items():
            index._exec(txn, sql)
            out[name] = [tuple(r) for r in txn.fetchall()]
        return out

    return run_txn(index, _txn)


def proxy_ids(index: Index) -> list[int]:
    def _txn(txn: Any) -> list[int]:
        index._exec(txn, "SELECT id FROM entries WHERE kind = 'proxy' ORDER BY id")
        return [r[0] for r in txn.fetchall()]

    return run_txn(index, _txn)


class BulkDeleteMixin:
    def setUp(self):
        self.bulk = Index(self.open_pool())
        self.rows = Index(self.open_pool())
        for index in (self.bulk, self.rows):
            run(self, index.migrate())
            populate(index, seed=30)
        self.assertEqual(snapshot(self.bulk), snapshot(self.rows))

    def delete_per_row(self, ids):
        for id_ in ids:

            def _txn(txn: Any, id_: int = id_):
                self.rows._exec(txn, "DELETE FROM entries WHERE id = ? AND kind = 'proxy'", (id_,))

            run_txn(self.rows, _txn)

    def check(self, step):
        self.assertEqual(snapshot(self.bulk), snapshot(self.rows), step)
        self.assertEqual(recomputed(self.bulk), recomputed(self.rows), step)
        self.assertEqual(
            (run(self, self.bulk.cache_totals()), run(self, self.bulk.evictable_size())), recomputed(self.bulk), step
        )

    def test_eviction_batches_equal_the_per_row_path(self):
        """Random batches of proxy ids (some hosted ids among them, left alone), as an eviction pass picks."""
        rnd = random.Random(7)
        for step in range(6):
            everything = proxy_ids(self.bulk)
            batch = rnd.sample(everything, k=min(len(everything), rnd.randrange(1, 40)))
            batch += [1, 2, 3]  # hosted or already gone ids: skipped by both
            deleted, _ = run(self, self.bulk.delete_proxy_entries(batch))
            self.delete_per_row(sorted({e.id for e in deleted}))
            self.check(f"batch {step}")

    def test_clear_equals_the_per_row_path(self):
        """Every proxy row in batches of 50 (a clear), then the hosted rows are all that is left."""
        ids = proxy_ids(self.bulk)
        self.assertGreater(len(ids), 100)
        for start in range(0, len(ids), 50):
            run(self, self.bulk.delete_proxy_entries(ids[start : start + 50]))
        self.delete_per_row(ids)
        self.check("clear")
        totals, _ = recomputed(self.bulk)
        self.assertEqual(totals.proxy, 0)
        self.assertGreater(totals.entries, 0)
        search = snapshot(self.bulk)["search"]
        self.assertTrue(search)  # hosted rows and tags keep theirs: the comparison is not of empty tables
        self.assertFalse([r for r in search if r[0] in ("manifest", "maven") and r[7] == 0])

    def test_clear_by_rebuild_equals_the_per_row_path(self):
        """A clear in one transaction (index/clear_rebuild.py) leaves what deleting each proxy row leaves.

        sqlite rebuilds; PostgreSQL declines (None) and the caller's batches do the clear.
        """
        ids = proxy_ids(self.bulk)
        removed = run(self, self.bulk.clear_proxy_rebuild(min_rows=1))
        if self.bulk.dialect != "sqlite":
            self.assertIsNone(removed)
            return
        self.assertEqual(removed, len(ids))
        self.delete_per_row(ids)
        self.check("rebuild")
        self.assertEqual(recomputed(self.bulk)[0].proxy, 0)
        # the deleted rows, for the caches and the files, page by page, then dropped
        pages, after = [], 0
        while page := run(self, self.bulk.cleared_rows_page(after, 7)):
            pages.append(page)
            after = page[-1][0]
        self.assertEqual([row[0] for page in pages for row in page], ids)
        self.assertTrue(all(len(page) <= 7 for page in pages))
        run(self, self.bulk.drop_cleared_rows())
        self.assertEqual(run(self, self.bulk.cleared_rows_page(0, 7)), [])
        # the guard is gone: later writes count through the triggers again
        run(self, self.bulk.delete_entries(proxy_ids(self.bulk)))
        _put(self.bulk, "manifest", "team9/x", "sha256:" + "9" * 64, random.Random(1), ["sha256:f00"], [5], 1)
        _put(self.rows, "manifest", "team9/x", "sha256:" + "9" * 64, random.Random(1), ["sha256:f00"], [5], 1)
        self.check("after the rebuild")

    def test_rebuild_declines_small_or_hosted_heavy_clears(self):
        """Fewer proxy rows than min_rows, or fewer than half the index: None, and nothing deleted."""
        proxy = proxy_ids(self.bulk)
        before = snapshot(self.bulk)
        self.assertIsNone(run(self, self.bulk.clear_proxy_rebuild(min_rows=len(proxy) + 1)))
        self.assertEqual(snapshot(self.bulk), before)
        run(self, self.bulk.delete_proxy_entries(proxy[: len(proxy) - 20]))  # now most rows are hosted
        before = snapshot(self.bulk)
        self.assertIsNone(run(self, self.bulk.clear_proxy_rebuild(min_rows=1)))
        self.assertEqual(snapshot(self.bulk), before)

    def test_later_writes_fire_the_triggers_again(self):
        """The guard is gone after the batch: a later single deletion still counts through the triggers."""
        ids = proxy_ids(self.bulk)
        run(self, self.bulk.delete_proxy_entries(ids[:10]))
        self.delete_per_row(ids[:10])
        run(self, self.bulk.delete_entries(ids[10:12]))
        run(self, self.rows.delete_entries(ids[10:12]))
        self.check("after")


class SqliteBulkDeleteTests(BulkDeleteMixin, SynchronousTestCase):
    def open_pool(self) -> InlinePool:
        return sqlite_pool(self)

    def check(self, step):
        super().check(step)
        for index in (self.bulk, self.rows):  # the FTS index equals its content table (rank 1: compared with it)

            def _txn(txn: Any, index: Index = index):
                index._exec(txn, "INSERT INTO search_fts (search_fts, rank) VALUES ('integrity-check', 1)")
                # and a trigram query finds exactly the rows whose text holds it
                index._exec(txn, "SELECT rowid FROM search_fts WHERE search_fts MATCH 'acme' ORDER BY rowid")
                found = [r[0] for r in txn.fetchall()]
                index._exec(txn, "SELECT id FROM search_items WHERE text LIKE '%acme%' ORDER BY id")
                self.assertEqual(found, [r[0] for r in txn.fetchall()], step)

            run_txn(index, _txn)

    def test_batch_skips_the_per_row_triggers(self):
        """A batch of 100 deletions updates the counters a handful of times, not once or more per row."""
        pool = self.bulk._pool
        pool.conn.execute("CREATE TEMP TABLE counted (n INTEGER)")
        pool.conn.execute("INSERT INTO counted VALUES (0)")
        for table in ("entry_totals", "byte_totals"):
            pool.conn.execute(
                f"CREATE TEMP TRIGGER count_{table} AFTER UPDATE ON main.{table} BEGIN "
                "UPDATE counted SET n = n + 1; END"
            )
        pool.conn.commit()
        ids = proxy_ids(self.bulk)[:100]
        run(self, self.bulk.delete_proxy_entries(ids))
        (n,) = pool.conn.execute("SELECT n FROM counted").fetchone()
        self.assertLessEqual(n, 6 + 2, n)  # six entry_totals rows, byte_totals out and back in


class PostgresBulkDeleteTests(BulkDeleteMixin, SynchronousTestCase):
    def open_pool(self) -> InlinePool:
        return postgres_pool(self)


class WriterCacheTests(SynchronousTestCase):
    def test_the_writer_has_the_larger_page_cache(self) -> None:
        """The service's sqlite writer opens with SQLITE_WRITER_CACHE_KIB of page cache (default: 2 MB)."""
        import sqlite3

        from harbor_cache.index import engine

        for kib in (engine.SQLITE_WRITER_CACHE_KIB, 8192):
            pool = engine.open_sqlite_pool(os.path.join(self.mktemp() + ".sqlite"), kib)
            self.addCleanup(pool.close)
            conn = sqlite3.connect(":memory:")
            self.addCleanup(conn.close)
            assert pool.openfun is not None
            pool.openfun(conn)
            self.assertEqual(conn.execute("PRAGMA cache_size").fetchone()[0], -kib)
        self.assertGreaterEqual(engine.SQLITE_WRITER_CACHE_KIB, 65536)
