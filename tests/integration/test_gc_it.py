"""Online garbage collection against a real server, with real skopeo pushes going on.

One thread pushes small generated images (skopeo copy, a base layer shared by
all, one unique layer each) under many tags and deletes some of the tags;
another runs ``POST /api/v1/gc`` in a loop with a grace period of 1 second.
Afterwards every image still tagged is pulled whole with skopeo (every blob's
digest checked by skopeo, the manifest's digest checked here): none may fail.
The unique layers of deleted tags must be gone (the collector did remove
content while the pushes went on).
"""

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.support import check_ok, http, skopeo

REPO = "gc/app"
IMAGES = 24
GRACE = 1


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest


def make_image(layout, ref, base, unique):
    """An OCI layout holding one image (``ref``) of two layers; returns (manifest digest, unique layer digest)."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}, "ref": ref}).encode()
    layers = [(_blob(layout, base), len(base)), (_blob(layout, unique), len(unique))]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _blob(layout, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n} for d, n in layers
            ],
        }
    ).encode()
    digest = _blob(layout, manifest)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest,
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": ref},
                    }
                ],
            },
            f,
        )
    return digest, layers[1][0]


class GarbageCollectionTests(SynchronousTestCase):
    def setUp(self):
        support.require("skopeo")
        self.dir = tempfile.mkdtemp(prefix="harbor-it-gc-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = push_support.hosted_server(self)
        self.token = self.server.login()
        self.auth = {"Authorization": "Bearer " + self.token}
        status, _, body = http(
            "PUT",
            self.server.url + "/api/v1/config",
            headers=self.auth,
            body={
                "entries": [
                    {"key": "gc.grace_seconds", "value": str(GRACE)},
                    {"key": "gc.interval_seconds", "value": "0"},
                ]
            },
        )
        self.assertEqual(status, 200, body)
        self.creds = "%s:%s" % push_support.WRITER
        self.basic = push_support.basic_header(*push_support.WRITER)

    def push(self, ref, base, unique):
        layout = os.path.join(self.dir, "src-" + ref)
        digest, layer = make_image(layout, ref, base, unique)
        last = None
        for _ in range(3):  # a push naming a blob swept a moment before fails cleanly; the client retries
            cp = skopeo(
                "copy",
                "--dest-tls-verify=false",
                "--preserve-digests",
                "--dest-creds",
                self.creds,
                "oci:%s:%s" % (layout, ref),
                "docker://%s/%s:%s" % (self.server.hostport, REPO, ref),
                timeout=300,
            )
            if cp.returncode == 0:
                return digest, layer, None
            last = cp
        return digest, layer, last

    def collect(self, dry_run=False):
        status, _, body = http("POST", self.server.url + "/api/v1/gc", headers=self.auth, body={"dry_run": dry_run})
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_pushes_and_deletes_while_gc_runs_then_every_tagged_image_pulls_whole(self):
        base = os.urandom(4096)
        tagged = {}  # tag -> manifest digest
        layers = {}  # tag -> its unique layer
        deleted_layers = []
        failures = []
        done = threading.Event()
        reports = []

        def pusher():
            try:
                for i in range(IMAGES):
                    ref = "t%d" % i
                    digest, layer, failed = self.push(ref, base, os.urandom(2048 + i))
                    if failed is not None:
                        failures.append(failed)
                        continue
                    tagged[ref] = digest
                    layers[ref] = layer
                    if i % 3 == 1:  # delete an older tag: its unique layer becomes garbage
                        old = "t%d" % (i - 1)
                        if old in tagged:
                            status, _, body = http(
                                "DELETE",
                                "%s/v2/%s/manifests/%s" % (self.server.url, REPO, old),
                                headers=self.basic,
                            )
                            if status != 202:
                                failures.append("DELETE %s: %d %r" % (old, status, body[:200]))
                            deleted_layers.append(layers[old])
                            del tagged[old]
                    time.sleep(0.2)  # pushes span many grace periods: the collector removes while they go on
            finally:
                done.set()

        thread = threading.Thread(target=pusher)
        thread.start()
        while not done.is_set():
            reports.append(self.collect())
            time.sleep(0.2)
        thread.join(600)
        self.assertEqual(failures, [])
        self.assertGreater(sum(r["manifests"] for r in reports), 0, "nothing collected while pushes went on")
        time.sleep(GRACE + 1)
        reports.append(self.collect())
        removed = sum(r["manifests"] for r in reports)
        self.assertGreater(len(reports), 2)
        self.assertEqual(removed, len(deleted_layers))
        self.assertGreater(sum(r["freed_bytes"] for r in reports), 0)

        for tag, digest in sorted(tagged.items()):
            out = os.path.join(self.dir, "pull-" + tag)
            check_ok(
                skopeo(
                    "copy",
                    "--src-tls-verify=false",
                    "--preserve-digests",
                    "--src-creds",
                    self.creds,
                    "docker://%s/%s:%s" % (self.server.hostport, REPO, tag),
                    "oci:%s:%s" % (out, tag),
                    timeout=300,
                )
            )
            with open(os.path.join(out, "index.json")) as f:
                self.assertEqual(json.load(f)["manifests"][0]["digest"], digest, tag)
        for layer in deleted_layers:  # the collector did remove content while the pushes went on
            status, _, _ = http("HEAD", "%s/v2/%s/blobs/%s" % (self.server.url, REPO, layer), headers=self.basic)
            self.assertEqual(status, 404, layer)
        status, _, body = http("GET", self.server.url + "/api/v1/gc", headers=self.auth)
        self.assertEqual(status, 200, body)
        self.assertTrue(json.loads(body)["runs"])
        status, _, body = http("GET", self.server.url + "/metrics")
        self.assertIn(b"harbor_cache_gc_runs_total", body)
