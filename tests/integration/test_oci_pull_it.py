"""Real clients (skopeo, podman, docker, curl) pulling through harbor-cache from a real registry.

The upstream is the shared distribution registry (`support.shared_upstream`)
with library/test:{1,multi,large}; every digest is checked against the
images.json the generator wrote, so "works" means "byte-identical".
"""

import hashlib
import json
import os
import shutil
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

DEEP_NAME = "it/deep/test"  # depth 3
SOLO_NAME = "solo"  # depth 1
DOCKER_TYPES_NAME = "it/dockertypes"


def _tmpdir(case):
    d = tempfile.mkdtemp(prefix="harbor-it-pull-")
    case.addCleanup(shutil.rmtree, d, True)
    return d


def _layout_blob(layout, digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class _UpstreamCase(SynchronousTestCase):
    """One harbor-cache in front of the shared upstream for the whole class."""

    def setUp(self):
        self.reg, self.images = support.shared_upstream()
        fixture = oci.class_fixture(self, self.make_fixture, self.close_fixture)
        self.srv = fixture["srv"]
        self.__dict__.update(fixture)

    def make_fixture(self):
        return {"srv": support.HarborServer(oci.harbor_config(self.reg.url))}

    @staticmethod
    def close_fixture(fixture):
        fixture["srv"].close()

    def image(self, name):
        return self.images["images"][name]

    def assertLayoutHolds(self, layout, image):
        """The OCI layout has the image's manifest, config and layers, each with the right digest."""
        for digest in [image["digest"], image["config"]] + [l["digest"] for l in image["layers"]]:
            path = _layout_blob(layout, digest)
            self.assertTrue(os.path.exists(path), "missing in %s: %s" % (layout, digest))
            self.assertEqual(_file_digest(path), digest)


class SkopeoTests(_UpstreamCase):
    def test_copy_single(self):
        """skopeo copy of library/test:1 gives the upstream's manifest digest and every blob."""
        out = os.path.join(_tmpdir(self), "out")
        support.check_ok(
            support.skopeo(
                "copy", "--src-tls-verify=false", "docker://%s/library/test:1" % self.srv.hostport, "oci:%s:1" % out
            )
        )
        with open(os.path.join(out, "index.json")) as f:
            index = json.load(f)
        single = self.image("single")
        self.assertEqual([m["digest"] for m in index["manifests"]], [single["digest"]])
        self.assertLayoutHolds(out, single)
        # the bytes came through the cache: every layer is now committed under DATA/blobs
        for layer in single["layers"]:
            self.assertTrue(os.path.exists(oci.stored_blob(self.srv, layer["digest"])), layer["digest"])

    def test_copy_all_index(self):
        """skopeo copy --all --preserve-digests of the index: same index digest, both children, all layers."""
        out = os.path.join(_tmpdir(self), "out")
        support.check_ok(
            support.skopeo(
                "copy",
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                "docker://%s/library/test:multi" % self.srv.hostport,
                "oci:%s:multi" % out,
            )
        )
        with open(os.path.join(out, "index.json")) as f:
            index = json.load(f)
        multi = self.image("multi")
        self.assertEqual([m["digest"] for m in index["manifests"]], [multi["digest"]])
        self.assertEqual(_file_digest(_layout_blob(out, multi["digest"])), multi["digest"])
        with open(_layout_blob(out, multi["digest"]), "rb") as f:
            children = {m["platform"]["architecture"]: m["digest"] for m in json.load(f)["manifests"]}
        self.assertEqual(children, {arch: m["digest"] for arch, m in multi["manifests"].items()})
        for _arch, child in multi["manifests"].items():
            self.assertLayoutHolds(out, child)

    def test_names_of_depth_one_and_three(self):
        """Repositories named `solo` and `it/deep/test` pull like library/test; upstream sees the same names."""
        layout, _ = support.oci_layout()
        single = self.image("single")
        for name in (SOLO_NAME, DEEP_NAME):
            support.push_layout(layout, self.reg.hostport, name, names=["single"])
            out = os.path.join(_tmpdir(self), "out")
            support.check_ok(
                support.skopeo(
                    "copy", "--src-tls-verify=false", "docker://%s/%s:1" % (self.srv.hostport, name), "oci:%s:1" % out
                )
            )
            with open(os.path.join(out, "index.json")) as f:
                self.assertEqual(json.load(f)["manifests"][0]["digest"], single["digest"])
            self.assertLayoutHolds(out, single)
            self.assertGreaterEqual(self.reg.wait_requests("GET", "/v2/%s/manifests/1" % name, 1), 1)
            layer = single["layers"][1]
            status, headers, body = support.http("GET", "%s/v2/%s/blobs/%s" % (self.srv.url, name, layer["digest"]))
            self.assertEqual((status, oci.sha256_digest(body)), (200, layer["digest"]))
        # a name the upstream does not have is still answered in the OCI error format
        status, _, body = support.http(
            "GET", self.srv.url + "/v2/it/deep/nothing/manifests/1", {"Accept": oci.OCI_MANIFEST}
        )
        self.assertEqual((status, oci.oci_error_codes(body)), (404, ["MANIFEST_UNKNOWN"]))


class PodmanTests(_UpstreamCase):
    def _pull(self, *args):
        root = _tmpdir(self)
        support.check_ok(support.podman(root, "pull", "--tls-verify=false", *args))
        return root

    def _inspect(self, root, ref, fmt):
        cp = support.check_ok(support.podman(root, "image", "inspect", "--format", fmt, ref))
        return cp.stdout.strip()

    def test_pull_by_tag(self):
        """podman pull by tag: the image's digest is the upstream's."""
        ref = "%s/library/test:1" % self.srv.hostport
        root = self._pull(ref)
        self.assertEqual(self._inspect(root, ref, "{{.Digest}}"), self.image("single")["digest"])

    def test_pull_by_digest(self):
        """podman pull by digest of the single image."""
        digest = self.image("single")["digest"]
        ref = "%s/library/test@%s" % (self.srv.hostport, digest)
        root = self._pull(ref)
        self.assertEqual(self._inspect(root, ref, "{{.Digest}}"), digest)

    def test_pull_arm64_of_index(self):
        """podman pull --arch arm64 of the index picks the arm64 child and its layers."""
        multi = self.image("multi")
        ref = "%s/library/test:multi" % self.srv.hostport
        root = self._pull("--arch", "arm64", ref)
        self.assertEqual(self._inspect(root, ref, "{{.Architecture}}"), "arm64")
        digests = json.loads(self._inspect(root, ref, "{{json .RepoDigests}}"))
        self.assertIn("%s/library/test@%s" % (self.srv.hostport, multi["manifests"]["arm64"]["digest"]), digests)
        for layer in multi["manifests"]["arm64"]["layers"]:
            self.assertTrue(os.path.exists(oci.stored_blob(self.srv, layer["digest"])), layer["digest"])


class BlobHttpTests(_UpstreamCase):
    def _cached(self, layer):
        url = "%s/v2/library/test/blobs/%s" % (self.srv.url, layer["digest"])
        status, _, body = support.http("GET", url)
        self.assertEqual((status, oci.sha256_digest(body)), (200, layer["digest"]))
        return url, body

    def test_range_on_cached_blob(self):
        """Range a-b, a- and -n give 206 with Content-Range and the exact bytes; past the end 416."""
        layer = self.image("single")["layers"][1]
        url, whole = self._cached(layer)
        size = layer["size"]
        for spec, start, end in (
            ("10-19", 10, 19),
            ("1000-", 1000, size - 1),
            ("-7", size - 7, size - 1),
            ("0-%d" % (size + 100), 0, size - 1),
        ):
            status, headers, body = support.http("GET", url, {"Range": "bytes=" + spec})
            self.assertEqual(status, 206, spec)
            self.assertEqual(headers["Content-Range"], "bytes %d-%d/%d" % (start, end, size), spec)
            self.assertEqual(int(headers["Content-Length"]), end - start + 1, spec)
            self.assertEqual(body, whole[start : end + 1], spec)
        status, headers, body = support.http("GET", url, {"Range": "bytes=%d-" % size})
        self.assertEqual(status, 416)
        self.assertEqual(headers["Content-Range"], "bytes */%d" % size)
        # and with curl, as a client would
        support.require("curl")
        out = os.path.join(_tmpdir(self), "part")
        cp = support.check_ok(support.run(["curl", "-s", "-r", "100-199", "-o", out, "-w", "%{http_code}", url]))
        self.assertEqual(cp.stdout, "206")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), whole[100:200])
        cp = support.run(["curl", "-s", "-r", "%d-%d" % (size, size + 5), "-o", "/dev/null", "-w", "%{http_code}", url])
        self.assertEqual(cp.stdout, "416")

    def test_head_cached_blob(self):
        """HEAD of a cached blob: 200, no body, Content-Length and digest headers right."""
        layer = self.image("single")["layers"][0]
        url, _ = self._cached(layer)
        status, headers, body = support.http("HEAD", url)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(int(headers["Content-Length"]), layer["size"])
        self.assertEqual(headers["Docker-Content-Digest"], layer["digest"])

    def test_head_uncached_blob_asks_upstream_with_head_only(self):
        """HEAD of a blob not cached: right Content-Length from an upstream HEAD, never an upstream GET."""
        digest = self.image("large")["config"]
        path = "/v2/library/test/blobs/" + digest
        heads = self.reg.count_requests("HEAD", path)
        _, upstream_headers, _ = support.http("HEAD", self.reg.url + path)
        size = int(upstream_headers["Content-Length"])
        # our own HEAD is logged a moment after its answer: wait for it before counting from here
        heads = self.reg.wait_requests("HEAD", path, heads + 1)
        gets = self.reg.count_requests("GET", path)
        status, headers, body = support.http("HEAD", self.srv.url + path)
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(int(headers["Content-Length"]), size)
        self.assertEqual(headers["Docker-Content-Digest"], digest)
        self.assertEqual(self.reg.wait_requests("HEAD", path, heads + 1), heads + 1)
        # give a stray background GET time to show up in the log
        self.assertEqual(self.reg.wait_requests("GET", path, gets + 1, timeout=1), gets)
        self.assertFalse(os.path.exists(oci.blob_file(self.srv, digest)))


class ManifestAcceptTests(_UpstreamCase):
    def make_fixture(self):
        layout, docker_images = support.oci_layout(large=1, docker_media_types=True)
        oci.push_raw(layout, self.reg.url, DOCKER_TYPES_NAME, "single", "1")
        oci.push_raw(layout, self.reg.url, DOCKER_TYPES_NAME, "multi", "multi")
        fixture = super().make_fixture()
        fixture["docker_images"] = docker_images
        return fixture

    def _get(self, base, name, ref, accept, method="GET"):
        headers = {"Accept": accept} if accept is not None else {}
        return support.http(method, "%s/v2/%s/manifests/%s" % (base, name, ref), headers)

    def assertManifest(self, response, media_type, digest):
        status, headers, body = response
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(headers["Content-Type"], media_type)
        self.assertEqual(headers["Docker-Content-Digest"], digest)
        self.assertEqual(int(headers["Content-Length"]), len(body))
        self.assertEqual(oci.sha256_digest(body), digest)

    def test_oci_types(self):
        """OCI manifest and index, by tag and by digest, with each Accept a client sends."""
        single, multi = self.image("single"), self.image("multi")
        everything = ", ".join([oci.OCI_MANIFEST, oci.OCI_INDEX, oci.DOCKER_MANIFEST, oci.DOCKER_LIST])
        for accept in (oci.OCI_MANIFEST, everything, "*/*", None):
            self.assertManifest(
                self._get(self.srv.url, "library/test", "1", accept), oci.OCI_MANIFEST, single["digest"]
            )
            self.assertManifest(
                self._get(self.srv.url, "library/test", single["digest"], accept), oci.OCI_MANIFEST, single["digest"]
            )
        for accept in (oci.OCI_INDEX, everything, oci.DOCKER_LIST, oci.OCI_MANIFEST):
            # the index is returned as is, whatever manifest type is asked for
            self.assertManifest(
                self._get(self.srv.url, "library/test", "multi", accept), oci.OCI_INDEX, multi["digest"]
            )
        for _arch, child in multi["manifests"].items():
            self.assertManifest(
                self._get(self.srv.url, "library/test", child["digest"], oci.OCI_MANIFEST),
                oci.OCI_MANIFEST,
                child["digest"],
            )

    def test_refused_type_like_distribution(self):
        """An OCI manifest asked for with only the Docker type: the status distribution gives, OCI error body."""
        direct = self._get(self.reg.url, "library/test", "1", oci.DOCKER_MANIFEST)
        got = self._get(self.srv.url, "library/test", "1", oci.DOCKER_MANIFEST)
        self.assertEqual(got[0], direct[0])
        self.assertEqual(got[0], 404)
        self.assertEqual(oci.oci_error_codes(got[2]), ["MANIFEST_UNKNOWN"])

    def test_docker_types(self):
        """Docker schema2 manifest and manifest list keep their media types and digests."""
        single, multi = self.docker_images["images"]["single"], self.docker_images["images"]["multi"]
        self.assertEqual(single["mediaType"], oci.DOCKER_MANIFEST)
        for accept in (oci.DOCKER_MANIFEST, oci.DOCKER_MANIFEST + ", " + oci.OCI_MANIFEST):
            self.assertManifest(
                self._get(self.srv.url, DOCKER_TYPES_NAME, "1", accept), oci.DOCKER_MANIFEST, single["digest"]
            )
        for accept in (oci.DOCKER_LIST, oci.OCI_INDEX):
            self.assertManifest(
                self._get(self.srv.url, DOCKER_TYPES_NAME, "multi", accept), oci.DOCKER_LIST, multi["digest"]
            )

    def test_head_manifest(self):
        """HEAD of a manifest: headers of the GET, no body."""
        single = self.image("single")
        status, headers, body = self._get(self.srv.url, "library/test", "1", oci.OCI_MANIFEST, method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Docker-Content-Digest"], single["digest"])
        self.assertEqual(int(headers["Content-Length"]), single["size"])
        self.assertEqual(headers["Content-Type"], oci.OCI_MANIFEST)


class RangeWhileDownloadingTests(SynchronousTestCase):
    """Ranges of a blob still on its way from a slow (rate-limited) upstream."""

    RATE = 24 << 20  # bytes/s: the large layer takes several seconds to arrive

    def setUp(self):
        self.reg, self.images = support.shared_upstream()
        self.fault = oci.FaultUpstream(self.reg.url)
        self.addCleanup(self.fault.close)
        self.srv = support.HarborServer(oci.harbor_config(self.fault.url))
        self.addCleanup(self.srv.close)

    def test_range_served_from_growing_file(self):
        """A Range inside what has arrived is answered before the download ends; one past it waits for it."""
        layer = max(self.images["images"]["large"]["layers"], key=lambda l: l["size"])
        size, digest = layer["size"], layer["digest"]
        self.fault.set_rules({"path": "/blobs/" + digest, "mode": "rate", "rate": self.RATE})
        url = "%s/v2/library/test/blobs/%s" % (self.srv.url, digest)
        thread, whole = oci.start_fetch(url, keep=False)
        self.addCleanup(thread.join, 120)
        # wait until some MiB are in
        got = oci.wait_metric(self.srv, "harbor_cache_upstream_bytes", lambda v: v >= 4 << 20, front="oci")
        self.assertGreaterEqual(got, 4 << 20)
        status, headers, body = support.http("GET", url, {"Range": "bytes=1048576-1049599"})
        self.assertEqual(status, 206)
        self.assertEqual(headers["Content-Range"], "bytes 1048576-1049599/%d" % size)
        self.assertEqual(len(body), 1024)
        # still downloading when that answer was complete
        self.assertEqual(oci.metric(self.srv, "harbor_cache_inflight_downloads", front="oci"), 1)
        self.assertLess(oci.metric(self.srv, "harbor_cache_upstream_bytes", front="oci"), size)
        status, headers, tail = support.http("GET", url, {"Range": "bytes=-4096"})
        self.assertEqual(status, 206)
        self.assertEqual(headers["Content-Range"], "bytes %d-%d/%d" % (size - 4096, size - 1, size))
        thread.join(120)
        self.assertEqual((whole.status, whole.error, whole.digest), (200, None, digest))
        # the ranges were the right bytes: compare with the committed file
        with open(oci.stored_blob(self.srv, digest), "rb") as f:
            f.seek(1048576)
            self.assertEqual(body, f.read(1024))
            f.seek(size - 4096)
            self.assertEqual(tail, f.read())
        self.assertEqual(self.fault.wait_requests("GET", "/blobs/" + digest, 1), 1)


class DockerPullTests(SynchronousTestCase):
    """docker pull through harbor-cache, with a private dockerd (vfs, no networking of its own)."""

    def setUp(self):
        support.require("dockerd", "docker")
        support.needs_root("dockerd")
        self.reg, self.images = support.shared_upstream()
        self.srv = support.HarborServer(oci.harbor_config(self.reg.url))
        self.addCleanup(self.srv.close)
        # short path: the socket path must fit in sun_path
        self.dir = tempfile.mkdtemp(prefix="hit-dk-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sock = os.path.join(self.dir, "docker.sock")
        self.daemon = support._Daemon("dockerd", os.path.join(self.dir, "dockerd.log"))
        self.daemon.start(
            [
                "dockerd",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--data-root",
                os.path.join(self.dir, "data"),
                "--exec-root",
                os.path.join(self.dir, "exec"),
                "--pidfile",
                os.path.join(self.dir, "dockerd.pid"),
                "-H",
                "unix://" + self.sock,
                "--insecure-registry",
                self.srv.hostport,
            ]
        )
        self.addCleanup(self.daemon.stop, 20)
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock)
        deadline = time.monotonic() + 60
        while True:
            cp = support.run(["docker", "version"], env=self.env, timeout=30)
            if cp.returncode == 0:
                break
            if not self.daemon.running() or time.monotonic() > deadline:
                with open(self.daemon.log_path, "rb") as f:
                    tail = f.read()[-3000:].decode("utf-8", "replace")
                support.unavailable("dockerd cannot run here: %s\n%s" % (cp.stderr[-500:], tail))
            time.sleep(0.2)

    def _docker(self, *args):
        return support.check_ok(support.run(["docker", *args], env=self.env, timeout=600))

    def test_pull_tag_and_arm64(self):
        """docker pull by tag gives the upstream digest; --platform linux/arm64 picks the arm64 child."""
        ref = "%s/library/test:1" % self.srv.hostport
        self._docker("pull", ref)
        digests = json.loads(self._docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout)
        self.assertIn("%s/library/test@%s" % (self.srv.hostport, self.images["images"]["single"]["digest"]), digests)
        multi = "%s/library/test:multi" % self.srv.hostport
        self._docker("pull", "--platform", "linux/arm64", multi)
        arch = self._docker("image", "inspect", "--format", "{{.Architecture}}", multi).stdout.strip()
        self.assertEqual(arch, "arm64")
        for layer in self.images["images"]["multi"]["manifests"]["arm64"]["layers"]:
            self.assertTrue(os.path.exists(oci.stored_blob(self.srv, layer["digest"])), layer["digest"])
