"""auth.access: the decisions every front asks, from a caller's Permissions (issue 27)."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.auth.access import (
    ArtifactTokenRequestError,
    maven_pull_prefixes,
    on_the_way,
    plan_artifact_token,
    registry_actions,
)
from harbor_cache.auth.permissions import Grant, Permissions


def perms(*grants, role=None):
    return Permissions.of(role, [Grant(p, frozenset(a)) for p, a in grants])


class RegistryActionTests(SynchronousTestCase):
    def test_cut_per_repository(self):
        p = perms(("team-a/*", {"push"}), role="read-only")
        self.assertEqual(registry_actions(p, "team-a/app", {"pull", "push"}), {"pull", "push"})
        self.assertEqual(registry_actions(p, "team-b/app", {"pull", "push"}), {"pull"})
        self.assertEqual(registry_actions(p, "team-b/app", {"*"}), {"pull"})

    def test_admin_grant_is_not_a_docker_action(self):
        """admin on a pattern spells out pull, push, delete; "admin" itself is never handed to docker."""
        p = perms(("team-a/*", {"admin"}))
        self.assertEqual(registry_actions(p, "team-a/x", {"*"}), {"pull", "push", "delete"})

    def test_server_admin_keeps_the_wildcard(self):
        self.assertEqual(registry_actions(Permissions.of("admin"), "x", {"*"}), {"*"})


class ArtifactTokenPlanTests(SynchronousTestCase):
    known = ["releases", "snapshots", "vault"]

    def refused(self, status, *args):
        e = self.assertRaises(ArtifactTokenRequestError, plan_artifact_token, *args)
        self.assertEqual(e.status, status)
        return e.reason

    def test_explicit_scope_on_explicit_repositories(self):
        p = perms(("maven:releases", {"push"}), role="read-only")
        self.assertEqual(
            plan_artifact_token(p, ["releases"], self.known, ["artifacts:write"]), (["releases"], ["artifacts:write"])
        )
        reason = self.refused(403, p, ["releases", "snapshots"], self.known, ["artifacts:write"])
        self.assertIn("push on maven:snapshots not granted", reason)

    def test_implicit_repositories_are_the_granted_ones(self):
        p = perms(("maven:releases", {"push"}), ("maven:vault/org/team", {"pull"}))
        self.assertEqual(
            plan_artifact_token(p, [], self.known, ["artifacts:write"]), (["releases"], ["artifacts:write"])
        )
        self.assertEqual(
            plan_artifact_token(p, [], self.known, []), (["releases", "vault"], ["artifacts:read", "artifacts:write"])
        )
        self.refused(403, p, [], self.known, ["artifacts:delete"])

    def test_implicit_scopes_on_a_repository_without_grants(self):
        p = perms(("maven:releases", {"pull"}))
        self.assertEqual(plan_artifact_token(p, ["releases"], self.known, []), (["releases"], ["artifacts:read"]))
        self.refused(403, p, ["snapshots"], self.known, [])
        self.refused(403, Permissions(), [], self.known, [])
        self.refused(400, p, ["nope"], self.known, [])


class MavenPrefixTests(SynchronousTestCase):
    def test_prefixes(self):
        self.assertIsNone(maven_pull_prefixes(perms(("maven:*", {"pull"})), "vault"))
        p = perms(("maven:vault/org/team", {"pull"}), ("maven:other", {"pull"}), ("maven:vault/x", {"push"}))
        self.assertEqual(maven_pull_prefixes(p, "vault"), ("org/team",))
        self.assertEqual(maven_pull_prefixes(p, "snapshots"), ())

    def test_on_the_way(self):
        for path, expected in (("", True), ("org", True), ("org/team", True), ("org/team/a/1", True)):
            self.assertEqual(on_the_way(["org/team"], path), expected, path)
        for path in ("net", "org/teams", "org/else/team"):
            self.assertFalse(on_the_way(["org/team"], path), path)
