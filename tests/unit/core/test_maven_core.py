"""The Maven cache core on fakes: miss/hit, single flight, sha1 check, TTLs, stale, 404s, browse/info/stats/delete."""

import hashlib
import os

from harbor_cache.errors import NotFound, PathNotFound, UnknownRepository, UpstreamBadResponse
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.testing import UPSTREAM_MODIFIED
from harbor_cache.upstream.maven import parse_sha1
from tests.unit.base import MAVEN_START, MavenCacheCase

JAR = "org/example/lib/1.0/lib-1.0.jar"
POM = "org/example/lib/1.0/lib-1.0.pom"
META = "org/example/lib/maven-metadata.xml"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha1(data):
    return hashlib.sha1(data).hexdigest()


class MavenCoreTests(MavenCacheCase):
    def setUp(self):
        super().setUp()
        self.jar = os.urandom(100_000)
        self.upstream.put(JAR, self.jar)
        self.upstream.put(POM, b"<project/>")
        self.upstream.put(META, b"<metadata>v1</metadata>")
        self.cache = self.app.maven

    def get(self, path, repo="central"):
        return self.successResultOf(self.drive(self.cache.get_file(repo, path)))

    def get_failure(self, path, repo="central"):
        return self.failureResultOf(self.drive(self.cache.get_file(repo, path)))

    def read(self, f):
        with open(f.source.path, "rb") as fh:
            return fh.read()

    def entry(self, path, repo="central"):
        return self.successResultOf(self.drive(self.app.index.get_entry("maven", repo, path)))

    def metric(self, name, **labels):
        return self.app.metrics.registry.get_sample_value(name, labels) or 0

    def test_miss_then_hit(self):
        """The first GET fetches once and records a row; the second is a hit without upstream traffic."""
        f = self.get(JAR)
        self.assertEqual(f.cache_status, "miss")
        self.assertTrue(f.source.verified)
        self.assertEqual(self.read(f), self.jar)
        self.assertEqual(f.content_type, "application/java-archive")
        self.assertEqual(f.last_modified, UPSTREAM_MODIFIED)
        self.assertEqual(self.upstream.count("GET", JAR), 1)
        f2 = self.get(JAR)
        self.assertEqual(f2.cache_status, "hit")
        self.assertEqual(self.read(f2), self.jar)
        self.assertEqual(f2.etag, '"%s"' % sha256(self.jar))
        self.assertEqual(self.upstream.count("GET", JAR), 1)
        self.assertEqual(self.metric("harbor_cache_source_hits_total", front="maven", source="central"), 1)
        self.assertEqual(self.metric("harbor_cache_source_misses_total", front="maven", source="central"), 1)
        self.assertGreaterEqual(
            self.metric("harbor_cache_upstream_bytes_total", front="maven", source="central"), len(self.jar)
        )

    def test_cold_get_runs_two_transactions(self):
        """A cold GET looks its row up once and records the file with its .sha1 in one transaction."""
        self.upstream.put(JAR + ".sha1", sha1(self.jar).encode())
        calls = []
        run = self.app.db_pool.runInteraction

        def counting(fn, *args, **kw):
            calls.append(fn)
            return run(fn, *args, **kw)

        self.app.db_pool.runInteraction = counting
        f = self.get(JAR)
        self.assertEqual(f.cache_status, "miss")
        self.assertEqual(len(calls), 2, calls)
        self.assertIsNotNone(self.entry(JAR + ".sha1"))
        self.assertEqual(self.upstream.count("GET", JAR), 1)

    def test_index_row(self):
        """The row: type maven, repository id, key = path, sha256 digest, sha1, size, media type, Last-Modified."""
        self.get(JAR)
        e = self.entry(JAR)
        self.assertEqual((e.type, e.repository, e.key, e.kind), ("maven", "central", JAR, "proxy"))
        self.assertEqual(e.digest, "sha256:" + sha256(self.jar))
        self.assertEqual(e.sha1, sha1(self.jar))
        self.assertEqual(e.size, len(self.jar))
        self.assertEqual(e.media_type, "application/java-archive")
        self.assertEqual(e.upstream_modified, UPSTREAM_MODIFIED)

    def test_sha1_fetched_for_check_is_kept(self):
        """The upstream .sha1 used to check the file is stored, so the client's .sha1 request is a hit."""
        self.get(JAR)
        self.assertEqual(self.upstream.count("GET", JAR + ".sha1"), 1)
        f = self.get(JAR + ".sha1")
        self.assertEqual(f.cache_status, "hit")
        self.assertEqual(self.read(f), sha1(self.jar).encode())
        self.assertEqual(f.content_type, "text/plain")
        self.assertEqual(self.upstream.count("GET", JAR + ".sha1"), 1)

    def test_sha1_mismatch_stores_nothing(self):
        """A body that does not match upstream's .sha1 is thrown away: no row, no blob, readers see a failure."""
        self.upstream.put(JAR, self.jar, sha1="0" * 40)
        f = self.get(JAR)
        self.assertIsNotNone(f.source.failure)
        self.assertFalse(f.source.verified)
        self.assertIsNone(self.entry(JAR))
        self.assertIsNone(self.entry(JAR + ".sha1"))
        self.assertIsNone(self.app.storage.stat_blob("sha256:" + sha256(self.jar)))
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])
        self.assertEqual(
            self.metric(
                "harbor_cache_upstream_errors_total", front="maven", source="central", reason="digest_mismatch"
            ),
            1,
        )
        # Nothing was remembered: the next request tries again.
        self.get(JAR)
        self.assertEqual(self.upstream.count("GET", JAR), 2)

    def test_no_sha1_upstream(self):
        """Without an upstream .sha1 the file is stored unchecked; its own sha1 is still computed."""
        self.upstream.put("a/b/1/b-1.jar", b"payload", sha1=False)
        f = self.get("a/b/1/b-1.jar")
        self.assertTrue(f.source.verified)
        self.assertEqual(self.entry("a/b/1/b-1.jar").sha1, sha1(b"payload"))

    def test_sha1_file_with_name(self):
        """A .sha1 file holding 'hex  filename' is understood."""
        self.assertEqual(parse_sha1(b"%s  lib-1.0.jar\n" % sha1(b"x").upper().encode()), sha1(b"x"))
        self.assertIsNone(parse_sha1(b"not a checksum"))
        self.upstream.put(JAR, self.jar, sha1=sha1(self.jar) + "  lib-1.0.jar\n")
        self.assertTrue(self.get(JAR).source.verified)

    def test_twenty_concurrent_cold_gets_one_upstream_get(self):
        """Twenty clients asking while the body is still arriving share one upstream GET."""
        self.upstream.hold = True
        ds = [self.drive(self.cache.get_file("central", JAR)) for _ in range(20)]
        handles = [self.successResultOf(d) for d in ds]
        self.assertEqual(sorted(h.cache_status for h in handles), ["coalesced"] * 19 + ["miss"])
        self.assertFalse(handles[0].source.verified)
        self.upstream.release()
        self.flush()
        self.assertEqual(self.upstream.count("GET", JAR), 1)
        for handle in handles:
            self.assertTrue(handle.source.verified)
            self.assertEqual(self.read(handle), self.jar)
        self.assertEqual(self.metric("harbor_cache_coalesced_waits_total", front="maven", source="central"), 19)

    def test_not_found_is_remembered(self):
        """An upstream 404 is remembered for cache.negative_ttl_seconds, then asked again."""
        self.get_failure("x/y/1/y-1.jar").trap(NotFound)
        self.get_failure("x/y/1/y-1.jar").trap(NotFound)
        self.assertEqual(self.upstream.count("GET", "x/y/1/y-1.jar"), 1)
        self.clock.advance(61)
        self.get_failure("x/y/1/y-1.jar").trap(NotFound)
        self.assertEqual(self.upstream.count("GET", "x/y/1/y-1.jar"), 2)

    def test_unknown_repository(self):
        self.get_failure(JAR, repo="nope").trap(UnknownRepository)

    def test_release_files_never_expire(self):
        """A release jar is served from the cache long after the metadata TTL."""
        self.get(JAR)
        self.clock.advance(10 * 86400)
        self.upstream.put(JAR, b"changed upstream", modified=UPSTREAM_MODIFIED + 100)
        f = self.get(JAR)
        self.assertEqual(f.cache_status, "hit")
        self.assertEqual(self.read(f), self.jar)
        self.assertEqual(self.upstream.count("GET", JAR), 1)

    def test_metadata_revalidated_not_modified(self):
        """After the TTL, metadata is revalidated with If-Modified-Since; a 304 restarts the TTL."""
        self.get(META)
        self.assertEqual(self.get(META).cache_status, "hit")
        self.clock.advance(301)
        f = self.get(META)
        self.assertEqual(f.cache_status, "revalidated")
        self.assertEqual(self.read(f), b"<metadata>v1</metadata>")
        method, path, headers = self.upstream.headers_seen[-1]
        self.assertEqual((method, path), ("GET", META))
        self.assertEqual(headers["if-modified-since"], "Sun, 13 Sep 2020 12:26:40 GMT")
        self.assertEqual(self.get(META).cache_status, "hit")
        self.assertEqual(self.entry(META).fetched_at, MAVEN_START + 301)

    def test_metadata_changed_upstream(self):
        """Changed metadata replaces the cached copy; the old blob goes when nothing uses it."""
        self.get(META)
        old_digest = self.entry(META).digest
        self.upstream.put(META, b"<metadata>v2</metadata>", modified=UPSTREAM_MODIFIED + 3600)
        self.clock.advance(301)
        f = self.get(META)
        self.assertEqual(f.cache_status, "refreshed")
        self.assertEqual(self.read(f), b"<metadata>v2</metadata>")
        self.assertEqual(self.entry(META).digest, "sha256:" + sha256(b"<metadata>v2</metadata>"))
        self.assertEqual(self.entry(META + ".sha1").sha1, sha1(sha1(b"<metadata>v2</metadata>").encode()))
        self.assertIsNone(self.app.storage.stat_blob(old_digest))
        self.assertEqual(self.read(self.get(META + ".sha1")), sha1(b"<metadata>v2</metadata>").encode())

    def test_snapshot_files_follow_ttl(self):
        """Files under a -SNAPSHOT directory are revalidated like metadata."""
        path = "org/example/lib/1.1-SNAPSHOT/lib-1.1-SNAPSHOT.pom"
        self.upstream.put(path, b"<project>snap</project>")
        self.get(path)
        self.clock.advance(301)
        self.assertEqual(self.get(path).cache_status, "revalidated")

    def test_stale_when_upstream_down(self):
        """Metadata past its TTL is served stale while upstream is unreachable."""
        self.get(META)
        self.clock.advance(301)
        self.http.down = True
        f = self.get(META)
        self.assertEqual(f.cache_status, "stale")
        self.assertTrue(f.stale)
        self.assertEqual(self.read(f), b"<metadata>v1</metadata>")
        self.assertEqual(self.metric("harbor_cache_stale_served_total", front="maven", source="central"), 1)

    def test_stale_on_upstream_5xx(self):
        self.get(META)
        self.clock.advance(301)
        self.upstream.status[META] = 503
        self.assertEqual(self.get(META).cache_status, "stale")

    def test_metadata_gone_upstream(self):
        """Metadata that upstream no longer has is forgotten and answered 404."""
        self.get(META)
        self.clock.advance(301)
        del self.upstream.files[META]
        self.get_failure(META).trap(NotFound)
        self.assertIsNone(self.entry(META))

    def test_cold_miss_with_upstream_down_is_404(self):
        """Not cached and upstream unreachable: 404 (a build tool treats it as absent), error counted."""
        self.http.down = True
        f = self.get_failure(JAR)
        f.trap(NotFound)
        self.assertIn("unavailable", f.value.message)
        self.assertEqual(
            self.metric("harbor_cache_upstream_errors_total", front="maven", source="central", reason="connect"), 1
        )

    def test_upstream_refuses_credentials(self):
        """An upstream 401 is a 502 (our configuration is wrong), not a 404."""
        self.upstream.status[JAR] = 401
        self.get_failure(JAR).trap(UpstreamBadResponse)

    def test_private_upstream_gets_basic_credentials(self):
        """A repository configured with username/password sends them upstream as Basic."""
        self.get(JAR, repo="secret")
        _, _, headers = [s for s in self.upstream.headers_seen if s[1] == JAR][0]
        self.assertEqual(headers["authorization"], "Basic dXAtdXNlcjp1cC1wYXNz")

    def test_hit_without_blob_is_a_miss(self):
        """A row whose blob file vanished is fetched again."""
        self.get(JAR)
        os.unlink(self.app.storage.blob_path("sha256:" + sha256(self.jar)))
        self.assertEqual(self.get(JAR).cache_status, "miss")
        self.assertEqual(self.upstream.count("GET", JAR), 2)

    # -- browse / info / stats / delete -----------------------------------------

    def fill(self):
        for p in (JAR, POM, META, "org/other/x/2.0/x-2.0.jar", "com/acme/a/1/a-1.asc"):
            if p not in self.upstream.files:
                self.upstream.put(p, b"data:" + p.encode())
            self.get(p)

    def test_browse_root(self):
        """The root lists top-level directories; parentPath is null and currentPath empty."""
        self.fill()
        doc = self.successResultOf(self.drive(self.cache.browse("central", "")))
        self.assertEqual(doc["repositoryId"], "central")
        self.assertEqual(doc["currentPath"], "")
        self.assertIsNone(doc["parentPath"])
        self.assertEqual(
            [(e["name"], e["type"], e["path"]) for e in doc["entries"]],
            [("com", "directory", "com"), ("org", "directory", "org")],
        )
        for e in doc["entries"]:
            self.assertNotIn("size", e)
            self.assertEqual(e["lastModified"], iso8601(UPSTREAM_MODIFIED))

    def test_browse_directory_of_files(self):
        """A version directory lists its files with size, path and lastModified (upstream Last-Modified)."""
        self.fill()
        doc = self.successResultOf(self.drive(self.cache.browse("central", "org/example/lib/1.0")))
        self.assertEqual(doc["currentPath"], "org/example/lib/1.0")
        self.assertEqual(doc["parentPath"], "org/example/lib")
        by_name = {e["name"]: e for e in doc["entries"]}
        self.assertEqual(sorted(by_name), ["lib-1.0.jar", "lib-1.0.jar.sha1", "lib-1.0.pom", "lib-1.0.pom.sha1"])
        jar = by_name["lib-1.0.jar"]
        self.assertEqual(
            jar,
            {
                "name": "lib-1.0.jar",
                "type": "file",
                "path": JAR,
                "size": len(self.jar),
                "lastModified": "2020-09-13T12:26:40Z",
            },
        )

    def test_browse_mixed_and_parent_of_top_level(self):
        """Directories come before files; the parent of a top-level directory is the root ("")."""
        self.fill()
        doc = self.successResultOf(self.drive(self.cache.browse("central", "org/example/lib")))
        self.assertEqual(
            [(e["name"], e["type"]) for e in doc["entries"]],
            [("1.0", "directory"), ("maven-metadata.xml", "file"), ("maven-metadata.xml.sha1", "file")],
        )
        doc = self.successResultOf(self.drive(self.cache.browse("central", "org")))
        self.assertEqual(doc["parentPath"], "")

    def test_browse_lastmodified_falls_back_to_cache_time(self):
        """Without an upstream Last-Modified, lastModified is when the file was cached."""
        self.clock.advance(5)
        self.drive(
            self.app.index.put_entry(
                kind="proxy",
                type_="maven",
                repository="central",
                key="n/o/1/o-1.jar",
                digest="sha256:" + "0" * 64,
                size=3,
                now=self.clock.seconds(),
            )
        )
        doc = self.successResultOf(self.drive(self.cache.browse("central", "n/o/1")))
        self.assertEqual(doc["entries"][0]["lastModified"], iso8601(MAVEN_START + 5))

    def test_browse_errors(self):
        self.fill()
        self.failureResultOf(self.drive(self.cache.browse("central", "nothing/here"))).trap(PathNotFound)
        self.failureResultOf(self.drive(self.cache.browse("central", JAR))).trap(PathNotFound)
        self.failureResultOf(self.drive(self.cache.browse("nope", ""))).trap(UnknownRepository)
        doc = self.successResultOf(self.drive(self.cache.browse("secret", "")))
        self.assertEqual(doc["entries"], [])

    def test_info(self):
        """Every field of the seed's info document, sha1/sha256 as computed while writing."""
        self.fill()
        doc = self.successResultOf(self.drive(self.cache.info("central", JAR)))
        self.assertEqual(
            doc,
            {
                "repositoryId": "central",
                "path": JAR,
                "name": "lib-1.0.jar",
                "type": "file",
                "size": len(self.jar),
                "lastModified": "2020-09-13T12:26:40Z",
                "contentType": "application/java-archive",
                "sha1": sha1(self.jar),
                "sha256": sha256(self.jar),
            },
        )
        doc = self.successResultOf(self.drive(self.cache.info("central", "com/acme/a/1/a-1.asc")))
        self.assertEqual(doc["contentType"], "application/pgp-signature")
        self.failureResultOf(self.drive(self.cache.info("central", "org/example"))).trap(PathNotFound)
        self.failureResultOf(self.drive(self.cache.info("central", "no/such.jar"))).trap(PathNotFound)

    def test_repository_list(self):
        """artifactCount counts cached files without checksums, totalSize their bytes, lastUpdated the last write."""
        doc = self.successResultOf(self.drive(self.cache.repository_list()))
        self.assertEqual(
            doc[0],
            {
                "id": "central",
                "url": "http://upstream.test/",
                "artifactCount": 0,
                "totalSize": 0,
                "lastUpdated": None,
                "isPrivate": False,
                "type": "proxy",
            },
        )
        self.assertTrue(doc[1]["isPrivate"])
        self.clock.advance(60)  # maven.repository_stats_ttl_seconds: the figures held are now old
        self.fill()
        stale = self.successResultOf(self.drive(self.cache.repository_list()))
        self.assertEqual(stale[0]["artifactCount"], 0)  # answered at once from the figures held ...
        doc = self.successResultOf(self.drive(self.cache.repository_list()))  # ... while one recount ran
        files = [JAR, POM, META, "org/other/x/2.0/x-2.0.jar", "com/acme/a/1/a-1.asc"]
        sizes = [len(self.upstream.files[p][0]) for p in files]
        self.assertEqual(doc[0]["artifactCount"], 5)
        self.assertEqual(doc[0]["totalSize"], sum(sizes))
        self.assertEqual(doc[0]["lastUpdated"], iso8601(MAVEN_START + 60))

    def test_repository_list_within_ttl(self):
        """Within maven.repository_stats_ttl_seconds the list answers from the figures held (no recount)."""
        self.successResultOf(self.drive(self.cache.repository_list()))
        self.clock.advance(59)
        self.fill()
        doc = self.successResultOf(self.drive(self.cache.repository_list()))
        self.assertEqual(doc[0]["artifactCount"], 0)

    def test_delete_file(self):
        """Deleting a file removes its row and blob; the next GET is a miss."""
        self.fill()
        digest = self.entry(JAR).digest
        n = self.successResultOf(self.drive(self.cache.delete("central", JAR)))
        self.assertEqual(n, 1)
        self.assertIsNone(self.entry(JAR))
        self.assertIsNone(self.app.storage.stat_blob(digest))
        self.assertIsNotNone(self.entry(JAR + ".sha1"))
        self.assertEqual(self.get(JAR).cache_status, "miss")

    def test_delete_directory(self):
        """Deleting a directory removes everything under it, nothing else."""
        self.fill()
        n = self.successResultOf(self.drive(self.cache.delete("central", "org/example")))
        self.assertEqual(n, 6)  # jar, pom, metadata and their .sha1 files
        self.assertIsNone(self.entry(POM))
        self.assertIsNotNone(self.entry("org/other/x/2.0/x-2.0.jar"))
        self.failureResultOf(self.drive(self.cache.delete("central", "org/example"))).trap(NotFound)

    def test_delete_keeps_shared_blob(self):
        """A blob used by another entry (same bytes elsewhere) stays on disk."""
        self.upstream.put("a/a/1/a-1.jar", b"same bytes")
        self.upstream.put("b/b/1/b-1.jar", b"same bytes")
        self.get("a/a/1/a-1.jar")
        self.get("b/b/1/b-1.jar")
        self.successResultOf(self.drive(self.cache.delete("central", "a/a/1/a-1.jar")))
        self.assertIsNotNone(self.app.storage.stat_blob("sha256:" + sha256(b"same bytes")))
        self.assertEqual(self.read(self.get("b/b/1/b-1.jar")), b"same bytes")

    def test_delete_not_found(self):
        self.failureResultOf(self.drive(self.cache.delete("central", "no/thing"))).trap(NotFound)

    def test_invalidate(self):
        """invalidate() drops the memory row, so the next lookup asks the index."""
        self.get(JAR)
        self.assertIn(("central", JAR), self.cache._rows)
        self.cache.invalidate("maven", "central", JAR)
        self.assertNotIn(("central", JAR), self.cache._rows)
        self.cache.invalidate("blob", "", "sha256:x")
        self.assertEqual(self.get(JAR).cache_status, "hit")

    def test_small_files_served_from_memory(self):
        """A warm small file is answered from memory (the whole body), without opening its blob."""
        self.get(POM)
        f = self.get(POM)
        self.assertEqual((f.cache_status, f.body), ("hit", b"<project/>"))
        os.unlink(self.app.storage.blob_path(self.entry(POM).digest))
        self.assertEqual(self.get(POM).body, b"<project/>")
        self.cache.invalidate("maven", "central", POM)
        self.assertIsNone(self.cache.small.get(self.entry(POM).digest))

    def test_large_files_not_in_memory(self):
        """Files over the small-file limit are streamed from disk on every hit."""
        big = os.urandom(70_000)
        self.upstream.put("g/big/1/big-1.jar", big)
        self.get("g/big/1/big-1.jar")
        f = self.get("g/big/1/big-1.jar")
        self.assertEqual((f.cache_status, f.body), ("hit", None))
        self.assertEqual(self.read(f), big)
