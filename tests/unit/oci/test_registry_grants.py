"""/v2/ decides from grants (issue 27): Basic and token scopes cut per repository, refusals naming the permission."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from tests.unit.base import HostedRegistryCase, basic, error_code, header


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def grants(*pairs: tuple[str, list[str]]) -> str:
    return json.dumps([{"repositories": p, "actions": a} for p, a in pairs])


class GrantedUserCase(HostedRegistryCase):
    """``teamer``: read-only role plus push on team-a/*; ``scoped``: no role, pull on team-a/* only."""

    def setUp(self):
        super().setUp()
        self.teamer = self.grant_user("teamer", "read-only", grants(("team-a/*", ["push"])))
        self.scoped = self.grant_user("scoped", "none", grants(("team-a/*", ["pull"])))

    def wait(self, coro):
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def grant_user(self, name: str, role: str, grants_json: str) -> int:
        row = self.wait(self.app.index.create_user(name, name + "-pw", role, self.clock.seconds()))
        self.assertTrue(self.wait(self.app.index.set_user_grants(row.id, grants_json)))
        return row.id

    def as_user(self, name: str) -> dict:
        return {k.decode(): v[0] for k, v in basic(name, name + "-pw").items()}

    def upload(self, name: str, headers: dict):
        return self.fetch("POST", f"/v2/{name}/blobs/uploads/", headers=headers, user=None)

    def token(self, name: str, scope: str) -> str:
        response, body = self.fetch(
            "GET", f"/v2/token?service=harbor-cache&scope={scope}", headers=self.as_user(name), user=None
        )
        self.assertEqual(response.code, 200, body)
        return json.loads(body)["token"]

    def access(self, token: str) -> list:
        return self.app.registry_tokens.verify(token)["access"]


class BasicGrantTests(GrantedUserCase):
    def test_push_where_granted_denied_elsewhere_naming_the_permission(self):
        """Basic: push on team-a/* lets team-a/app in; team-b/app is 403 DENIED "push on team-b/app not granted"."""
        self.assertEqual(self.upload("team-a/app", self.as_user("teamer"))[0].code, 202)
        response, body = self.upload("team-b/app", self.as_user("teamer"))
        self.assertEqual((response.code, error_code(body)), (403, "DENIED"))
        error = json.loads(body)["errors"][0]
        self.assertEqual(error["message"], "push on team-b/app not granted")
        self.assertEqual(error["detail"]["missing"], ["push"])

    def test_role_none_pulls_only_where_granted(self):
        """No role, pull on team-a/*: team-a pulls reach the content (404), team-b is 403 naming pull."""
        self.assertEqual(
            self.fetch("GET", "/v2/team-a/x/manifests/v1", headers=self.as_user("scoped"), user=None)[0].code, 404
        )
        response, body = self.fetch("GET", "/v2/team-b/x/manifests/v1", headers=self.as_user("scoped"), user=None)
        self.assertEqual(
            (response.code, json.loads(body)["errors"][0]["message"]), (403, "pull on team-b/x not granted")
        )


class TokenGrantTests(GrantedUserCase):
    def test_token_scopes_cut_per_repository(self):
        """One token request for two repositories: push where granted, pull only elsewhere."""
        token = self.token("teamer", "repository:team-a/app:pull,push&scope=repository:team-b/app:pull,push")
        self.assertEqual(
            self.access(token),
            [
                {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
                {"type": "repository", "name": "team-b/app", "actions": ["pull"]},
            ],
        )
        self.assertEqual(self.upload("team-a/app", bearer(token))[0].code, 202)
        response, body = self.upload("team-b/app", bearer(token))
        self.assertEqual((response.code, error_code(body)), (403, "DENIED"))
        self.assertEqual(json.loads(body)["errors"][0]["message"], "insufficient_scope: push on team-b/app not granted")
        self.assertIn('error="insufficient_scope"', header(response, "WWW-Authenticate"))

    def test_pull_only_user_push_is_insufficient_scope(self):
        """A read-only user's push token holds pull only; the push is refused with error="insufficient_scope"."""
        token = self.token("reader", "repository:team-a/app:pull,push")
        self.assertEqual(self.access(token)[0]["actions"], ["pull"])
        response, body = self.upload("team-a/app", bearer(token))
        self.assertEqual(response.code, 403)
        self.assertEqual(error_code(body), "DENIED")
        self.assertIn('error="insufficient_scope"', header(response, "WWW-Authenticate"))
        # In words clients print (docker shows a 403's message: "denied: insufficient_scope: push on ...").
        self.assertEqual(json.loads(body)["errors"][0]["message"], "insufficient_scope: push on team-a/app not granted")

    def test_wildcard_spelled_out_from_admin_grant(self):
        """``*`` asked by a holder of admin on team-a/*: pull, push, delete spelled out; nothing on team-b."""
        self.grant_user("owner", "none", grants(("team-a/*", ["admin"])))
        token = self.token("owner", "repository:team-a/app:*&scope=repository:team-b/app:*")
        self.assertEqual(
            self.access(token), [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push", "delete"]}]
        )

    def test_grant_taken_away_applies_to_the_next_request(self):
        """A token is re-checked at use: once the grant is gone, its push is refused.

        The token itself holds push, so the message is the plain sentence (no ``insufficient_scope:``).
        """
        token = self.token("teamer", "repository:team-a/app:pull,push")
        self.assertEqual(self.upload("team-a/app", bearer(token))[0].code, 202)
        self.wait(self.app.index.set_user_grants(self.teamer, "[]"))
        response, body = self.upload("team-a/app", bearer(token))
        self.assertEqual(
            (response.code, json.loads(body)["errors"][0]["message"]), (403, "push on team-a/app not granted")
        )

    def test_grant_from_a_group(self):
        """A group's grant applies to its member (permissions_of: role, own grants, groups)."""
        index = self.app.index

        async def go():
            await index._run(
                "test_group",
                lambda txn: (
                    index._exec(
                        txn,
                        "INSERT INTO groups (name, description, role, grants, source, created_at, updated_at) "
                        "VALUES ('b', '', NULL, ?, 'local', 0, 0)",
                        (grants(("team-b/*", ["push"])),),
                    ),
                    index._exec(
                        txn,
                        "INSERT INTO group_members (group_id, user_id, source) "
                        "SELECT id, ?, 'local' FROM groups WHERE name = 'b'",
                        (self.teamer,),
                    ),
                ),
            )

        self.wait(go())
        self.assertEqual(self.upload("team-b/app", self.as_user("teamer"))[0].code, 202)

    def test_groups_are_asked_only_when_role_and_own_grants_fall_short(self):
        """Requests the role or own grants allow cost no groups query; a refusal asks the groups first."""
        calls = []
        real = self.app.index.groups_of_user

        async def counting(user_id):
            calls.append(user_id)
            return await real(user_id)

        self.patch(self.app.index, "groups_of_user", counting)
        self.assertEqual(self.upload("team-a/app", self.as_user("teamer"))[0].code, 202)
        self.assertEqual(
            self.fetch("GET", "/v2/team-b/x/manifests/v1", headers=self.as_user("teamer"), user=None)[0].code, 404
        )
        self.assertEqual(calls, [])
        self.assertEqual(self.upload("team-b/app", self.as_user("teamer"))[0].code, 403)
        self.assertEqual(calls, [self.teamer])


class CatalogGrantTests(GrantedUserCase):
    def setUp(self):
        super().setUp()
        for name in ("team-a/app", "team-b/app", "team-a/tools", "zeta/app"):
            self.put_manifest(name, "v1", self.image_manifest(name, [name.encode()]))

    def catalog(self, query: str = "", headers: dict | None = None):
        response, body = self.fetch("GET", "/v2/_catalog" + query, headers=headers, user=None if headers else "admin")
        self.assertEqual(response.code, 200, body)
        return json.loads(body)["repositories"], header(response, "Link")

    def test_catalog_lists_only_what_the_caller_may_pull(self):
        """The catalog of a caller with pull on team-a/* only: team-a names; a reader and admin see everything."""
        names, _ = self.catalog(headers=self.as_user("scoped"))
        self.assertEqual(names, ["team-a/app", "team-a/tools"])
        self.assertEqual(
            self.catalog(headers=self.as_user("teamer"))[0], ["team-a/app", "team-a/tools", "team-b/app", "zeta/app"]
        )
        self.assertEqual(len(self.catalog()[0]), 4)

    def test_filtered_catalog_pages(self):
        """Pages of a filtered catalog hold n visible names and link on while more are visible."""
        names, link = self.catalog("?n=1", headers=self.as_user("scoped"))
        self.assertEqual(names, ["team-a/app"])
        self.assertIn("last=team-a%2Fapp", link)
        names, link = self.catalog("?n=1&last=team-a/app", headers=self.as_user("scoped"))
        self.assertEqual((names, link), (["team-a/tools"], None))

    def test_filtered_catalog_reads_the_index_in_rounds(self):
        """With small index rounds, the filter reads on until it has n visible names (and one more)."""
        from harbor_cache.core.hosted import registry

        self.patch(registry, "_CATALOG_BATCH", 1)
        names, link = self.catalog("?n=2", headers=self.as_user("scoped"))
        self.assertEqual((names, link), (["team-a/app", "team-a/tools"], None))
        names, link = self.catalog("?n=1", headers=self.as_user("scoped"))
        self.assertEqual(names, ["team-a/app"])
        self.assertIsNotNone(link)
