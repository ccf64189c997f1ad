"""``[storage] redirect = true`` end to end: skopeo and podman pull through a harbor-cache whose blob GETs of
committed content answer 307 to presigned URLs of a real S3 API server (moto) on loopback.

moto runs without its signature check here (as in test_s3_storage_it): with it on, moto answers
query-signed (presigned) URLs with a 500 (tests/s3_support.py).  The URLs are checked against botocore's
own presigner in tests/unit/core/test_bucket_redirect.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from tests import s3_support
from tests.integration import support
from tests.integration import test_s3_storage_it as s3it
from tests.integration.oci_support import sha256_digest as sha256


class RedirectPullTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("skopeo", "podman")
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.moto = s3it.Moto()
        self.addCleanup(self.moto.close)
        self.reg, self.images = support.shared_upstream()
        config = support.oci_config(
            self.reg.url, server={"public_url": "http://127.0.0.1:@PORT@"}, routes=["library/*"]
        )  # fmt: skip
        table = s3it.storage_table(self.moto.endpoint) + "redirect = true\nredirect_expiry_seconds = 120\n"
        self.srv = support.HarborServer(config + "\n" + table)
        self.addCleanup(self.srv.close)
        self.tmp = tempfile.mkdtemp(prefix="harbor-it-s3-redirect-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def skopeo_pull(self, name: str) -> str:
        out = os.path.join(self.tmp, name)
        ref = "docker://%s/library/test:1" % self.srv.hostport
        support.check_ok(support.skopeo("copy", "--src-tls-verify=false", ref, "oci:%s:x" % out))
        return out

    def redirects_metric(self) -> float:
        text = urllib.request.urlopen(self.srv.url + "/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith('harbor_cache_redirects_total{front="oci"}'):
                return float(line.split()[-1])
        return 0.0

    def test_pulls_through_redirects(self) -> None:
        single = self.images["images"]["single"]
        layers = [layer["digest"] for layer in single["layers"]]
        self.skopeo_pull("cold")  # nothing committed yet: streamed from the download, as always
        self.assertEqual(self.redirects_metric(), 0)
        for digest in layers:
            self.assertIn(s3it.key_of(digest), self.moto.keys())

        # committed: the GET is a 307 to the bucket, the HEAD is answered here from the row
        path = "/v2/library/test/blobs/" + layers[0]
        status, headers, body = support.http("GET", self.srv.url + path)
        self.assertEqual((status, body), (307, b""))
        location = headers.get("Location")
        self.assertTrue(location.startswith(self.moto.endpoint + "/"), location)
        self.assertIn("X-Amz-Expires=120", location)
        status, _, whole = support.http("GET", location)  # no credentials: the URL is the grant
        self.assertEqual((status, sha256(whole)), (200, layers[0]))
        status, headers, _ = support.http("GET", self.srv.url + path, {"Range": "bytes=5-14"})
        self.assertEqual(status, 307)  # the Range is the client's to send again, and the store honours it
        location = headers.get("Location")
        status, _, part = support.http("GET", location, {"Range": "bytes=5-14"})
        self.assertEqual((status, part), (206, whole[5:15]))
        status, headers, _ = support.http("HEAD", self.srv.url + path)
        self.assertEqual(status, 200)
        self.assertIsNone(headers.get("Location"))
        self.assertEqual(headers.get("Content-Length"), str(len(whole)))

        # skopeo and podman follow the redirects to the bucket; the upstream is not asked again
        before = self.redirects_metric()
        upstream_gets = self.reg.count_requests("GET", "/blobs/" + layers[0])
        out = self.skopeo_pull("warm")
        with open(os.path.join(out, "blobs", "sha256", layers[0].partition(":")[2]), "rb") as f:
            self.assertEqual(sha256(f.read()), layers[0])
        root = os.path.join(self.tmp, "podman")
        support.check_ok(support.podman(root, "pull", "--tls-verify=false", "%s/library/test:1" % self.srv.hostport))
        self.assertGreaterEqual(self.redirects_metric() - before, 2 * (len(layers) + 1))  # layers + config, twice
        # an upstream GET would be logged a moment after its answer: give it that moment
        self.assertEqual(
            self.reg.wait_requests("GET", "/blobs/" + layers[0], upstream_gets + 1, timeout=2), upstream_gets
        )
        wanted = {("GET", path, "307", "redirect"), ("HEAD", path, "200", "hit")}
        deadline = time.monotonic() + 10  # (the access log file is flushed within a second)
        while True:
            access = self.access_lines()
            if wanted <= access or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(wanted - access, set())

    def access_lines(self) -> set[tuple[str, str, str, str]]:
        """(method, path, status, cache status) of the access log's lines (DATA/logs/access.log, JSON lines)."""
        try:
            with open(os.path.join(self.srv.data_dir, "logs", "access.log")) as f:
                lines = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return set()
        return {(e["method"], e["path"], e["status"], e["cache_status"]) for e in lines}
