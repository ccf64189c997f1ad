"""Search (index/search.py, index/search_schema.py, core/operations/search.py) on sqlite and on PostgreSQL.

The search table is kept by triggers: every test writes through the ordinary
stores (put_entry, put_tag, put_hosted_manifest, delete_entries, ...) and
reads through `Search`, so a write path that forgot the table fails here.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.search import Search, parse_query
from harbor_cache.errors import BadRequest
from harbor_cache.index import Index, migrations
from harbor_cache.index import search as search_module
from harbor_cache.index.migrations import MIGRATIONS
from harbor_cache.index.search import SearchMatch
from harbor_cache.index.search_schema import SEARCH_MIGRATION
from tests.unit.base import postgres_pool, run, sqlite_pool

HEX_A = "a" * 60 + "0001"
HEX_B = "ab" + "c" * 62


class SearchTestsMixin(SynchronousTestCase):
    """Tests for one engine; a subclass provides `open_pool`."""

    def setUp(self) -> None:
        self.index = Index(self.open_pool())
        run(self, self.index.migrate())
        self.search = Search(self.index, private_maven=("secret",))

    def open_pool(self) -> Any:
        raise NotImplementedError

    def find(self, q: str, admin: bool = True, **kw: Any) -> list[tuple[str, str, str | None]]:
        page = run(self, self.search.run(q, is_admin=admin, **kw))
        return [(r["kind"], r["repository"], r["tag"] or r["version"] or r["digest"]) for r in page["results"]]

    def manifest(self, repository: str, hex_: str, now: float = 100.0, kind: str = "proxy") -> Any:
        key = "sha256:" + hex_
        return run(
            self,
            self.index.put_entry(
                kind=kind, type_="manifest", repository=repository, key=key, digest=key, size=500, now=now
            ),
        )

    def maven(self, repository: str, key: str, now: float = 100.0) -> Any:
        return run(
            self,
            self.index.put_entry(
                kind="proxy", type_="maven", repository=repository, key=key, digest="sha256:" + key, size=7, now=now
            ),
        )

    def test_repositories_and_tags_by_name(self) -> None:
        """Substring and prefix: an image row per repository, a tag row per tag; blobs are not indexed."""
        self.manifest("library/nginx", HEX_A)
        run(self, self.index.put_tag("library/nginx", "1.25-alpine", "sha256:" + HEX_A, "proxy", None, 101.0))
        run(self, self.index.put_tag("library/redis", "7", "sha256:" + HEX_B, "proxy", None, 102.0))
        run(
            self,
            self.index.put_entry(
                kind="proxy", type_="blob", repository="", key="sha256:nginxblob", digest="x", size=1, now=1.0
            ),
        )
        self.assertEqual(
            sorted(self.find("nginx")),
            [("image", "library/nginx", None), ("tag", "library/nginx", "1.25-alpine")],
        )
        self.assertIn(("tag", "library/nginx", "1.25-alpine"), self.find("alpine"))
        self.assertEqual(self.find("li", kind="image")[0][0], "image")  # a short query: prefixes

    def test_ordering_exact_then_prefix_then_substring_then_recency(self) -> None:
        run(self, self.index.put_tag("a/x", "mytool", "sha256:1", "proxy", None, 300.0))
        run(self, self.index.put_tag("a/y", "tool-old", "sha256:2", "proxy", None, 100.0))
        run(self, self.index.put_tag("a/y", "tool-new", "sha256:3", "proxy", None, 200.0))
        run(self, self.index.put_tag("a/z", "tool", "sha256:4", "proxy", None, 50.0))
        self.assertEqual([r[2] for r in self.find("tool", kind="tag")], ["tool", "tool-new", "tool-old", "mytool"])

    def test_manifests_by_digest_prefix_and_full(self) -> None:
        self.manifest("team/app", HEX_A)
        self.manifest("team/app", HEX_B)
        self.assertEqual(self.find("sha256:" + HEX_B), [("manifest", "team/app", "sha256:" + HEX_B)])
        self.assertEqual(self.find("sha256:abc"), [("manifest", "team/app", "sha256:" + HEX_B)])
        self.assertEqual(self.find(HEX_A[:12]), [("manifest", "team/app", "sha256:" + HEX_A)])

    def test_maven_coordinates_and_free_text(self) -> None:
        self.maven("central", "org/example/lib/1.2.0/lib-1.2.0.jar")
        self.maven("central", "org/example/lib/1.2.0/lib-1.2.0.jar.sha1")  # a checksum: not indexed
        self.maven("central", "org/example/lib/2.0/lib-2.0.pom")
        self.maven("central", "org/example/lib/maven-metadata.xml")
        self.maven("central", "org/other/libx/1.0/libx-1.0.jar")
        self.assertEqual(self.find("g:org.example a:lib v:1.*"), [("maven", "central", "1.2.0")])
        self.assertEqual(sorted(r[2] or "" for r in self.find("a:lib")), ["1.2.0", "2.0"])
        self.assertEqual(len(self.find("g:org.*")), 3)
        self.assertEqual(len(self.find("org.example.lib")), 2)  # dotted free text
        page = run(self, self.search.run("v:2.0", is_admin=True))
        self.assertEqual(
            {k: page["results"][0][k] for k in ("group", "name", "version", "path")},
            {"group": "org.example", "name": "lib", "version": "2.0", "path": "org/example/lib/2.0/lib-2.0.pom"},
        )
        self.assertIn("/ui/#/maven?repo=central", page["results"][0]["link"])

    def test_a_long_maven_path_is_indexed(self) -> None:
        """A 2000-character path (its text twice that) neither fails the write nor goes unfound."""
        # segments that do not compress (PostgreSQL compresses a long index row before it refuses it)
        key = "org/" + "/".join(hashlib.sha512(bytes([i])).hexdigest()[:100] * 2 for i in range(9))
        key += "/deep/1.0/deep-1.0.jar"
        self.maven("central", key)
        self.assertEqual(self.find("a:deep"), [("maven", "central", "1.0")])
        self.assertEqual(len(self.find("or", kind="maven")), 1)

    def test_private_maven_only_for_admins(self) -> None:
        self.maven("secret", "com/acme/core/1.0/core-1.0.jar")
        self.assertEqual(len(self.find("a:core", admin=True)), 1)
        self.assertEqual(self.find("a:core", admin=False), [])
        self.assertEqual(self.find("acme", admin=False), [])

    def test_paging_with_cursor(self) -> None:
        for i in range(7):
            run(self, self.index.put_tag("r/pages", f"v{i}", "sha256:1", "proxy", None, 100.0 + i % 3))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = run(self, self.search.run("r/pages:", is_admin=True, limit=3, cursor=cursor, kind="tag"))
            seen += [r["tag"] for r in page["results"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        self.assertEqual(sorted(seen), [f"v{i}" for i in range(7)])
        self.assertEqual(len(seen), 7)
        self.assertEqual(pages, 3)

    def test_dense_tiers_walk_in_order_across_pages(self) -> None:
        """Tiers denser than DENSE are walked on the recency index: the same order, page after page, as a full sort."""
        self.patch(search_module, "DENSE", 3)
        names = [f"tool{i}" if i % 3 else "tool" for i in range(12)] + [f"my-tool{i}" for i in range(8)]
        for i, name in enumerate(names):
            run(self, self.index.put_tag(f"r/t{i % 5}", name, "sha256:1", "proxy", None, 100.0 + (i * 7) % 11))
        rows = run(self, self.index.search(SearchMatch(exact="tool", contains="tool"), kinds=("tag",), limit=100))
        expected = sorted(rows, key=lambda h: (h.rank, -h.updated_at, -h.id))
        self.assertEqual(rows, expected)
        self.assertEqual([h.rank for h in rows].count(0), 4)
        seen: list[tuple[str, str]] = []
        cursor = None
        while True:
            page = run(self, self.search.run("tool", is_admin=True, limit=4, cursor=cursor, kind="tag"))
            seen += [(r["repository"], r["tag"]) for r in page["results"]]
            cursor = page["next"]
            if cursor is None:
                break
        self.assertEqual(seen, [(h.repository, h.src) for h in expected])
        self.assertEqual(len(seen), len(names))

    def test_bad_queries(self) -> None:
        cases: list[tuple[str, dict[str, Any]]] = [
            ("", {}),
            ("g:x free", {}),
            ("x" * 300, {}),
            ("abc", {"cursor": "!!"}),
            ("abc", {"kind": "x"}),
            # a forged cursor past 64 bits: a 400, not an overflow in the database
            ("abc", {"cursor": base64.urlsafe_b64encode(b"[1, 1.0, 100000000000000000000000]").decode()}),
        ]
        for q, kw in cases:
            d = Deferred.fromCoroutine(self.search.run(q, is_admin=True, **kw))
            self.failureResultOf(d, BadRequest)

    def test_sync_on_update_delete_and_eviction(self) -> None:
        """A tag moved, a manifest made hosted, entries deleted (eviction's path), a hosted tag removed."""
        row = self.manifest("app/web", HEX_A, now=10.0)
        run(self, self.index.put_tag("app/web", "latest", "sha256:" + HEX_A, "proxy", None, 10.0))
        run(self, self.index.put_tag("app/web", "latest", "sha256:" + HEX_B, "proxy", None, 20.0))
        page = run(self, self.search.run("app/web:latest", is_admin=True))
        self.assertEqual(page["results"][0]["digest"], "sha256:" + HEX_B)
        run(self, self.index.mark_hosted([row.id]))
        page = run(self, self.search.run("sha256:" + HEX_A, is_admin=True))
        self.assertTrue(page["results"][0]["hosted"])
        run(self, self.index.delete_entries([row.id]))
        self.assertEqual(self.find("sha256:" + HEX_A), [])
        self.assertIn(("image", "app/web", None), self.find("app/web"))  # the tag still names it
        self.maven("central", "org/x/y/1/y-1.jar")
        maven_row = run(self, self.index.get_entry("maven", "central", "org/x/y/1/y-1.jar"))
        run(self, self.index.delete_entries([maven_row.id]))
        self.assertEqual(self.find("a:y"), [])

    def test_hosted_push_and_delete(self) -> None:
        run(
            self,
            self.index.put_hosted_manifest(
                repository="team/api",
                key="sha256:" + HEX_B,
                digest="sha256:" + HEX_B,
                size=9,
                media_type="application/vnd.oci.image.manifest.v1+json",
                now=50.0,
                tag="v1",
                referrer=None,
            ),
        )
        self.assertEqual(
            sorted(self.find("team/api")),
            [("image", "team/api", None), ("tag", "team/api", "v1")],
        )
        run(self, self.index.delete_hosted_entry("manifest", "team/api", "sha256:" + HEX_B))
        self.assertEqual(self.find("team/api"), [])  # manifest, tag and the repository row are gone

    def test_backfill_of_rows_written_before_the_migration(self) -> None:
        """The migration indexes what is already there (rows written with the triggers dropped)."""
        self.manifest("old/repo", HEX_A)
        run(self, self.index.put_tag("old/repo", "stable", "sha256:" + HEX_A, "hosted", None, 5.0))
        self.maven("central", "org/old/thing/3/thing-3.jar")
        before = sorted(self.find("old"))
        self.assertEqual(len(before), 3)  # the repository, its tag, the Maven file
        conn = self.index._pool.conn  # type: ignore[attr-defined]
        cur = conn.cursor()
        cur.execute("DELETE FROM search_items")
        if self.index.dialect == "sqlite":
            cur.execute("INSERT INTO search_fts (search_fts) VALUES ('delete-all')")
        else:
            cur.execute("DROP TRIGGER search_tags ON tags")
            cur.execute("DROP TRIGGER search_entries ON entries")
            cur.execute("DROP FUNCTION search_image_add, search_image_drop, search_tags_sync, search_entries_sync")
        if self.index.dialect == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search%'")
            for (name,) in cur.fetchall():
                cur.execute(f"DROP TRIGGER {name}")
            cur.execute("DROP TABLE search_fts")
        cur.execute("DROP TABLE search_items")
        first = MIGRATIONS.index(SEARCH_MIGRATION) + 1  # the search migrations: the table, then its name index
        cur.execute(f"DELETE FROM schema_version WHERE version >= {first}")
        conn.commit()
        # the schema as it was when the search migrations were the newest (later ones are applied already)
        self.patch(migrations, "MIGRATIONS", MIGRATIONS[: first + 1])
        run(self, self.index.migrate())
        self.assertEqual(sorted(self.find("old")), before)


class SqliteSearchTests(SearchTestsMixin):
    def open_pool(self) -> Any:
        return sqlite_pool(self)

    def test_dense_query_work_does_not_grow_with_hits(self) -> None:
        """The first page of a query with 4,000 hits costs about what one with 2,000 costs (no sort of every hit)."""
        conn = self.index._pool.conn  # type: ignore[attr-defined]

        def steps(n: int, repository: str) -> int:
            conn.executemany(
                "INSERT INTO tags (repository, tag, digest, kind, media_type, fetched_at, updated_at) "
                "VALUES (?, ?, 'sha256:1', 'proxy', NULL, 1.0, ?)",
                [(repository, f"1.{i}-alpine", float(i)) for i in range(n)],
            )
            conn.commit()
            count = [0]

            def tick() -> int:
                count[0] += 1
                return 0

            conn.set_progress_handler(tick, 100)
            try:
                run(self, self.search.run("alpine", is_admin=True, limit=20))
            finally:
                conn.set_progress_handler(None, 100)
            return count[0]

        first = steps(2000, "r/one")
        self.assertLess(steps(2000, "r/two"), first * 1.3)

    def test_sqlite_has_trigram(self) -> None:
        self.assertGreaterEqual(tuple(int(p) for p in sqlite3.sqlite_version.split(".")), (3, 34))
        self.assertEqual(run(self, self.index.search_backend()), "fts5")


class PostgresSearchTests(SearchTestsMixin):
    def open_pool(self) -> Any:
        return postgres_pool(self)

    def test_trigram_index_used(self) -> None:
        self.assertEqual(run(self, self.index.search_backend()), "pg_trgm")


del SearchTestsMixin  # only its engine subclasses run


class ParseTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(parse_query("g:org.example a:lib v:1.*").match.like, "org/example/lib/1.%/%")
        self.assertEqual(parse_query("a:lib").match.like, "%/lib/%/%")
        self.assertEqual(parse_query("SHA256:ABC").kinds, ("manifest",))
        self.assertEqual(parse_query("ng").match.starts, "ng")
        self.assertEqual(parse_query("Nginx").match.contains, "nginx")
