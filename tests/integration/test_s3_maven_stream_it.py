"""A Maven file missing from the local tier streams from the bucket (issue 26): a harbor-cache process on
``backend = "s3"`` whose endpoint is `tests.s3_faults.FaultProxy` in front of moto.

The proxy holds the bucket's answer for the 50 MiB ``harness:big`` jar after its first MiB: the client
has its status, headers and first bytes while the bucket has not sent the rest (with the whole copy to
the tier first, it would have nothing until the bucket had sent it all); released, the body is whole and
the tier has the file again.  Then, each after a wipe of the tier: a Range is one ranged GET of the
object; a HEAD asks the bucket nothing; a bucket answer cut midway cuts the client's connection (never
a complete-looking body); a bucket answering 500s is a 503 ``STORAGE_UNAVAILABLE`` before any header.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support
from tests.integration import test_s3_storage_it as s3it
from tests.integration.test_s3_faults_it import moto_behind_faults
from tests.integration.test_s3_storage_it import key_of

BIG = "harness/big/1.0/big-1.0.jar"
MiB = 1024 * 1024


class S3MavenStreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.moto, self.proxy = moto_behind_faults(self)
        self.maven = support.shared_maven_upstream()
        config = support.maven_config(
            [{"id": "central", "url": self.maven.url}], server={"public_url": "http://127.0.0.1:@PORT@"}
        )
        self.srv = support.HarborServer(config + "\n" + s3it.storage_table(self.proxy.endpoint, max_attempts=2))
        self.addCleanup(self.srv.close)

    def wipe_tier(self) -> None:
        blobs = os.path.join(self.srv.data_dir, "blobs")
        shutil.rmtree(blobs)
        os.makedirs(blobs)

    def open(self, method: str = "GET", headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
        self.addCleanup(conn.close)
        conn.request(method, "/artifacts/central/" + BIG, headers=headers or {})
        return conn.getresponse()

    def test_a_tier_miss_streams_from_the_bucket(self) -> None:
        status, _, jar = support.http("GET", self.srv.url + "/artifacts/central/" + BIG, timeout=300)
        self.assertEqual(status, 200)
        self.assertGreater(len(jar), 40 * MiB)
        digest = "sha256:" + hashlib.sha256(jar).hexdigest()
        key = key_of(digest)
        # (committed after the client had its last byte: the object, then the rows of the jar and its .sha1)
        token = self.srv.login()
        deadline = time.monotonic() + 120
        while True:
            stats = json.loads(
                support.http("GET", self.srv.url + "/api/v1/cache/stats", {"Authorization": "Bearer " + token})[2]
            )
            if stats["entry_count"] >= 2:
                break
            self.assertLess(time.monotonic(), deadline, "never committed")
            time.sleep(0.2)
        self.assertIn(key, self.moto.keys())
        tier_file = os.path.join(self.srv.data_dir, *key.split("/"))

        # the bucket holds its answer after 1 MiB: the client has the first bytes meanwhile
        self.wipe_tier()
        held = self.proxy.add("hold", "GET", key, after_bytes=MiB)
        response = self.open()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.getheader("Content-Length"), str(len(jar)))
        first = response.read(256 * 1024)
        self.assertEqual(first, jar[: len(first)])
        self.assertTrue(
            held.reached.wait(30)
        )  # (the proxy's 1 MiB may still be on its way when the client has 256 KiB)
        self.assertFalse(held.gate.is_set())  # (the rest is still in the bucket)
        held.release()
        self.assertEqual(first + response.read(), jar)
        # the tier filled beside it (installed by a rename once verified: a moment after the client's last byte)
        deadline = time.monotonic() + 30
        while not os.path.exists(tier_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.path.getsize(tier_file), len(jar))
        self.proxy.clear()

        # a Range on a tier miss: that part, by a ranged GET of the object
        self.wipe_tier()
        status, _, part = support.http(
            "GET", self.srv.url + "/artifacts/central/" + BIG, {"Range": "bytes=1000-1999"}, timeout=120
        )
        self.assertEqual((status, part), (206, jar[1000:2000]))
        self.assertIn("bytes=1000-1999", [r.range for r in self.proxy.requests if key in r.target])
        deadline = time.monotonic() + 120
        while not os.path.exists(tier_file):  # (the fill beside it; installed by a rename: whole)
            self.assertLess(time.monotonic(), deadline, "the tier never filled")
            time.sleep(0.2)

        # a HEAD asks the bucket nothing
        self.wipe_tier()
        before = self.proxy.count("GET", key)
        status, headers, _ = support.http("HEAD", self.srv.url + "/artifacts/central/" + BIG)
        self.assertEqual((status, headers.get("Content-Length")), (200, str(len(jar))))
        self.assertEqual(self.proxy.count("GET", key), before)

        # the bucket's answer cut midway: the client's connection is cut too
        self.assertFalse(os.path.exists(tier_file))
        cut = self.proxy.add("cut", "GET", key, after_bytes=MiB)
        # (when the cut comes before the first chunk reached the client, the status line never comes either)
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            response = self.open()
            self.assertEqual(response.status, 200)
            response.read()
        self.assertTrue(cut.reached.is_set())
        self.proxy.clear()

        # a bucket that keeps failing: a clear 503 before any header
        self.wipe_tier()
        self.proxy.add("internal", "GET", key, count=100)
        status, _, body = support.http("GET", self.srv.url + "/artifacts/central/" + BIG, timeout=60)
        self.assertEqual(status, 503, body)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "STORAGE_UNAVAILABLE")
        self.proxy.clear()
        status, _, again = support.http("GET", self.srv.url + "/artifacts/central/" + BIG, timeout=300)
        self.assertEqual((status, again == jar), (200, True))
