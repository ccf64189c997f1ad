"""/api/v1 decides from grants (issue 27): listings show what the caller may pull, per-repository operations
check the repository, admin operations need server_admin, and GET /api/v1/users/me says what the caller may do."""

from __future__ import annotations

import json

from harbor_cache.core.flight.downloads import Download
from tests.unit.api.test_api import T0
from tests.unit.api.test_console_api import ConsoleCase


def grants(*pairs):
    return json.dumps([{"repositories": p, "actions": a} for p, a in pairs])


class ApiGrantTests(ConsoleCase):
    def setUp(self):
        super().setUp()
        self.wait(self.index.put_tag("library/x", "multi", "sha256:" + "f" * 64, "proxy", None, T0))
        for n, repository in enumerate(("team-a/app", "team-b/app")):
            self.wait(
                self.index.put_hosted_manifest(
                    repository=repository,
                    key="sha256:" + str(n + 1) * 64,
                    digest="sha256:" + str(n + 1) * 64,
                    size=42,
                    now=T0 + 5,
                    tag="v1",
                    media_type="application/vnd.oci.image.manifest.v1+json",
                    referrer=None,
                )
            )
        # no role: pull and delete on team-a/*, nothing else
        self.grant_user("teama", "none", grants(("team-a/*", ["pull", "delete"])))
        # read-only role plus delete on team-b/*
        self.grant_user("deleter", "read-only", grants(("team-b/*", ["delete"])))

    def grant_user(self, name, role, grants_json):
        hashed = self.wait(self.crypt.hash(f"{name}-pw"))
        row = self.wait(self.index.create_user(name, hashed, role, T0))
        self.wait(self.index.set_user_grants(row.id, grants_json))

    def test_images_listing_shows_only_what_the_caller_may_pull(self):
        """teama sees team-a/app only; a read-only user sees every repository without filtering."""
        names = [r["name"] for r in self.get("/api/v1/images", token=self.login("teama"))["repositories"]]
        self.assertEqual(names, ["team-a/app"])
        names = sorted(r["name"] for r in self.get("/api/v1/images", token=self.token("read-only"))["repositories"])
        self.assertEqual(names, ["library/x", "team-a/app", "team-b/app"])

    def test_tags_and_manifest_need_pull_on_the_repository(self):
        """Tags of a repository the caller may not pull: 403 DENIED naming the permission."""
        token = self.login("teama")
        self.assertEqual(self.request("GET", "/api/v1/images/tags?repository=team-a/app", token=token).code, 200)
        r = self.request("GET", "/api/v1/images/tags?repository=team-b/app", token=token)
        self.assert_error(r, 403, "DENIED")
        self.assertEqual(r.json()["errors"][0]["message"], "pull on team-b/app not granted")
        r = self.request("GET", "/api/v1/images/manifest?repository=library/x&reference=multi", token=token)
        self.assert_error(r, 403, "DENIED")

    def test_tag_delete_needs_delete_on_the_repository(self):
        """deleter (read-only + delete on team-b/*) deletes a team-b tag and is refused on team-a."""
        token = self.login("deleter")
        r = self.request("DELETE", "/api/v1/images/tags?repository=team-a/app&tag=v1", token=token)
        self.assert_error(r, 403, "DENIED")
        self.assertEqual(r.json()["errors"][0]["message"], "delete on team-a/app not granted")
        r = self.request("DELETE", "/api/v1/images/tags?repository=team-b/app&tag=v1", token=token)
        self.assertEqual(r.code, 204, r.body)
        self.assertEqual(self.hosted.deleted, [("team-b/app", "v1")])

    def test_admin_operations_need_server_admin(self):
        """A grant of admin on repositories is not server_admin: the admin-only operations stay 403."""
        self.grant_user("owner", "none", grants(("*", ["admin"])))
        self.assert_error(self.request("GET", "/api/v1/users", token=self.login("owner")), 403, "DENIED")
        self.assertEqual(self.request("GET", "/api/v1/users", token=self.admin).code, 200)

    def test_me_reports_effective_permissions(self):
        """GET /api/v1/users/me: the caller and {"server_admin", "grants"} (role grants spelled out)."""
        me = self.get("/api/v1/users/me", token=self.login("deleter"))
        self.assertEqual((me["username"], me["role"]), ("deleter", "read-only"))
        self.assertEqual(
            me["permissions"],
            {
                "server_admin": False,
                "grants": [
                    {"repositories": "*", "actions": ["pull"]},
                    {"repositories": "maven:*", "actions": ["pull"]},
                    {"repositories": "team-b/*", "actions": ["delete"]},
                ],
            },
        )
        self.assertTrue(self.get("/api/v1/users/me")["permissions"]["server_admin"])
        self.assertEqual(self.request("GET", "/api/v1/users/me").code, 401)

    def test_downloads_limited_to_what_the_caller_may_pull(self):
        """In-flight Maven downloads show only where the caller may pull; a blob only to who may pull all."""
        for key in (("maven", "central", "a/b/1/b-1.jar"), ("blob", "sha256:" + "9" * 64)):
            self.downloads.inflight[key] = Download(key=key, front="maven", source="up")
        self.assertEqual(len(self.get("/api/v1/downloads", token=self.token("read-only"))["downloads"]), 2)
        self.assertEqual(self.get("/api/v1/downloads", token=self.login("teama"))["downloads"], [])
