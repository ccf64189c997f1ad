"""Listings that seek (index/listings.py), on sqlite and PostgreSQL: keyset pages, skip-scans, one directory.

Each query is checked for its answers and for its plan: the deep-page,
catalog, tags and browse queries read an index (no scan of the table, no
sort of the rows for ORDER BY).  PostgreSQL's planner is told to avoid scans
and sorts (``enable_seqscan``/``enable_sort`` off) so that a plan still
holding one shows that no index can answer the query, whatever the rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import Index
from harbor_cache.index.listings_schema import DIRS_BACKFILL, LISTINGS_MIGRATION, PARENT_BACKFILL
from tests.unit.base import postgres_pool, run, sqlite_pool

if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class ListingsMixin(_Base):
    index: Index
    pool: Any

    def open_pool(self) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.pool = self.open_pool()
        self.index = Index(self.pool)
        run(self, self.index.migrate())

    def put(self, key: str, type_: str = "blob", repository: str = "", size: int = 1, now: float = 1.0, **kw: Any):
        return run(
            self,
            self.index.put_entry(
                kind=kw.get("kind", "proxy"),
                type_=type_,
                repository=repository,
                key=key,
                digest="sha256:" + key.replace("/", "_"),
                size=size,
                now=now,
                upstream_modified=kw.get("modified"),
            ),
        )

    def plan(self, sql: str, args: list[Any]) -> str:
        """The engine's plan for ``sql`` as one text."""
        conn = self.pool.conn
        cur = conn.cursor()
        if self.index.dialect == "postgresql":
            cur.execute("SET enable_seqscan = off")
            cur.execute("SET enable_sort = off")
            cur.execute("EXPLAIN " + sql.replace("?", "%s"), tuple(args))
            text = "\n".join(r[0] for r in cur.fetchall())
            cur.execute("RESET enable_seqscan")
            cur.execute("RESET enable_sort")
            return text
        cur.execute("EXPLAIN QUERY PLAN " + sql, tuple(args))
        return "\n".join(str(r[-1]) for r in cur.fetchall())

    def assert_seeks(self, sql: str, args: list[Any]) -> None:
        """The plan reads ``entries``/``tags`` through an index: no full scan, no sort for ORDER BY."""
        text = self.plan(sql, args)
        if self.index.dialect == "postgresql":
            self.assertNotIn("Seq Scan", text, text)
            self.assertNotIn("Sort", text.replace("Sort Key", ""), text)
        else:
            for line in text.splitlines():
                self.assertFalse(
                    (line.startswith("SCAN entries") or line.startswith("SCAN tags")) and "USING" not in line, text
                )
            self.assertNotIn("TEMP B-TREE", text, text)

    def test_plan_check_finds_scans_and_sorts(self):
        """The plan check fails on what it is there to catch: a sort of every row, the old catalog's UNION."""
        self.fill_entries()
        with self.assertRaises(self.failureException):
            self.assert_seeks("SELECT * FROM entries ORDER BY media_type, id LIMIT ?", [5])
        with self.assertRaises(self.failureException):
            self.assert_seeks(
                """SELECT repository FROM (SELECT repository FROM tags
                       UNION SELECT repository FROM entries WHERE type = 'manifest') AS names
                   WHERE repository > ? ORDER BY repository LIMIT ?""",
                ["", 5],
            )

    def assert_steps_seek(self, **page: Any) -> None:
        steps = self.index.entries_page_sql(limit=50, **page)
        self.assertEqual(len(steps), 2)
        for sql, args in steps:
            self.assert_seeks(sql, [*args, 50])

    def test_tied_values_are_sought_not_stepped_over(self):
        """Every row tied on the sort value (no entry hit yet): a page deep in the ties reads only its rows."""
        rows = [self.put(f"t{i:03d}") for i in range(300)]
        after = (0, rows[10].id)
        steps = self.index.entries_page_sql(sort="hits", descending=True, after=after, limit=5)
        if self.index.dialect == "sqlite":
            text = self.plan(steps[0][0], [*steps[0][1], 5])
            self.assertIn("access_count=? AND id<?", text)  # both columns of the index, not access_count alone
        page = run(self, self.index.cache_entries_after(sort="hits", descending=True, after=after, limit=5))
        self.assertEqual([r.id for r in page], [r.id for r in rows[5:10]][::-1])

    # -- entries -----------------------------------------------------------------------------

    def fill_entries(self) -> list[Any]:
        rows = []
        for i in range(23):
            rows.append(
                self.put(f"k{i:02d}", "blob" if i % 3 else "maven", f"repo{i % 4}", size=(i * 7) % 5, now=float(i % 6))
            )
        return rows

    def walk(self, sort: str, descending: bool, limit: int, **filters: Any) -> list[int]:
        column = self.index.ENTRY_SORTS[sort]
        seen: list[int] = []
        after = None
        while True:
            page = run(
                self,
                self.index.cache_entries_after(sort=sort, descending=descending, after=after, limit=limit, **filters),
            )
            seen += [r.id for r in page]
            if len(page) < limit:
                return seen
            after = (getattr(page[-1], column), page[-1].id)

    def test_keyset_pages_walk_every_sort_in_order(self):
        """Page after page from a cursor gives the same rows, in the same order, as one sorted read."""
        rows = self.fill_entries()
        for sort, column in self.index.ENTRY_SORTS.items():
            for descending in (False, True):
                expected = [r.id for r in sorted(rows, key=lambda r: (getattr(r, column), r.id), reverse=descending)]
                self.assertEqual(self.walk(sort, descending, 4), expected, (sort, descending))

    def test_keyset_pages_filter(self):
        """Filters (front, kind, repository, text) hold on every page."""
        rows = self.fill_entries()
        want = sorted((r for r in rows if r.repository == "repo1"), key=lambda r: (r.size, r.id))
        self.assertEqual(self.walk("size", False, 2, repository="repo1"), [r.id for r in want])
        maven = sorted((r for r in rows if r.type == "maven"), key=lambda r: (r.last_access, r.id), reverse=True)
        self.assertEqual(self.walk("last_access", True, 3, front="maven"), [r.id for r in maven])
        self.assertEqual(
            self.walk("hits", True, 3, text="k1"), sorted((r.id for r in rows if "k1" in r.key), reverse=True)
        )

    def test_count_is_capped(self):
        """The count stops at its cap and says so."""
        self.fill_entries()
        self.assertEqual(run(self, self.index.count_entries_capped(100)), (23, False))
        self.assertEqual(run(self, self.index.count_entries_capped(10)), (10, True))
        self.assertEqual(run(self, self.index.count_entries_capped(100, repository="repo0")), (6, False))

    def test_deep_pages_seek_an_index(self):
        """Every sort key's deep page (after a cursor) reads its index: no scan, no sort."""
        self.fill_entries()
        for sort in self.index.ENTRY_SORTS:
            for descending in (False, True):
                after = ("repo1", 5) if sort == "repository" else (3, 5)
                self.assert_steps_seek(sort=sort, descending=descending, after=after)
        self.assert_steps_seek(sort="last_access", descending=True, after=(3, 5), repository="repo1")
        for filters in ({"front": "maven"}, {"front": "oci", "kind": "hosted"}, {"kind": "proxy"}):
            self.assert_steps_seek(sort="size", descending=False, after=(3, 5), **filters)

    # -- repository names ----------------------------------------------------------------------

    def test_catalog_skip_scan(self):
        """Names with a tag or a manifest, distinct, in byte order, after ``last``, at most ``limit``."""
        for name in ("b", "a/x", "c"):
            for t in range(3):
                run(self, self.index.put_tag(name, f"t{t}", "sha256:m", "proxy", None, 1.0))
        for name in ("a/x", "d", "B"):
            self.put(f"sha256:{name}1", "manifest", name)
            self.put(f"sha256:{name}2", "manifest", name)
        self.put("sha256:blob", "blob", "zz")  # blobs alone do not make a repository
        self.assertEqual(run(self, self.index.list_repositories_page(None, None)), ["B", "a/x", "b", "c", "d"])
        self.assertEqual(run(self, self.index.list_repositories_page(None, 2)), ["B", "a/x"])
        self.assertEqual(run(self, self.index.list_repositories_page("a/x", 2)), ["b", "c"])
        self.assertEqual(run(self, self.index.list_repositories_page("c", 5)), ["d"])
        self.assertEqual(run(self, self.index.list_repositories_page("d", 5)), [])
        repos = {r.name: r for r in run(self, self.index.image_repositories_page(["a/x", "d"]))}
        self.assertEqual((repos["a/x"].cached_tags, repos["a/x"].cached_manifests), (3, 2))
        self.assertEqual((repos["d"].cached_tags, repos["d"].cached_manifests), (0, 2))

    def test_catalog_and_tags_seek_an_index(self):
        """Each step of the skip-scan, and a page of tags, is an index seek."""
        for sql in self.index.catalog_sql():
            self.assert_seeks(sql, ["m", 100])
        self.assert_seeks(self.index.image_tags_sql(), ["r", "v1", 100])

    def test_tags_page(self):
        """Tags after ``last``, by tag, at most ``limit``."""
        for t in ("b", "a", "c"):
            run(self, self.index.put_tag("r", t, "sha256:m", "proxy", None, 1.0))
        self.assertEqual([t.tag for t in run(self, self.index.image_tags_page("r", "", 2))], ["a", "b"])
        self.assertEqual([t.tag for t in run(self, self.index.image_tags_page("r", "b", 2))], ["c"])

    # -- one Maven directory -----------------------------------------------------------------------

    def fill_maven(self) -> None:
        self.put("org/a/1/a-1.jar", "maven", "central", now=10.0)
        self.put("org/a/1/a-1.pom", "maven", "central", now=12.0)
        self.put("org/a/2/a-2.jar", "maven", "central", now=30.0)
        self.put("org/b/1/b-1.jar", "maven", "central", now=20.0, modified=5.0)
        self.put("org/readme.txt", "maven", "central", now=15.0)
        self.put("top.txt", "maven", "central", now=1.0)
        self.put("org/x/1/x.jar", "maven", "other", now=99.0)

    def children(self, repository: str, path: str, after: Any = None, limit: int = 100):
        dirs, files, more = run(self, self.index.maven_children(repository, path, after, limit))
        return dirs, [f.key for f in files], more

    def test_directory_children(self):
        """Subdirectories with the newest write below them, then files; another repository's rows stay out."""
        self.fill_maven()
        self.assertEqual(self.children("central", ""), ([("org", 30.0)], ["top.txt"], False))
        self.assertEqual(self.children("central", "org"), ([("a", 30.0), ("b", 5.0)], ["org/readme.txt"], False))
        self.assertEqual(self.children("central", "org/a/1"), ([], ["org/a/1/a-1.jar", "org/a/1/a-1.pom"], False))
        self.assertEqual(self.children("central", "nothing"), ([], [], False))

    def test_directory_pages(self):
        """Pages of one child: directories then files, each page after the last child of the one before."""
        self.fill_maven()
        self.assertEqual(self.children("central", "org", None, 1), ([("a", 30.0)], [], True))
        self.assertEqual(self.children("central", "org", ("d", "a"), 1), ([("b", 5.0)], [], True))
        self.assertEqual(self.children("central", "org", ("d", "b"), 1), ([], ["org/readme.txt"], False))
        self.assertEqual(self.children("central", "org", None, 2), ([("a", 30.0), ("b", 5.0)], [], True))
        self.assertEqual(
            self.children("central", "org/a/1", ("f", "org/a/1/a-1.jar"), 1), ([], ["org/a/1/a-1.pom"], False)
        )

    def test_emptied_directory_is_not_listed(self):
        """A directory whose files are all gone is skipped."""
        self.fill_maven()
        gone = run(self, self.index.get_entry("maven", "central", "org/b/1/b-1.jar"))
        run(self, self.index.delete_entries([gone.id]))
        self.assertEqual(self.children("central", "org"), ([("a", 30.0)], ["org/readme.txt"], False))

    def test_migration_back_fills_directories(self):
        """Migration 21 fills ``parent`` and ``maven_dirs`` from rows written before it."""
        self.fill_maven()
        cur = self.pool.conn.cursor()
        cur.execute("DELETE FROM maven_dirs")
        cur.execute("UPDATE entries SET parent = NULL")
        self.assertIn(PARENT_BACKFILL, LISTINGS_MIGRATION)
        self.assertIn(DIRS_BACKFILL, LISTINGS_MIGRATION)
        cur.execute(PARENT_BACKFILL)
        cur.execute(DIRS_BACKFILL)
        self.pool.conn.commit()
        self.assertEqual(self.children("central", ""), ([("org", 30.0)], ["top.txt"], False))
        self.assertEqual(self.children("central", "org"), ([("a", 30.0), ("b", 5.0)], ["org/readme.txt"], False))
        self.assertEqual(self.children("other", "org/x"), ([("1", 99.0)], [], False))

    def test_browse_seeks_an_index(self):
        """A directory's files and subdirectories are read through their indexes, not the rows below."""
        self.fill_maven()
        self.assert_seeks(self.index.maven_files_sql(), ["central", "org", "", 100])
        text = self.plan(self.index.maven_dirs_sql(), ["central", "org", "", 100])
        self.assertNotIn("TEMP B-TREE", text)
        self.assertNotIn("Seq Scan", text)


class SqliteListings(ListingsMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return sqlite_pool(self)


class PostgresListings(ListingsMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return postgres_pool(self)
