"""``[storage]``: the filesystem by default, an S3 bucket when asked, and every contradiction named."""

from __future__ import annotations

import sys

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.settings.optional import MissingDependency
from harbor_cache.settings.startup import ConfigError, parse_config
from harbor_cache.settings.storage import StorageConfig

S3 = {"backend": "s3", "bucket": "cache", "endpoint": "http://127.0.0.1:9000"}


class StorageConfigTests(SynchronousTestCase):
    def error(self, table):
        return str(self.assertRaises(ConfigError, parse_config, {"storage": table}))

    def test_no_table_is_the_filesystem(self):
        self.assertEqual(parse_config({}).storage, StorageConfig())
        self.assertFalse(parse_config({"storage": {"backend": "filesystem"}}).storage.s3)

    def test_s3_with_every_key(self):
        storage = parse_config(
            {
                "storage": {
                    **S3,
                    "region": "eu-west-1",
                    "prefix": "harbor/",
                    "addressing": "path",
                    "access_key_id": "AKID",
                    "secret_access_key": "very secret",
                    "local_cache_bytes": 1 << 30,
                    "max_attempts": 3,
                    "backoff_base_seconds": 0.2,
                    "backoff_cap_seconds": 2,
                    "timeout_seconds": 30,
                    "multipart_threshold_bytes": 32 << 20,
                    "part_size_bytes": 8 << 20,
                    "probe_interval_seconds": 5,
                }
            }
        ).storage
        self.assertTrue(storage.s3)
        self.assertEqual((storage.bucket, storage.prefix, storage.local_cache_bytes), ("cache", "harbor/", 1 << 30))
        self.assertEqual(storage.backoff_cap_seconds, 2.0)
        self.assertNotIn("very secret", repr(storage))  # never logged

    def test_defaults(self):
        storage = parse_config({"storage": S3}).storage
        self.assertEqual((storage.local_cache_bytes, storage.max_attempts), (10 << 30, 5))

    def test_s3_keys_without_the_s3_backend_are_named(self):
        message = self.error({"bucket": "cache", "prefix": "x/"})
        self.assertIn('storage.bucket: only meaningful with backend = "s3"', message)
        self.assertIn("storage.prefix", message)

    def test_contradictions_and_bad_values(self):
        self.assertIn("storage.bucket is required", self.error({"backend": "s3"}))
        self.assertIn("storage.backend", self.error({"backend": "gcs"}))
        self.assertIn("give both or neither", self.error({**S3, "access_key_id": "AKID"}))
        self.assertIn("storage.addressing", self.error({**S3, "addressing": "dns"}))
        self.assertIn("storage.local_cache_bytes", self.error({**S3, "local_cache_bytes": -1}))
        self.assertIn("storage.max_attempts", self.error({**S3, "max_attempts": "3"}))
        self.assertIn(
            "storage.backoff_cap_seconds", self.error({**S3, "backoff_base_seconds": 2, "backoff_cap_seconds": 1})
        )
        self.assertIn("storage.part_size_bytes", self.error({**S3, "part_size_bytes": 1024}))
        self.assertIn("storage.prefix", self.error({**S3, "prefix": "/abs"}))

    def test_unknown_key_is_named(self):
        self.assertIn("storage.bukket: unknown key", self.error({"backend": "s3", "bukket": "x"}))

    def test_s3_without_botocore_is_one_line(self):
        saved = {k: v for k, v in sys.modules.items() if k == "botocore" or k.startswith("botocore.")}
        self.addCleanup(lambda: (sys.modules.pop("botocore", None), sys.modules.update(saved)))
        for k in saved:
            del sys.modules[k]
        sys.modules["botocore"] = None
        e = self.assertRaises(MissingDependency, parse_config, {"storage": S3})
        self.assertIn("botocore is not installed: pip install 'harbor-cache[s3]'", str(e))


class RedirectKeysTests(SynchronousTestCase):
    def error(self, table):
        return str(self.assertRaises(ConfigError, parse_config, {"storage": table}))

    def test_off_by_default_and_parsed(self):
        self.assertEqual((StorageConfig().redirect, StorageConfig().redirect_expiry_seconds), (False, 1200))
        storage = parse_config({"storage": {**S3, "redirect": True, "redirect_expiry_seconds": 300}}).storage
        self.assertEqual((storage.redirect, storage.redirect_expiry_seconds), (True, 300))

    def test_bad_values_and_the_filesystem_backend_are_named(self):
        self.assertIn('storage.redirect: only meaningful with backend = "s3"', self.error({"redirect": True}))
        self.assertIn("storage.redirect_expiry_seconds", self.error({"redirect_expiry_seconds": 60}))
        self.assertIn("storage.redirect: expected true or false", self.error({**S3, "redirect": "yes"}))
        self.assertIn("storage.redirect_expiry_seconds", self.error({**S3, "redirect_expiry_seconds": 0}))
        self.assertIn("storage.redirect_expiry_seconds", self.error({**S3, "redirect_expiry_seconds": 8 * 86400}))
