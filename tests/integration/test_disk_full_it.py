"""harbor-cache on a small tmpfs that fills up: /health, cold pulls, and the documented remedy.

The data directory is a 96 MiB tmpfs mounted by the test (CI runs as root);
the test skips with a message when it cannot mount one.
"""

import json
import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support


def _mount_tmpfs(case, size="96m"):
    path = tempfile.mkdtemp(prefix="harbor-it-tmpfs-")
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path], capture_output=True, text=True)
    if cp.returncode != 0:
        os.rmdir(path)
        raise SkipTest("cannot mount a tmpfs for the disk-full tests (needs root): %s" % cp.stderr.strip())

    def _umount():
        subprocess.run(["umount", "-l", path], capture_output=True)
        shutil.rmtree(path, True)

    case.addCleanup(_umount)
    return path


def _fill(path, leave=0):
    """Write a filler file until only about ``leave`` bytes are free (0: until ENOSPC)."""
    fd = os.open(os.path.join(path, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                st = os.statvfs(path)
                free = st.f_bavail * st.f_frsize
                if leave and free - size < leave:
                    break
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
            if leave:
                break
    finally:
        os.close(fd)


class DiskFullTests(SynchronousTestCase):
    def test_full_disk_health_cold_pull_and_clear(self):
        """Below the floor: /health degraded; a cold blob gets 507 in OCI format; at 100% DELETE /api/v1/cache works."""
        mount = _mount_tmpfs(self)
        reg, images = support.shared_upstream()
        layers = sorted(images["images"]["single"]["layers"], key=lambda l: l["size"])
        srv = support.HarborServer(support.oci_config(reg.url), data_dir=os.path.join(mount, "data"), start=False)
        self.addCleanup(srv.close)
        # 96 MiB is below the default floor (1 GiB): /health starts degraded until the floor is lowered
        srv._daemon.start(srv.command(), env=srv.env, cwd=support.REPO_ROOT)
        srv._daemon.wait_ready(srv.url + "/health", 30, status=503)
        oci.set_runtime_settings(srv, cache_min_free_bytes=32 << 20)
        status, _, body = support.http("GET", srv.url + "/health")
        self.assertEqual(status, 200, body)
        # something cached, to be cleared later
        first = oci.fetch("%s/v2/library/test/blobs/%s" % (srv.url, layers[0]["digest"]), keep=False)
        self.assertEqual(first.status, 200)

        _fill(mount, leave=4 << 20)
        status, _, body = support.http("GET", srv.url + "/health")
        self.assertEqual(status, 503)
        self.assertIn("disk_space", json.loads(body)["problems"])

        big = layers[-1]
        self.assertGreater(big["size"], 0)
        _fill(mount)  # now 100% full
        got = oci.fetch("%s/v2/library/test/blobs/%s" % (srv.url, big["digest"]))
        self.assertEqual(got.status, 507, (got.status, got.error))
        self.assertEqual(oci.oci_error_codes(got.body), ["INSUFFICIENT_STORAGE"])

        token = srv.login()
        status, _, body = support.http("DELETE", srv.url + "/api/v1/cache", {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200, body)
        status, _, body = support.http("POST", srv.url + "/api/v1/cache/cleanup", {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200, body)

        os.unlink(os.path.join(mount, "filler"))
        again = oci.fetch("%s/v2/library/test/blobs/%s" % (srv.url, big["digest"]), keep=False)
        self.assertEqual((again.status, again.digest), (200, big["digest"]))
        status, _, _ = support.http("GET", srv.url + "/health")
        self.assertEqual(status, 200)
