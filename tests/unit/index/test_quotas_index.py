"""Quota rows and usage on SQLite and PostgreSQL: a blob shared by repositories of a glob counts once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.quotas import QuotaBook, literal_prefix
from harbor_cache.errors import BadRequest, Conflict, Denied, NotFound
from harbor_cache.settings.startup import MavenRepositoryConfig
from harbor_cache.testing import InlinePool
from tests.unit.base import failure, inline_index, postgres_pool, run, sqlite_pool

MAVEN = (MavenRepositoryConfig(id="releases", type="hosted"), MavenRepositoryConfig("central", "http://m/"))


if TYPE_CHECKING:
    _Case = SynchronousTestCase
else:
    _Case = object  # (trial must not collect the mixin itself)


class QuotaRowsMixin(_Case):
    def open_pool(self) -> InlinePool:
        raise NotImplementedError

    def setUp(self) -> None:
        self.index = inline_index(self.open_pool())
        run(self, self.index.migrate())
        self.clock = Clock()
        self.clock.advance(1000)
        self.book = QuotaBook(self.index, self.clock, MAVEN)

    def blob(self, repository: str, digest: str, size: int, manifest: str = "") -> None:
        async def go() -> None:
            await self.index.put_entry(
                kind="hosted", type_="blob", repository="", key=digest, digest=digest, size=size, now=1.0
            )
            if manifest:
                await self.index.add_blob_refs(repository, manifest, [digest])
            else:
                await self.index.claim_blob(repository, digest)

        run(self, go())

    def manifest(self, repository: str, digest: str, size: int, tag: str | None, blobs: tuple[str, ...] = ()) -> None:
        run(
            self,
            self.index.put_hosted_manifest(
                repository=repository,
                key=digest,
                digest=digest,
                size=size,
                media_type="application/vnd.oci.image.manifest.v1+json",
                now=1.0,
                tag=tag,
                referrer=None,
                blobs=blobs,
            ),
        )

    def test_crud(self) -> None:
        """Create, read, update and delete; a second quota on the same repositories is refused."""
        created = run(self, self.book.create({"repositories": "team-a/*", "max_bytes": 100, "max_tags": 3}))
        self.assertEqual((created.repositories, created.max_bytes, created.max_tags), ("team-a/*", 100, 3))
        failure(self, self.book.create({"repositories": "team-a/*", "max_bytes": 5}), Conflict)
        other = run(self, self.book.create({"repositories": "maven:releases", "max_bytes": 7}))
        failure(self, self.book.update(other.id, {"repositories": "team-a/*", "max_bytes": 5}), Conflict)
        self.clock.advance(5)
        changed = run(self, self.book.update(created.id, {"repositories": "team-b/*", "max_bytes": 50}))
        self.assertEqual(
            (changed.repositories, changed.max_bytes, changed.max_tags, changed.updated_at),
            ("team-b/*", 50, None, 1005),
        )
        self.assertEqual([q.repositories for q, _ in run(self, self.book.listing())], ["team-b/*", "maven:releases"])
        run(self, self.book.delete(created.id))
        failure(self, self.book.get(created.id), NotFound)
        failure(self, self.book.delete(created.id), NotFound)
        failure(self, self.book.update(created.id, {"repositories": "x/*", "max_bytes": 1}), NotFound)

    def test_validation(self) -> None:
        for body in (
            {"repositories": "maven:nope", "max_bytes": 1},
            {"repositories": "maven:central", "max_bytes": 1},
            {"repositories": "Team-A/*", "max_bytes": 1},
            {"repositories": "team a/*", "max_bytes": 1},
            {"repositories": "team/[ab]", "max_bytes": 1},
            {"repositories": "", "max_bytes": 1},
            {"repositories": 5, "max_bytes": 1},
            {"repositories": "team/*", "max_bytes": 0},
            {"repositories": "team/*", "max_bytes": -1},
            {"repositories": "team/*", "max_bytes": "5"},
            {"repositories": "team/*", "max_bytes": True},
            {"repositories": "team/*"},
            {"repositories": "team/*", "max_bytes": 1, "max_tags": 0},
            {"repositories": "maven:releases", "max_bytes": 1, "max_tags": 2},
        ):
            failure(self, self.book.create(body), BadRequest)
        self.assertEqual(run(self, self.index.list_quotas()), [])

    def test_usage_counts_a_shared_blob_once(self) -> None:
        """A layer claimed by team-a/x and needed by team-a/y counts once; manifests and tags count;
        other namespaces do not."""
        self.blob("team-a/x", "sha256:l1", 100)
        self.blob("team-a/y", "sha256:l1", 100, manifest="sha256:m1")
        self.blob("team-a/y", "sha256:l2", 30, manifest="sha256:m1")
        self.blob("team-ab/z", "sha256:l3", 1000)
        self.blob("team-b/x", "sha256:l4", 1000)
        self.manifest("team-a/y", "sha256:m1", 7, "v1", ("sha256:l1", "sha256:l2"))
        self.manifest("team-a/y", "sha256:m1", 7, "latest", ("sha256:l1", "sha256:l2"))
        self.manifest("team-b/x", "sha256:m2", 9, "v1")
        quota = run(self, self.book.create({"repositories": "team-a/*", "max_bytes": 200, "max_tags": 2}))
        usage = run(self, self.book.usage(quota))
        self.assertEqual((usage.used_bytes, usage.used_tags), (137, 2))
        wide = run(self, self.book.create({"repositories": "team-?/*", "max_bytes": 1}))
        self.assertEqual(run(self, self.book.usage(wide)).used_bytes, 137 + 1000 + 9)

    def test_checks(self) -> None:
        """A push that would go beyond is refused naming the quota and usage; a digest already counted
        adds nothing; a new tag beyond max_tags is refused, an existing one is not."""
        self.blob("team-a/x", "sha256:l1", 100)
        self.manifest("team-a/x", "sha256:m1", 10, "v1")
        run(self, self.book.create({"repositories": "team-a/*", "max_bytes": 150, "max_tags": 1}))
        run(self, self.book.check_blob("team-a/y", 40))
        run(self, self.book.check_blob("team-a/y", 1000, "sha256:l1"))  # counted already
        run(self, self.book.check_blob("team-b/y", 1000))  # not covered
        denied = failure(self, self.book.check_blob("team-a/y", 41), Denied)
        self.assertIn("quota team-a/*", denied.message)
        self.assertIn("150 bytes", denied.message)
        self.assertIn("110 are used", denied.message)
        self.assertEqual(denied.detail["used_bytes"], 110)
        run(self, self.book.check_blob("team-a/y", None))  # unknown length, not full: decided at the commit
        run(self, self.book.check_manifest("team-a/x", "sha256:m1", 10, "v1"))
        # a manifest naming a stored blob no team-a repository holds adds that blob's bytes
        self.blob("team-b/x", "sha256:l5", 36)
        run(self, self.book.check_manifest("team-a/x", "sha256:m8", 5, None, {"sha256:l1": 100}))
        denied = failure(
            self,
            self.book.check_manifest("team-a/x", "sha256:m8", 5, None, {"sha256:l1": 100, "sha256:l5": 36}),
            Denied,
        )
        self.assertEqual(denied.detail["push_bytes"], 41)
        denied = failure(self, self.book.check_manifest("team-a/x", "sha256:m9", 5, "v2"), Denied)
        self.assertIn("1 tags", denied.message)

    def test_maven_usage_and_check(self) -> None:
        async def deploy(key: str, size: int) -> None:
            await self.index.put_hosted_maven_file(
                repository="releases",
                key=key,
                digest="sha256:" + key[-1] * 64,
                size=size,
                media_type=None,
                sha1=None,
                now=1.0,
                overwrite=True,
            )

        run(self, deploy("g/a/1/a-1.jar", 60))
        run(self, deploy("g/a/1/a-1.pom", 20))
        quota = run(self, self.book.create({"repositories": "maven:releases", "max_bytes": 100}))
        self.assertEqual(run(self, self.book.usage(quota)).used_bytes, 80)
        run(self, self.book.check_maven("releases", "g/a/2/a-2.jar", 20))
        run(self, self.book.check_maven("releases", "g/a/1/a-1.jar", 80))  # replaces 60 bytes
        denied = failure(self, self.book.check_maven("releases", "g/a/2/a-2.jar", 21), Denied)
        self.assertIn("quota maven:releases", denied.message)
        run(self, self.book.check_blob("maven:releases", 10_000))  # a Maven quota never covers OCI names


class LiteralPrefixTests(SynchronousTestCase):
    def test_prefix(self) -> None:
        self.assertEqual(
            [literal_prefix(g) for g in ("team-a/*", "a?b*", "*", "exact/name")], ["team-a/", "a", "", "exact/name"]
        )


class SqliteQuotaTests(QuotaRowsMixin, SynchronousTestCase):
    def open_pool(self) -> InlinePool:
        return sqlite_pool(self)


class PostgresQuotaTests(QuotaRowsMixin, SynchronousTestCase):
    def open_pool(self) -> InlinePool:
        return postgres_pool(self)
