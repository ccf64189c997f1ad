"""Upstream faults: a body cut or corrupted mid-way, a crashed or stalled upstream, an outage,
and remembered 404s.

The promise under test: a client never receives a complete-looking body
that is wrong, nothing half-written is kept, and a later request works.
Faults come from `oci_support.FaultUpstream` (a proxy in front of the
shared registry) or from stopping a registry of the test's own.
"""

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

IDLE_TIMEOUT = 2  # server.upstream_idle_timeout for the stall tests (seconds)


class BlobFaultTests(SynchronousTestCase):
    """One fault proxy and one harbor-cache for the class; each test uses a blob of its own."""

    def setUp(self):
        self.reg, self.images = support.shared_upstream()

        def make():
            fault = oci.FaultUpstream(self.reg.url)
            try:
                srv = support.HarborServer(oci.harbor_config(fault.url, upstream_idle_timeout=IDLE_TIMEOUT))
            except BaseException:
                fault.close()
                raise
            return fault, srv

        def close(pair):
            pair[1].close()
            pair[0].close()

        self.fault, self.srv = oci.class_fixture(self, make, close)
        if not self.fault.running():
            self.fault.start()
        self.fault.clear_rules()
        self.addCleanup(self.fault.clear_rules)

    def _layer(self, image, index, arch=None):
        img = self.images["images"][image]
        if arch:
            img = img["manifests"][arch]
        return img["layers"][index]

    def _url(self, digest):
        return "%s/v2/library/test/blobs/%s" % (self.srv.url, digest)

    def assertBrokenBody(self, result, size):
        """The client saw the response cut short: never all ``size`` bytes with a clean end.

        (A reset can also come before the status line was sent: status None.)
        """
        self.assertIn(result.status, (200, None))
        self.assertIsNotNone(result.error, "a failed download looked complete to the client")
        self.assertLess(result.length, size)

    def assertNothingKept(self, digest):
        # the download ends a moment after the client's broken body: look once it has (temp file gone, gauge 0)
        self.assertEqual(oci.wait_tmp_empty(self.srv), [])
        self.assertEqual(oci.wait_metric(self.srv, "harbor_cache_inflight_downloads", lambda v: v == 0, front="oci"), 0)
        self.assertFalse(os.path.exists(oci.blob_file(self.srv, digest)), "blob committed after a failed download")

    def assertRetryWorks(self, layer):
        again = oci.fetch(self._url(layer["digest"]))
        self.assertEqual(
            (again.status, again.error, again.length, again.digest), (200, None, layer["size"], layer["digest"])
        )
        self.assertTrue(os.path.exists(oci.stored_blob(self.srv, layer["digest"])))

    def test_connection_cut_mid_blob(self):
        """Upstream closes the connection after 200 kB: short body, nothing kept, a retry succeeds."""
        layer = self._layer("multi", 0, "arm64")
        self.fault.set_rules({"path": "/blobs/" + layer["digest"], "mode": "cut", "after": 200000, "times": 1})
        result = oci.fetch(self._url(layer["digest"]))
        self.assertBrokenBody(result, layer["size"])
        self.assertNothingKept(layer["digest"])
        self.assertRetryWorks(layer)
        self.assertEqual(self.fault.wait_requests("GET", "/blobs/" + layer["digest"], 2), 2)

    def test_upstream_killed_mid_blob(self):
        """The upstream process dies mid-body (SIGKILL): the client's body breaks; after restart a retry works."""
        layer = self._layer("single", 1)
        self.fault.set_rules({"path": "/blobs/" + layer["digest"], "mode": "hang", "after": 300000, "times": 1})
        before = oci.metric(self.srv, "harbor_cache_upstream_bytes", front="oci")
        thread, result = oci.start_fetch(self._url(layer["digest"]), keep=False)
        got = oci.wait_metric(self.srv, "harbor_cache_upstream_bytes", lambda v: v >= before + 300000, front="oci")
        self.assertEqual(got, before + 300000)
        self.fault.kill()
        thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertBrokenBody(result, layer["size"])
        self.assertNothingKept(layer["digest"])
        self.fault.start()
        self.assertRetryWorks(layer)

    def test_upstream_stalls_mid_blob(self):
        """No byte for longer than the idle timeout: the client's body breaks within a bounded time."""
        layer = self._layer("multi", 1, "amd64")
        self.fault.set_rules({"path": "/blobs/" + layer["digest"], "mode": "hang", "after": 100000, "times": 1})
        result = oci.fetch(self._url(layer["digest"]))
        self.assertBrokenBody(result, layer["size"])
        self.assertLess(result.finished - result.started, IDLE_TIMEOUT + 8)
        self.assertNothingKept(layer["digest"])
        self.assertRetryWorks(layer)

    def test_corrupted_bytes(self):
        """One flipped byte: the client's connection is aborted before the last byte, nothing is cached."""
        layer = self._layer("multi", 1, "arm64")
        digest = layer["digest"]
        self.fault.set_rules({"path": "/blobs/" + digest, "mode": "flip", "offset": 1000, "times": 1})
        result = oci.fetch(self._url(digest))
        self.assertBrokenBody(result, layer["size"])
        # everything but the held-back last byte may have been sent, never the whole body
        self.assertNotEqual(result.digest, digest)
        self.assertNothingKept(digest)
        deadline = time.monotonic() + 5
        while "BlobCorrupt" not in self.srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = self.srv.log_text()
        self.assertIn("BlobCorrupt", log)
        self.assertIn(digest, log)
        self.assertRetryWorks(layer)

    def test_no_headers_within_timeout(self):
        """An upstream that never answers: an OCI error within the timeout, not a hung client."""
        digest = self.images["images"]["multi"]["manifests"]["arm64"]["config"]
        self.fault.set_rules({"path": "/blobs/" + digest, "mode": "hang", "times": 1})
        started = time.monotonic()
        status, _, body = support.http("GET", self._url(digest), timeout=60)
        self.assertLess(time.monotonic() - started, IDLE_TIMEOUT + 8)
        self.assertIn(status, (502, 503, 504))
        self.assertIn(oci.oci_error_codes(body)[0], ("UPSTREAM_UNAVAILABLE", "UPSTREAM_ERROR"))
        self.assertNothingKept(digest)
        status, _, body = support.http("GET", self._url(digest))
        self.assertEqual((status, oci.sha256_digest(body)), (200, digest))


class OutageTests(SynchronousTestCase):
    """A registry of our own that goes down; tags revalidate at every request (TTL 0)."""

    def setUp(self):
        def make():
            layout, images = support.oci_layout()
            reg = support.Registry()
            try:
                support.push_layout(layout, reg.hostport, "library/test", names=["single"])
                srv = support.HarborServer(oci.harbor_config(reg.url))
                # these tests stop the upstream on purpose: auto-block (tested in
                # test_namespaces_it) would keep it skipped after it comes back
                oci.set_runtime_settings(srv, cache_tag_ttl_seconds=0, upstreams_block_after_failures=0)
            except BaseException:
                reg.close()
                raise
            return reg, srv, images

        def close(fixture):
            fixture[1].close()
            fixture[0].close()

        self.reg, self.srv, self.images = oci.class_fixture(self, make, close)
        if not self.reg.running():
            self.reg.start()
        self.addCleanup(lambda: self.reg.running() or self.reg.start())

    def _manifest(self, ref, method="GET"):
        return support.http(
            method, "%s/v2/library/test/manifests/%s" % (self.srv.url, ref), {"Accept": oci.OCI_MANIFEST}, timeout=30
        )

    def test_stale_manifest_when_upstream_down(self):
        """Tag cached, TTL expired, upstream down: the cached manifest with `Warning: 110`; fresh again after."""
        single = self.images["images"]["single"]
        status, headers, body = self._manifest("1")
        self.assertEqual((status, headers["Docker-Content-Digest"]), (200, single["digest"]))
        self.assertIsNone(headers.get("Warning"))
        heads = self.reg.count_requests("HEAD", "/v2/library/test/manifests/1")
        # TTL 0: the next request revalidates with a HEAD and is not stale
        status, headers, _ = self._manifest("1")
        self.assertEqual(status, 200)
        self.assertIsNone(headers.get("Warning"))
        self.assertEqual(self.reg.wait_requests("HEAD", "/v2/library/test/manifests/1", heads + 1), heads + 1)
        layer = single["layers"][0]
        support.http("GET", "%s/v2/library/test/blobs/%s" % (self.srv.url, layer["digest"]))

        self.reg.stop()
        status, headers, stale = self._manifest("1")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Warning"), oci.STALE_WARNING)
        self.assertEqual(headers["Docker-Content-Digest"], single["digest"])
        self.assertEqual(stale, body)
        status, headers, empty = self._manifest("1", method="HEAD")
        self.assertEqual((status, empty, headers.get("Warning")), (200, b"", oci.STALE_WARNING))
        # by digest and cached blobs never expire: no warning
        status, headers, _ = self._manifest(single["digest"])
        self.assertEqual((status, headers.get("Warning")), (200, None))
        status, _, blob = support.http("GET", "%s/v2/library/test/blobs/%s" % (self.srv.url, layer["digest"]))
        self.assertEqual((status, oci.sha256_digest(blob)), (200, layer["digest"]))
        self.assertGreaterEqual(oci.metric(self.srv, "harbor_cache_stale_served", front="oci"), 2)

        self.reg.start()
        status, headers, _ = self._manifest("1")
        self.assertEqual((status, headers.get("Warning")), (200, None))

    def test_nothing_cached_upstream_down(self):
        """Upstream down, nothing cached: 503 UPSTREAM_UNAVAILABLE in the OCI format, in well under 5 s."""
        self.reg.stop()
        missing = oci.sha256_digest(b"never pulled")
        for method, path in (
            ("GET", "/v2/library/test/manifests/never-pulled"),
            ("GET", "/v2/other/name/manifests/1"),
            ("GET", "/v2/library/test/blobs/" + missing),
            ("HEAD", "/v2/library/test/blobs/" + missing),
        ):
            started = time.monotonic()
            status, headers, body = support.http(method, self.srv.url + path, {"Accept": oci.OCI_MANIFEST}, timeout=30)
            self.assertLess(time.monotonic() - started, 5, path)
            self.assertEqual(status, 503, (method, path, body))
            if method == "GET":
                self.assertEqual(headers["Content-Type"].split(";")[0], "application/json")
                self.assertEqual(oci.oci_error_codes(body), ["UPSTREAM_UNAVAILABLE"])
        self.assertGreater(oci.metric(self.srv, "harbor_cache_upstream_errors", front="oci"), 0)


class NegativeCacheTests(SynchronousTestCase):
    def setUp(self):
        self.reg, self.images = support.shared_upstream()
        self.srv = support.HarborServer(oci.harbor_config(self.reg.url))
        self.addCleanup(self.srv.close)

    def _twice(self, method, path, accept=oci.OCI_MANIFEST):
        """Ask twice; returns both answers and how many times the upstream was asked in between."""
        before = self.reg.count_requests(method, path)
        first = support.http(method, self.srv.url + path, {"Accept": accept})
        asked = self.reg.wait_requests(method, path, before + 1)
        second = support.http(method, self.srv.url + path, {"Accept": accept})
        total = self.reg.wait_requests(method, path, asked + 1, timeout=1)
        return first, second, asked - before, total - asked

    def test_404_remembered(self):
        """Upstream 404 for a tag and a blob: 404 in the OCI format, and the repeat does not reach upstream."""
        missing = oci.sha256_digest(b"not in the registry")
        for method, path, code in (
            ("GET", "/v2/library/test/manifests/no-such-tag", "MANIFEST_UNKNOWN"),
            ("GET", "/v2/library/test/blobs/" + missing, "BLOB_UNKNOWN"),
            ("HEAD", "/v2/library/test/blobs/" + oci.sha256_digest(b"x"), None),
        ):
            first, second, upstream_first, upstream_second = self._twice(method, path)
            for status, _, body in (first, second):
                self.assertEqual(status, 404, path)
                if code:
                    self.assertEqual(oci.oci_error_codes(body), [code])
            self.assertEqual((upstream_first, upstream_second), (1, 0), path)

    def test_404_forgotten_after_negative_ttl(self):
        """With cache.negative_ttl_seconds = 1 the upstream is asked again once the second has passed."""
        oci.set_runtime_settings(self.srv, cache_negative_ttl_seconds=1)
        path = "/v2/library/test/manifests/still-missing"
        _, _, upstream_first, upstream_second = self._twice("GET", path)
        self.assertEqual((upstream_first, upstream_second), (1, 0))
        before = self.reg.count_requests("GET", path)
        time.sleep(1.2)
        status, _, _ = support.http("GET", self.srv.url + path, {"Accept": oci.OCI_MANIFEST})
        self.assertEqual(status, 404)
        self.assertEqual(self.reg.wait_requests("GET", path, before + 1), before + 1)
