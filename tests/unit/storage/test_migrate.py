"""Moving a file-system cache to a bucket (`harbor_cache.storage.migrate`, the CLI `harbor_cache.migrate_storage`).

Against a real S3 API server (moto, `tests.s3_support`): every committed file
ends up under the key the s3 backend reads (the data directory's path), a
second run copies nothing (HEAD first), a run after a partial copy copies
only the rest, a corrupt local file is refused under ``verify``, an
unreachable bucket is a failure, and the command exits 1 on any failure,
2 on a config that is not an s3 one, 0 when all is there.
"""

from __future__ import annotations

import hashlib
import io
import os
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from harbor_cache import migrate_storage
from harbor_cache.storage.bucket import blob_key
from harbor_cache.storage.migrate import migrate, walk_blobs
from harbor_cache.storage.s3 import S3Client, S3Settings
from harbor_cache.testing import InlineIO
from tests import s3_support


def put_blob(root: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest[7:9])
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, digest[7:]), "wb") as f:
        f.write(data)
    return digest


class MigrateTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.server = s3_support.server()
        self.bucket = self.server.new_bucket("migrate")
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, "blobs"))
        self.bodies = [os.urandom(1000 + i) for i in range(5)]
        self.digests = [put_blob(self.root, b) for b in self.bodies]

    def client(self, **fields: Any) -> S3Client:
        settings: dict[str, Any] = dict(
            bucket=self.bucket, endpoint=self.server.endpoint, access_key_id=self.server.access_key_id,
            secret_access_key=self.server.secret_access_key, addressing="path", backoff_base=0.01,
            backoff_cap=0.02, max_attempts=2, timeout=5,
        )  # fmt: skip
        settings.update(fields)
        pool = HTTPConnectionPool(reactor, persistent=False)
        return S3Client(S3Settings(**settings), HTTPClient(Agent(reactor, pool=pool)), InlineIO(), reactor)

    def keys(self) -> dict[str, bytes]:
        s3 = self.server.botocore_client()
        listing = s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in listing}

    def run_migrate(self, **kw: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(migrate(self.client(), InlineIO(), os.path.join(self.root, "blobs"), **kw))

    async def test_copies_every_file_under_the_key_the_backend_reads(self) -> None:
        os.makedirs(os.path.join(self.root, "blobs", "sha256", "zz"))
        with open(os.path.join(self.root, "blobs", "sha256", "zz", "not-a-digest.tmp"), "wb") as f:
            f.write(b"junk")
        report = await self.run_migrate(jobs=3)
        self.assertTrue(report.ok, report.failed)
        self.assertEqual((report.total, report.copied, report.skipped), (5, 5, 0))
        self.assertEqual(report.copied_bytes, sum(len(b) for b in self.bodies))
        self.assertEqual(report.ignored, ["sha256/zz/not-a-digest.tmp"])
        self.assertEqual(self.keys(), {blob_key(d): b for d, b in zip(self.digests, self.bodies, strict=True)})

    async def test_second_run_copies_nothing(self) -> None:
        await self.run_migrate()
        report = await self.run_migrate()
        self.assertEqual((report.copied, report.skipped), (0, 5))
        self.assertTrue(report.ok)

    async def test_resumes_after_a_partial_copy(self) -> None:
        s3 = self.server.botocore_client()
        for d, b in list(zip(self.digests, self.bodies, strict=True))[:2]:
            s3.put_object(Bucket=self.bucket, Key=blob_key(d), Body=b)
        # an object of the wrong size (not ours to trust) is copied again
        s3.put_object(Bucket=self.bucket, Key=blob_key(self.digests[2]), Body=b"short")
        report = await self.run_migrate()
        self.assertEqual((report.copied, report.skipped), (3, 2))
        self.assertEqual(self.keys()[blob_key(self.digests[2])], self.bodies[2])

    async def test_prefix_and_dry_run(self) -> None:
        report = await defer.ensureDeferred(
            migrate(self.client(prefix="cache/"), InlineIO(), os.path.join(self.root, "blobs"), dry_run=True)
        )
        self.assertEqual(report.copied, 5)
        self.assertEqual(self.keys(), {})
        await defer.ensureDeferred(migrate(self.client(prefix="cache/"), InlineIO(), os.path.join(self.root, "blobs")))
        self.assertEqual(set(self.keys()), {"cache/" + blob_key(d) for d in self.digests})

    async def test_verify_refuses_a_corrupt_file(self) -> None:
        bad = self.digests[0]
        with open(os.path.join(self.root, "blobs", "sha256", bad[7:9], bad[7:]), "r+b") as f:
            f.write(b"X")
        report = await self.run_migrate(verify=True)
        self.assertEqual([d for d, _ in report.failed], [bad])
        self.assertIn("not its digest", report.failed[0][1])
        self.assertNotIn(blob_key(bad), self.keys())
        self.assertEqual(report.copied, 4)

    async def test_unreachable_bucket_is_a_failure(self) -> None:
        client = self.client(endpoint="http://127.0.0.1:9", max_attempts=1)
        report = await defer.ensureDeferred(migrate(client, InlineIO(), os.path.join(self.root, "blobs")))
        self.assertEqual(len(report.failed), 5)
        self.assertFalse(report.ok)

    def test_walk_is_lazy(self) -> None:
        walk = walk_blobs(os.path.join(self.root, "blobs"))
        first = next(walk)
        self.assertIn(first[0], self.digests)
        self.assertEqual(len(list(walk)), 4)


class CommandTests(unittest.TestCase):
    """The CLI's exit codes and output, run on the real reactor's thread pool through `migrate_storage.run`."""

    timeout = 120

    def setUp(self) -> None:
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.server = s3_support.server()
        self.bucket = self.server.new_bucket("migrate-cli")
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "blobs"))
        self.digest = put_blob(self.root, b"hello bucket")

    def config(self, storage: str) -> str:
        path = os.path.join(self.root, "harbor.toml")
        with open(path, "w") as f:
            f.write(f'[server]\ndata_dir = "{self.root}"\n\n[storage]\n{storage}\n')
        return path

    def s3_table(self, endpoint: str | None = None) -> str:
        return (
            f'backend = "s3"\nbucket = "{self.bucket}"\nendpoint = "{endpoint or self.server.endpoint}"\n'
            f'addressing = "path"\naccess_key_id = "{self.server.access_key_id}"\n'
            f'secret_access_key = "{self.server.secret_access_key}"\nmax_attempts = 1\ntimeout_seconds = 5\n'
        )

    async def command(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                await migrate_storage.run(reactor, list(argv))
            except SystemExit as e:
                code = int(e.code or 0)
        return code, out.getvalue(), err.getvalue()

    async def test_copies_and_exits_zero(self) -> None:
        code, out, err = await self.command("--config", self.config(self.s3_table()), "--verify")
        self.assertEqual(code, 0, err)
        self.assertIn("1 copied", out)
        self.assertNotIn(self.server.secret_access_key, out + err)
        body = self.server.botocore_client().get_object(Bucket=self.bucket, Key=blob_key(self.digest))["Body"]
        self.assertEqual(body.read(), b"hello bucket")
        code, out, _ = await self.command("--config", self.config(self.s3_table()))
        self.assertEqual(code, 0)
        self.assertIn("0 copied", out)
        self.assertIn("1 already in the bucket", out)

    async def test_failure_exits_one(self) -> None:
        code, _, err = await self.command("--config", self.config(self.s3_table("http://127.0.0.1:9")))
        self.assertEqual(code, 1)
        self.assertIn("FAILED " + self.digest, err)

    async def test_filesystem_config_exits_two(self) -> None:
        code, _, err = await self.command("--config", self.config('backend = "filesystem"'))
        self.assertEqual(code, 2)
        self.assertIn('backend must be "s3"', err)

    async def test_missing_data_dir_exits_two(self) -> None:
        code, _, err = await self.command(
            "--config", self.config(self.s3_table()), "--data-dir", os.path.join(self.root, "nowhere")
        )
        self.assertEqual(code, 2)
        self.assertIn("no such directory", err)
