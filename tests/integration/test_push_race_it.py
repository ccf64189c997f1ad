"""skopeo pushes an image whose largest layer is being pulled cold at that moment.

skopeo HEADs each blob to decide whether to upload it.  A blob that is only
in flight must not exist for that HEAD (or the HEAD must wait for its commit):
otherwise skopeo skips the upload and the manifest PUT fails with
MANIFEST_BLOB_UNKNOWN.
"""

import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import push_support, support


class PushDuringColdPullTests(SynchronousTestCase):
    def test_skopeo_push_while_the_same_layer_is_pulled_cold(self):
        """The push succeeds and the pushed image reads back whole; the cold pull completes too."""
        support.require("skopeo")
        reg, images = support.shared_upstream()
        layout, _ = support.oci_layout()
        large = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
        fault = oci.FaultUpstream(reg.url)
        self.addCleanup(fault.close)
        # slow enough that the push surely lands while the layer is in flight
        fault.set_rules({"method": "GET", "path": large["digest"], "mode": "rate", "rate": 25_000_000, "times": 1})
        srv = support.HarborServer(support.oci_config(fault.url, routes=["library/*"]))
        self.addCleanup(srv.close)
        push_support.ensure_user(srv, *push_support.WRITER, "read-write")

        pull, result = oci.start_fetch("%s/v2/library/test/blobs/%s" % (srv.url, large["digest"]))
        oci.wait_metric(srv, "harbor_cache_upstream_bytes", lambda v: v >= 10_000_000, front="oci", timeout=30)
        started = time.monotonic()
        cp = support.skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            "%s:%s" % push_support.WRITER,
            "oci:%s:large" % layout,
            "docker://%s/hosted/race:1" % srv.hostport,
            timeout=300,
        )
        support.check_ok(cp)
        pull.join(120)
        self.assertEqual(
            (result.status, result.length, result.digest, result.error), (200, large["size"], large["digest"], None)
        )
        self.assertLess(time.monotonic() - started, 120)
        back = support.skopeo("inspect", "--tls-verify=false", "--raw", "docker://%s/hosted/race:1" % srv.hostport)
        support.check_ok(back)
        self.assertIn(large["digest"], back.stdout)
        got = oci.fetch("%s/v2/hosted/race/blobs/%s" % (srv.url, large["digest"]), keep=False)
        self.assertEqual((got.status, got.length, got.digest), (200, large["size"], large["digest"]))
