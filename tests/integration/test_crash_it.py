"""A server killed (SIGKILL) in the middle of a download leaves nothing half-written behind.

The promise of the storage design: content appears under its digest name only
by an atomic rename after verification, so a crash can leave at most a temp
file, and the next start removes it.
"""

import os
import signal

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support


class CrashRecoveryTests(SynchronousTestCase):
    def test_sigkill_mid_download(self):
        """Killed mid-blob: the client sees a broken body, no file is under the digest, restart cleans tmp/."""
        reg, images = support.shared_upstream()
        layer = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
        digest, size = layer["digest"], layer["size"]
        fault = oci.FaultUpstream(reg.url)
        self.addCleanup(fault.close)
        # slow the upstream down so the kill surely lands mid-body
        fault.set_rules({"method": "GET", "path": digest, "mode": "rate", "rate": 20_000_000, "times": 1})
        srv = support.HarborServer(oci.harbor_config(fault.url))
        self.addCleanup(srv.close)
        url = "%s/v2/library/test/blobs/%s" % (srv.url, digest)

        thread, first = oci.start_fetch(url)
        got = oci.wait_metric(srv, "harbor_cache_upstream_bytes", lambda v: v >= 5_000_000, front="oci")
        self.assertGreaterEqual(got, 5_000_000)
        srv._daemon._signal(signal.SIGKILL)
        srv._daemon.proc.wait(10)
        thread.join(60)

        self.assertTrue(first.error is not None or first.length < size, "client got a whole body from a crash")
        self.assertFalse(os.path.exists(oci.blob_file(srv, digest)))
        self.assertNotEqual(oci.tmp_files(srv), [], "the crash should have left a partial temp file")

        srv.start()  # same data dir
        self.assertEqual(oci.tmp_files(srv), [])
        again = oci.fetch(url, keep=False)
        self.assertEqual((again.status, again.length, again.digest), (200, size, digest))
        self.assertTrue(os.path.exists(oci.stored_blob(srv, digest)))
