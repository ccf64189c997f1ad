"""Moving a file-system cache to a bucket, end to end (docs/operations.md, "Moving a file-system cache to a bucket").

A harbor-cache process on the filesystem backend caches an image (skopeo)
and a Maven file; it is stopped; ``python -m harbor_cache.migrate_storage``
copies its ``blobs/`` into a bucket of a real S3 API server (moto) on
loopback; ``blobs/`` is wiped, so nothing can come from the old disk; the
node starts again on the same data directory (the same index) with
``backend = "s3"``: the image and the file are served again and the
upstreams see no new GET of the content.  A second run of the command
copies nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests import s3_support
from tests.integration import support
from tests.integration.oci_support import sha256_digest as sha256
from tests.integration.test_s3_storage_it import SMALL_POM, Moto, key_of, storage_table


class MigrateStorageTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("skopeo")
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.moto = Moto()
        self.addCleanup(self.moto.close)
        self.reg, self.images = support.shared_upstream()
        self.maven = support.shared_maven_upstream()
        self.config = support.oci_config(
            self.reg.url,
            server={"public_url": "http://127.0.0.1:@PORT@"},
            maven_repositories=[{"id": "central", "url": self.maven.url}],
            routes=["library/*"],
        )
        self.tmp = tempfile.mkdtemp(prefix="harbor-it-migrate-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")

    def pull(self, srv: support.HarborServer, name: str) -> str:
        out = os.path.join(self.tmp, name)
        support.check_ok(
            support.skopeo("copy", "--src-tls-verify=false", "docker://%s/library/test:1" % srv.hostport,
                           "oci:%s:x" % out)
        )  # fmt: skip
        with open(os.path.join(out, "index.json")) as f:
            return json.load(f)["manifests"][0]["digest"]

    def test_filesystem_cache_moves_to_a_bucket(self) -> None:
        single = self.images["images"]["single"]
        layers = [layer["digest"] for layer in single["layers"]]
        # 1. a filesystem cache with content in it
        fs = support.HarborServer(self.config, data_dir=self.data_dir)
        self.addCleanup(fs.close)
        # (the registry is shared with other modules: count from here, and wait for the lines of the cold pull,
        # which the registry writes after each response)
        blobs_before = {d: self.reg.count_requests("GET", "/blobs/" + d) for d in layers + [single["config"]]}
        self.assertEqual(self.pull(fs, "cold"), single["digest"])
        blob_gets = {d: self.reg.wait_requests("GET", "/blobs/" + d, n + 1) for d, n in blobs_before.items()}
        self.assertEqual({d: n - blobs_before[d] for d, n in blob_gets.items()}, dict.fromkeys(blobs_before, 1))
        pom_before = self.maven.count_requests("GET", SMALL_POM)
        status, _, pom = support.http("GET", fs.url + "/artifacts/central/" + SMALL_POM)
        self.assertEqual(status, 200)
        # the fill fetched the file and its .sha1 (both contain SMALL_POM); the peer logs each line after
        # its response, so a count taken at once can miss them: wait for both
        pom_gets = self.maven.wait_requests("GET", SMALL_POM, pom_before + 2, timeout=15)
        self.assertEqual(pom_gets, pom_before + 2)
        # a download is committed (renamed into blobs/) just after its last byte went out: wait for it
        pom_file = os.path.join(self.data_dir, *key_of(sha256(pom)).split("/"))
        deadline = time.monotonic() + 15
        while not os.path.exists(pom_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        fs.stop()

        # 2. the copy, with the target configuration (the same file plus [storage])
        config_path = os.path.join(self.tmp, "harbor-s3.toml")
        with open(config_path, "w") as f:
            f.write(fs.config_text + "\n" + storage_table(self.moto.endpoint))
        out = self.migrate_with_data_dir(config_path)
        self.assertIn(" 0 failed", out)
        keys = self.moto.keys()
        for digest in layers + [single["config"], single["digest"], sha256(pom)]:
            self.assertIn(key_of(digest), keys)
        # resumable and idempotent: a second run finds everything there
        again = self.migrate_with_data_dir(config_path)
        self.assertIn(" 0 copied", again)

        # 3. nothing left on the old disk but the index: the node on the bucket serves it all
        shutil.rmtree(os.path.join(self.data_dir, "blobs"))
        s3 = support.HarborServer(self.config + "\n" + storage_table(self.moto.endpoint), data_dir=self.data_dir)
        self.addCleanup(s3.close)
        self.assertEqual(self.pull(s3, "after"), single["digest"])
        status, _, pom_again = support.http("GET", s3.url + "/artifacts/central/" + SMALL_POM)
        self.assertEqual((status, pom_again), (200, pom))
        # a blob GET that went upstream would be logged a moment after our pull ended: give it that moment
        blob_total = lambda: sum(self.reg.count_requests("GET", "/blobs/" + d) for d in blob_gets)  # noqa: E731
        self.assertEqual(
            support.wait_count(blob_total, sum(blob_gets.values()) + 1, timeout=2), sum(blob_gets.values())
        )
        # a GET that went upstream would log its line a moment after our response: give it that moment
        self.assertEqual(self.maven.wait_requests("GET", SMALL_POM, pom_gets + 1, timeout=2), pom_gets)

    def migrate_with_data_dir(self, config_path: str) -> str:
        cp = support.run(
            [sys.executable, "-m", "harbor_cache.migrate_storage", "--config", config_path,
             "--data-dir", self.data_dir, "--verify"],
            cwd=support.REPO_ROOT,
            env={**os.environ, "PYTHONPATH": support.REPO_ROOT},
            timeout=300,
        )  # fmt: skip
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        return cp.stdout
