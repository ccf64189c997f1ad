"""GET /api/v1/search (api/search.py) through the whole app: auth, the answer's shape, visibility, errors."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from tests.unit.base import MavenCacheCase, error_code


class SearchApiTests(MavenCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.add_user("admin", "admin-pw", "admin")
        self.add_user("reader", "reader-pw", "read-only")
        index = self.app.index
        now = self.clock.seconds()
        for repository, key in [
            ("central", "org/example/lib/1.0/lib-1.0.jar"),
            ("secret", "org/example/lib/9/lib-9.jar"),
        ]:
            self.successResultOf(
                defer.Deferred.fromCoroutine(
                    index.put_entry(
                        kind="proxy", type_="maven", repository=repository, key=key, digest="sha256:1", size=3, now=now
                    )
                )
            )
        self.successResultOf(
            defer.Deferred.fromCoroutine(
                index.put_tag("library/nginx", "1.27", "sha256:" + "f" * 64, "proxy", None, now)
            )
        )

    def token(self, user: str) -> str:
        body = json.dumps({"username": user, "password": f"{user}-pw"}).encode()
        response, content = self.fetch(
            "POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}, user=None
        )
        self.assertEqual(response.code, 200, content)
        token: str = json.loads(content)["token"]
        return token

    def search(self, query: str, user: str | None = "reader") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        response, content = self.fetch("GET", "/api/v1/search?" + query, headers=headers, user=None)
        return response.code, content

    def test_results_and_links(self) -> None:
        code, content = self.search("q=nginx")
        self.assertEqual(code, 200, content)
        page = json.loads(content)
        self.assertEqual(page["next"], None)
        tag = next(r for r in page["results"] if r["kind"] == "tag")
        self.assertEqual(
            {k: tag[k] for k in ("repository", "name", "tag", "digest", "link")},
            {
                "repository": "library/nginx",
                "name": "library/nginx",
                "tag": "1.27",
                "digest": "sha256:" + "f" * 64,
                "link": "/ui/#/images?repo=library%2Fnginx&ref=1.27",
            },
        )

    def test_private_maven_for_admins_only(self) -> None:
        _, reader = self.search("q=a:lib")
        _, admin = self.search("q=a:lib", user="admin")
        self.assertEqual([r["repository"] for r in json.loads(reader)["results"]], ["central"])
        self.assertEqual(sorted(r["repository"] for r in json.loads(admin)["results"]), ["central", "secret"])

    def test_paging(self) -> None:
        code, content = self.search("q=a:lib&limit=1", user="admin")
        first = json.loads(content)
        self.assertEqual(len(first["results"]), 1)
        _, content = self.search(f"q=a:lib&limit=1&cursor={first['next']}", user="admin")
        second = json.loads(content)
        self.assertNotEqual(first["results"], second["results"])
        self.assertIsNone(second["next"])

    def test_errors(self) -> None:
        code, content = self.search("q=nginx", user=None)
        self.assertEqual(code, 401)
        for query in ["", "q=", "q=x&limit=101", "q=x&limit=0", "q=abc&cursor=zz", "q=abc&kind=blob"]:
            code, content = self.search(query)
            self.assertEqual((code, error_code(content)), (400, "BAD_REQUEST"), query)
