"""Index: migrations, entries, tags, settings and users, on a real sqlite file."""

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import MIGRATIONS, Index, InlinePool


def run(case, coro):
    return case.successResultOf(Deferred.fromCoroutine(coro))


class IndexTests(SynchronousTestCase):
    def setUp(self):
        os.makedirs(self.mktemp())
        self.path = os.path.join(self.mktemp(), "index.sqlite")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.pool = InlinePool(self.path)
        self.addCleanup(self.pool.close)
        self.index = Index(self.pool)
        run(self, self.index.migrate())

    def entry(self, key, kind="proxy", type_="blob", repository="", size=10, now=100.0):
        return run(self, self.index.put_entry(kind=kind, type_=type_, repository=repository, key=key,
                                              digest=key, size=size, now=now))

    def test_migrations_are_numbered_and_idempotent(self):
        """Migrating again applies nothing and reports the same version."""
        self.assertEqual(run(self, self.index.migrate()), len(MIGRATIONS))
        second = Index(InlinePool(self.path))
        self.assertEqual(run(self, second.migrate()), len(MIGRATIONS))

    def test_put_and_get_entry(self):
        """An entry round-trips with its fields; access count starts at zero."""
        e = self.entry("sha256:aa", size=42)
        got = run(self, self.index.get_entry("blob", "", "sha256:aa"))
        self.assertEqual(got["id"], e["id"])
        self.assertEqual((got["size"], got["kind"], got["access_count"]), (42, "proxy", 0))

    def test_hosted_stays_hosted(self):
        """Pulling content that was pushed never turns it back into evictable proxy content."""
        self.entry("sha256:bb", kind="hosted")
        again = self.entry("sha256:bb", kind="proxy")
        self.assertEqual(again["kind"], "hosted")

    def test_delete_returns_only_orphaned_digests(self):
        """A digest still referenced by another entry is not reported as deletable."""
        a = self.entry("sha256:cc", type_="blob")
        run(self, self.index.put_entry(kind="proxy", type_="maven", repository="central", key="a/b.jar",
                                       digest="sha256:cc", size=10, now=1.0))
        self.assertEqual(run(self, self.index.delete_entries([a["id"]])), [])
        m = run(self, self.index.get_entry("maven", "central", "a/b.jar"))
        self.assertEqual(run(self, self.index.delete_entries([m["id"]])), ["sha256:cc"])

    def test_record_access_batches(self):
        """One flush updates last access, counts and counters."""
        e = self.entry("sha256:dd")
        run(self, self.index.record_access({e["id"]: (500.0, 3)}, {"hits": 3, "misses": 1}))
        run(self, self.index.record_access({e["id"]: (400.0, 1)}, {"hits": 1}))
        got = run(self, self.index.get_entry("blob", "", "sha256:dd"))
        self.assertEqual((got["last_access"], got["access_count"]), (500.0, 4))
        self.assertEqual(run(self, self.index.get_counters()), {"hits": 4, "misses": 1})

    def test_proxy_tag_never_overwrites_hosted(self):
        """A pushed tag wins over what upstream says."""
        run(self, self.index.put_tag("r", "t", "sha256:11", "hosted", None, 1.0))
        run(self, self.index.put_tag("r", "t", "sha256:22", "proxy", None, 2.0))
        self.assertEqual(run(self, self.index.get_tag("r", "t"))["digest"], "sha256:11")
        run(self, self.index.put_tag("r", "t", "sha256:33", "hosted", None, 3.0))
        self.assertEqual(run(self, self.index.get_tag("r", "t"))["digest"], "sha256:33")

    def test_settings_all_or_nothing(self):
        """A failing statement rolls back the whole settings transaction."""
        run(self, self.index.put_settings([("a", "1")], 1.0))
        d = Deferred.fromCoroutine(self.index.put_settings([("a", "2"), ("b", None)], 2.0))
        self.failureResultOf(d)
        self.assertEqual([(r["key"], r["value"]) for r in run(self, self.index.get_settings())], [("a", "1")])

    def test_users(self):
        """Usernames are unique."""
        u = run(self, self.index.create_user("bob", "h", "read-only", 1.0))
        self.assertEqual(u["username"], "bob")
        self.assertIsNone(run(self, self.index.create_user("bob", "h", "admin", 1.0)))
        self.assertEqual(run(self, self.index.count_users()), 1)
