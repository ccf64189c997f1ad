"""Two harbor-cache nodes that share **no** data directory: a PostgreSQL index and a bucket (moto), real clients.

Each node is its own process with its own data directory (its local tier,
temp and session files); what they share is the index (the tests' own
PostgreSQL cluster, a fresh database per test) and the bucket (a moto server
per test, `test_s3_storage_it.Moto`).  The upstream registry is behind the
fault proxy, which counts upstream GETs and slows the body so that every
client arrives while the download is in flight.

- 20 concurrent cold GETs of one blob, half on each node: one upstream GET,
  20 correct bodies; the node that did not download logs its requests as
  "coalesced" from "bucket".
- A chunked push whose first PATCH is on node A and whose second PATCH and
  PUT are on node B: the blob is committed and served by both; no chunk
  object is left in the bucket.
- A Maven deploy (one PUT) on A resolves on B.
- skopeo through B of an image cached through A (no second upstream GET),
  podman pulls it from B, and mvn resolves through B's Maven proxy
  repository, the file then served by A from the bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.parse

from twisted.trial.unittest import SynchronousTestCase

from tests import pg_support, s3_support
from tests.integration import oci_support as oci
from tests.integration import push_support, support
from tests.integration.oci_support import sha256_digest as sha256
from tests.integration.test_s3_storage_it import Moto, key_of, storage_table

CLIENTS = 20
KEY_FILES = ("jwt-secret", "registry-secret", "artifact-key.pem")
SMALL_JAR = "harness/small/1.0/small-1.0.jar"


class S3NodesTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("docker-registry", "skopeo")
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.db_url = pg_support.fresh_database_url(self)
        self.moto = Moto()
        self.addCleanup(self.moto.close)
        self.reg, self.images = support.shared_upstream()
        self.maven = support.shared_maven_upstream()
        self.tmp = tempfile.mkdtemp(prefix="harbor-it-s3-nodes-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def node(
        self, name: str, upstream_url: str, start: bool = True, public_url: str = "http://127.0.0.1:@PORT@"
    ) -> support.HarborServer:
        """A node with its own data directory, on the shared index and bucket."""
        config = support.oci_config(
            upstream_url,
            server={"public_url": public_url},
            maven_repositories=[{"id": "central", "url": self.maven.url}, {"id": "releases", "type": "hosted"}],
            routes=["library/*"],
        )
        index = support._toml_table(
            "[index]", {"url": self.db_url, "node_name": name, "lease_seconds": 3, "pool_size": 4}
        )
        log = '[log]\naccess_file = "access.log"\n'
        srv = support.HarborServer("\n".join([config, storage_table(self.moto.endpoint), index, log]), start=start)
        self.addCleanup(srv.close)
        return srv

    def two_nodes(self, upstream_url: str) -> tuple[support.HarborServer, support.HarborServer]:
        a = self.node("a", upstream_url)
        # One public URL for both, as behind a load balancer: B's token realm and issuer are A's.
        b = self.node("b", upstream_url, start=False, public_url=a.url)
        self.assertNotEqual(a.data_dir, b.data_dir)
        for name in KEY_FILES:  # the token keys are the one thing given to every node (docs/deployment.md)
            shutil.copy2(os.path.join(a.data_dir, name), os.path.join(b.data_dir, name))
        b.start()
        push_support.ensure_user(a, *push_support.WRITER, "read-write")  # (users live in the shared index)
        return a, b

    def access_lines(self, srv: support.HarborServer, path: str, at_least: int) -> list[tuple[str, str]]:
        """(cache_status, upstream) of the node's access lines for ``path`` (waits for the buffered lines)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                with open(os.path.join(srv.data_dir, "access.log")) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            except FileNotFoundError:
                lines = []
            found = [(e["cache_status"], e["upstream"]) for e in lines if e["path"] == path]
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def chunk_keys(self) -> list[str]:
        return sorted(k for k in self.moto.keys() if k.startswith("uploads/"))

    def test_twenty_cold_gets_over_two_nodes_one_upstream_get(self) -> None:
        layer = max(self.images["images"]["single"]["layers"], key=lambda l: l["size"])
        digest, size = layer["digest"], layer["size"]
        path = "/v2/library/test/blobs/" + digest
        fault = oci.FaultUpstream(self.reg.url)
        self.addCleanup(fault.close)
        fault.set_rules({"path": digest, "mode": "rate", "rate": size // 3})  # ~3 s: everyone arrives in flight
        a, b = self.two_nodes(fault.url)
        urls = [(a if i % 2 == 0 else b).url + path for i in range(CLIENTS)]
        results = oci.fetch_concurrently(urls, keep=False)
        for i, r in enumerate(results):
            self.assertEqual((r.status, r.error, r.length, r.digest), (200, None, size, digest), "client %d" % i)
        self.assertEqual(fault.wait_requests("GET", digest, 2, timeout=1), 1)
        self.assertIn(key_of(digest), self.moto.keys())
        lines = {srv: self.access_lines(srv, path, CLIENTS // 2) for srv in (a, b)}
        downloader, waiter = (a, b) if ("miss", "upstream") in lines[a] else (b, a)
        self.assertEqual(sorted(lines[downloader]), [("coalesced", "upstream")] * 9 + [("miss", "upstream")])
        self.assertEqual(lines[waiter], [("coalesced", "bucket")] * 10, "the waiting node read the bucket")
        for srv in (a, b):  # and each node has it on its own tier now
            self.assertTrue(os.path.exists(os.path.join(srv.data_dir, *key_of(digest).split("/"))))

    def test_chunked_push_with_patches_on_both_nodes(self) -> None:
        a, b = self.two_nodes("http://127.0.0.1:9")
        # a registry token from A, used on both nodes (they share the token keys)
        token = push_support.registry_token(a, *push_support.WRITER, "repository:hosted/app:pull,push")
        auth = {"Authorization": "Bearer " + token}
        first, second = os.urandom(300_000), os.urandom(200_001)
        digest = sha256(first + second)
        status, headers, body = support.http("POST", a.url + "/v2/hosted/app/blobs/uploads/", auth)
        self.assertEqual(status, 202, body)
        location = urllib.parse.urlsplit(headers["Location"]).path
        patch = {**auth, "Content-Type": "application/octet-stream"}
        status, headers, body = support.http(
            "PATCH", a.url + location, {**patch, "Content-Range": "0-%d" % (len(first) - 1)}, first
        )
        self.assertEqual(status, 202, body)
        self.assertEqual(len(self.chunk_keys()), 1, "the first chunk is an object before A answers")
        location = urllib.parse.urlsplit(headers["Location"]).path
        status, headers, body = support.http(
            "PATCH",
            b.url + location,
            {**patch, "Content-Range": "%d-%d" % (len(first), len(first) + len(second) - 1)},
            second,
        )
        self.assertEqual(status, 202, body)
        self.assertEqual(headers["Range"], "0-%d" % (len(first) + len(second) - 1))
        location = urllib.parse.urlsplit(headers["Location"]).path
        sep = "&" if "?" in location else "?"
        status, headers, body = support.http("PUT", b.url + location + sep + "digest=" + digest, auth, b"")
        self.assertEqual(status, 201, body)
        for srv in (a, b):
            status, _, got = support.http("GET", "%s/v2/hosted/app/blobs/%s" % (srv.url, digest), auth)
            self.assertEqual((status, sha256(got)), (200, digest), srv.url)
        self.assertIn(key_of(digest), self.moto.keys())
        self.assertEqual(self.chunk_keys(), [], "the chunk objects go with the commit")

    def test_maven_deploy_on_one_node_resolves_on_the_other(self) -> None:
        a, b = self.two_nodes("http://127.0.0.1:9")
        jar = os.urandom(70_000)
        path = "/artifacts/releases/com/example/nodes/1.0/nodes-1.0.jar"
        status, _, body = support.http("PUT", a.url + path, push_support.basic_header(*push_support.WRITER), jar)
        self.assertIn(status, (200, 201), body)
        self.assertIn(key_of(sha256(jar)), self.moto.keys())
        status, _, got = support.http("GET", b.url + path)
        self.assertEqual((status, got), (200, jar))

    def test_real_clients_across_the_nodes(self) -> None:
        support.require("podman", "mvn")
        a, b = self.two_nodes(self.reg.url)
        single = self.images["images"]["single"]
        layers = [layer["digest"] for layer in single["layers"]]
        before = {d: self.reg.count_requests("GET", "/blobs/" + d) for d in layers}
        for srv, name in ((a, "via-a"), (b, "via-b")):  # cached through A, then copied through B
            out = os.path.join(self.tmp, name)
            support.check_ok(
                support.skopeo(
                    "copy", "--src-tls-verify=false", "docker://%s/library/test:1" % srv.hostport, "oci:%s:x" % out
                )
            )
            with open(os.path.join(out, "index.json")) as f:
                self.assertEqual(json.load(f)["manifests"][0]["digest"], single["digest"])
        for d in layers:  # (the registry logs a GET after its answer: a second one gets a moment to show)
            self.assertEqual(self.reg.wait_requests("GET", "/blobs/" + d, before[d] + 2, timeout=1) - before[d], 1, d)
        # podman pulls the image from B (its tier has it, the bucket behind)
        ref = "%s/library/test:1" % b.hostport
        root = os.path.join(self.tmp, "podman")
        support.check_ok(support.podman(root, "pull", "--tls-verify=false", ref))
        inspected = support.check_ok(support.podman(root, "image", "inspect", "--format", "{{.Digest}}", ref))
        self.assertEqual(inspected.stdout.strip(), single["digest"])
        # mvn resolves through B's proxy repository; A then serves the file from the bucket
        settings = support.write_maven_settings(os.path.join(self.tmp, "settings.xml"), b.url + "/artifacts/central/")
        jar_gets = self.maven.count_requests("GET", SMALL_JAR, suffix=True)  # the jar, not its .sha1
        cp = support.mvn(
            settings, os.path.join(self.tmp, "m2"), "-C", "dependency:get", "-Dartifact=harness:small:1.0", cwd=self.tmp
        )
        support.check_ok(cp)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "m2", "harness", "small", "1.0", "small-1.0.jar")))
        # B's fill fetched the jar once; nginx logs it after its answer: wait for the line
        jar_gets = self.maven.wait_requests("GET", SMALL_JAR, jar_gets + 1, suffix=True)
        status, _, jar = support.http("GET", a.url + "/artifacts/central/" + SMALL_JAR)
        self.assertEqual(status, 200)
        self.assertIn(key_of(sha256(jar)), self.moto.keys())
        # an upstream GET from A would be logged a moment after its answer: give it that moment
        self.assertEqual(
            self.maven.wait_requests("GET", SMALL_JAR, jar_gets + 1, timeout=2, suffix=True),
            jar_gets,
            "A read the bucket, not upstream",
        )
