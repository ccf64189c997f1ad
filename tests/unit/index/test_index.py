"""Index: every query on a real sqlite file and on a real PostgreSQL server.

`IndexTestsMixin` holds the tests; `SqliteIndexTests` and `PostgresIndexTests`
run all of them on each engine (the PostgreSQL variant on the throwaway
cluster of `tests.pg_support`, one fresh schema per test).
"""

import os
import socket
import sqlite3
import time

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from harbor_cache.index import Index, open_postgres_pool
from harbor_cache.index.engine import fetch_all, fetch_one, postgres_ddl
from harbor_cache.index.migrations import MIGRATIONS
from harbor_cache.index.rows import CacheTotals, Setting
from harbor_cache.testing import InlinePool
from tests import pg_support
from tests.unit.base import run


class IndexTestsMixin:
    """Tests for one engine; a subclass provides `open_pool` (a new connection to the same database)."""

    def setUp(self):
        self.pool = self.open_pool()
        self.index = Index(self.pool)
        run(self, self.index.migrate())

    def open_pool(self):
        raise NotImplementedError

    def entry(self, key, kind="proxy", type_="blob", repository="", size=10, now=100.0):
        return run(
            self,
            self.index.put_entry(
                kind=kind, type_=type_, repository=repository, key=key, digest=key, size=size, now=now
            ),
        )

    def test_migrations_are_numbered_and_idempotent(self):
        """Migrating again applies nothing and reports the same version."""
        self.assertEqual(run(self, self.index.migrate()), len(MIGRATIONS))
        second = Index(self.open_pool())
        self.assertEqual(run(self, second.migrate()), len(MIGRATIONS))

    def test_put_and_get_entry(self):
        """An entry round-trips with its fields; access count starts at zero."""
        e = self.entry("sha256:aa", size=42)
        got = run(self, self.index.get_entry("blob", "", "sha256:aa"))
        self.assertEqual(got.id, e.id)
        self.assertEqual((got.size, got.kind, got.access_count), (42, "proxy", 0))

    def test_hosted_stays_hosted(self):
        """Pulling content that was pushed never turns it back into evictable proxy content."""
        self.entry("sha256:bb", kind="hosted")
        again = self.entry("sha256:bb", kind="proxy")
        self.assertEqual(again.kind, "hosted")

    def test_put_hosted_maven_file(self):
        """Deploy: created, refused ("exists", nothing written) without overwrite, replaced with it."""

        def put(digest, overwrite, now=10.0):
            return run(
                self,
                self.index.put_hosted_maven_file(
                    repository="releases",
                    key="a/b/1/b-1.jar",
                    digest=digest,
                    size=3,
                    media_type="application/java-archive",
                    sha1="0" * 40,
                    now=now,
                    overwrite=overwrite,
                ),
            )

        outcome, entry, previous = put("sha256:d1", False)
        self.assertEqual((outcome, entry.kind, entry.digest, previous), ("created", "hosted", "sha256:d1", None))
        self.assertEqual(put("sha256:d2", False), ("exists", None, "sha256:d1"))
        self.assertEqual(run(self, self.index.get_entry("maven", "releases", "a/b/1/b-1.jar")).digest, "sha256:d1")
        outcome, entry, previous = put("sha256:d2", True, now=20.0)
        self.assertEqual(
            (outcome, entry.digest, entry.upstream_modified, previous), ("replaced", "sha256:d2", 20.0, "sha256:d1")
        )
        self.assertEqual(entry.created_at, 10.0)

    def test_delete_returns_only_orphaned_digests(self):
        """A digest still referenced by another entry is not reported as deletable."""
        a = self.entry("sha256:cc", type_="blob")
        run(
            self,
            self.index.put_entry(
                kind="proxy", type_="maven", repository="central", key="a/b.jar", digest="sha256:cc", size=10, now=1.0
            ),
        )
        self.assertEqual(run(self, self.index.delete_entries([a.id])), [])
        m = run(self, self.index.get_entry("maven", "central", "a/b.jar"))
        self.assertEqual(run(self, self.index.delete_entries([m.id])), ["sha256:cc"])

    def test_record_access_batches(self):
        """One flush updates last access, counts and counters."""
        e = self.entry("sha256:dd")
        run(self, self.index.record_access({e.id: (500.0, 3)}, {"hits": 3, "misses": 1}))
        run(self, self.index.record_access({e.id: (400.0, 1)}, {"hits": 1}))
        got = run(self, self.index.get_entry("blob", "", "sha256:dd"))
        self.assertEqual((got.last_access, got.access_count), (500.0, 4))
        self.assertEqual(run(self, self.index.get_counters()), {"hits": 4, "misses": 1})

    def test_proxy_tag_never_overwrites_hosted(self):
        """A pushed tag wins over what upstream says."""
        run(self, self.index.put_tag("r", "t", "sha256:11", "hosted", None, 1.0))
        run(self, self.index.put_tag("r", "t", "sha256:22", "proxy", None, 2.0))
        self.assertEqual(run(self, self.index.get_tag("r", "t")).digest, "sha256:11")
        run(self, self.index.put_tag("r", "t", "sha256:33", "hosted", None, 3.0))
        self.assertEqual(run(self, self.index.get_tag("r", "t")).digest, "sha256:33")

    def test_settings_all_or_nothing(self):
        """A failing statement rolls back the whole settings transaction."""
        run(self, self.index.put_settings([("a", "1")], 1.0))
        d = Deferred.fromCoroutine(self.index.put_settings([("a", "2"), ("b", None)], 2.0))
        self.failureResultOf(d)
        self.assertEqual([(r.key, r.value) for r in run(self, self.index.get_settings())], [("a", "1")])

    def test_users(self):
        """Usernames are unique."""
        u = run(self, self.index.create_user("bob", "h", "read-only", 1.0))
        self.assertEqual(u.username, "bob")
        self.assertIsNone(run(self, self.index.create_user("bob", "h", "admin", 1.0)))
        self.assertEqual(run(self, self.index.count_users()), 1)

    # -- the rest of the queries, so each engine runs every statement once ------

    def test_user_updates_and_last_admin(self):
        """Role and password change in one go; the last admin is neither demoted nor deleted."""
        admin = run(self, self.index.create_user("root", "h", "admin", 1.0))
        bob = run(self, self.index.create_user("bob", "h", "read-only", 1.0))
        self.assertEqual(run(self, self.index.update_user(admin.id, "read-only", None, 2.0))[0], "last_admin")
        status, row = run(self, self.index.update_user(bob.id, "admin", "h2", 3.0))
        self.assertEqual((status, row.role, row.password_hash, row.updated_at), ("ok", "admin", "h2", 3.0))
        self.assertEqual([u.role for u in run(self, self.index.list_users())], ["admin", "admin"])
        self.assertEqual(run(self, self.index.delete_user(bob.id)), "ok")
        self.assertEqual(run(self, self.index.delete_user(admin.id)), "last_admin")
        self.assertEqual(run(self, self.index.delete_user(9999)), "missing")
        self.assertEqual(run(self, self.index.update_user(9999, None, None, 1.0)), ("missing", None))
        self.assertEqual([u.username for u in run(self, self.index.list_users())], ["root"])
        self.assertEqual(run(self, self.index.get_user_by_name("root")).id, admin.id)
        self.assertEqual(run(self, self.index.get_user(admin.id)).username, "root")

    def test_settings_upsert_and_delete(self):
        run(self, self.index.put_settings([("a", "1"), ("b", "2")], 1.0))
        run(self, self.index.put_settings([("a", "3")], 2.0))
        self.assertEqual(
            [(r.key, r.value, r.updated_at) for r in run(self, self.index.get_settings())],
            [("a", "3", 2.0), ("b", "2", 1.0)],
        )
        self.assertTrue(run(self, self.index.delete_setting("a")))
        self.assertFalse(run(self, self.index.delete_setting("a")))

    def test_eviction_pages_in_every_order(self):
        """Keyset pages walk proxy entries in each order without repeats; hosted ones never appear."""
        for i in range(5):
            e = self.entry(f"sha256:{i:02d}", now=float(10 - i))
            run(self, self.index.record_access({e.id: (float(100 + (i % 2)), i)}, {}))
        self.entry("sha256:hosted", kind="hosted")
        for order, cols in Index.EVICTION_ORDERS.items():
            seen, after = [], None
            while True:
                page = run(self, self.index.proxy_entries_page(order, after, 2))
                if not page:
                    break
                seen += page
                after = tuple(getattr(page[-1], c) for c in cols)
            self.assertEqual(len(seen), 5, order)
            self.assertEqual(len({r.id for r in seen}), 5, order)
            keys = [tuple(getattr(r, c) for c in cols) for r in seen]
            self.assertEqual(keys, sorted(keys), order)
        old = run(self, self.index.proxy_entries_page("lru", None, 10, accessed_before=100.5))
        self.assertEqual(sorted(r.key for r in old), ["sha256:00", "sha256:02", "sha256:04"])

    def test_delete_proxy_entries_reports_orphans_and_spares_hosted(self):
        a = self.entry("sha256:a1", size=7)
        b = self.entry("sha256:b1", kind="hosted")
        run(
            self,
            self.index.put_entry(
                kind="proxy", type_="maven", repository="central", key="x.jar", digest="sha256:a1", size=7, now=1.0
            ),
        )
        self.assertEqual(run(self, self.index.evictable_size()), 7)
        deleted, orphans = run(self, self.index.delete_proxy_entries([a.id, b.id]))
        self.assertEqual(([r.id for r in deleted], orphans), ([a.id], []))
        m = run(self, self.index.get_entry("maven", "central", "x.jar"))
        deleted, orphans = run(self, self.index.delete_proxy_entries([m.id]))
        self.assertEqual(orphans, [("sha256:a1", 7)])
        self.assertEqual(run(self, self.index.delete_proxy_entries([])), ([], []))
        self.assertEqual(run(self, self.index.digests_referenced(["sha256:a1", "sha256:b1"])), {"sha256:b1"})
        self.assertTrue(run(self, self.index.digest_in_use("sha256:b1")))
        self.assertFalse(run(self, self.index.digest_in_use("sha256:a1")))

    def test_cache_totals_count_each_digest_once(self):
        self.entry("sha256:t1", size=10)
        run(
            self,
            self.index.put_entry(
                kind="proxy", type_="maven", repository="central", key="a.jar", digest="sha256:t1", size=10, now=1.0
            ),
        )
        self.entry("sha256:t2", type_="manifest", repository="r", size=5, kind="hosted")
        totals = run(self, self.index.cache_totals())
        self.assertEqual(totals, CacheTotals(entries=3, manifests=1, blobs=1, maven=1, proxy=2, total_size=15))
        self.assertIsInstance(totals.total_size, int)
        self.assertEqual(run(self, self.index.evictable_size()), 10)

    def test_maven_listing_and_stats(self):
        for key, size in (("g/a/1/a.jar", 100), ("g/a/1/a.jar.sha1", 40), ("g/b/1/b.pom", 3), ("g0/x", 1)):
            run(
                self,
                self.index.put_entry(
                    kind="proxy",
                    type_="maven",
                    repository="central",
                    key=key,
                    digest="sha256:" + key,
                    size=size,
                    now=5.0,
                ),
            )
        under = run(self, self.index.maven_entries_under("central", "g/a"))
        self.assertEqual([r.key for r in under], ["g/a/1/a.jar", "g/a/1/a.jar.sha1"])
        self.assertEqual(len(run(self, self.index.maven_entries_under("central", ""))), 4)
        stats = run(self, self.index.maven_repository_stats())["central"]
        self.assertEqual((stats.artifact_count, stats.total_size, stats.last_updated), (3, 104, 5.0))

    def test_tags_and_repositories_in_byte_order(self):
        """Paging is by byte order on both engines (PostgreSQL compares TEXT with the C collation)."""
        for tag in ("b", "B", "a-1", "a_1", "Z"):
            run(self, self.index.put_tag("lib/x", tag, "sha256:1", "proxy", None, 1.0))
        self.assertEqual(run(self, self.index.list_tags_page("lib/x", "Z", 2)), ["a-1", "a_1"])
        self.assertEqual(run(self, self.index.list_tags_page("lib/x", None, None)), ["B", "Z", "a-1", "a_1", "b"])
        run(self, self.index.mark_tag_fetched("lib/x", "b", 9.0))
        self.assertEqual(run(self, self.index.get_tag("lib/x", "b")).fetched_at, 9.0)
        self.entry("sha256:m", type_="manifest", repository="Lib/y")
        self.assertEqual(run(self, self.index.list_repositories_page(None, None)), ["Lib/y", "lib/x"])
        self.assertEqual(run(self, self.index.list_repositories_page("Lib/y", 1)), ["lib/x"])
        self.assertTrue(run(self, self.index.repository_known("Lib/y")))
        self.assertFalse(run(self, self.index.repository_known("nope")))

    def test_hosted_manifest_tag_referrer_and_delete(self):
        row = run(
            self,
            self.index.put_hosted_manifest(
                repository="r",
                key="sha256:m1",
                digest="sha256:m1",
                size=3,
                media_type="application/x",
                now=2.0,
                tag="v1",
                referrer={"subject": "sha256:s", "artifact_type": "t/a", "annotations": "{}"},
            ),
        )
        self.assertEqual((row.kind, row.type), ("hosted", "manifest"))
        self.assertEqual(run(self, self.index.get_tag("r", "v1")).digest, "sha256:m1")
        self.assertEqual([r.digest for r in run(self, self.index.list_referrers("r", "sha256:s", None))], ["sha256:m1"])
        self.assertEqual(run(self, self.index.list_referrers("r", "sha256:s", "other")), [])
        self.assertEqual(run(self, self.index.delete_hosted_tag("r", "v1")), "sha256:m1")
        self.assertIsNone(run(self, self.index.delete_hosted_tag("r", "v1")))
        self.assertEqual(
            run(self, self.index.delete_hosted_entry("manifest", "r", "sha256:m1")), ("hosted", ["sha256:m1"])
        )
        self.assertEqual(run(self, self.index.delete_hosted_entry("manifest", "r", "sha256:m1")), (None, []))
        p = self.entry("sha256:p1")
        self.assertEqual(run(self, self.index.delete_hosted_entry("blob", "", "sha256:p1")), ("proxy", []))
        run(self, self.index.mark_hosted([p.id]))
        self.assertEqual(run(self, self.index.get_entry("blob", "", "sha256:p1")).kind, "hosted")
        run(self, self.index.mark_fetched(p.id, 77.0))
        self.assertEqual(run(self, self.index.get_entry("blob", "", "sha256:p1")).fetched_at, 77.0)

    def test_upstreams_crud_bumps_generation(self):
        def row(name, **kw):
            base = {
                "name": name,
                "url": "https://r.example",
                "registry": None,
                "prefix": None,
                "routes": '["*"]',
                "priority": 0,
                "allow_push": 0,
                "library_prefix": 1,
                "username": None,
                "password": None,
            }
            return {**base, **kw}

        g0 = run(self, self.index.upstreams_generation())
        self.assertTrue(run(self, self.index.seed_upstreams([row("a")], 1.0)))
        self.assertFalse(run(self, self.index.seed_upstreams([row("b")], 1.0)))
        created = run(self, self.index.create_upstream(row("c", priority=5), 2.0))
        self.assertIsNone(run(self, self.index.create_upstream(row("c"), 2.0)))
        self.assertEqual(run(self, self.index.update_upstream(created.id, row("a"), 3.0)), "name_taken")
        self.assertEqual(run(self, self.index.update_upstream(9999, row("z"), 3.0)), "missing")
        updated = run(self, self.index.update_upstream(created.id, row("d", allow_push=1), 3.0))
        self.assertEqual((updated.name, updated.allow_push), ("d", 1))
        self.assertTrue(run(self, self.index.delete_upstream(created.id)))
        self.assertFalse(run(self, self.index.delete_upstream(created.id)))
        generation, rows = run(self, self.index.list_upstreams())
        self.assertEqual([r.name for r in rows], ["a"])
        self.assertEqual(generation, g0 + 4)

    def test_leases(self):
        """One holder at a time; the holder renews and re-takes; anyone takes an expired one; release frees it."""
        acquire = lambda node, now: run(self, self.index.acquire_lease("download:x", node, now, 10.0))  # noqa: E731
        self.assertTrue(acquire("a", 100.0))
        self.assertFalse(acquire("b", 105.0))
        self.assertTrue(acquire("a", 106.0))  # ours already: extended to 116
        self.assertTrue(run(self, self.index.renew_lease("download:x", "a", 110.0, 10.0)))  # to 120
        self.assertFalse(run(self, self.index.renew_lease("download:x", "b", 110.0, 10.0)))
        self.assertFalse(acquire("b", 119.0))
        self.assertTrue(acquire("b", 120.5))  # expired: taken over
        self.assertFalse(run(self, self.index.renew_lease("download:x", "a", 121.0, 10.0)))
        run(self, self.index.release_lease("download:x", "a"))  # not a's any more: no effect
        self.assertFalse(acquire("c", 121.0))  # still b's
        run(self, self.index.release_lease("download:x", "b"))
        self.assertTrue(acquire("c", 121.0))  # free before its expiry

    def test_upload_sessions(self):
        """Caps counted in the insert's transaction; one writer at a time; stale sessions removed."""
        self.assertEqual(run(self, self.index.create_upload("s1", "r", "bob", 1.0, 2, 3)), "ok")
        self.assertEqual(run(self, self.index.create_upload("s2", "r", "bob", 1.0, 2, 3)), "ok")
        self.assertEqual(run(self, self.index.create_upload("s3", "r", "bob", 1.0, 2, 3)), "owner_cap")
        self.assertEqual(run(self, self.index.create_upload("s3", "r", "amy", 1.0, 2, 3)), "ok")
        self.assertEqual(run(self, self.index.create_upload("s4", "r", "cid", 1.0, 2, 3)), "overall_cap")
        self.assertTrue(run(self, self.index.claim_upload_write("s1", "a", 0, 2.0, 10.0)))
        self.assertFalse(run(self, self.index.claim_upload_write("s1", "b", 0, 3.0, 10.0)))
        run(self, self.index.end_upload_write("s1", "a", 42, 4.0))
        self.assertFalse(run(self, self.index.claim_upload_write("s1", "b", 0, 5.0, 10.0)))  # size moved on
        self.assertTrue(run(self, self.index.claim_upload_write("s1", "b", 42, 5.0, 10.0)))
        row = run(self, self.index.get_upload("s1"))
        self.assertEqual((row.size, row.writer, row.owner, row.repository), (42, "b", "bob", "r"))
        self.assertEqual(run(self, self.index.stale_uploads(3.0, 6.0)), ["s2", "s3"])  # s1 is being written
        self.assertEqual(run(self, self.index.stale_uploads(100.0, 16.0)), ["s1"])  # its writer's hold ran out
        self.assertEqual([run(self, self.index.get_upload(s)) for s in ("s1", "s2", "s3")], [None] * 3)
        self.assertFalse(run(self, self.index.delete_upload("s1")))

    def test_ping(self):
        self.assertTrue(run(self, self.index.ping()))

    # -- the console's queries (issue 13) --------------------------------------------

    def test_cache_entries_page_sorts_filters_and_counts(self):
        """Sort by size either way; front, kind, repository and a literal text filter; total counts matches."""
        a = run(
            self,
            self.index.put_entry(
                kind="proxy",
                type_="maven",
                repository="central",
                key="org/a_b/1/x%.jar",
                digest="sha256:a1",
                size=30,
                now=10.0,
            ),
        )
        b = self.entry("sha256:b2", size=20)
        c = run(
            self,
            self.index.put_entry(
                kind="hosted",
                type_="manifest",
                repository="team/app",
                key="sha256:c3",
                digest="sha256:c3",
                size=10,
                now=30.0,
            ),
        )

        def ids(**kw):
            args = dict(offset=0, limit=10, sort="size", descending=True)
            args.update(kw)
            total, rows = run(self, self.index.cache_entries_page(**args))
            return total, [r.id for r in rows]

        self.assertEqual(ids(), (3, [a.id, b.id, c.id]))
        self.assertEqual(ids(descending=False, limit=1, offset=1), (3, [b.id]))
        self.assertEqual(ids(front="maven"), (1, [a.id]))
        self.assertEqual(ids(front="oci", kind="hosted"), (1, [c.id]))
        self.assertEqual(ids(repository="team/app"), (1, [c.id]))
        self.assertEqual(ids(text="A_B"), (1, [a.id]))
        self.assertEqual(ids(text="x%"), (1, [a.id]))
        self.assertEqual(ids(text="a%b"), (0, []))  # % is a character here, not a wildcard
        self.assertEqual(ids(text="_"), (1, [a.id]))

    def test_audit_page_and_prune(self):
        """Newest first; an area matches its actions; actor and literal text filter; prune drops the old."""
        for at, action, actor, target in [
            (1.0, "login", "ann", None),
            (2.0, "user.create", "ann", "bob_1"),
            (3.0, "user.delete", "cy", "bob_1"),
            (4.0, "userx", "cy", "100%"),
        ]:
            run(
                self,
                self.index.add_audit(at=at, actor=actor, action=action, target=target, detail=None, client="127.0.0.1"),
            )

        def actions(**kw):
            total, rows = run(self, self.index.audit_page(offset=0, limit=10, **kw))
            return total, [r.action for r in rows]

        self.assertEqual(actions(), (4, ["userx", "user.delete", "user.create", "login"]))
        self.assertEqual(actions(action="user"), (2, ["user.delete", "user.create"]))
        self.assertEqual(actions(action="user.create"), (1, ["user.create"]))
        self.assertEqual(actions(actor="cy"), (2, ["userx", "user.delete"]))
        self.assertEqual(actions(text="0%"), (1, ["userx"]))
        self.assertEqual(actions(text="B_1"), (2, ["user.delete", "user.create"]))
        self.assertEqual(actions(since=2.0, until=4.0), (2, ["user.delete", "user.create"]))  # until is exclusive
        self.assertEqual(actions(exclude="login"), (3, ["userx", "user.delete", "user.create"]))
        self.assertEqual(actions(exclude="login", actor="ann"), (1, ["user.create"]))
        self.assertEqual(run(self, self.index.prune_audit(2.5)), 2)
        self.assertEqual(actions(), (2, ["userx", "user.delete"]))

    def test_image_repositories_and_tags(self):
        """Hosted and cached counts per repository; tags with the size of the manifest they point at."""
        run(self, self.index.put_tag("library/x", "1", "sha256:m1", "proxy", None, 5.0))
        run(
            self,
            self.index.put_entry(
                kind="proxy",
                type_="manifest",
                repository="library/x",
                key="sha256:m1",
                digest="sha256:m1",
                size=77,
                now=6.0,
            ),
        )
        run(
            self,
            self.index.put_hosted_manifest(
                repository="team/app",
                key="sha256:m2",
                digest="sha256:m2",
                size=5,
                media_type="application/vnd.oci.image.manifest.v1+json",
                now=7.0,
                tag="v1",
                referrer=None,
            ),
        )
        repos = {r.name: r for r in run(self, self.index.image_repositories())}
        self.assertEqual(
            (repos["library/x"].cached_tags, repos["library/x"].cached_manifests, repos["library/x"].hosted_tags),
            (1, 1, 0),
        )
        self.assertEqual((repos["team/app"].hosted_tags, repos["team/app"].updated_at), (1, 7.0))
        tags = run(self, self.index.image_tags("library/x"))
        self.assertEqual([(t.tag, t.digest, t.kind, t.size) for t in tags], [("1", "sha256:m1", "proxy", 77)])


class RowTests(SynchronousTestCase):
    """Rows are built from a query's columns by name."""

    def test_columns_a_row_does_not_name_are_skipped(self):
        """A column a newer node's migration added does not break this node's ``SELECT *`` reads."""
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        cursor = conn.execute("SELECT 'v' AS value, 'x' AS extra, 2.5 AS updated_at, 'k' AS key")
        self.assertEqual(fetch_all(cursor, Setting), [Setting(key="k", value="v", updated_at=2.5)])
        self.assertIsNone(
            fetch_one(conn.execute("SELECT 'k' AS key, 'v' AS value, 1.0 AS updated_at WHERE 0"), Setting)
        )
        in_order = conn.execute("SELECT 'k' AS key, 'v' AS value, 1.0 AS updated_at")
        self.assertEqual(fetch_one(in_order, Setting), Setting("k", "v", 1.0))

    def test_a_missing_column_is_an_error(self):
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        with self.assertRaises(ValueError):
            fetch_all(conn.execute("SELECT 'k' AS key, 'v' AS value"), Setting)


class SqliteIndexTests(IndexTestsMixin, SynchronousTestCase):
    def open_pool(self):
        if not hasattr(self, "path"):
            directory = self.mktemp()
            os.makedirs(directory)
            self.path = os.path.join(directory, "index.sqlite")
        pool = InlinePool(self.path)
        self.addCleanup(pool.close)
        return pool

    def test_dialect(self):
        self.assertEqual(self.index.dialect, "sqlite")


class PostgresIndexTests(IndexTestsMixin, SynchronousTestCase):
    def open_pool(self):
        if not hasattr(self, "url"):
            self.url = pg_support.fresh_schema_url(self)
        pool = InlinePool.postgres(self.url)
        self.addCleanup(pool.close)
        return pool

    def test_dialect(self):
        self.assertEqual(self.index.dialect, "postgresql")

    def test_ddl_types_are_wide(self):
        """Sizes beyond 2 GiB and epoch seconds with sub-millisecond digits survive PostgreSQL."""
        big = 5 << 40
        run(
            self,
            self.index.put_entry(
                kind="proxy",
                type_="blob",
                repository="",
                key="sha256:big",
                digest="sha256:big",
                size=big,
                now=1700000000.123456,
            ),
        )
        got = run(self, self.index.get_entry("blob", "", "sha256:big"))
        self.assertEqual((got.size, got.created_at), (big, 1700000000.123456))

    def test_ddl_translation(self):
        self.assertEqual(
            postgres_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a REAL, b TEXT)"),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            'a DOUBLE PRECISION, b TEXT COLLATE "C")',
        )
        self.assertEqual(postgres_ddl("CREATE INDEX i ON t (a)"), "CREATE INDEX i ON t (a)")


class PostgresPoolTests(TestCase):
    """The threaded adbapi pool the service uses, on the real server: lost connections and a dead server."""

    def setUp(self):
        self.url = pg_support.fresh_schema_url(self)

    def _pool(self, url, size=2):
        pool = open_postgres_pool(url, size)
        self.addCleanup(pool.close)
        return pool

    async def _ours(self, index):
        def _txn(txn):
            txn.execute("SELECT pg_backend_pid()")
            return txn.fetchone()[0]

        return await index._pool.runInteraction(_txn)

    @inlineCallbacks
    def test_lost_connection_is_retried(self):
        """A backend killed under the pool: the next transaction reconnects and succeeds, no error reaches the caller."""
        index = Index(self._pool(self.url, size=1))
        self.assertEqual(index.dialect, "postgresql")
        yield Deferred.fromCoroutine(index.migrate())
        pid = yield Deferred.fromCoroutine(self._ours(index))
        pg_support.admin(f"SELECT pg_terminate_backend({int(pid)})")
        self.assertTrue((yield Deferred.fromCoroutine(index.ping())))
        row = yield Deferred.fromCoroutine(index.create_user("after", "h", "admin", 1.0))
        self.assertEqual(row.username, "after")
        new_pid = yield Deferred.fromCoroutine(self._ours(index))
        self.assertNotEqual(new_pid, pid)
        self.flushLoggedErrors()  # adbapi logs the failed rollback of the dead connection

    @inlineCallbacks
    def test_dead_server_fails_calls_quickly(self):
        """No server at the URL: a call fails (health reports degraded from that), nothing hangs or crashes."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        index = Index(self._pool(f"postgresql://postgres@127.0.0.1:{port}/postgres", size=1))
        started = time.monotonic()
        outcome = yield Deferred.fromCoroutine(index.ping()).addErrback(lambda f: [f])
        self.assertIsInstance(outcome[0], Failure)
        self.assertLess(time.monotonic() - started, 10)
        self.flushLoggedErrors()
