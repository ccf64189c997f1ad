"""The hot path (`site.HotRoute` + `MavenFront.hot_artifact`) against the Klein front it short-cuts.

Each request is sent as raw bytes twice, to a site whose root has the hot
route and to one whose root mounts only the Klein front, both over the same
harness (same cache, same metrics): the responses must be byte for byte the
same (but for ``Date``), and so must the access events (but for timing).
Requests the hot path must decline (a Range, a private repository, a miss,
a bad path, ...) are checked to reach Klein with nothing counted twice.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import eventAsJSON, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http

from harbor_cache.grammar.maven_paths import MavenPath
from harbor_cache.http.resources import HotRoute, Root
from harbor_cache.http.site import HarborSite
from harbor_cache.settings.startup import MavenRepositoryConfig
from harbor_cache.testing import OCI_MANIFEST, UPSTREAM_MODIFIED, resolved
from tests.unit.base import MAVEN_START, HarborTestCase, MavenCacheCase, OciCacheCase

POM = "org/example/lib/1.0/lib-1.0.pom"
JAR = "org/example/lib/1.0/lib-1.0.jar"
META = "org/example/lib/maven-metadata.xml"
SEGMENTS = (b"artifacts", b"repositories", b"token", b".well-known")
_LEGACY_KEYS = frozenset(("message", "format", "system", "isError", "time", "log_legacy"))


class _Sites(HarborTestCase):
    """Raw requests to two sites over one harness: ``klein_root`` (fronts only) and ``hot_root`` (with hot routes).

    Needs ``self.app`` (a `HarborTestCase`'s), ``self.klein_root``, ``self.hot_root``,
    ``self.answered`` (what the spied hot handler did), ``self.events``,
    ``self.site_clock`` (the sites' reactor) and ``self.served_front``.
    """

    #: send each head in two reads, so Twisted parses it and `HotRoute` answers (one read: `http.quick`)
    split_reads = False
    served_front: str
    klein_root: Root
    hot_root: Root
    answered: list[bool]
    events: list[dict]
    site_clock: Clock

    # -- driving ------------------------------------------------------------------

    def raw(self, root, method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
        """One request on a fresh connection to a HarborSite over ``root``: the bytes written back."""
        site = HarborSite(root, self.app.metrics, reactor=self.site_clock)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        lines = [f"{method} {path} HTTP/1.1", "Host: cache.test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if self.split_reads:
            channel.dataReceived(head[:5])
            channel.dataReceived(head[5:])
        else:
            channel.dataReceived(head)
        self.flush()
        out = transport.value()
        channel.connectionLost(None)
        return out

    def access(self) -> list[list]:
        """The access events since the last call, as the JSON log observer writes them, without timing.

        (Keys the legacy log bridge adds for trial's own observers are left out, key order is kept.)
        """
        events = [e for e in self.events if e.get("log_namespace") == "harbor_cache.access"]
        self.events.clear()
        kept = []
        for e in events:
            e = {k: v for k, v in e.items() if k not in _LEGACY_KEYS}
            doc = json.loads(eventAsJSON(e))
            doc.pop("duration_ms"), doc.pop("log_time")
            flat = doc["log_flattened"]
            flat.pop("duration_ms!s:.1f"), flat.pop("duration_ms!:.1f")
            kept.append([list(doc.items()), list(flat.items())])
        return kept

    def counters(self) -> dict:
        m = self.app.metrics
        return {
            "hits": m.hits._value.get(),
            "misses": m.misses._value.get(),
            "requests": m.requests._value.get(),
            "served": m.served_bytes.labels(self.served_front)._value.get(),
            "touches": dict(self.app.access._touches),
            "counts": dict(self.app.access._counters),
        }

    @staticmethod
    def without_date(raw: bytes) -> bytes:
        return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.lower().startswith(b"date: "))

    def same(self, method: str, path: str, headers: dict[str, str] | None = None, hot: bool | None = True) -> bytes:
        """Klein's answer, then the hot root's: equal bytes, access events and counter steps."""
        before = self.counters()
        klein = self.raw(self.klein_root, method, path, headers)
        klein_events = self.access()
        middle = self.counters()
        self.answered.clear()
        fast = self.raw(self.hot_root, method, path, headers)
        fast_events = self.access()
        after = self.counters()
        self.assertEqual(self.without_date(fast), self.without_date(klein))
        self.assertEqual(fast_events, klein_events)
        self.assertEqual(len(fast_events), 1)
        for name in ("hits", "misses", "requests", "served"):
            self.assertEqual(after[name] - middle[name], middle[name] - before[name], name)
        if hot is not None:  # (None: whatever it did, the answer is Klein's)
            self.assertEqual(self.answered, [hot] if method in ("GET", "HEAD") else [])
        return fast


class HotPathTests(_Sites, MavenCacheCase):
    served_front = "maven"
    extra_repositories = (MavenRepositoryConfig(id="releases", type="hosted"),)

    def setUp(self):
        super().setUp()
        self.pom = b"<project>" + os.urandom(3000).hex().encode() + b"</project>"
        self.upstream.put(POM, self.pom)
        self.upstream.put(JAR, os.urandom(200_000))  # over the small-file limit: never a memory hit
        self.upstream.put(META, b"<metadata/>")
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        klein = self.app.maven_front.app.resource()
        self.klein_root = Root()
        for segment in SEGMENTS:
            self.klein_root.mount(segment, klein)
        self.hot_root = Root()
        for segment in SEGMENTS:
            self.hot_root.mount(segment, klein, hot=self.spy if segment == b"artifacts" else None)
        self.answered: list[bool] = []
        self.site_clock = Clock()
        self.site_clock.advance(MAVEN_START)

    def spy(self, request):
        body = self.app.maven_front.hot_artifact(request)
        self.answered.append(body is not None)
        return body

    def warm(self, path: str) -> None:
        """Miss, then a disk hit that puts the small file in memory (both through Klein)."""
        for _ in range(2):
            self.assertIn(b" 200 ", self.raw(self.klein_root, "GET", "/artifacts/central/" + path).split(b"\r\n")[0])
        self.access()

    # -- hits -----------------------------------------------------------------------

    def test_a_memory_hit_holds_no_open_file(self):
        """The answer kept for a warm small file opens nothing (one descriptor per file ever served would run the
        process out of them); a Range on it still reads its part from the file, as a 206."""
        self.warm(POM)
        f = self.app.maven.memory_hit("central", MavenPath.parse(POM))
        self.assertIsNotNone(f)
        self.assertEqual(f.source.take_fd(), -1)
        raw = self.raw(self.klein_root, "GET", "/artifacts/central/" + POM, {"Range": "bytes=2-5"})
        self.assertTrue(raw.startswith(b"HTTP/1.1 206 "), raw[:40])
        self.assertTrue(raw.endswith(self.pom[2:6]))

    def test_get_hit(self):
        """A warm small file: the same bytes and headers, the same access line, one hit counted, no Klein."""
        self.warm(POM)
        raw = self.same("GET", "/artifacts/central/" + POM)
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(raw.endswith(self.pom))
        for header in (
            b"Content-Length: %d" % len(self.pom),
            b"Content-Type: application/xml",
            b"Accept-Ranges: bytes",
            b"ETag: ",
            b"Access-Control-Allow-Origin: *",
            b"Last-Modified: " + http.datetimeToString(UPSTREAM_MODIFIED),
            b"Content-Security-Policy: default-src 'none'; sandbox\r\n",
            b"X-Content-Type-Options: nosniff\r\n",
        ):
            self.assertIn(b"\r\n" + header, raw)

    def test_hit_records_access_time(self):
        """The hot hit touches the entry (batched, no SQL) like a Klein hit."""
        self.warm(POM)
        self.app.access._touches.clear()
        self.raw(self.hot_root, "GET", "/artifacts/central/" + POM)
        self.assertEqual([count for _, count in self.app.access._touches.values()], [1])

    def test_head_hit(self):
        self.warm(POM)
        raw = self.same("HEAD", "/artifacts/central/" + POM)
        self.assertIn(b"\r\nContent-Length: %d\r\n" % len(self.pom), raw)
        self.assertTrue(raw.endswith(b"\r\n\r\n"))

    def test_conditional_hits(self):
        """If-None-Match (match, no match, weak, *) and If-Modified-Since: the same 304s and 200s."""
        self.warm(POM)
        raw = self.raw(self.klein_root, "GET", "/artifacts/central/" + POM)
        etag = [line for line in raw.split(b"\r\n") if line.startswith(b"ETag: ")][0][6:].decode()
        self.access()
        for headers, status in (
            ({"If-None-Match": etag}, b"304"),
            ({"If-None-Match": "W/" + etag}, b"304"),
            ({"If-None-Match": "*"}, b"304"),
            ({"If-None-Match": '"other"'}, b"200"),
            ({"If-Modified-Since": http.datetimeToString(UPSTREAM_MODIFIED).decode()}, b"304"),
            ({"If-Modified-Since": http.datetimeToString(UPSTREAM_MODIFIED - 1).decode()}, b"200"),
        ):
            raw = self.same("GET", "/artifacts/central/" + POM, headers)
            self.assertTrue(raw.startswith(b"HTTP/1.1 " + status), (headers, raw[:40]))

    def test_query_and_extra_headers(self):
        """A query string and extra request headers go the hot way too, with identical answers."""
        self.warm(POM)
        self.same("GET", "/artifacts/central/" + POM + "?x=1", {"Accept": "*/*", "User-Agent": "wrk"})

    def test_checksum_hit(self):
        """The stored .sha1 (a small file of its own) is a hot hit once in memory."""
        self.warm(POM)
        self.warm(POM + ".sha1")
        self.same("GET", "/artifacts/central/" + POM + ".sha1")

    # -- declined: Klein answers, nothing counted twice ----------------------------------

    def test_range_goes_to_klein(self):
        self.warm(POM)
        raw = self.same("GET", "/artifacts/central/" + POM, {"Range": "bytes=0-9"}, hot=False)
        self.assertTrue(raw.startswith(b"HTTP/1.1 206 "))

    def test_miss_goes_to_klein(self):
        """A cold file (and the disk hit that follows) are Klein's; the next one is hot."""
        self.assertEqual(self.app.maven_front.hot_artifact(_FakeRequest("/artifacts/central/" + POM)), None)
        self.raw(self.hot_root, "GET", "/artifacts/central/" + POM)
        self.raw(self.hot_root, "GET", "/artifacts/central/" + POM)
        self.assertEqual(self.answered, [False, False])
        self.access()
        self.same("GET", "/artifacts/central/" + POM)

    def test_large_file_goes_to_klein(self):
        """A file over the small-file limit is streamed by Klein's path, never held in memory."""
        self.warm(JAR)
        self.same("GET", "/artifacts/central/" + JAR, hot=False)

    def test_private_repository_goes_to_klein(self):
        """Private repositories need the token check: 401 challenge from Klein, hot path declined."""
        self.upstream.put("a/b/1/b-1.pom", b"<p/>")
        raw = self.same("GET", "/artifacts/secret/a/b/1/b-1.pom", hot=False)
        self.assertTrue(raw.startswith(b"HTTP/1.1 401 "))
        self.assertIn(b"\r\nWWW-Authenticate: Bearer\r\n", raw)

    def test_bad_paths_go_to_klein(self):
        """Unsafe or odd paths get Klein's error answers, unchanged."""
        self.warm(POM)
        for path, status in (
            ("/artifacts/central/org/../etc/passwd", b"400"),
            ("/artifacts/central/org/%2e%2e/x.pom", b"400"),
            ("/artifacts/central/org/a%2fb.pom", b"400"),
            ("/artifacts/central/org/example/", b"404"),
            ("/artifacts/nope/" + POM, b"404"),
            ("/artifacts/", b"400"),
            ("/artifacts", b"308"),
        ):
            raw = self.same("GET", path, hot=False)
            self.assertTrue(raw.startswith(b"HTTP/1.1 " + status), (path, raw[:60]))

    def test_hosted_repository_goes_to_klein(self):
        """Hosted files are looked up by get_file (a replaced SNAPSHOT must not be served from memory)."""
        self.same("GET", "/artifacts/releases/" + POM, hot=False)

    def test_expired_metadata_goes_to_klein(self):
        """maven-metadata.xml past its TTL is revalidated by Klein's path; fresh, it is hot."""
        self.warm(META)
        self.same("GET", "/artifacts/central/" + META)
        self.clock.advance(self.app.settings.get("maven.metadata_ttl_seconds") + 1)
        self.answered.clear()
        raw = self.raw(self.hot_root, "GET", "/artifacts/central/" + META)
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(self.answered, [False])
        [[fields, _]] = self.access()
        self.assertIn(("cache_status", "revalidated"), fields)
        self.same("GET", "/artifacts/central/" + META)  # the TTL restarted: hot again

    def headers_of(self, raw: bytes) -> dict[bytes, bytes]:
        head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        return dict(line.split(b": ", 1) for line in head)

    def test_changed_metadata_gets_new_headers(self):
        """Metadata that changed upstream: after its revalidation the hot answer has the new body and headers."""
        self.warm(META)
        before = self.headers_of(self.same("GET", "/artifacts/central/" + META))
        new = b"<metadata><versioning>2</versioning></metadata>"
        self.upstream.put(META, new, modified=UPSTREAM_MODIFIED + 3600)
        self.clock.advance(self.app.settings.get("maven.metadata_ttl_seconds") + 1)
        self.raw(self.klein_root, "GET", "/artifacts/central/" + META)  # revalidated: the new file
        self.access()
        raw = self.same("GET", "/artifacts/central/" + META)
        after = self.headers_of(raw)
        self.assertTrue(raw.endswith(new))
        self.assertEqual(after[b"Content-Length"], b"%d" % len(new))
        self.assertEqual(after[b"Last-Modified"], http.datetimeToString(UPSTREAM_MODIFIED + 3600))
        self.assertNotEqual(after[b"ETag"], before[b"ETag"])

    def test_deleted_or_evicted_file_is_not_served_from_memory(self):
        """After a delete or an eviction (the cache forgets the row) the hot path declines; the refetch is new."""
        cache = self.app.maven_front.cache
        for forget in ("delete", "evict"):
            self.warm(POM)
            self.same("GET", "/artifacts/central/" + POM)
            if forget == "delete":
                self.successResultOf(defer.Deferred.fromCoroutine(cache.delete("central", POM)))
            else:
                cache.invalidate("maven", "central", POM)  # what eviction calls for each row it removes
            self.pom = b"<project>%s</project>" % forget.encode()
            self.upstream.put(POM, self.pom, modified=UPSTREAM_MODIFIED + 60)
            self.answered.clear()
            self.raw(self.hot_root, "GET", "/artifacts/central/" + POM)
            self.assertEqual(self.answered, [False])
            self.access()
            if forget == "delete":  # (eviction's rows are gone from the index as well; here only from memory)
                self.warm(POM)
                raw = self.same("GET", "/artifacts/central/" + POM)
                self.assertTrue(raw.endswith(self.pom))
                self.assertEqual(self.headers_of(raw)[b"Content-Length"], b"%d" % len(self.pom))

    def test_other_methods_go_to_klein(self):
        """DELETE, PUT and OPTIONS never reach the hot path."""
        self.warm(POM)
        self.same("DELETE", "/artifacts/central/" + POM)
        self.same("OPTIONS", "/artifacts/central/" + POM)

    def test_declining_changes_nothing(self):
        """hot_artifact returning None leaves the request as it found it (headers, code, front)."""
        self.warm(POM)
        request = _FakeRequest("/artifacts/central/" + POM, {b"range": b"bytes=0-1"})
        self.assertIsNone(self.app.maven_front.hot_artifact(request))
        self.assertEqual(request.set, {})
        request = _FakeRequest("/artifacts/central/" + POM)
        self.assertEqual(self.app.maven_front.hot_artifact(request), self.pom)
        self.assertEqual(request.front, "maven")

    def test_mount_without_hot_forgets_it(self):
        root = Root()
        klein = self.app.maven_front.app.resource()
        root.mount(b"artifacts", klein, hot=self.spy)
        self.assertIsInstance(root._hot[b"artifacts"], HotRoute)
        root.mount(b"artifacts", klein)
        self.assertNotIn(b"artifacts", root._hot)

    def test_parsed_paths_are_remembered_boundedly(self):
        """The hot path remembers parsed paths (a pure function of the path), boundedly, and only good ones."""
        from harbor_cache.maven import front

        self.patch(front, "_HOT_TARGETS_SIZE", 2)
        self.warm(POM)
        for i in range(5):
            self.raw(self.hot_root, "GET", f"/artifacts/central/{POM}?{i}")  # (the query is not part of the path)
            self.raw(self.hot_root, "GET", f"/artifacts/central/org/example/lib/1.0/x-{i}.pom")
            self.assertLessEqual(len(self.app.maven_front._hot_targets), 2)
        self.raw(self.hot_root, "GET", "/artifacts/central/org/../x.pom")
        self.assertNotIn(b"/artifacts/central/org/../x.pom", self.app.maven_front._hot_targets)


class OciHotPathTests(_Sites, OciCacheCase):
    """`OciFront.hot_manifest`: anonymous GET/HEAD of a fresh tag from memory, else Klein's `get_manifest`."""

    served_front = "oci"

    def setUp(self):
        super().setUp()
        config = self.upstream.add_blob(b'{"architecture":"amd64"}')
        self.manifest, self.digest = self.upstream.add_manifest(
            "library/app",
            "1",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 24},
                "layers": [],
            },
        )
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        klein = self.app.oci_front.app.resource()
        self.klein_root = Root()
        self.klein_root.mount(b"v2", klein)
        self.hot_root = Root()
        self.hot_root.mount(b"v2", klein, hot=self.spy)
        self.answered: list[bool] = []
        self.site_clock = self.clock

    def spy(self, request):
        body = self.app.oci_front.hot_manifest(request)
        self.answered.append(body is not None)
        return body

    def warm(self) -> None:
        """The tag fetched once through Klein (a miss: body, row and tag now in memory)."""
        raw = self.raw(self.klein_root, "GET", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST})
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw[:100])
        self.access()

    def test_get_by_tag(self):
        self.warm()
        raw = self.same("GET", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST})
        self.assertTrue(raw.endswith(self.manifest))
        for header in (
            b"Docker-Content-Digest: " + self.digest.encode(),
            b'ETag: "%s"' % self.digest.encode(),
            b"Docker-Distribution-Api-Version: registry/2.0",
            b"Content-Type: " + OCI_MANIFEST.encode(),
            b"Content-Security-Policy: default-src 'none'; sandbox",
            b"X-Content-Type-Options: nosniff",
        ):
            self.assertIn(b"\r\n" + header + b"\r\n", raw)
        self.assertEqual(self.upstream.count("GET", "/manifests/1"), 1)

    def test_foreign_media_type_as_octet_stream(self):
        """A tag whose upstream called it text/html: octet-stream and the sandbox on both paths, the same bytes."""
        body, _ = self.upstream.add_manifest("library/app", "page", {"mediaType": "text/html", "x": "<b>"}, "text/html")
        raw = self.raw(self.klein_root, "GET", "/v2/library/app/manifests/page")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw[:100])
        self.access()
        raw = self.same("GET", "/v2/library/app/manifests/page")
        self.assertTrue(raw.endswith(body))
        for header in (
            b"Content-Type: application/octet-stream",
            b"Content-Security-Policy: default-src 'none'; sandbox",
        ):
            self.assertIn(b"\r\n" + header + b"\r\n", raw)
        raw = self.same("GET", "/v2/library/app/manifests/page", {"Accept": "text/html"}, hot=False)
        self.assertTrue(raw.startswith(b"HTTP/1.1 404 "))

    def test_head_and_304(self):
        self.warm()
        self.same("HEAD", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST})
        raw = self.same("GET", "/v2/library/app/manifests/1", {"If-None-Match": '"%s"' % self.digest})
        self.assertTrue(raw.startswith(b"HTTP/1.1 304 "))

    def test_no_accept_header(self):
        """No Accept header: what Klein answers for it (the hot path asks the same question)."""
        self.warm()
        self.same("GET", "/v2/library/app/manifests/1", hot=None)

    def test_refused_media_type_goes_to_klein(self):
        """An Accept the manifest's type is not in: Klein's 404, the hit counted once (by Klein)."""
        self.warm()
        raw = self.same(
            "GET",
            "/v2/library/app/manifests/1",
            {"Accept": "application/vnd.docker.distribution.manifest.v1+json"},
            hot=False,
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 404 "))

    def test_credentials_go_to_klein(self):
        """Any Authorization header is checked by the registry authorizer (here: a 401 for a bad token)."""
        self.warm()
        raw = self.same(
            "GET", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST, "Authorization": "Bearer nope"}, hot=False
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 401 "))

    def test_anonymous_pull_off_goes_to_klein(self):
        self.warm()
        resolved(Deferred.fromCoroutine(self.app.settings.update([("registry.anonymous_pull", "false")])))
        raw = self.same("GET", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST}, hot=False)
        self.assertTrue(raw.startswith(b"HTTP/1.1 401 "))

    def test_other_requests_go_to_klein(self):
        """Digests, ?ns=, odd paths, blobs, misses and stale tags: all Klein's, answered as before."""
        self.warm()
        for path in (
            "/v2/library/app/manifests/" + self.digest,
            "/v2/library/app/manifests/1?ns=docker.io",
            "/v2/library//app/manifests/1",
            "/v2/library/app/manifests/1/",
            "/v2/library/a%70p/manifests/1",
            "/v2/library/app/manifests/nope",
            "/v2/library/app/manifests/-bad",
            "/v2/Library/app/manifests/1",
            "/v2/library/app/tags/list",
            "/v2/",
            "/v2",
        ):
            self.same("GET", path, {"Accept": OCI_MANIFEST}, hot=None)
        self.clock.advance(self.app.settings.get("cache.tag_ttl_seconds") + 1)
        self.answered.clear()
        raw = self.raw(self.hot_root, "GET", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST})
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(self.answered, [False])
        [[fields, _]] = self.access()
        self.assertIn(("cache_status", "revalidated"), fields)
        self.same("GET", "/v2/library/app/manifests/1", {"Accept": OCI_MANIFEST})  # fresh again: hot


class _FakeRequest:
    """Just what hot_artifact reads and writes."""

    method = b"GET"
    front = "site"
    cache_status = None
    code = 200

    def __init__(self, path: str, headers: dict[bytes, bytes] | None = None):
        self.path = path.encode()
        self._headers = headers or {}
        self.set: dict[bytes, bytes] = {}

    def getHeader(self, name: bytes):
        return self._headers.get(name.lower())

    def setHeader(self, name: bytes, value: bytes):
        self.set[name] = value

    def set_headers(self, block):
        for name, value in block.pairs:
            self.setHeader(name, value)

    def setResponseCode(self, code: int, message: bytes | None = None):
        self.code = code


class AccessLineTests(SynchronousTestCase):
    """`HarborSite.log` emits exactly the event ``access_log.info(ACCESS_FORMAT, ...)`` would."""

    def test_same_event_as_logger_info(self):
        from harbor_cache.http.site import ACCESS_FORMAT, access_log
        from harbor_cache.metrics import Metrics

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        site = HarborSite(Root(), Metrics(), reactor=Clock())
        for method, code, cache_status, upstream, lost in (
            (b"GET", 200, "hit", None, False),
            (b"HEAD", 404, None, "hub", False),
            (b"BREW", 500, "miss", None, True),
        ):
            request = _FakeRequest("/x?y=1")
            request.method, request.code, request.uri = method, code, b"/x?y=1"
            request.cache_status, request.upstream, request.sentLength = cache_status, upstream, 12
            request.started_at = 0.0
            if lost:
                request.channel_lost = True
            site.log(request)
            access_log.info(
                ACCESS_FORMAT,
                method=method.decode(),
                path="/x?y=1",
                status="aborted" if lost else str(code),
                bytes=12,
                duration_ms=1.5,
                cache_status=cache_status or "-",
                upstream=upstream or "-",
            )
            ours, theirs = [{k: v for k, v in e.items() if k not in _LEGACY_KEYS} for e in events[-2:]]
            self.assertEqual(list(ours), list(theirs))
            for k in ("duration_ms", "log_time"):
                self.assertIsInstance(ours.pop(k), float)
                theirs.pop(k)
            self.assertEqual(ours, theirs)
            self.assertIs(ours["log_logger"], access_log)
        samples = {
            (s.labels.get("method"), s.labels.get("status")): s.value
            for s in site.metrics.responses.collect()[0].samples
            if s.name.endswith("_total")
        }
        self.assertEqual(samples, {("GET", "200"): 1.0, ("HEAD", "404"): 1.0, ("other", "aborted"): 1.0})
        self.assertEqual(site.metrics.requests._value.get(), 3)


class HotRouteTests(HotPathTests):
    """`HotPathTests` with each head in two reads: Twisted parses it and `HotRoute` answers, not `http.quick`."""

    split_reads = True


class OciHotRouteTests(OciHotPathTests):
    """`OciHotPathTests` through Twisted's parser and `HotRoute`."""

    split_reads = True


class QuickChannelTests(MavenCacheCase):
    """`HarborChannel` answering a hot head from one read (`http.quick`): the connection around it."""

    def setUp(self):
        super().setUp()
        self.pom = b"<project>" + b"x" * 3000 + b"</project>"
        self.upstream.put(POM, self.pom)
        self.root = Root()
        self.root.mount(b"artifacts", self.app.maven_front.app.resource(), hot=self.app.maven_front.hot_artifact)
        self.site_clock = Clock()
        self.site = HarborSite(self.root, self.app.metrics, reactor=self.site_clock)
        for _ in range(2):  # a miss, then the disk hit that puts the file in memory
            self.assertIn(b" 200 OK", self.exchange(self.connect(), self.head())[0])
        self.requests_built = 0
        self.patch(self.site, "requestFactory", self._counting(self.site.requestFactory))

    def _counting(self, factory):
        def build(*args, **kw):
            self.requests_built += 1
            return factory(*args, **kw)

        return build

    def connect(self):
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        self.addCleanup(lambda: transport.disconnected or channel.connectionLost(None))
        return channel, transport

    @staticmethod
    def head(path: str = "/artifacts/central/" + POM, *extra: str, version: str = "HTTP/1.1") -> bytes:
        return ("\r\n".join((f"GET {path} {version}", "Host: cache.test", *extra)) + "\r\n\r\n").encode()

    def exchange(self, conn, *reads: bytes) -> list[bytes]:
        """Feed ``reads`` to the connection; the responses written back, split after each body."""
        channel, transport = conn
        transport.clear()
        for data in reads:
            channel.dataReceived(data)
        self.flush()
        out, responses = transport.value(), []
        while out:
            head, _, rest = out.partition(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) if b"Content-Length: " in head else 0
            responses.append(head + b"\r\n\r\n" + rest[:length])
            out = rest[length:]
        return responses

    def test_hits_need_no_request_object(self):
        """Three hits on one kept-alive connection: three whole answers, no `Request` built, the connection open."""
        conn = self.connect()
        for _ in range(3):
            [answer] = self.exchange(conn, self.head())
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"))
            self.assertTrue(answer.endswith(self.pom))
        self.assertEqual(self.requests_built, 0)
        self.assertFalse(conn[1].disconnecting)
        self.assertEqual(self.app.metrics.requests._value.get(), 5)

    def test_idle_and_header_timers_restart_after_a_quick_answer(self):
        """A quick answer moves the header deadline on: an idle connection is closed silently after it, as after
        any response, and not before."""
        channel, transport = conn = self.connect()
        seconds = self.site.limits.header_timeout_seconds
        self.site_clock.advance(seconds - 1)
        self.exchange(conn, self.head())
        transport.clear()
        self.site_clock.advance(seconds - 1)
        self.assertFalse(transport.disconnecting)
        self.site_clock.advance(2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")  # nothing was pending: no 408

    def test_shapes_left_to_twisted(self):
        """Pipelined heads, a head in two reads, Connection: close, HTTP/1.0: Twisted parses them; same answers."""
        quick = self.exchange(self.connect(), self.head())[0]
        cases = [
            ((self.head() + self.head(),), 2, False),
            ((self.head()[:9], self.head()[9:]), 1, False),
            ((self.head("/artifacts/central/" + POM, "Connection: close"),), 1, True),
            ((self.head(version="HTTP/1.0"),), 1, True),
        ]
        for reads, count, closes in cases:
            self.requests_built = 0
            channel, transport = conn = self.connect()
            answers = self.exchange(conn, *reads)
            self.assertEqual(self.requests_built, count, reads)
            self.assertEqual(len(answers), count, reads)
            for answer in answers:
                self.assertTrue(answer.endswith(self.pom), reads)
                if not closes:
                    self.assertEqual(_Sites.without_date(answer), _Sites.without_date(quick))
            self.assertEqual(transport.disconnecting, closes, reads)

    def test_a_failing_hot_handler_takes_the_usual_path(self):
        """The hot handler raises: the request goes to Twisted (which asks it again and answers 500)."""

        def broken(request):
            raise RuntimeError("boom")

        self.root.mount(b"artifacts", self.app.maven_front.app.resource(), hot=broken)
        [answer] = self.exchange(self.connect(), self.head())
        self.assertTrue(answer.startswith(b"HTTP/1.1 500 "), answer[:60])
        self.assertEqual(self.requests_built, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_declined_once(self):
        """A head the hot handler declines is not offered to it again by `HotRoute`."""
        asked = []

        def declining(request):
            asked.append(request.path)
            return None

        self.root.mount(b"artifacts", self.app.maven_front.app.resource(), hot=declining)
        [answer] = self.exchange(self.connect(), self.head())
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(len(asked), 1)
        self.assertEqual(self.requests_built, 1)
