"""The store's faults against a real S3 API server: a harbor-cache process on ``backend = "s3"`` whose
endpoint is `tests.s3_faults.FaultProxy` in front of moto (issue 26, point 7).

* 503 ``SlowDown`` answers to the commit of a cold pull are retried: the pull succeeds, the proxy saw the
  retries, the object is in the bucket;
* a multipart part upload reset in the middle of its body is retried: the push completes;
* parts that keep failing past ``max_attempts``: the push answers 503 ``STORAGE_UNAVAILABLE``, no row, no
  object, and no multipart upload left open (asked of moto directly);
* (and, with the proxy as the instrument) a Range request on a tier miss is one ranged GET of the object,
  the tier's fill a whole one beside it;
* a bucket that stops answering: a read that needs it answers 503 within
  ``max_attempts × timeout_seconds + (max_attempts − 1) × backoff_cap_seconds`` (docs/deployment.md), while a
  warm hit from the local tier answers 200.
"""

from __future__ import annotations

import atexit
import os
import shutil
import time
import urllib.parse

from twisted.trial.unittest import SynchronousTestCase

from tests import s3_support
from tests.integration import oci_support as oci
from tests.integration import push_support, support
from tests.integration import test_s3_storage_it as s3it
from tests.integration.oci_support import sha256_digest as sha256
from tests.integration.test_s3_storage_it import BUCKET, Moto, key_of
from tests.s3_faults import FaultProxy

MiB = 1024 * 1024
MAX_ATTEMPTS = 3
TIMEOUT = 1.0
BACKOFF_CAP = 0.1
#: the documented bound of one S3 operation that never gets an answer
BOUND = MAX_ATTEMPTS * TIMEOUT + (MAX_ATTEMPTS - 1) * BACKOFF_CAP


_UPSTREAM: list = []


def own_upstream() -> tuple[support.Registry, dict]:
    """This module's upstream with library/test (not the shared one: its access log counts every module's
    GETs, and test_s3_storage_it counts GETs of the same layers)."""
    if not _UPSTREAM:
        layout, images = support.oci_layout()
        reg = support.Registry()
        atexit.register(reg.close)
        support.push_layout(layout, reg.hostport, "library/test")
        _UPSTREAM.extend([reg, images])
    return _UPSTREAM[0], _UPSTREAM[1]


def storage_table(endpoint: str) -> str:
    """The tests' table with this module's bounds: few, fast attempts and 5 MiB multipart parts."""
    return s3it.storage_table(
        endpoint,
        max_attempts=MAX_ATTEMPTS,
        backoff_cap_seconds=BACKOFF_CAP,
        timeout_seconds=TIMEOUT,
        multipart_threshold_bytes=5 * MiB,
        part_size_bytes=5 * MiB,
    )


def moto_behind_faults(case: SynchronousTestCase) -> tuple[Moto, FaultProxy]:
    """A clean AWS environment, a moto server and the fault proxy in front of it, all undone at the case's end."""
    env = s3_support.clean_aws_environment().__enter__()
    case.addCleanup(env.__exit__)
    moto = Moto()
    case.addCleanup(moto.close)
    proxy = FaultProxy(moto.port)
    case.addCleanup(proxy.close)
    return moto, proxy


class S3FaultTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("docker-registry")
        self.moto, self.proxy = moto_behind_faults(self)
        self.reg, self.images = own_upstream()
        config = support.oci_config(
            self.reg.url, server={"public_url": "http://127.0.0.1:@PORT@"}, routes=["library/*"]
        )
        self.srv = support.HarborServer(config + "\n" + storage_table(self.proxy.endpoint))
        self.addCleanup(self.srv.close)

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        status, _, body = support.http("GET", self.srv.url + path, headers or {})
        return status, body

    def push(self, data: bytes) -> tuple[int, bytes]:
        """A monolithic push (POST, then PUT with the whole body) of ``data`` to hosted/app."""
        push_support.ensure_user(self.srv, *push_support.WRITER, "read-write")
        token = push_support.registry_token(self.srv, *push_support.WRITER, "repository:hosted/app:pull,push")
        self.auth = {"Authorization": "Bearer " + token}
        status, headers, body = support.http("POST", self.srv.url + "/v2/hosted/app/blobs/uploads/", self.auth)
        self.assertEqual(status, 202, body)
        location = urllib.parse.urlsplit(headers["Location"])
        target = location.path + ("?" + location.query + "&" if location.query else "?") + "digest=" + sha256(data)
        headers = {**self.auth, "Content-Type": "application/octet-stream"}
        status, _, body = support.http("PUT", self.srv.url + target, headers, data)
        return status, body

    def open_uploads(self) -> list:
        return self.moto.s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])

    def test_slowdown_answers_to_a_cold_pull_are_retried(self) -> None:
        layer = self.images["images"]["single"]["layers"][0]["digest"]
        key = key_of(layer)
        self.proxy.add("slowdown", "PUT", key, count=MAX_ATTEMPTS - 1)
        upstream_gets = self.reg.count_requests("GET", "/blobs/" + layer)  # (the registry is shared by the tests)
        status, body = self.get("/v2/library/test/blobs/" + layer)
        self.assertEqual((status, sha256(body)), (200, layer))
        deadline = time.monotonic() + 10
        while key not in self.moto.keys() and time.monotonic() < deadline:
            time.sleep(0.1)  # (the commit ends after the client's last byte)
        self.assertIn(key, self.moto.keys())
        self.assertEqual(self.proxy.count("PUT", key, fault="slowdown"), MAX_ATTEMPTS - 1)
        self.assertEqual(self.proxy.count("PUT", key, fault=None), 1)  # the retry that got through
        # (the registry logs a GET after its answer: wait for the line; a second one gets a moment to show)
        self.assertEqual(self.reg.wait_requests("GET", "/blobs/" + layer, upstream_gets + 1), upstream_gets + 1)
        status, body = self.get("/v2/library/test/blobs/" + layer)  # committed: a hit, no second download
        self.assertEqual((status, sha256(body)), (200, layer))
        self.assertEqual(
            self.reg.wait_requests("GET", "/blobs/" + layer, upstream_gets + 2, timeout=2), upstream_gets + 1
        )

    def test_a_part_reset_mid_body_is_retried(self) -> None:
        data = os.urandom(6 * MiB)  # two parts of a multipart upload
        key = key_of(sha256(data))
        self.proxy.add("reset", "PUT", key, "partNumber=1", after_bytes=1 * MiB)
        status, body = self.push(data)
        self.assertEqual(status, 201, body)
        self.assertEqual(self.proxy.count("PUT", key, "partNumber=1", fault="reset"), 1)
        self.assertEqual(self.proxy.count("PUT", key, "partNumber=1", fault=None), 1)  # the retry
        self.assertEqual(self.proxy.count("PUT", key, "partNumber=2", fault=None), 1)
        self.assertIn(key, self.moto.keys())
        self.assertEqual(self.moto.s3().head_object(Bucket=BUCKET, Key=key)["ContentLength"], len(data))
        self.assertEqual(self.open_uploads(), [])
        shutil.rmtree(os.path.join(self.srv.data_dir, "blobs"))  # served from the bucket: the object is whole
        status, _, got = support.http("GET", "%s/v2/hosted/app/blobs/%s" % (self.srv.url, sha256(data)), self.auth)
        self.assertEqual((status, sha256(got)), (200, sha256(data)))

    def test_parts_failing_past_the_attempts_leave_nothing_half_committed(self) -> None:
        data = os.urandom(6 * MiB)
        digest = sha256(data)
        key = key_of(digest)
        self.proxy.add("internal", "PUT", key, "partNumber=", count=1000)
        status, body = self.push(data)
        self.assertEqual((status, oci.oci_error_codes(body)), (503, ["STORAGE_UNAVAILABLE"]), body)
        self.assertEqual(self.proxy.count("PUT", key, fault="internal"), MAX_ATTEMPTS)  # then no more parts
        self.assertEqual(self.proxy.count("DELETE", key, "uploadId=", fault=None), 1)  # the abort
        self.assertNotIn(key, self.moto.keys())
        self.assertEqual(self.open_uploads(), [])
        status, _, _ = support.http("HEAD", "%s/v2/hosted/app/blobs/%s" % (self.srv.url, digest), self.auth)
        self.assertEqual(status, 404)  # no row

    def test_a_stalled_bucket_times_out_into_503_and_warm_hits_go_on(self) -> None:
        layers = [layer["digest"] for layer in self.images["images"]["single"]["layers"]]
        for layer in layers:
            self.assertEqual(self.get("/v2/library/test/blobs/" + layer)[0], 200)
        deadline = time.monotonic() + 10
        while not all(key_of(layer) in self.moto.keys() for layer in layers) and time.monotonic() < deadline:
            time.sleep(0.1)
        warm, cold = layers[0], layers[1]
        os.unlink(os.path.join(self.srv.data_dir, *key_of(cold).split("/")))  # only in the bucket now
        self.proxy.add("stall", None, "/" + BUCKET, count=10_000)
        started = time.monotonic()
        status, body = self.get("/v2/library/test/blobs/" + cold)
        elapsed = time.monotonic() - started
        self.assertEqual((status, oci.oci_error_codes(body)), (503, ["STORAGE_UNAVAILABLE"]), body)
        self.assertLess(elapsed, BOUND + 1.0)
        self.assertGreaterEqual(elapsed, TIMEOUT)  # (it did wait for the store)
        self.assertGreaterEqual(self.proxy.count("GET", key_of(cold), fault="stall"), 1)
        status, body = self.get("/v2/library/test/blobs/" + warm)
        self.assertEqual((status, sha256(body)), (200, warm))

    def test_a_range_on_a_tier_miss_is_a_ranged_bucket_get(self) -> None:
        layer = max(self.images["images"]["single"]["layers"], key=lambda l: l["size"])
        digest, size = layer["digest"], layer["size"]
        status, whole = self.get("/v2/library/test/blobs/" + digest)
        self.assertEqual((status, sha256(whole)), (200, digest))
        deadline = time.monotonic() + 10
        while key_of(digest) not in self.moto.keys() and time.monotonic() < deadline:
            time.sleep(0.1)
        tier_file = os.path.join(self.srv.data_dir, *key_of(digest).split("/"))
        os.unlink(tier_file)
        status, headers, part = support.http(
            "GET", self.srv.url + "/v2/library/test/blobs/" + digest, {"Range": "bytes=%d-" % (size - 100)}
        )
        self.assertEqual((status, part), (206, whole[-100:]))
        self.assertEqual(headers["Content-Range"], "bytes %d-%d/%d" % (size - 100, size - 1, size))
        deadline = time.monotonic() + 10
        while not os.path.exists(tier_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(tier_file))  # filled: the next read is a tier hit
        gets = [r.range for r in self.proxy.requests if r.method == "GET" and key_of(digest) in r.target]
        self.assertEqual(gets, ["bytes=%d-%d" % (size - 100, size - 1), None])  # the part, and the fill
