"""A harbor-cache process with ``[storage] backend = "s3"`` against a real S3 API server (moto) on loopback.

One node, end to end: skopeo pulls through it (cold, then warm) and the
layers are objects in the bucket; a Maven GET likewise; the local tier
wiped, everything is served again from the bucket without asking the
upstream; a hosted push pulls back after another wipe.  Then the store
fails: moto stopped, a warm hit from the local tier still answers 200,
content that is only in the bucket answers 503 STORAGE_UNAVAILABLE, a cold
download is refused the same way, /readyz says "bucket"; moto back, /readyz
is ready again.

The moto process is this module's own (it is stopped and started again on
the same port; moto keeps no state, so the bucket is made again).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from tests import s3_support
from tests.integration import oci_support as oci
from tests.integration import support
from tests.integration.oci_support import sha256_digest as sha256

BUCKET = "harbor-it"
KEYS = ("it-access-key", "it-secret-key")
SMALL_POM = "harness/small/1.0/small-1.0.pom"
SMALL_JAR = "harness/small/1.0/small-1.0.jar"


class Moto:
    """``python -m moto.server`` on a fixed loopback port, stopped and started at will (no signature checks)."""

    def __init__(self) -> None:
        try:
            import moto.server  # noqa: F401
        except ImportError as e:
            s3_support._unavailable(f"moto is not installed ({e})")
        self.port = support.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="harbor-it-moto-", suffix=".log", delete=False)
        self.start()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        self.s3().create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.log.close()
        os.unlink(self.log.name)

    def s3(self):
        return s3_support.S3Server(self.endpoint, self.port, *KEYS).botocore_client()

    def keys(self) -> set[str]:
        return {o["Key"] for o in self.s3().list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def key_of(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart[:2]}/{hexpart}"


#: the [storage] table of these tests: fast retries, a probe every second (`storage_table` overrides)
STORAGE_KEYS: dict[str, object] = {
    "max_attempts": 2,
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.1,
    "timeout_seconds": 5,
    "probe_interval_seconds": 1,
}


def storage_table(endpoint: str, **overrides: object) -> str:
    """``[storage] backend = "s3"`` on the tests' bucket at ``endpoint``; ``overrides`` change or add keys."""
    keys = {**STORAGE_KEYS, **overrides}
    lines = [
        "[storage]",
        'backend = "s3"',
        f'bucket = "{BUCKET}"',
        f'endpoint = "{endpoint}"',
        'addressing = "path"',
        f'access_key_id = "{KEYS[0]}"',
        f'secret_access_key = "{KEYS[1]}"',
        *(f"{key} = {value}" for key, value in keys.items()),
    ]
    return "\n".join(lines) + "\n"


class S3StorageTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("skopeo")
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.moto = Moto()
        self.addCleanup(self.moto.close)
        self.reg, self.images = support.shared_upstream()
        self.maven = support.shared_maven_upstream()
        config = support.oci_config(
            self.reg.url,
            server={"public_url": "http://127.0.0.1:@PORT@"},
            maven_repositories=[{"id": "central", "url": self.maven.url}],
            routes=["library/*"],
        )
        self.srv = support.HarborServer(config + "\n" + storage_table(self.moto.endpoint))
        self.addCleanup(self.srv.close)
        self.tmp = tempfile.mkdtemp(prefix="harbor-it-s3-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def wipe_tier(self) -> None:
        blobs = os.path.join(self.srv.data_dir, "blobs")
        shutil.rmtree(blobs)
        os.makedirs(blobs)

    def pull(self, ref: str, name: str, creds: tuple[str, str] | None = None) -> str:
        out = os.path.join(self.tmp, name)
        args = ["copy", "--src-tls-verify=false"]
        if creds:
            args += ["--src-creds", "%s:%s" % creds]
        support.check_ok(support.skopeo(*args, "docker://%s/%s" % (self.srv.hostport, ref), "oci:%s:x" % out))
        with open(os.path.join(out, "index.json")) as f:
            return json.load(f)["manifests"][0]["digest"]

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        status, _, body = support.http("GET", self.srv.url + path, headers or {})
        return status, body

    def readyz(self, want: int, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get("/readyz")
            if status == want or time.monotonic() > deadline:
                self.assertEqual(status, want, body)
                return json.loads(body)
            time.sleep(0.2)

    def test_content_lives_in_the_bucket(self) -> None:
        single = self.images["images"]["single"]
        layers = [layer["digest"] for layer in single["layers"]]
        # cold, then warm: the same manifest, every blob an object in the bucket
        # (the upstream registry is shared with other modules: count this module's GETs from here)
        before = self.reg.count_requests("GET", "/blobs/" + layers[0])
        self.assertEqual(self.pull("library/test:1", "cold"), single["digest"])
        self.assertEqual(self.pull("library/test:1", "warm"), single["digest"])
        keys = self.moto.keys()
        for digest in layers + [single["config"], single["digest"]]:
            self.assertIn(key_of(digest), keys)
        # (the registry logs a GET after its answer: wait for the line; a second one gets a moment to show)
        upstream_gets = self.reg.wait_requests("GET", "/blobs/" + layers[0], before + 2, timeout=2)
        self.assertEqual(upstream_gets - before, 1)
        # a Maven file too
        status, pom = self.get("/artifacts/central/" + SMALL_POM)
        self.assertEqual(status, 200)
        self.assertIn(key_of(sha256(pom)), self.moto.keys())

        # the local tier is only a cache: wiped, everything comes from the bucket, not the upstream
        self.wipe_tier()
        # a Range request on content only in the bucket: filled, then served as a range
        status, _, whole = support.http("GET", "%s/v2/library/test/blobs/%s" % (self.reg.url, layers[1]))
        status, headers, part = support.http(
            "GET", self.srv.url + "/v2/library/test/blobs/" + layers[1], {"Range": "bytes=5-14"}
        )
        self.assertEqual((status, part), (206, whole[5:15]))
        self.assertEqual(self.pull("library/test:1", "after-wipe"), single["digest"])
        status, body = self.get("/v2/library/test/blobs/" + layers[0])
        self.assertEqual((status, sha256(body)), (200, layers[0]))
        self.assertEqual(
            self.reg.wait_requests("GET", "/blobs/" + layers[0], upstream_gets + 1, timeout=2), upstream_gets
        )
        stats = json.loads(self.get("/api/v1/cache/stats", {"Authorization": "Bearer " + self.srv.login()})[1])
        self.assertEqual(stats["storage_backend"], "s3")
        self.assertGreater(stats["bucket_bytes"], 0)
        self.assertGreater(stats["local_tier_bytes"], 0)
        self.assertIn(
            "harbor_cache_storage_bucket_bytes", urllib.request.urlopen(self.srv.url + "/metrics").read().decode()
        )

        # a hosted push, pulled back after another wipe
        layout, images = support.oci_layout()
        admin = ("admin", self.srv.admin_password)
        support.check_ok(
            support.skopeo(
                "copy",
                "--dest-tls-verify=false",
                "--preserve-digests",
                "--dest-creds",
                "%s:%s" % admin,
                "oci:%s:single" % layout,
                "docker://%s/mine/app:1" % self.srv.hostport,
                timeout=900,
            )  # fmt: skip
        )
        pushed = images["images"]["single"]["digest"]
        self.assertIn(key_of(pushed), self.moto.keys())
        self.wipe_tier()
        self.assertEqual(self.pull("mine/app:1", "hosted", creds=admin), pushed)

        # the store fails
        self.readyz(200)
        self.moto.stop()
        problems = self.readyz(503)["problems"]
        self.assertIn("bucket", problems)
        # a warm hit from the local tier: served
        status, body = self.get("/v2/library/test/blobs/" + layers[0])
        self.assertEqual((status, sha256(body)), (200, layers[0]))
        # content only in the bucket: a clear 503
        os.unlink(os.path.join(self.srv.data_dir, "blobs", *key_of(layers[0]).split("/")[1:]))
        status, body = self.get("/v2/library/test/blobs/" + layers[0])
        self.assertEqual((status, oci.oci_error_codes(body)), (503, ["STORAGE_UNAVAILABLE"]))
        # a cold file: not downloaded while it could not be committed (the Maven upstream is shared with
        # other modules: count from here)
        before = self.maven.count_requests("GET", SMALL_JAR)
        status, body = self.get("/artifacts/central/" + SMALL_JAR)
        self.assertEqual(status, 503, body)
        self.assertIn(b"STORAGE_UNAVAILABLE", body)
        # a GET passed on would be logged a moment after its answer: give it that moment
        self.assertEqual(self.maven.wait_requests("GET", SMALL_JAR, before + 1, timeout=2), before)

        # back: ready again (moto keeps nothing across restarts: the bucket is made again)
        self.moto.start()
        self.readyz(200)
        status, body = self.get("/artifacts/central/" + SMALL_JAR)
        self.assertEqual(status, 200)
        jar_key = key_of(sha256(body))
        self.assertIn(jar_key, self.moto.keys())
        # DELETE /api/v1/cache: the rows, then the tier's files and the bucket's objects
        status, _, _ = support.http(
            "DELETE", self.srv.url + "/api/v1/cache", headers={"Authorization": "Bearer " + self.srv.login()}
        )
        self.assertEqual(status, 200)
        self.assertNotIn(jar_key, self.moto.keys())
        self.assertFalse(os.path.exists(os.path.join(self.srv.data_dir, *jar_key.split("/"))))
        with open(self.srv.log_path) as f:
            log = f.read()
        self.assertEqual(log.count("is unreachable"), 1, "one line per change of state")
        self.assertEqual(log.count("answers again"), 1)
        self.assertNotIn(KEYS[1], log)
