"""The OCI pull-through path on fakes: hits, misses, single flight, verification, TTLs, stale."""

import base64
import json
import os

from harbor_cache.testing import sha
from tests.unit.base import OCI_MANIFEST, OciCacheCase

INDEX = "application/vnd.oci.image.index.v1+json"


class OciTests(OciCacheCase):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(200_000)
        self.layer_digest = self.upstream.add_blob(self.layer)
        self.config = b'{"architecture":"amd64"}'
        self.config_digest = self.upstream.add_blob(self.config)
        self.manifest, self.manifest_digest = self.upstream.add_manifest(
            "library/app",
            "1",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": self.config_digest,
                    "size": len(self.config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": self.layer_digest,
                        "size": len(self.layer),
                    }
                ],
            },
        )

    def get(self, path, method="GET", headers=None):
        response = self.successResultOf(self.request(method, path, headers))
        return response, self.successResultOf(self.read_body(response))

    def header(self, response, name):
        values = response.headers.getRawHeaders(name.encode())
        return values[0].decode() if values else None

    def test_base(self):
        """GET /v2/ answers {} with the API version header (to a user: an anonymous ping is challenged)."""
        self.add_user("reader", "reader-pw", "read-only")
        response, body = self.get(
            "/v2/", headers={"Authorization": "Basic " + base64.b64encode(b"reader:reader-pw").decode()}
        )
        self.assertEqual((response.code, body), (200, b"{}"))
        self.assertEqual(self.header(response, "Docker-Distribution-API-Version"), "registry/2.0")

    def test_manifest_miss_then_hit(self):
        """The first pull asks upstream once; the second is served from the cache with the same headers."""
        for _expected in ("miss", "hit"):
            response, body = self.get("/v2/library/app/manifests/1")
            self.assertEqual(response.code, 200)
            self.assertEqual(body, self.manifest)
            self.assertEqual(self.header(response, "Docker-Content-Digest"), self.manifest_digest)
            self.assertEqual(self.header(response, "Content-Type"), OCI_MANIFEST)
            self.assertEqual(response.length, len(self.manifest))
        self.assertEqual(self.upstream.count("GET", "/manifests/1"), 1)
        response, body = self.get("/v2/library/app/manifests/" + self.manifest_digest)
        self.assertEqual(body, self.manifest)
        self.assertEqual(self.upstream.count("GET", "/manifests/sha256"), 0)

    def test_blob_miss_then_hit(self):
        """A blob is fetched once, verified, stored, then served from disk."""
        for _ in range(2):
            response, body = self.get("/v2/library/app/blobs/" + self.layer_digest)
            self.assertEqual(response.code, 200)
            self.assertEqual(body, self.layer)
            self.assertEqual(response.length, len(self.layer))
            self.assertEqual(self.header(response, "Docker-Content-Digest"), self.layer_digest)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        self.assertIsNotNone(self.app.storage.stat_blob(self.layer_digest))
        self.assertEqual(self.app.metrics.hits._value.get(), 1)
        self.assertEqual(self.app.metrics.misses._value.get(), 1)

    def test_single_flight_for_concurrent_clients(self):
        """Five clients asking while the body is still arriving cause one upstream GET and get identical bodies."""
        self.upstream.hold[self.layer_digest] = 50_000
        first = self.request("GET", "/v2/library/app/blobs/" + self.layer_digest)
        others = [self.request("GET", "/v2/library/app/blobs/" + self.layer_digest) for _ in range(4)]
        bodies = [self.read_body(self.successResultOf(d)) for d in [first] + others]
        for b in bodies:
            self.assertNoResult(b)  # body not complete: upstream is still sending
        self.upstream.release()
        self.flush()
        for b in bodies:
            self.assertEqual(self.successResultOf(b), self.layer)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        self.assertEqual(self.app.metrics.coalesced.labels("oci", "fake")._value.get(), 4)

    def test_corrupt_blob_is_never_served_whole_nor_stored(self):
        """Bytes that do not match the digest: clients see a broken body and nothing is cached."""
        self.upstream.corrupt.add(self.layer_digest)
        d = self.request("GET", "/v2/library/app/blobs/" + self.layer_digest)
        # Either the response never completes its headers or its body fails: never a whole body.
        if d.called and not isinstance(d.result, Exception) and hasattr(d.result, "code"):
            self.failureResultOf(self.read_body(self.successResultOf(d)))
        else:
            self.failureResultOf(d)
        self.assertIsNone(self.app.storage.stat_blob(self.layer_digest))
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])
        self.assertEqual(self.app.metrics.upstream_errors.labels("oci", "fake", "digest_mismatch")._value.get(), 1)
        self.upstream.corrupt.clear()
        response, data = self.get("/v2/library/app/blobs/" + self.layer_digest)
        self.assertEqual(data, self.layer)

    def test_upstream_cut_mid_blob_aborts_clients(self):
        """An upstream that dies mid-body leaves clients with an incomplete body and no file."""
        self.upstream.hold[self.layer_digest] = 10_000
        response = self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + self.layer_digest))
        body = self.read_body(response)
        self.upstream.release(fail=True)
        self.flush()
        self.failureResultOf(body)
        self.assertEqual(self.app.metrics.upstream_errors.labels("oci", "fake", "body")._value.get(), 1)
        self.assertIsNone(self.app.storage.stat_blob(self.layer_digest))
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])

    def test_range_requests(self):
        """Single ranges answer 206 with Content-Range; past the end is 416."""
        self.get("/v2/library/app/blobs/" + self.layer_digest)
        response, body = self.get("/v2/library/app/blobs/" + self.layer_digest, headers={"Range": "bytes=10-19"})
        self.assertEqual((response.code, body), (206, self.layer[10:20]))
        self.assertEqual(self.header(response, "Content-Range"), f"bytes 10-19/{len(self.layer)}")
        response, body = self.get("/v2/library/app/blobs/" + self.layer_digest, headers={"Range": "bytes=999999-"})
        self.assertEqual(response.code, 416)
        self.assertEqual(self.header(response, "Content-Range"), f"bytes */{len(self.layer)}")

    def test_huge_range_numbers(self):
        """Range values with thousands of digits: 416 past the end, the whole tail for a huge end, never 500."""
        self.get("/v2/library/app/blobs/" + self.layer_digest)
        path = "/v2/library/app/blobs/" + self.layer_digest
        response, _ = self.get(path, headers={"Range": "bytes=" + "9" * 5000 + "-"})
        self.assertEqual(response.code, 416)
        response, body = self.get(path, headers={"Range": "bytes=10-" + "9" * 5000})
        self.assertEqual((response.code, body), (206, self.layer[10:]))
        response, body = self.get(path, headers={"Range": "bytes=-" + "9" * 5000})
        self.assertEqual((response.code, body), (206, self.layer))
        response, body = self.get(path, headers={"Range": "bytes=\u0661-\u0662"})
        self.assertEqual((response.code, body), (200, self.layer))

    def test_oversized_manifest_without_length_is_cut_while_streaming(self):
        """A 6 MiB manifest sent without Content-Length: refused (502) and not stored; the read stops at the limit."""
        from harbor_cache import limited_body as body_module

        seen = []
        original = body_module._Limited.dataReceived

        def counting(protocol, data):
            if not protocol.done.called:  # what the reader takes in before it gives up
                seen.append(len(data))
            return original(protocol, data)

        self.patch(body_module._Limited, "dataReceived", counting)
        self.upstream.add_manifest("library/app", "huge", {"schemaVersion": 2, "pad": "x" * (6 << 20)})
        self.upstream.no_length = True
        response, body = self.get("/v2/library/app/manifests/huge")
        self.assertEqual(response.code, 502)
        self.assertLessEqual(sum(seen), (4 << 20) + 65536)
        self.upstream.no_length = False
        self.assertEqual(self.upstream.count("GET", "/manifests/huge"), 1)

    def test_head_blob_does_not_download(self):
        """HEAD of an uncached blob asks upstream with HEAD only."""
        response, body = self.get("/v2/library/app/blobs/" + self.layer_digest, "HEAD")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(self.header(response, "Content-Length"), str(len(self.layer)))
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 0)
        self.assertEqual(self.upstream.count("HEAD", "/blobs/"), 1)

    def test_unknown_things_are_404_and_remembered(self):
        """Upstream 404s map to MANIFEST_UNKNOWN/BLOB_UNKNOWN and are not asked again within the negative TTL."""
        for _ in range(2):
            response, body = self.get("/v2/library/app/manifests/nope")
            self.assertEqual(response.code, 404)
            self.assertEqual(json.loads(body)["errors"][0]["code"], "MANIFEST_UNKNOWN")
        self.assertEqual(self.upstream.count("GET", "/manifests/nope"), 1)
        self.clock.advance(61)
        self.get("/v2/library/app/manifests/nope")
        self.assertEqual(self.upstream.count("GET", "/manifests/nope"), 2)
        missing = sha(b"missing")
        response, body = self.get("/v2/library/app/blobs/" + missing)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "BLOB_UNKNOWN")

    def test_bad_input(self):
        """Bad names and digests get 400s in the error format before any upstream call; a reference that
        is no valid tag names no manifest: 404 MANIFEST_UNKNOWN (the conformance suite's .INVALID_MANIFEST_NAME)."""
        cases = [
            ("/v2/Library/app/manifests/1", 400, "NAME_INVALID"),
            ("/v2/library/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
            ("/v2/library/app/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
            ("/v2/library/app/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
            ("/v2/library/app/manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"),
        ]
        for path, status, code in cases:
            response, body = self.get(path)
            self.assertEqual(response.code, status, path)
            self.assertEqual(json.loads(body)["errors"][0]["code"], code)
        self.assertEqual(sum(self.upstream.requests.values()), 0)

    def test_tag_revalidated_with_head_after_ttl(self):
        """After the TTL a tag is checked with HEAD; an unchanged digest costs no GET."""
        self.get("/v2/library/app/manifests/1")
        self.clock.advance(301)
        response, body = self.get("/v2/library/app/manifests/1")
        self.assertEqual(body, self.manifest)
        self.assertEqual(self.upstream.count("HEAD", "/manifests/1"), 1)
        self.assertEqual(self.upstream.count("GET", "/manifests/1"), 1)
        # within the (restarted) TTL: no upstream traffic at all
        self.get("/v2/library/app/manifests/1")
        self.assertEqual(self.upstream.count("HEAD", "/manifests/1"), 1)

    def test_changed_tag_is_fetched_again(self):
        """When upstream moved the tag, the new manifest is fetched and served."""
        self.get("/v2/library/app/manifests/1")
        new_body, new_digest = self.upstream.add_manifest(
            "library/app", "1", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}
        )
        self.clock.advance(301)
        response, body = self.get("/v2/library/app/manifests/1")
        self.assertEqual((body, self.header(response, "Docker-Content-Digest")), (new_body, new_digest))

    def test_stale_tag_served_when_upstream_fails(self):
        """Upstream 5xx after the TTL: the cached manifest is served with a Warning."""
        self.get("/v2/library/app/manifests/1")
        self.clock.advance(301)
        self.upstream.status = 503
        response, body = self.get("/v2/library/app/manifests/1")
        self.assertEqual((response.code, body), (200, self.manifest))
        self.assertEqual(self.header(response, "Warning"), '110 - "Response is Stale"')

    def test_nothing_cached_and_upstream_down_is_503(self):
        """No cached copy and an upstream error: 503 in the error format."""
        self.upstream.status = 500
        response, body = self.get("/v2/library/app/manifests/1")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "UPSTREAM_UNAVAILABLE")

    def test_accept_negotiation(self):
        """A manifest type the client does not accept is 404, an index is returned as is."""
        response, body = self.get(
            "/v2/library/app/manifests/1", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        )
        self.assertEqual(response.code, 404)
        index_body, _ = self.upstream.add_manifest(
            "library/app", "multi", {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}, INDEX
        )
        response, body = self.get(
            "/v2/library/app/manifests/multi",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        self.assertEqual((response.code, body), (200, index_body))
        self.assertEqual(self.header(response, "Content-Type"), INDEX)

    def test_by_digest_served_as_stored_whatever_accept_says(self):
        """A known digest requested with a Docker-v2-only Accept: 200 with the stored type (by tag: 404)."""
        self.get("/v2/library/app/manifests/1")
        response, body = self.get(
            "/v2/library/app/manifests/" + self.manifest_digest,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        self.assertEqual((response.code, body), (200, self.manifest))
        self.assertEqual(self.header(response, "Content-Type"), OCI_MANIFEST)

    def test_if_none_match_gives_304(self):
        """If-None-Match with the manifest's ETag (by tag or digest, GET or HEAD): 304 without a body."""
        response, _ = self.get("/v2/library/app/manifests/1")
        etag = self.header(response, "ETag")
        self.assertEqual(etag, '"%s"' % self.manifest_digest)
        for ref in ("1", self.manifest_digest):
            for method in ("GET", "HEAD"):
                for value in (etag, "W/" + etag, '"sha256:other", ' + etag):
                    response, body = self.get(
                        "/v2/library/app/manifests/" + ref, method=method, headers={"If-None-Match": value}
                    )
                    self.assertEqual((response.code, body), (304, b""), (ref, method, value))
                    self.assertEqual(self.header(response, "Docker-Content-Digest"), self.manifest_digest)
        response, body = self.get("/v2/library/app/manifests/1", headers={"If-None-Match": '"sha256:other"'})
        self.assertEqual((response.code, body), (200, self.manifest))

    def test_if_none_match_is_the_shared_matcher(self):
        """The grammar.etags rules, as on /artifacts: a comma inside a quoted tag does not split it."""
        for value, status in (
            ('"other, %s"' % self.manifest_digest, 200),  # (a split on every comma said 304)
            (self.manifest_digest, 304),
            ("*", 304),
        ):
            response, _ = self.get("/v2/library/app/manifests/1", headers={"If-None-Match": value})
            self.assertEqual(response.code, status, value)

    def test_manifest_digest_verified(self):
        """A manifest by digest whose body does not hash to it is refused, not stored."""
        wrong = sha(b"something else")
        self.upstream.manifests[("library/app", wrong)] = (self.manifest, OCI_MANIFEST)
        response, body = self.get("/v2/library/app/manifests/" + wrong)
        self.assertEqual(response.code, 502)
        self.assertIsNone(self.app.storage.stat_blob(wrong))

    def test_hits_update_access_in_batches(self):
        """Hits touch memory only; a flush writes last access and counts in one go."""
        self.get("/v2/library/app/blobs/" + self.layer_digest)
        for _ in range(3):
            self.get("/v2/library/app/blobs/" + self.layer_digest)
        from twisted.internet.defer import Deferred

        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(self.app.access.flush())), 1)
        entry = self.successResultOf(Deferred.fromCoroutine(self.app.index.get_entry("blob", "", self.layer_digest)))
        self.assertEqual(entry.access_count, 4)  # every read: the miss and three hits
        self.assertEqual(self.app.access.totals, {"misses": 1, "hits": 3})

    def test_foreign_media_type_served_as_octet_stream(self):
        """Issue 24.1: a proxied manifest whose upstream calls it text/html (header and body) is stored, but served
        as application/octet-stream, by tag and by digest, with the sandboxing policy: never as a page of ours."""
        hostile = {"mediaType": "text/html", "schemaVersion": 2, "x": "<script>document.title='ran'</script>"}
        body, digest = self.upstream.add_manifest("library/app", "page", hostile, media_type="text/html")
        for path in ("/v2/library/app/manifests/page", "/v2/library/app/manifests/" + digest):
            for method in ("GET", "HEAD", "GET"):  # a miss, then hits from memory
                response, got = self.get(path, method)
                self.assertEqual(response.code, 200, (path, method))
                self.assertEqual(got, b"" if method == "HEAD" else body)
                self.assertEqual(self.header(response, "Content-Type"), "application/octet-stream", (path, method))
                self.assertEqual(self.header(response, "Docker-Content-Digest"), digest)
                self.assertEqual(self.header(response, "Content-Security-Policy"), "default-src 'none'; sandbox")
                self.assertEqual(self.header(response, "X-Content-Type-Options"), "nosniff")
        # By tag, a client asking only for text/html is not given it (the type it would be served as is not that).
        response, _ = self.get("/v2/library/app/manifests/page", headers={"Accept": "text/html"})
        self.assertEqual(response.code, 404)
        response, _ = self.get("/v2/library/app/manifests/page", headers={"Accept": "application/octet-stream"})
        self.assertEqual(response.code, 200)
        # Manifest types are served as they are.
        response, _ = self.get("/v2/library/app/manifests/1")
        self.assertEqual(self.header(response, "Content-Type"), OCI_MANIFEST)
