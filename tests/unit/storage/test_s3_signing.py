"""The S3 client's pure parts: settings, URLs for both addressing styles, SigV4 against AWS's own
published examples, and the credential chain (explicit keys, environment, shared file, refresh)."""

from __future__ import annotations

import datetime
import os
from typing import Any
from unittest import mock

from botocore.credentials import Credentials, RefreshableCredentials
from twisted.internet import defer
from twisted.trial import unittest

from harbor_cache.storage.s3.auth import EMPTY_SHA256, Addresser, CredentialSource, presign_url, sign_headers
from harbor_cache.storage.s3.config import S3CredentialsError, S3Settings
from harbor_cache.testing import InlineIO
from tests import s3_support

# https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html (and -query-string-auth)
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_TIME = datetime.datetime(2013, 5, 24, 0, 0, 0)


def settings(**fields: Any) -> S3Settings:
    return S3Settings(**{"bucket": "examplebucket", **fields})


class SettingsTests(unittest.TestCase):
    def test_defaults_are_documented_values(self):
        s = settings()
        self.assertEqual(
            (s.max_attempts, s.backoff_base, s.backoff_cap, s.timeout, s.addressing, s.region),
            (5, 0.1, 5.0, 60.0, "auto", "us-east-1"),
        )
        self.assertEqual(s.endpoint_url, "https://s3.us-east-1.amazonaws.com")

    def test_bad_values_are_named_together(self):
        with self.assertRaises(ValueError) as caught:
            settings(addressing="dns", access_key_id="AK", part_size=1024, max_attempts=0, endpoint="ftp://x")
        message = str(caught.exception)
        for word in ("addressing 'dns'", "go together", "part_size", "max_attempts", "endpoint 'ftp://x'"):
            self.assertIn(word, message)

    def test_the_secret_is_not_in_the_repr(self):
        s = settings(access_key_id="AKID", secret_access_key="s3cr3t", session_token="tok3n")
        self.assertNotIn("s3cr3t", repr(s))
        self.assertNotIn("tok3n", repr(s))
        self.assertIn("AKID", repr(s))

    def test_auto_addressing(self):
        self.assertTrue(settings().virtual_host)
        self.assertFalse(settings(bucket="with.dots").virtual_host)
        self.assertFalse(settings(bucket="Upper").virtual_host)
        self.assertFalse(settings(endpoint="http://127.0.0.1:9000").virtual_host)
        self.assertFalse(settings(endpoint="http://localhost:9000").virtual_host)
        self.assertTrue(settings(endpoint="https://minio.example.org").virtual_host)
        self.assertFalse(settings(endpoint="https://minio.example.org", addressing="path").virtual_host)
        self.assertTrue(settings(endpoint="http://127.0.0.1:9000", addressing="virtual").virtual_host)


class AddresserTests(unittest.TestCase):
    def test_path_style(self):
        a = Addresser(settings(endpoint="http://127.0.0.1:9000/", addressing="path", prefix="cache/"))
        self.assertEqual(a.url("blobs/sha256/ab"), "http://127.0.0.1:9000/examplebucket/cache/blobs/sha256/ab")
        self.assertEqual(a.url(None, [("uploads", None)]), "http://127.0.0.1:9000/examplebucket?uploads")

    def test_virtual_host_style(self):
        a = Addresser(settings(endpoint="https://s3.example.org:8443", addressing="virtual"))
        self.assertEqual(a.url("a b/~x+y"), "https://examplebucket.s3.example.org:8443/a%20b/~x%2By")
        self.assertEqual(
            a.url(None, [("list-type", "2"), ("prefix", "p/"), ("continuation-token", "a=b")]),
            "https://examplebucket.s3.example.org:8443/?list-type=2&prefix=p%2F&continuation-token=a%3Db",
        )


class SigV4VectorTests(unittest.TestCase):
    """Our URLs signed through our path match the signatures in AWS's S3 documentation."""

    def setUp(self) -> None:
        patcher = mock.patch("botocore.auth.get_current_datetime", return_value=AWS_TIME)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.creds = Credentials(AWS_KEY, AWS_SECRET).get_frozen_credentials()
        self.addresser = Addresser(settings(endpoint="https://s3.amazonaws.com", addressing="virtual"))

    def signature(self, headers: dict[str, str]) -> tuple[str, str]:
        auth = headers["Authorization"]
        return auth.split("SignedHeaders=")[1].split(",")[0], auth.split("Signature=")[1]

    def test_get_object_with_range(self):
        url = self.addresser.url("test.txt")
        headers = sign_headers(self.creds, "us-east-1", "GET", url, {"Range": "bytes=0-9"}, EMPTY_SHA256)
        self.assertEqual(
            self.signature(headers),
            (
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        )
        self.assertTrue(headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/20130524/"))
        self.assertEqual((headers["X-Amz-Date"], headers["X-Amz-Content-SHA256"]), ("20130524T000000Z", EMPTY_SHA256))

    def test_get_bucket_listing_with_a_query(self):
        url = self.addresser.url(None, [("max-keys", "2"), ("prefix", "J")])
        headers = sign_headers(self.creds, "us-east-1", "GET", url, {}, EMPTY_SHA256)
        self.assertEqual(self.signature(headers)[1], "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")

    def test_presigned_get(self):
        url = presign_url(self.creds, "us-east-1", self.addresser.url("test.txt"), 86400)
        self.assertEqual(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={AWS_KEY}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
            "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        )

    def test_a_session_token_is_sent_and_signed(self):
        creds = Credentials(AWS_KEY, AWS_SECRET, "TOKEN").get_frozen_credentials()
        headers = sign_headers(creds, "us-east-1", "GET", self.addresser.url("k"), {}, EMPTY_SHA256)
        self.assertEqual(headers["X-Amz-Security-Token"], "TOKEN")
        self.assertIn("x-amz-security-token", self.signature(headers)[0])


class _DeferredIO:
    """A StorageIO whose calls wait until the test runs them (single-flight checks)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, defer.Deferred[Any]]] = []

    def run(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.calls.append((lambda: fn(*args), d))
        return d

    def finish(self) -> None:
        calls, self.calls = self.calls, []
        for fn, d in calls:
            try:
                d.callback(fn())
            except Exception as e:
                d.errback(e)


class CredentialTests(unittest.TestCase):
    def setUp(self) -> None:
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)

    def get(self, source: CredentialSource) -> Any:
        return self.successResultOf(defer.Deferred.fromCoroutine(source.get()))

    def test_explicit_keys(self):
        source = CredentialSource(settings(access_key_id="AK", secret_access_key="SK"), InlineIO())
        creds = self.get(source)
        self.assertEqual((creds.access_key, creds.secret_key, source.method), ("AK", "SK", "explicit"))

    def test_chain_from_the_environment(self):
        with mock.patch.dict(os.environ, {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET"}):
            source = CredentialSource(settings(), InlineIO())
            creds = self.get(source)
        self.assertEqual((creds.access_key, source.method), ("ENVKEY", "env"))

    def test_chain_from_a_shared_credentials_file_and_profile(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[default]\naws_access_key_id = DEF\naws_secret_access_key = x\n")
            f.write("[ci]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n")
        with mock.patch.dict(os.environ, {"AWS_SHARED_CREDENTIALS_FILE": path}):
            source = CredentialSource(settings(profile="ci"), InlineIO())
            creds = self.get(source)
        self.assertEqual((creds.access_key, source.method), ("FILEKEY", "shared-credentials-file"))

    def test_no_credentials_anywhere_is_a_clear_error(self):
        source = CredentialSource(settings(), InlineIO())
        failure = self.failureResultOf(defer.Deferred.fromCoroutine(source.get()), S3CredentialsError)
        self.assertIn("no S3 credentials", str(failure.value))

    def test_resolution_runs_on_the_io_pool_once_for_concurrent_callers(self):
        io = _DeferredIO()
        calls = []

        def resolve(profile: str | None) -> Any:
            calls.append(profile)
            return Credentials("AK", "SK", method="iam-role")

        source = CredentialSource(settings(), io, resolve=resolve)
        first = defer.Deferred.fromCoroutine(source.get())
        second = defer.Deferred.fromCoroutine(source.get())
        self.assertNoResult(first)
        self.assertEqual((len(io.calls), calls), (1, []))  # nothing ran on the reactor
        io.finish()
        self.assertEqual([self.successResultOf(d).access_key for d in (first, second)], ["AK", "AK"])
        self.assertEqual(calls, [None])
        self.assertEqual(self.get(source).access_key, "AK")  # resolved once, kept
        self.assertEqual(io.calls, [])

    def test_refreshable_credentials_are_refreshed_off_the_reactor_before_expiry(self):
        now = datetime.datetime.now(datetime.UTC)
        refreshed = []

        def refresh() -> dict[str, str]:
            refreshed.append(True)
            expiry = now + datetime.timedelta(hours=1)
            return {"access_key": "NEW", "secret_key": "S", "token": "T", "expiry_time": expiry.isoformat()}

        soon = now + datetime.timedelta(minutes=5)  # inside botocore's advisory window (15 min)
        creds = RefreshableCredentials.create_from_metadata(
            {"access_key": "OLD", "secret_key": "S", "token": "T", "expiry_time": soon.isoformat()}, refresh, "iam-role"
        )
        io = _DeferredIO()
        source = CredentialSource(settings(), io, resolve=lambda _profile: creds)
        d = defer.Deferred.fromCoroutine(source.get())
        io.finish()  # the chain
        self.assertNoResult(d)
        self.assertEqual(refreshed, [])  # the refresh waits for the pool too
        io.finish()
        self.assertEqual((self.successResultOf(d).access_key, refreshed), ("NEW", [True]))
        # fresh now: read without the pool
        self.assertEqual(self.get(source).access_key, "NEW")
