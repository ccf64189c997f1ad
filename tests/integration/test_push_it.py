"""Real clients push to harbor-cache (hosted content) and pull it back unchanged.

skopeo copies the single image and the multi-arch index from the fixture
layout (``--dest-creds``), podman pulls them back with identical digests;
podman pushes an image with a layer of at least 100 MiB; anonymous and
read-only pushes are refused; pushed content survives clearing the cache and
eviction.
"""

import hashlib
import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.support import check_ok, http, podman, skopeo


def _tmp(case):
    d = tempfile.mkdtemp(prefix="harbor-it-push-")
    case.addCleanup(shutil.rmtree, d, True)
    return d


def _creds(user):
    return "%s:%s" % user


class PushTests(SynchronousTestCase):
    def setUp(self):
        support.require("skopeo", "podman")
        self.layout, self.images = support.oci_layout()
        self.server = push_support.hosted_server(self)
        self.host = self.server.hostport
        self.admin = ("admin", self.server.admin_password)

    def copy(self, ref, target, creds, *extra):
        return skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            _creds(creds),
            *extra,
            "oci:%s:%s" % (self.layout, ref),
            "docker://%s/%s" % (self.host, target),
            timeout=900,
        )

    def raw_manifest(self, ref):
        cp = check_ok(skopeo("inspect", "--tls-verify=false", "--raw", "docker://%s/%s" % (self.host, ref), text=False))
        return cp.stdout

    def podman_pull_digest(self, ref, creds=None):
        root = _tmp(self)
        args = ["pull", "--tls-verify=false"]
        if creds:
            args += ["--creds", _creds(creds)]
        check_ok(podman(root, *args, "%s/%s" % (self.host, ref), timeout=900))
        cp = check_ok(podman(root, "image", "inspect", "--format", "{{.Digest}}", "%s/%s" % (self.host, ref)))
        return cp.stdout.strip()

    def test_skopeo_single_then_podman_pull(self):
        """skopeo copy --dest-creds of one image; podman pulls it back with the same digest."""
        check_ok(self.copy("single", "hosted/single:1", push_support.WRITER))
        want = self.images["images"]["single"]["digest"]
        raw = self.raw_manifest("hosted/single:1")
        self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), want)
        self.assertEqual(self.podman_pull_digest("hosted/single:1"), want)
        kinds = push_support.entry_kinds(self.server)
        self.assertEqual(kinds[("manifest", "hosted/single", want)], "hosted")
        for layer in self.images["images"]["single"]["layers"]:
            self.assertEqual(kinds[("blob", "", layer["digest"])], "hosted")

    def test_skopeo_all_multi_arch(self):
        """skopeo copy --all of an index; the index and both children come back byte-identical."""
        check_ok(self.copy("multi", "hosted/multi:multi", self.admin, "--all"))
        multi = self.images["images"]["multi"]
        raw = self.raw_manifest("hosted/multi:multi")
        self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), multi["digest"])
        for arch, child in multi["manifests"].items():
            raw = self.raw_manifest("hosted/multi@" + child["digest"])
            self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), child["digest"], arch)
        self.assertEqual(self.podman_pull_digest("hosted/multi:multi"), multi["digest"])

    def test_podman_push_large_layer(self):
        """podman push of an image with a >= 100 MiB layer; pulled back by another podman unchanged."""
        large = self.images["images"]["large"]
        self.assertGreaterEqual(max(l["size"] for l in large["layers"]), 100 << 20)
        root = _tmp(self)
        check_ok(podman(root, "pull", "oci:%s:large" % self.layout, timeout=900))
        digest_file = os.path.join(root, "digest")
        target = "%s/hosted/large:large" % self.host
        check_ok(
            podman(
                root,
                "push",
                "--tls-verify=false",
                "--creds",
                _creds(push_support.WRITER),
                "--digestfile",
                digest_file,
                large["config"].split(":")[1],
                "docker://" + target,
                timeout=1800,
            )
        )
        with open(digest_file) as f:
            pushed = f.read().strip()
        manifest = json.loads(self.raw_manifest("hosted/large:large"))
        self.assertGreaterEqual(max(l["size"] for l in manifest["layers"]), 100 << 20)
        self.assertEqual(self.podman_pull_digest("hosted/large:large"), pushed)

    def test_push_refused_for_anonymous_and_read_only(self):
        """Anonymous and read-only pushes fail (401/403); nothing is stored."""
        cp = skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-no-creds",
            "oci:%s:single" % self.layout,
            "docker://%s/hosted/nope:1" % self.host,
        )
        self.assertNotEqual(cp.returncode, 0)
        self.assertRegex(cp.stderr.lower(), "unauthorized|authentication required|401")
        cp = self.copy("single", "hosted/nope:1", push_support.READER)
        self.assertNotEqual(cp.returncode, 0)
        self.assertRegex(cp.stderr.lower(), "denied|403|unauthorized")
        status, _, _ = http("POST", self.server.url + "/v2/hosted/nope/blobs/uploads/")
        self.assertEqual(status, 401)
        status, _, body = http(
            "POST",
            self.server.url + "/v2/hosted/nope/blobs/uploads/",
            headers=push_support.basic_header(*push_support.READER),
        )
        self.assertEqual((status, json.loads(body)["errors"][0]["code"]), (403, "DENIED"))
        status, _, _ = http(
            "GET", self.server.url + "/v2/hosted/nope/tags/list", headers=push_support.admin_basic(self.server)
        )
        self.assertEqual(status, 404)

    def test_pushed_image_survives_cache_clear_and_eviction(self):
        """DELETE /api/v1/cache and an eviction pass leave pushed content alone (it is hosted)."""
        check_ok(self.copy("single", "hosted/keep:1", push_support.WRITER))
        want = self.images["images"]["single"]["digest"]
        if push_support.management_api_available(self.server):
            auth = {"Authorization": "Bearer " + self.server.login()}
            status, _, body = http(
                "PUT",
                self.server.url + "/api/v1/config",
                headers=auth,
                body={"entries": [{"key": "cache.max_size", "value": "1"}]},
            )
            self.assertEqual(status, 200, body)
            status, _, body = http("DELETE", self.server.url + "/api/v1/cache", headers=auth)
            self.assertEqual(status, 200, body)
            status, _, body = http("POST", self.server.url + "/api/v1/cache/cleanup", headers=auth)
            self.assertEqual(status, 200, body)
        kinds = push_support.entry_kinds(self.server)
        self.assertEqual(kinds[("manifest", "hosted/keep", want)], "hosted")
        self.assertTrue(
            all(kind == "hosted" for (t, repo, _), kind in kinds.items() if repo == "hosted/keep" or t == "blob")
        )
        self.server.restart()
        self.assertEqual(self.podman_pull_digest("hosted/keep:1"), want)
