"""Keyset pages of the console's lists (api/listings.py): entries, images and tags walked through ``next``.

Same harness as test_console_api (StubTreq into the real ApiFront, sqlite inline).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.api.listings import visible_names
from harbor_cache.http.cursors import decode_cursor, encode_cursor
from tests.unit.api.test_api import T0
from tests.unit.api.test_console_api import ConsoleCase


class EntryPagesTests(ConsoleCase):
    def setUp(self):
        super().setUp()
        self.ids = [
            self.put("proxy", "blob", f"r{i % 3}", f"sha256:{i:02d}", (i * 7) % 4, created=i, access=i % 5, hits=i % 3)
            for i in range(11)
        ]

    def walk(self, query, limit=2):
        """Every entry id through ``next``, and the pages' totals."""
        ids, totals = [], set()
        page = self.get(f"/api/v1/cache/entries?{query}&limit={limit}")
        while True:
            ids += [e["id"] for e in page["entries"]]
            totals.add((page["total"], page["total_capped"]))
            if page["next"] is None:
                return ids, totals
            page = self.get(f"/api/v1/cache/entries?{query}&limit={limit}&cursor={page['next']}")

    def test_cursor_pages_follow_every_sort(self):
        """Following ``next`` page by page yields exactly the one-page listing, for each sort and order."""
        for sort in ("size", "last_access", "hits", "created", "repository"):
            for order in ("asc", "desc"):
                query = f"sort={sort}&order={order}"
                whole = [e["id"] for e in self.get(f"/api/v1/cache/entries?{query}&limit=500")["entries"]]
                self.assertEqual(sorted(whole), sorted(self.ids))
                self.assertEqual(self.walk(query), (whole, {(11, False)}), query)

    def test_cursor_with_filters(self):
        """A filter holds on every page; the total counts the matches."""
        ids, totals = self.walk("repository=r1&sort=size", limit=1)
        self.assertEqual(sorted(ids), sorted(self.ids[1::3]))
        self.assertEqual(totals, {(len(self.ids[1::3]), False)})

    def test_offset_pages_offer_next(self):
        """An offset page (kept for compatibility) also answers the cursor of the page after it."""
        page = self.get("/api/v1/cache/entries?sort=created&order=asc&limit=3&offset=3")
        self.assertEqual([e["id"] for e in page["entries"]], self.ids[3:6])
        after = self.get(f"/api/v1/cache/entries?sort=created&order=asc&limit=3&cursor={page['next']}")
        self.assertEqual([e["id"] for e in after["entries"]], self.ids[6:9])
        last = self.get("/api/v1/cache/entries?sort=created&order=asc&limit=3&offset=9")
        self.assertIsNone(last["next"])

    def test_bad_cursors(self):
        """A cursor that is not one, or belongs to another sort, is 400 BAD_REQUEST."""
        other = self.get("/api/v1/cache/entries?sort=size&limit=1")["next"]
        for query in (
            "cursor=" + other,  # sort=last_access by default
            "cursor=!!!",
            "cursor=" + encode_cursor("last_access", "desc", "x", 1),
            "cursor=" + encode_cursor("last_access", "desc", 1.0),
            "cursor=" + encode_cursor("last_access", "desc", 1.0, True),
            "cursor=" + "A" * 5000,
        ):
            self.assert_error(
                self.request("GET", "/api/v1/cache/entries?" + query, token=self.admin), 400, "BAD_REQUEST"
            )


class ImagePagesTests(ConsoleCase):
    def setUp(self):
        super().setUp()
        for i in range(5):
            self.wait(self.index.put_tag(f"lib/n{i}", "latest", "sha256:" + "1" * 64, "proxy", None, T0))
        for t in range(7):
            self.wait(self.index.put_tag("lib/n0", f"v{t}", "sha256:" + "1" * 64, "proxy", None, T0))

    def test_images_pages(self):
        """Repositories by name, ``limit`` a page, ``next`` to the rest; counts per repository."""
        names, counts, query = [], {}, "/api/v1/images?limit=2"
        while True:
            page = self.get(query, token=self.token("read-only"))
            self.assertLessEqual(len(page["repositories"]), 2)
            names += [r["name"] for r in page["repositories"]]
            counts.update({r["name"]: r["tag_count"] for r in page["repositories"]})
            if page["next"] is None:
                break
            query = "/api/v1/images?limit=2&cursor=" + page["next"]
        self.assertEqual(names, [f"lib/n{i}" for i in range(5)])
        self.assertEqual(counts["lib/n0"], 8)

    def test_tags_pages(self):
        """A repository's tags by name, ``limit`` a page, ``next`` to the rest."""
        tags, query = [], "/api/v1/images/tags?repository=lib/n0&limit=3"
        while True:
            page = self.get(query)
            tags += [t["tag"] for t in page["tags"]]
            if page["next"] is None:
                break
            query = "/api/v1/images/tags?repository=lib/n0&limit=3&cursor=" + page["next"]
        self.assertEqual(tags, ["latest"] + [f"v{t}" for t in range(7)])
        self.assert_error(self.request("GET", "/api/v1/images?limit=501", token=self.admin), 400, "BAD_REQUEST")


class VisibleNamesTests(SynchronousTestCase):
    def test_filtered_pages_read_bounded_rounds(self):
        """A caller who sees few names gets them in rounds of at most 200 names, never the whole list at once."""
        names = [f"n{i:05d}" for i in range(2000)]
        asked = []

        async def names_after(last, n):
            asked.append(n)
            return [x for x in names if x > last][:n]

        visible = {"n00150", "n00900", "n01999"}.__contains__
        found = self.successResultOf(defer.Deferred.fromCoroutine(visible_names(names_after, "", 2, visible)))
        self.assertEqual(found, (["n00150", "n00900"], "n00900"))
        self.assertEqual(set(asked), {200})
        everything = self.successResultOf(defer.Deferred.fromCoroutine(visible_names(names_after, "n01990", 5, None)))
        self.assertEqual(everything, ([f"n0{i}" for i in range(1991, 1996)], "n01995"))
        rest = self.successResultOf(defer.Deferred.fromCoroutine(visible_names(names_after, "n01990", 50, None)))
        self.assertEqual(rest, ([f"n0{i}" for i in range(1991, 2000)], None))

    def test_a_filtered_page_stops_after_its_rounds(self):
        """Nothing visible in many names: MAX_ROUNDS rounds, then an empty page whose next resumes the scan."""
        from harbor_cache.api import listings

        self.patch(listings, "MAX_ROUNDS", 3)
        names = [f"n{i:05d}" for i in range(2000)]

        async def names_after(last, n):
            return [x for x in names if x > last][:n]

        page = self.successResultOf(defer.Deferred.fromCoroutine(visible_names(names_after, "", 2, lambda n: False)))
        self.assertEqual(page, ([], "n00599"))

    def test_cursor_round_trip(self):
        """A cursor gives back exactly its values (floats included)."""
        values = ["last_access", "desc", 1700000000.123456, 42]
        self.assertEqual(decode_cursor(encode_cursor(*values), str, str, (int, float), int), values)
