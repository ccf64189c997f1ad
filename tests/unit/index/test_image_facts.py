"""ImageFactsStore on sqlite and PostgreSQL: repository contents and blob owners for the console."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import Index
from tests.unit.base import postgres_pool, run, sqlite_pool

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


class ImageFactsMixin:
    index: Index

    def open_pool(self) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.index = Index(self.open_pool())
        run(self, self.index.migrate())

    def test_repository_contents(self: Any) -> None:
        """Tags and manifest digests per key; a key with neither is empty, not missing."""
        run(self, self.index.put_entry(kind="proxy", type_="manifest", repository="x", key=A, digest=A, size=1, now=1))
        run(self, self.index.put_tag("x", "1", A, "proxy", "application/json", 1.0))
        got = run(self, self.index.repository_contents(["x", "y"]))
        self.assertEqual(got, {"x": ({"1"}, {A}), "y": (set(), set())})

    def test_blob_owners(self: Any) -> None:
        """Proxied manifests' blobs and hosted claims name their repositories; twice recorded is once."""
        run(self, self.index.add_blob_images("library/test", [A, B]))
        run(self, self.index.add_blob_images("library/test", [A]))
        run(self, self.index.add_blob_images("docker.io/library/test", [A]))
        run(self, self.index.add_blob_images("empty", []))
        self.assertEqual(
            run(self, self.index.blob_owners([A, B, "sha256:" + "c" * 64])),
            {A: ["docker.io/library/test", "library/test"], B: ["library/test"]},
        )


class SqliteImageFacts(ImageFactsMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return sqlite_pool(self)


class PostgresImageFacts(ImageFactsMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return postgres_pool(self)
