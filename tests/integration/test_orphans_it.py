"""A file left under DATA/blobs/ with no index row (a crash between the rename and the insert) goes at the next start."""

import hashlib
import json
import os
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support


class OrphanTests(SynchronousTestCase):
    def test_orphan_removed_after_restart_and_counted_until_then(self):
        """An old orphan goes at start-up; a young one is counted in stats and kept until it is old enough."""
        reg, images = support.shared_upstream()
        srv = support.HarborServer(support.oci_config(reg.url))
        self.addCleanup(srv.close)
        srv.stop()
        blobs = os.path.join(srv.data_dir, "blobs", "sha256")
        paths = {}
        for name, age in (("old", 3600), ("young", 0)):
            data = os.urandom(300_000)
            hexdigest = hashlib.sha256(data).hexdigest()
            path = os.path.join(blobs, hexdigest[:2], hexdigest)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (time.time() - age, time.time() - age))
            paths[name] = path
        srv.start()  # the first eviction pass runs at start and sweeps
        deadline = time.monotonic() + 10
        while os.path.exists(paths["old"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.exists(paths["old"]), "the old orphan is still there")
        self.assertTrue(os.path.exists(paths["young"]), "a young file may be a commit in progress")
        token = srv.login()
        status, _, body = support.http("GET", srv.url + "/api/v1/cache/stats", {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["total_size"], 300_000)
        oci.set_runtime_settings(srv, cache_orphan_grace_seconds=0)
        status, _, _ = support.http("POST", srv.url + "/api/v1/cache/cleanup", {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200)
        self.assertFalse(os.path.exists(paths["young"]))
