"""The Maven front decides from grants (issue 27): deploy needs push on the path, DELETE delete, POST /token
carries only granted repositories and scopes, and every use of a token is checked against current grants."""

import json

from twisted.internet import defer

from harbor_cache.settings.startup import MavenRepositoryConfig
from tests.unit.maven.test_maven_front import basic
from tests.unit.maven.test_maven_hosted import JAR, HostedBase


def grants(*pairs):
    return json.dumps([{"repositories": p, "actions": a} for p, a in pairs])


class MavenGrantTests(HostedBase):
    extra_repositories = (  # type: ignore[assignment]
        *HostedBase.extra_repositories,
        MavenRepositoryConfig(id="snapshots", type="hosted"),
        MavenRepositoryConfig(id="vault", type="hosted", private=True),
    )

    def setUp(self):
        super().setUp()
        # read-only role, plus push on all of releases and delete under com/example in it
        self.ci = self.grant_user(
            "ci", "read-only", grants(("maven:releases", ["push"]), ("maven:releases/com/example", ["delete"]))
        )
        # no role: pull in the private vault under org/team only
        self.team = self.grant_user("team", "none", grants(("maven:vault/org/team", ["pull"])))

    def wait(self, coro):
        return self.successResultOf(defer.Deferred.fromCoroutine(coro))

    def grant_user(self, name, role, grants_json):
        self.add_user(name, f"{name}-pw", role)
        row = self.wait(self.app.index.get_user_by_name(name))
        self.assertTrue(self.wait(self.app.index.set_user_grants(row.id, grants_json)))
        return row.id

    def as_user(self, name):
        return {"Authorization": basic(name, f"{name}-pw")}

    def test_deploy_where_push_is_granted(self):
        """push on maven:releases deploys there; snapshots is 403 naming the missing permission."""
        self.assertEqual(self.put("releases", JAR, b"jar", self.as_user("ci"))[0].code, 201)
        response, body = self.put("snapshots", JAR, b"jar", self.as_user("ci"))
        self.assertEqual((response.code, self.error(body)["code"]), (403, "DENIED"))
        self.assertIn(f"push on maven:snapshots/{JAR} not granted", self.error(body)["message"])
        self.assertIsNone(self.entry("snapshots", JAR))

    def test_token_limited_by_grants(self):
        """POST /token: write on releases yes, on snapshots 403; implicit repositories are the granted ones."""
        status, token = self.token("releases", "artifacts:write", user="ci")
        self.assertEqual(status, 200, token)
        self.assertEqual(self.put("releases", JAR, b"jar", {"Authorization": "Bearer " + token})[0].code, 201)
        status, body = self.token("snapshots", "artifacts:write", user="ci")
        self.assertEqual(status, 403, body)
        self.assertIn("push on maven:snapshots not granted", body)
        status, token = self.token("", "artifacts:write", user="ci")
        self.assertEqual(status, 200, token)
        self.assertEqual(self.app.artifact_tokens.verify(token)["repositories"], ["releases"])

    def test_delete_needs_delete_on_the_path(self):
        """A token with artifacts:delete deletes under the granted prefix only."""
        self.put("releases", JAR, b"jar", self.as_user("ci"))
        self.put("releases", "org/other/1/other-1.jar", b"x", self.as_user("ci"))
        status, token = self.token("releases", "artifacts:delete", user="ci")
        self.assertEqual(status, 200, token)
        auth = {"Authorization": "Bearer " + token}
        self.assertEqual(self.call("DELETE", "/artifacts/releases/" + JAR, auth)[0].code, 204)
        response, body = self.call("DELETE", "/artifacts/releases/org/other/1/other-1.jar", auth)
        self.assertEqual(response.code, 403)
        self.assertIn("delete on maven:releases/org/other/1/other-1.jar not granted", self.error(body)["message"])

    def test_private_read_by_path_grant(self):
        """pull on maven:vault/org/team: reads there with a token; elsewhere in vault 403."""
        self.put("vault", "org/team/a/1/a-1.jar", b"a", {"Authorization": basic("admin", "admin-pw")})
        self.put("vault", "org/else/b/1/b-1.jar", b"b", {"Authorization": basic("admin", "admin-pw")})
        status, token = self.token("vault", "artifacts:read", user="team")
        self.assertEqual(status, 200, token)
        auth = {"Authorization": "Bearer " + token}
        self.assertEqual(self.call("GET", "/artifacts/vault/org/team/a/1/a-1.jar", auth)[1], b"a")
        self.assertEqual(self.call("GET", "/artifacts/vault/org/else/b/1/b-1.jar", auth)[0].code, 403)
        # nothing granted in releases: a token for it is refused
        self.assertEqual(self.token("releases", "artifacts:read", user="team")[0], 403)

    def test_token_use_follows_current_grants(self):
        """A write token stops deploying as soon as the push grant is taken away."""
        _, token = self.token("releases", "artifacts:write", user="ci")
        self.wait(self.app.index.set_user_grants(self.ci, "[]"))
        response, body = self.put("releases", JAR, b"jar", {"Authorization": "Bearer " + token})
        self.assertEqual(response.code, 403)
        self.assertIn("not granted", self.error(body)["message"])

    def test_browse_down_to_a_granted_prefix(self):
        """pull on maven:vault/org/team: browsing vault shows only the way down to org/team; org/else is 403."""
        for path in ("org/team/a/1/a-1.jar", "org/else/b/1/b-1.jar", "net/c/1/c-1.jar"):
            self.put("vault", path, b"x", {"Authorization": basic("admin", "admin-pw")})
        _, token = self.token("vault", "artifacts:read", user="team")
        auth = {"Authorization": "Bearer " + token}

        def names(path):
            response, body = self.call("GET", "/repositories/vault/browse?path=" + path, auth)
            self.assertEqual(response.code, 200, body)
            return [e["name"] for e in json.loads(body)["entries"]]

        self.assertEqual(names(""), ["org"])
        self.assertEqual(names("org"), ["team"])
        self.assertEqual(names("org/team/a"), ["1"])
        response, body = self.call("GET", "/repositories/vault/browse?path=org/else", auth)
        self.assertEqual(response.code, 403)
        self.assertIn("pull on maven:vault/org/else not granted", self.error(body)["message"])
        # an admin's token lists everything
        _, admin = self.token("vault", "artifacts:read")
        response, body = self.call("GET", "/repositories/vault/browse?path=", {"Authorization": "Bearer " + admin})
        self.assertEqual([e["name"] for e in json.loads(body)["entries"]], ["net", "org"])
