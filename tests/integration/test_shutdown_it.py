"""SIGTERM in the middle of transfers: a clean stop, with no traceback in the log."""

import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support


class ShutdownTests(SynchronousTestCase):
    def test_sigterm_mid_download_logs_no_traceback(self):
        """Cold and warm downloads in progress at SIGTERM: the process stops, the log has no traceback."""
        reg, images = support.shared_upstream()
        layers = sorted(images["images"]["large"]["layers"], key=lambda l: l["size"])
        cold, warm = layers[-1], layers[-2]
        fault = oci.FaultUpstream(reg.url)
        self.addCleanup(fault.close)
        srv = support.HarborServer(oci.harbor_config(fault.url))
        self.addCleanup(srv.close)
        warm_url = "%s/v2/library/test/blobs/%s" % (srv.url, warm["digest"])
        self.assertEqual(oci.fetch(warm_url, keep=False).status, 200)
        fault.set_rules({"method": "GET", "path": cold["digest"], "mode": "rate", "rate": 2_000_000, "times": 1})
        cold_url = "%s/v2/library/test/blobs/%s" % (srv.url, cold["digest"])
        # readers at full speed and slow ones (paused transports), on a cold and a warm blob
        threads = [
            oci.start_fetch(cold_url, delay=0.2, chunk=64 << 10),
            oci.start_fetch(warm_url, delay=0.5, chunk=64 << 10),
            oci.start_fetch(cold_url),
        ]
        time.sleep(2)
        started = time.monotonic()
        srv.stop()
        self.assertLess(time.monotonic() - started, 5)
        for thread, _ in threads:
            thread.join(30)
        text = srv.log_text()
        # The log is JSON: a traceback shows as a logged failure of level critical.
        self.assertNotIn("Traceback", text, text[-4000:])
        self.assertNotIn('"critical"', text, text[-4000:])
        self.assertNotIn("Producer was not unregistered", text)
