"""Maven browse in pages (core/maven/browse.py, maven/front.py): ``limit`` children, ``next`` passed back as ``cursor``."""

from __future__ import annotations

import json

from twisted.internet import defer

from tests.unit.maven.test_maven_front import FrontBase


class BrowsePagesTests(FrontBase):
    def setUp(self):
        super().setUp()
        for key in ["org/d3/x.jar", "org/d1/y/z.jar", "org/d2/w.jar", "org/b.txt", "org/a.txt", "top.txt"]:
            self.successResultOf(
                defer.Deferred.fromCoroutine(
                    self.app.index.put_entry(
                        kind="proxy",
                        type_="maven",
                        repository="central",
                        key=key,
                        digest="sha256:" + "2" * 64,
                        size=3,
                        now=1000.0,
                    )
                )
            )

    def browse(self, query):
        response, body = self.call("GET", "/repositories/central/browse?" + query)
        return response.code, json.loads(body)

    def test_pages_follow_the_whole_listing(self):
        """Pages of two children, followed through ``next``, give the one-page listing: directories, then files."""
        _, whole = self.browse("path=org")
        self.assertEqual([e["name"] for e in whole["entries"]], ["d1", "d2", "d3", "a.txt", "b.txt"])
        self.assertNotIn("next", whole)
        names, query = [], "path=org&limit=2"
        while True:
            code, page = self.browse(query)
            self.assertEqual(code, 200)
            self.assertLessEqual(len(page["entries"]), 2)
            names += [e["name"] for e in page["entries"]]
            if "next" not in page:
                break
            query = "path=org&limit=2&cursor=" + page["next"]
        self.assertEqual(names, ["d1", "d2", "d3", "a.txt", "b.txt"])

    def test_bad_page_parameters(self):
        """A limit out of 1..maven.browse_page_size or a cursor that is not one: 400."""
        for query in ("path=org&limit=0", "path=org&limit=5001", "path=org&limit=x", "path=org&cursor=%21%21"):
            code, _ = self.browse(query)
            self.assertEqual(code, 400, query)
