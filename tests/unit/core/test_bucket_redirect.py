"""``[storage] redirect`` and the reads that must not fill the tier, over an in-memory bucket whose URLs are
signed by the real S3 client (no HTTP: presigning is local).

A GET of committed content answers 307 to a presigned URL of its object
(checked against botocore's own client at the same instant), Range GETs
too; HEAD answers from the row (no redirect, no fill); content still
downloading is streamed; off by default; the access log and the
``harbor_cache_redirects_total`` counter record each redirect.
"""

from __future__ import annotations

import datetime
import os
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

from twisted.logger import ILogObserver, globalLogPublisher
from zope.interface import implementer

from harbor_cache.settings.storage import StorageConfig
from harbor_cache.storage.bucket import Bucket, blob_key
from harbor_cache.storage.s3 import S3Client, S3Settings
from harbor_cache.testing import InlineIO
from tests.unit.base import OciCacheCase
from tests.unit.core.test_bucket_core import MemoryBucket

KEYS = ("AKIDREDIRECT", "redirect-secret")
ENDPOINT = "http://s3.test:9000"


class SigningBucket(MemoryBucket):
    """`MemoryBucket` plus the real `Bucket.presign` on a real (never connected) `S3Client`."""

    presign = Bucket.presign

    def __init__(self, clock: Any) -> None:
        super().__init__()
        settings = S3Settings(
            bucket="cache", endpoint=ENDPOINT, addressing="path", access_key_id=KEYS[0], secret_access_key=KEYS[1]
        )
        self.client = S3Client(settings, None, InlineIO(), clock)  # (presign makes no request)


def botocore_url(digest: str, expires: int, when: datetime.datetime) -> str:
    """What botocore's own client presigns for the object at ``when``."""
    import botocore.session
    from botocore.config import Config

    client = botocore.session.Session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id=KEYS[0],
        aws_secret_access_key=KEYS[1],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": "cache", "Key": blob_key(digest)}, ExpiresIn=expires
        )


class RedirectTests(OciCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.bucket = SigningBucket(self.clock)
        self.app.storage.use_bucket(self.bucket, 1 << 30)  # type: ignore[arg-type]
        self.layer = os.urandom(100_000)
        self.digest = self.upstream.add_blob(self.layer)
        self.path = "/v2/library/app/blobs/" + self.digest
        self.access: list[dict[str, Any]] = []

        @implementer(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "harbor_cache.access" and "path" in event:
                self.access.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def send(self, method: str = "GET", headers: dict[bytes | str, bytes | str] | None = None) -> tuple[Any, bytes]:
        """One request, redirects not followed (treq would follow a 307 of a GET)."""
        client = next(c for a, _agent, c in self._sites if a is self.app)
        d = client.request(method, self.public_url + self.path, headers=headers, allow_redirects=False)
        self.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(self.read_body(response))

    def redirects(self) -> float:
        return self.app.metrics.redirects.labels("oci")._value.get()

    def test_off_by_default(self) -> None:
        self.assertEqual((StorageConfig().redirect, StorageConfig().redirect_expiry_seconds), (False, 1200))
        self.send()  # committed
        response, body = self.send()
        self.assertEqual((response.code, body), (200, self.layer))
        self.assertEqual(self.redirects(), 0)

    def test_committed_blob_get_is_a_307_to_a_url_botocore_signs_the_same(self) -> None:
        self.send()  # cold: streamed, committed to the bucket
        self.app.storage.redirect_expiry = 300
        response, body = self.send()
        self.assertEqual((response.code, body), (307, b""))
        location = response.headers.getRawHeaders(b"Location")[0].decode()
        query = dict(parse_qsl(urlsplit(location).query))
        self.assertEqual(query["X-Amz-Expires"], "300")
        when = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        expected = botocore_url(self.digest, 300, when)
        self.assertEqual(urlsplit(location)[:3], urlsplit(expected)[:3])  # scheme, host, /cache/blobs/sha256/..
        self.assertEqual(query, dict(parse_qsl(urlsplit(expected).query)))  # the same signature
        self.assertEqual(response.headers.getRawHeaders(b"Docker-Content-Digest"), [self.digest.encode()])
        self.assertEqual(self.redirects(), 1)
        self.assertEqual(self.access[-1]["cache_status"], "redirect")
        entry = self.successResultOf(self.drive(self.app.index.get_entry("blob", "", self.digest)))
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        self.assertIsNotNone(entry)

    def test_range_gets_are_redirected_too(self) -> None:
        self.send()
        self.app.storage.redirect_expiry = 300
        response, _ = self.send(headers={"Range": "bytes=10-19"})
        self.assertEqual(response.code, 307)  # the object store answers the Range the client sends again

    def test_head_is_answered_here_from_the_row_without_a_fill(self) -> None:
        self.send()
        self.app.storage.redirect_expiry = 300
        os.unlink(self.app.storage.blob_path(self.digest))  # only in the bucket now
        response, body = self.send("HEAD")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Length"), [b"%d" % len(self.layer)])
        self.assertEqual(response.headers.getRawHeaders(b"Docker-Content-Digest"), [self.digest.encode()])
        self.assertEqual((self.bucket.fills, self.app.storage.stat_blob(self.digest)), (0, None))
        self.assertEqual(self.redirects(), 0)

    def test_head_without_redirects_does_not_fill_either(self) -> None:
        self.send()
        os.unlink(self.app.storage.blob_path(self.digest))
        response, _ = self.send("HEAD")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Length"), [b"%d" % len(self.layer)])
        self.assertEqual((self.bucket.fills, self.app.storage.stat_blob(self.digest)), (0, None))
        self.assertEqual(self.upstream.count("HEAD", "/blobs/"), 0)
        response, body = self.send()  # a GET does fill
        self.assertEqual((response.code, body, self.bucket.fills), (200, self.layer, 1))

    def test_content_still_downloading_is_streamed(self) -> None:
        self.app.storage.redirect_expiry = 300
        self.upstream.hold[self.digest] = 20_000
        first = self.request("GET", self.path)
        second = self.request("GET", self.path)  # joins the download in flight: no row yet
        self.upstream.release()
        self.flush()
        for d in (first, second):
            response = self.successResultOf(d)
            self.assertEqual((response.code, self.successResultOf(self.read_body(response))), (200, self.layer))
        self.assertEqual(self.redirects(), 0)
        self.assertEqual(self.send()[0].code, 307)  # committed now

    def test_manifests_are_never_redirected(self) -> None:
        manifest, digest = self.upstream.add_manifest(
            "library/app", "1", {"schemaVersion": 2, "layers": [], "config": {}}
        )
        self.app.storage.redirect_expiry = 300
        for _ in range(2):
            response = self.successResultOf(self.request("GET", "/v2/library/app/manifests/" + digest))
            self.assertEqual(response.code, 200)
        self.assertEqual(self.redirects(), 0)
