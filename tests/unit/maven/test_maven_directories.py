"""Maven directories and redirects are never stored as files (security issue, point 6)."""

import os

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.errors import NotFound
from harbor_cache.index import Index, migrations
from tests.unit.base import MavenCacheCase, sqlite_pool

JAR = "harness/small/1.0/small-1.0.jar"
LISTING = b"<html><body><a href='1.0/'>1.0/</a></body></html>"


class DirectoryTests(MavenCacheCase):
    def setUp(self):
        super().setUp()
        self.jar = os.urandom(2000)
        self.upstream.put(JAR, self.jar)
        self.cache = self.app.maven

    def get_failure(self, path):
        return self.failureResultOf(self.drive(self.cache.get_file("central", path)))

    def entry(self, path):
        return self.successResultOf(self.drive(self.app.index.get_entry("maven", "central", path)))

    def browse(self, path):
        return self.successResultOf(self.drive(self.cache.browse("central", path)))

    def call(self, method, path, headers=None):
        response = self.successResultOf(self.request(method, path, headers))
        return response, self.successResultOf(self.read_body(response))

    def test_redirect_to_directory_is_404_and_not_stored(self):
        """harness/small -> 302 harness/small/: 404, no row, browse lists 'small' once."""
        self.successResultOf(self.drive(self.cache.get_file("central", JAR)))
        self.upstream.redirects["harness/small"] = "http://upstream.test/harness/small/"
        self.upstream.listings["harness/small/"] = LISTING
        self.get_failure("harness/small").trap(NotFound)
        self.assertIsNone(self.entry("harness/small"))
        self.assertEqual([(e["name"], e["type"]) for e in self.browse("harness")["entries"]], [("small", "directory")])

    def test_html_index_without_redirect_is_404(self):
        """An upstream answering a directory path with 200 text/html: 404, nothing stored."""
        self.upstream.listings["harness/small"] = LISTING
        self.upstream.listings["harness/small/1.0"] = LISTING
        for path in ("harness/small", "harness/small/1.0"):
            self.get_failure(path).trap(NotFound)
            self.assertIsNone(self.entry(path))

    def test_trailing_slash_is_404_without_upstream(self):
        """GET /artifacts/central/harness/small/ is a directory: 404 in the error format, upstream not asked."""
        before = self.upstream.total()
        response, _ = self.call("GET", "/artifacts/central/harness/small/")
        self.assertEqual(response.code, 404)
        self.assertEqual(self.upstream.total(), before)

    def test_redirects_outside_the_repository_are_not_followed(self):
        """A redirect to another host or path is 404; credentials never leave for it; one inside is followed."""
        self.upstream.redirects["secret-dir/lib.jar"] = "http://elsewhere.test/lib.jar"
        self.upstream.put("lib.jar", b"served to whoever follows")
        self.get_failure("secret-dir/lib.jar").trap(NotFound)
        self.assertIsNone(self.entry("secret-dir/lib.jar"))
        self.assertEqual(self.upstream.count("GET", "lib.jar"), 0)
        self.upstream.redirects["moved/small-1.0.jar"] = "/" + JAR
        f = self.successResultOf(self.drive(self.cache.get_file("central", "moved/small-1.0.jar")))
        with open(f.source.path, "rb") as fh:
            self.assertEqual(fh.read(), self.jar)


class RepairMigrationTests(SynchronousTestCase):
    def test_directory_rows_are_removed(self):
        """Migration 9 drops a Maven row whose path has files below it; files and other repositories stay."""
        pool = sqlite_pool(self)
        index = Index(pool)

        def run(coro):
            return self.successResultOf(defer.Deferred.fromCoroutine(coro))

        everything = migrations.MIGRATIONS
        before = self.patch(migrations, "MIGRATIONS", everything[:8])
        run(index.migrate())
        for repo, key in (
            ("central", "harness/small"),
            ("central", JAR),
            ("central", "harness/smallish.jar"),
            ("central", "a_b"),
            ("central", "axb/c.jar"),
            ("other", "harness/small"),
        ):
            pool.conn.execute(  # as the code of schema 8 wrote them
                """INSERT INTO entries (kind, type, repository, key, digest, size, created_at, fetched_at,
                       last_access) VALUES ('proxy', 'maven', ?, ?, ?, 1, 1.0, 1.0, 1.0)""",
                (repo, key, "sha256:" + "1" * 64),
            )
        pool.conn.commit()
        before.restore()
        run(index.migrate())
        self.assertIsNone(run(index.get_entry("maven", "central", "harness/small")))
        for repo, key in (
            ("central", JAR),
            ("central", "harness/smallish.jar"),
            ("central", "a_b"),
            ("other", "harness/small"),
        ):
            self.assertIsNotNone(run(index.get_entry("maven", repo, key)), (repo, key))


class OversizedChecksumTests(MavenCacheCase):
    """Point 16: a .sha1 without Content-Length is cut at 1 KiB while streaming, and its file is not stored."""

    def test_huge_chunked_sha1_refuses_the_file(self):
        up = self.upstream
        up.put(JAR, os.urandom(5000), sha1="a" * (2 << 20))
        up.chunked.add(JAR + ".sha1")
        d = self.request("GET", "/artifacts/central/" + JAR)
        results = []
        d.addBoth(results.append)
        # The client never gets the file whole: an error status, or the connection cut.
        self.assertTrue(results and (not hasattr(results[0], "code") or results[0].code != 200), results)
        self.assertIsNone(self.successResultOf(self.drive(self.app.index.get_entry("maven", "central", JAR))))
        self.assertIsNone(self.successResultOf(self.drive(self.app.index.get_entry("maven", "central", JAR + ".sha1"))))

    def test_limited_reader_cuts_early(self):
        """read_body_limited fails as soon as the limit is passed, holding no more than one chunk over it."""
        from harbor_cache.limited_body import BodyTooLarge
        from harbor_cache.upstream.maven import MavenUpstream

        up = self.upstream
        up.put("big.sha1", b"b" * (1 << 20), sha1=False)
        up.chunked.add("big.sha1")
        upstream: MavenUpstream = self.app.maven.upstreams["central"]
        failure = self.failureResultOf(self.drive(upstream.fetch_small("big.sha1")))
        self.assertEqual(failure.value.reason, "too_large")
        self.assertIsInstance(BodyTooLarge("x"), Exception)
