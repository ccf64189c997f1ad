"""Warm content while the disk is 100% full: what docs/operations.md promises ("cached content is still served").

The index cannot write (sqlite: "database or disk is full") and no file can be
stored.  Reading what is cached needs neither, so warm hits answer 200; a tag
or Maven file past its TTL that the upstream says is unchanged is served as
revalidated, the new fetch time kept in memory only; a tag that moved upstream
is served without being cached; last-access times wait in memory.
"""

from __future__ import annotations

import errno
import os
import sqlite3

from twisted.internet.defer import Deferred

from tests.unit.base import OCI_MANIFEST, HarborTestCase, MavenCacheCase, OciCacheCase

META = "org/example/lib/maven-metadata.xml"
JAR = "org/example/lib/1.0/lib-1.0.jar"


async def index_full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")


async def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def fill_disk(case: HarborTestCase) -> None:
    """Every index write and file store of ``case.app`` fails as on a full disk."""
    for method in ("mark_tag_fetched", "mark_fetched", "put_tag", "put_entry", "record_access"):
        if hasattr(case.app.index, method):
            case.patch(case.app.index, method, index_full)
    case.patch(case.app.storage, "store_bytes", no_space)


class OciWarmContentTests(OciCacheCase):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(1000)
        self.digest = self.upstream.add_blob(self.layer)
        self.manifest, _ = self.upstream.add_manifest(
            "library/app", "1", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}
        )
        self.assertEqual(self.get("/v2/library/app/blobs/" + self.digest)[0], 200)
        self.assertEqual(self.get("/v2/library/app/manifests/1")[0], 200)
        fill_disk(self)

    def get(self, path):
        response = self.successResultOf(self.request("GET", path))
        return response.code, self.successResultOf(self.read_body(response))

    def test_warm_blob_and_fresh_tag_are_served(self):
        self.assertEqual(self.get("/v2/library/app/blobs/" + self.digest), (200, self.layer))
        self.assertEqual(self.get("/v2/library/app/manifests/1"), (200, self.manifest))
        # the hits' last-access times stay in memory until a flush can write them
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(self.app.access.flush())), 0)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)

    def test_tag_past_its_ttl_unchanged_upstream_is_served(self):
        """The HEAD says unchanged: 200 from the cache (it was a 500 when recording the time failed)."""
        self.clock.advance(301)
        self.assertEqual(self.get("/v2/library/app/manifests/1"), (200, self.manifest))
        heads = self.upstream.count("HEAD", "/manifests/1")
        self.assertEqual(self.get("/v2/library/app/manifests/1"), (200, self.manifest))
        self.assertEqual(self.upstream.count("HEAD", "/manifests/1"), heads)  # fresh again, in memory

    def test_tag_moved_upstream_is_served_without_being_cached(self):
        moved, _ = self.upstream.add_manifest(
            "library/app", "1", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": [], "v": 2}
        )
        self.clock.advance(301)
        self.assertEqual(self.get("/v2/library/app/manifests/1"), (200, moved))


class MavenWarmContentTests(MavenCacheCase):
    def setUp(self):
        super().setUp()
        self.jar = os.urandom(10_000)
        self.upstream.put(JAR, self.jar)
        self.upstream.put(META, b"<metadata>v1</metadata>")
        self.cache = self.app.maven
        for path in (JAR, META):
            self.assertEqual(self.get(path).cache_status, "miss")
        fill_disk(self)

    def get(self, path):
        return self.successResultOf(self.drive(self.cache.get_file("central", path)))

    def read(self, f):
        with open(f.source.path, "rb") as fh:
            return fh.read()

    def test_warm_file_is_served(self):
        f = self.get(JAR)
        self.assertEqual((f.cache_status, self.read(f)), ("hit", self.jar))

    def test_metadata_past_its_ttl_unchanged_upstream_is_served(self):
        """Upstream answers 304: served as revalidated (it was a 500 when recording the time failed)."""
        self.clock.advance(301)
        f = self.get(META)
        self.assertEqual((f.cache_status, self.read(f)), ("revalidated", b"<metadata>v1</metadata>"))
        self.assertEqual(self.get(META).cache_status, "hit")  # fresh again, in memory
