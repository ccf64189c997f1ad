"""Single-flight downloads seen from outside: many clients, one upstream GET, identical bodies.

Counted in the real registry's access log (and, when the fault proxy slows
the upstream down so every client surely arrives mid-download, in the
proxy's log too).
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

CLIENTS = 50


class CoalescingTests(SynchronousTestCase):
    def setUp(self):
        self.reg, self.images = support.shared_upstream()

    def _server(self, upstream_url):
        srv = support.HarborServer(oci.harbor_config(upstream_url))
        self.addCleanup(srv.close)
        return srv

    def assertAllCorrect(self, results, digest, size):
        for i, r in enumerate(results):
            self.assertEqual((r.status, r.error, r.length, r.digest), (200, None, size, digest), "client %d" % i)
        bodies = {r.body for r in results}
        self.assertEqual(len(bodies), 1)

    def test_fifty_cold_gets_one_upstream_get(self):
        """50 concurrent cold GETs of one blob: one upstream GET, 50 identical correct bodies."""
        layer = self.images["images"]["multi"]["manifests"]["arm64"]["layers"][0]
        path = "/v2/library/test/blobs/" + layer["digest"]
        srv = self._server(self.reg.url)
        before = self.reg.count_requests("GET", path)
        results = oci.fetch_concurrently([srv.url + path] * CLIENTS)
        self.assertAllCorrect(results, layer["digest"], layer["size"])
        self.assertEqual(self.reg.wait_requests("GET", path, before + 1), before + 1)
        # a second GET would show up within a moment; it must not
        self.assertEqual(self.reg.wait_requests("GET", path, before + 2, timeout=1), before + 1)
        # every client was counted once: one miss, the rest joined the download or hit the file
        self.assertEqual(oci.metric(srv, "harbor_cache_misses"), 1)
        joined = oci.metric(srv, "harbor_cache_coalesced_waits", front="oci")
        hits = oci.metric(srv, "harbor_cache_hits")
        self.assertEqual(joined + hits, CLIENTS - 1)

    def test_fifty_gets_all_join_a_slow_download(self):
        """With a slow upstream all 50 clients join the one download in flight."""
        layer = self.images["images"]["multi"]["manifests"]["arm64"]["layers"][1]
        path = "/v2/library/test/blobs/" + layer["digest"]
        fault = oci.FaultUpstream(self.reg.url)
        self.addCleanup(fault.close)
        # about 2 s for the whole body: every client is in long before the end
        fault.set_rules({"path": path, "mode": "rate", "rate": layer["size"] // 2})
        srv = self._server(fault.url)
        before = self.reg.count_requests("GET", path)
        results = oci.fetch_concurrently([srv.url + path] * CLIENTS)
        self.assertAllCorrect(results, layer["digest"], layer["size"])
        self.assertEqual(fault.wait_requests("GET", path, 1), 1)
        self.assertEqual(self.reg.wait_requests("GET", path, before + 2, timeout=1), before + 1)
        self.assertEqual(oci.metric(srv, "harbor_cache_coalesced_waits", front="oci"), CLIENTS - 1)
        # the clients are done once the digest matched; the commit (and the gauge's drop) follows
        self.assertEqual(oci.wait_metric(srv, "harbor_cache_inflight_downloads", lambda v: v == 0, front="oci"), 0)

    def test_large_blob_ten_clients_with_late_joiners(self):
        """Large layer, 5 clients at once, 4 more mid-download, 1 after: one upstream GET, all bodies right."""
        layer = max(self.images["images"]["large"]["layers"], key=lambda l: l["size"])
        size, digest = layer["size"], layer["digest"]
        path = "/v2/library/test/blobs/" + digest
        fault = oci.FaultUpstream(self.reg.url)
        self.addCleanup(fault.close)
        fault.set_rules({"path": path, "mode": "rate", "rate": 48 << 20})  # ~2.5 s for 120 MiB
        srv = self._server(fault.url)
        before = self.reg.count_requests("GET", path)
        early = [oci.start_fetch(srv.url + path) for _ in range(5)]
        arrived = oci.wait_metric(srv, "harbor_cache_upstream_bytes", lambda v: v >= size // 3, front="oci")
        self.assertLess(arrived, size, "the download finished before the late joiners could start")
        late = [oci.start_fetch(srv.url + path) for _ in range(4)]
        for t, _ in early + late:
            t.join(300)
        # the clients are done once the digest matched; the commit follows: "after" comes after it
        oci.wait_metric(srv, "harbor_cache_inflight_downloads", lambda v: v == 0, front="oci")
        after = oci.fetch(srv.url + path, keep=False)
        for i, (_, r) in enumerate(early + late):
            self.assertEqual((r.status, r.error, r.length, r.digest), (200, None, size, digest), "client %d" % i)
        self.assertEqual((after.status, after.error, after.digest), (200, None, digest))
        self.assertEqual(fault.wait_requests("GET", path, 1), 1)
        self.assertEqual(self.reg.wait_requests("GET", path, before + 2, timeout=1), before + 1)
        self.assertEqual(oci.metric(srv, "harbor_cache_coalesced_waits", front="oci"), 8)
        self.assertEqual(oci.metric(srv, "harbor_cache_hits"), 1)
        self.assertEqual(oci.metric(srv, "harbor_cache_upstream_bytes", front="oci"), size)
