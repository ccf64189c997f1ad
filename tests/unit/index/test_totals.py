"""Maintained totals (index/totals_schema.py) equal the GROUP BY they replace, on both engines.

Random inserts, upserts, updates and deletes of entries (the same digest
proxied and hosted, digests, sizes and kinds changed in place) are applied;
after each step the totals `cache_totals` and `evictable_size` read from the
maintained tables must equal what the old ``GROUP BY digest`` queries compute
from the rows.  Also: the migration back-fills rows written before it, and the
eviction page query uses an index without a temp B-tree.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import Index, migrations
from harbor_cache.index.engine import fetch_value
from harbor_cache.index.listings_schema import LISTINGS_MIGRATION
from harbor_cache.index.migrations import MIGRATIONS
from harbor_cache.index.rows import CacheTotals
from harbor_cache.index.totals_schema import TOTALS_MIGRATION
from tests.unit.base import postgres_pool, run, sqlite_pool


def recomputed(index: Index) -> tuple[CacheTotals, int]:
    """The totals as computed before issue 30: a GROUP BY over every row."""

    def _txn(txn):
        index._exec(
            txn,
            """SELECT COUNT(*),
                      COALESCE(SUM(CASE WHEN type = 'manifest' THEN 1 ELSE 0 END), 0),
                      COALESCE(SUM(CASE WHEN type = 'blob' THEN 1 ELSE 0 END), 0),
                      COALESCE(SUM(CASE WHEN type = 'maven' THEN 1 ELSE 0 END), 0),
                      COALESCE(SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END), 0)
               FROM entries""",
        )
        entries, manifests, blobs, maven, proxy = txn.fetchone()
        index._exec(
            txn, "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM entries GROUP BY digest) AS d"
        )
        total = fetch_value(txn)
        index._exec(
            txn,
            """SELECT COALESCE(SUM(size), 0) FROM (
                   SELECT MAX(size) AS size FROM entries GROUP BY digest
                   HAVING SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) = 0) AS only_proxy""",
        )
        evictable = fetch_value(txn)
        totals = CacheTotals(int(entries), int(manifests), int(blobs), int(maven), int(proxy), int(total))
        return totals, int(evictable)

    return run_txn(index, _txn)


def run_txn(index, fn):
    out = []
    index._pool.runInteraction(fn).addBoth(out.append)
    if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class TotalsMixin:
    def setUp(self):
        self.pool = self.open_pool()
        self.index = Index(self.pool)
        run(self, self.index.migrate())

    def maintained(self):
        return run(self, self.index.cache_totals()), run(self, self.index.evictable_size())

    def assertTotalsMatch(self, step=""):
        self.assertEqual(self.maintained(), recomputed(self.index), step)

    def sql(self, statement, args=()):
        def _txn(txn):
            self.index._exec(txn, statement, args)

        run_txn(self.index, _txn)

    def test_random_writes_keep_totals_equal_to_group_by(self):
        """Hundreds of random writes: after each, the maintained totals equal the GROUP BY computation."""
        rnd = random.Random(30)
        digests = [f"sha256:{i:02x}" for i in range(12)]
        sizes = [0, 5, 10, 10, 700, 1 << 33]  # equal sizes on purpose; one beyond 32 bits
        keys = [(t, f"repo{r}", f"k{k}") for t in ("manifest", "blob", "maven") for r in range(2) for k in range(4)]
        self.assertTotalsMatch("empty")
        for step in range(220):
            op = rnd.random()
            type_, repo, key = rnd.choice(keys)
            if op < 0.45:  # insert or upsert (an upsert may change digest and size; hosted stays hosted)
                run(
                    self,
                    self.index.put_entry(
                        kind=rnd.choice(("proxy", "proxy", "hosted")),
                        type_=type_,
                        repository=repo,
                        key=key,
                        digest=rnd.choice(digests),
                        size=rnd.choice(sizes),
                        now=float(step),
                    ),
                )
            elif op < 0.6:  # a change in place of digest, size, kind (as gc, hosted pushes or tools may do)
                column, value = rnd.choice(
                    [
                        ("digest", rnd.choice(digests)),
                        ("size", rnd.choice(sizes)),
                        ("kind", rnd.choice(("proxy", "hosted"))),
                    ]
                )
                self.sql(
                    f"UPDATE entries SET {column} = ? WHERE type = ? AND repository = ? AND key = ?",
                    (value, type_, repo, key),
                )
            elif op < 0.63:  # one statement over several rows of a digest (PostgreSQL fires row triggers after it)
                self.sql(
                    "UPDATE entries SET size = CASE WHEN id - (id / 2) * 2 = 0 THEN ? ELSE size END, kind = ? WHERE digest = ?",
                    (rnd.choice(sizes), rnd.choice(("proxy", "hosted")), rnd.choice(digests)),
                )
            elif op < 0.7:  # a hit: must not disturb anything
                self.sql("UPDATE entries SET last_access = last_access + 1, access_count = access_count + 1")
            elif op < 0.85:
                entry = run(self, self.index.get_entry(type_, repo, key))
                if entry is not None:
                    run(self, self.index.delete_entries([entry.id]))
            else:  # eviction's own deletion (proxy rows only), a few at a time

                def ids(txn):
                    self.index._exec(txn, "SELECT id FROM entries")
                    return [r[0] for r in txn.fetchall()]

                chosen = rnd.sample(run_txn(self.index, ids), k=min(3, len(run_txn(self.index, ids))))
                run(self, self.index.delete_proxy_entries(chosen))
            self.assertTotalsMatch(f"step {step}")
        totals, _ = self.maintained()
        self.assertGreater(totals.entries, 0)  # the walk left rows behind: the comparison was not of zeros
        self.sql("DELETE FROM entries")
        self.assertEqual(self.maintained(), (CacheTotals(0, 0, 0, 0, 0, 0), 0))

    def test_same_digest_proxied_and_hosted(self):
        """A digest counts once in total_size, and not at all in the evictable bytes while a hosted row has it."""
        for repo, kind in (("a", "proxy"), ("b", "hosted"), ("c", "proxy")):
            run(
                self,
                self.index.put_entry(
                    kind=kind, type_="blob", repository=repo, key="sha256:x", digest="sha256:x", size=9, now=1.0
                ),
            )
        totals, evictable = self.maintained()
        self.assertEqual((totals.entries, totals.proxy, totals.total_size, evictable), (3, 2, 9, 0))
        hosted = run(self, self.index.get_entry("blob", "b", "sha256:x"))
        run(self, self.index.delete_entries([hosted.id]))
        self.assertEqual(self.maintained()[1], 9)
        self.assertTotalsMatch()

    def test_migration_back_fills_existing_rows(self):
        """Rows written before the totals migration are counted: drop the tables, re-run it, compare."""
        for i, (kind, size) in enumerate([("proxy", 3), ("hosted", 4), ("proxy", 4), ("proxy", 7)]):
            run(
                self,
                self.index.put_entry(
                    kind=kind, type_="maven", repository="r", key=f"k{i}", digest=f"sha256:{i % 2}", size=size, now=1.0
                ),
            )
        expected = recomputed(self.index)
        number = MIGRATIONS.index(TOTALS_MIGRATION) + 1  # re-run from it (the later ones guard its triggers)
        # the listings migration between them is not the totals' to re-run
        self.patch(migrations, "MIGRATIONS", [[] if m is LISTINGS_MIGRATION else m for m in MIGRATIONS])
        if self.index.dialect == "postgresql":
            for trigger in ("ins", "del", "upd"):
                self.sql(f"DROP TRIGGER totals_entries_{trigger} ON entries")
            self.sql("DROP TRIGGER totals_recount ON entries")
            self.sql("DROP TABLE digest_recount")
        else:
            for trigger in ("ins", "del", "upd"):
                self.sql(f"DROP TRIGGER totals_entries_{trigger}")
            self.sql("DROP TABLE bulk_delete")
        for table in ("digest_refs", "entry_totals", "byte_totals"):
            self.sql(f"DROP TABLE {table}")
        self.sql("DELETE FROM schema_version WHERE version >= ?", (number,))
        self.assertEqual(run(self, self.index.migrate()), len(MIGRATIONS))
        self.assertEqual(self.maintained(), expected)
        self.assertEqual(expected[0].total_size, 4 + 7)

    def test_analyze_runs_on_each_engine(self):
        """The statistics refresh a clear and large passes ask for is valid SQL on both engines, full or not."""
        run(
            self, self.index.put_entry(kind="proxy", type_="blob", repository="r", key="k", digest="d", size=1, now=1.0)
        )
        run(self, self.index.analyze())
        run(self, self.index.analyze(full=False))
        self.assertTotalsMatch()


class SqliteTotalsTests(TotalsMixin, SynchronousTestCase):
    """Also the plans of the eviction queries: EXPLAIN QUERY PLAN is sqlite's."""

    def open_pool(self):
        return sqlite_pool(self)

    def test_victim_query_uses_an_index(self):
        """Each eviction page query walks an index in its order: no full scan, no temp B-tree (sqlite's plans).

        Checked without planner statistics (a new cache) and with them, since
        sqlite plans a clear by id differently in the two cases.
        """
        for i in range(300):
            run(
                self,
                self.index.put_entry(
                    kind="hosted" if i % 10 == 0 else "proxy",
                    type_="blob",
                    repository="r",
                    key=f"k{i}",
                    digest=f"sha256:{i}",
                    size=1,
                    now=float(i),
                ),
            )
        self.sql("DELETE FROM sqlite_stat1")
        for analyzed in (False, True):
            if analyzed:
                run(self, self.index.analyze())
            for order, cols in self.index.EVICTION_ORDERS.items():
                for retention in (None, 5.0) if order == "lru" else (None,):
                    sql, args = self.index.proxy_page_query(order, (1,) * len(cols), 10, retention)

                    def plan(txn, sql=sql, args=args):
                        self.index._exec(txn, "EXPLAIN QUERY PLAN " + sql, args)
                        return " | ".join(r[-1] for r in txn.fetchall())

                    text = run_txn(self.index, plan)
                    self.assertNotIn("TEMP B-TREE", text, (order, analyzed, text))
                    self.assertRegex(text, r"^SEARCH entries USING", (order, analyzed, text))
            # The deletion of a batch finds its rows by primary key (as run: the statements traced).
            statements = []
            self.pool.conn.set_trace_callback(statements.append)
            run(self, self.index.delete_proxy_entries([5, 6, 7] if analyzed else [2, 3, 4]))
            self.pool.conn.set_trace_callback(None)
            # (each trigger statement is traced with its outer statement's text: once each is enough)
            on_entries = sorted({s for s in statements if s.lstrip().startswith(("SELECT id,", "DELETE FROM entries"))})
            self.assertEqual(len(on_entries), 2, statements)
            for statement in on_entries:

                def traced_plan(txn, statement=statement):
                    self.index._exec(txn, "EXPLAIN QUERY PLAN " + statement)
                    return " | ".join(r[-1] for r in txn.fetchall())

                self.assertIn("INTEGER PRIMARY KEY", run_txn(self.index, traced_plan), (analyzed, statement))


class PostgresTotalsTests(TotalsMixin, SynchronousTestCase):
    def open_pool(self):
        return postgres_pool(self)
