"""curl through the Maven front against nginx behind the fault proxy: truncated bodies and checksum sidecars.

- An upstream that sends a jar with no Content-Length, closes half way and
  fails its ``.sha1``: curl must see a broken transfer, nothing is stored, and
  once the upstream recovers the whole file is served and kept.
- The ``.sha1`` fetched to verify a jar is stored: curl's next request for it
  is a cache hit, no second upstream request.
"""

import hashlib
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

BIG = "harness/big/1.0/big-1.0.jar"


def curl(url, out):
    """curl the URL into ``out``: (exit code, HTTP status, X-Cache-Status or None)."""
    support.require("curl")
    cp = support.run(["curl", "-sS", "-o", out, "-D", "-", "-w", "\nSTATUS %{http_code}\n", url], timeout=120)
    status = int(cp.stdout.rsplit("STATUS ", 1)[1].strip()) if "STATUS " in cp.stdout else 0
    cache = None
    for line in cp.stdout.splitlines():
        if line.lower().startswith("x-cache-status:") or line.lower().startswith("x-cache:"):
            cache = line.split(":", 1)[1].strip()
    return cp.returncode, status, cache


def file_sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class MavenFaultTests(SynchronousTestCase):
    def setUp(self):
        self.up = support.shared_maven_upstream()
        self.fault = oci.FaultUpstream(self.up.url.rstrip("/"))
        self.addCleanup(self.fault.close)
        self.srv = support.HarborServer(support.maven_config([{"id": "central", "url": self.fault.url + "/"}]))
        self.addCleanup(self.srv.close)
        self.tmp = tempfile.mkdtemp(prefix="harbor-it-mvnfault-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.big_path = os.path.join(self.up.root, BIG)
        self.big_size = os.path.getsize(self.big_path)

    def jar_gets(self, at_least, timeout=15):
        """The proxy's GETs of the jar itself (not its .sha1), once ``at_least`` (it logs after the response)."""
        return self.fault.wait_requests("GET", BIG, at_least, timeout=timeout, suffix=True)

    def url(self, path):
        return "%s/artifacts/central/%s" % (self.srv.url, path)

    def test_truncated_body_without_length_is_neither_served_whole_nor_kept(self):
        """No Content-Length, closed half way, .sha1 500: curl fails, nothing stored; after recovery all is well."""
        half = self.big_size // 2
        self.fault.set_rules(
            {"method": "GET", "path": BIG + ".sha1", "mode": "status", "status": 500},
            {"method": "GET", "path": BIG, "mode": "truncate", "after": half, "times": 1},
        )
        out = os.path.join(self.tmp, "first.jar")
        code, status, _ = curl(self.url(BIG), out)
        got = os.path.getsize(out) if os.path.exists(out) else 0
        self.assertTrue(code != 0 or got == self.big_size, "curl took a %d-byte body as whole (exit 0)" % got)
        self.assertLess(got, self.big_size)
        oci.wait_tmp_empty(self.srv)
        self.assertEqual(oci.tmp_files(self.srv), [])

        self.fault.clear_rules()
        again = os.path.join(self.tmp, "again.jar")
        code, status, _ = curl(self.url(BIG), again)
        self.assertEqual((code, status), (0, 200))
        self.assertEqual(os.path.getsize(again), self.big_size)
        self.assertEqual(file_sha1(again), file_sha1(self.big_path))
        # the second fetch went upstream (nothing had been kept) and is now what is served
        self.assertEqual(self.jar_gets(2), 2)
        third = os.path.join(self.tmp, "third.jar")
        self.assertEqual(curl(self.url(BIG), third)[:2], (0, 200))
        self.assertEqual(file_sha1(third), file_sha1(self.big_path))
        # a hit: a third upstream GET would be logged a moment after the answer; give it that moment
        self.assertEqual(self.jar_gets(3, timeout=2), 2)

    def test_sha1_fetched_for_verification_is_a_hit_next_time(self):
        """curl the jar, then its .sha1: the .sha1 is served from the cache (one upstream .sha1 request in all)."""
        out = os.path.join(self.tmp, "big.jar")
        self.assertEqual(curl(self.url(BIG), out)[:2], (0, 200))
        self.assertEqual(self.fault.wait_requests("GET", BIG + ".sha1", 1), 1)
        sha_out = os.path.join(self.tmp, "big.jar.sha1")
        self.assertEqual(curl(self.url(BIG + ".sha1"), sha_out)[:2], (0, 200))
        with open(sha_out) as f:
            self.assertEqual(f.read().split()[0], file_sha1(self.big_path))
        # a second upstream .sha1 GET would be logged a moment after the answer; give it that moment
        self.assertEqual(self.fault.wait_requests("GET", BIG + ".sha1", 2, timeout=2, suffix=True), 1)
