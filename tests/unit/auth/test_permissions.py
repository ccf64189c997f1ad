"""Grants and the decisions made from them (harbor_cache.auth.permissions)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from harbor_cache.auth.permissions import (
    Grant,
    GrantError,
    Permissions,
    dump_grants,
    load_grants,
    parse_grants,
    role_grants,
)


def grant(pattern: str, *actions: str) -> Grant:
    return Grant(pattern, frozenset(actions))


class ParseTests(TestCase):
    def test_round_trip(self) -> None:
        grants = parse_grants(
            [
                {"repositories": "team-a/*", "actions": ["push", "pull"]},
                {"repositories": "maven:releases/com/example/", "actions": ["pull"]},
            ]
        )
        self.assertEqual(load_grants(dump_grants(grants)), grants)
        self.assertEqual(grants[0].as_json(), {"repositories": "team-a/*", "actions": ["pull", "push"]})

    def test_refusals_name_the_problem(self) -> None:
        cases = [
            ({}, "must be a list"),
            (["x"], "is an object"),
            ([{"repositories": "a", "actions": ["pull"], "extra": 1}], "unknown grant field: extra"),
            ([{"repositories": "", "actions": ["pull"]}], "non-empty string"),
            ([{"repositories": "a b", "actions": ["pull"]}], "whitespace"),
            ([{"repositories": "a", "actions": []}], "non-empty list"),
            ([{"repositories": "a", "actions": ["fly"]}], "unknown grant action: fly"),
            ([{"repositories": "maven:", "actions": ["pull"]}], "needs a repository id"),
            ([{"repositories": "maven:rel*", "actions": ["pull"]}], "a name or *"),
            ([{"repositories": "maven:releases/com/*", "actions": ["pull"]}], "no wildcards"),
            ([{"repositories": "maven:releases/../x", "actions": ["pull"]}], ". or .."),
        ]
        for value, message in cases:
            with self.assertRaises(GrantError) as caught:
                parse_grants(value)
            self.assertIn(message, str(caught.exception))

    def test_unreadable_stored_grants_grant_nothing(self) -> None:
        self.assertEqual(load_grants("not json"), ())
        self.assertEqual(load_grants('[{"repositories": "*", "actions": ["fly"]}]'), ())
        self.assertEqual(load_grants(None), ())


class DecisionTests(TestCase):
    def test_oci_glob_crosses_slashes(self) -> None:
        p = Permissions((grant("team-a/*", "push"),))
        self.assertEqual(p.oci_actions("team-a/app"), {"push"})
        self.assertEqual(p.oci_actions("team-a/tools/lint"), {"push"})
        self.assertEqual(p.oci_actions("team-b/app"), frozenset())
        self.assertEqual(p.oci_actions("team-a"), frozenset())
        self.assertFalse(p.may_oci("pull", "team-a/app"))

    def test_admin_implies_the_rest(self) -> None:
        p = Permissions((grant("team-a/*", "admin"),))
        self.assertEqual(p.oci_actions("team-a/x"), {"pull", "push", "delete", "admin"})
        self.assertFalse(p.server_admin)

    def test_maven_prefix_is_a_directory(self) -> None:
        p = Permissions((grant("maven:releases/com/example/", "push"),))
        self.assertTrue(p.may_maven("push", "releases", "com/example/lib/1.0/lib-1.0.jar"))
        self.assertTrue(p.may_maven("push", "releases", "/com/example"))
        self.assertFalse(p.may_maven("push", "releases", "com/examples/x.jar"))
        self.assertFalse(p.may_maven("push", "snapshots", "com/example/x.jar"))
        self.assertFalse(p.may_oci("push", "releases"))
        self.assertTrue(Permissions((grant("maven:*", "pull"),)).may_maven("pull", "anything", "a/b"))

    def test_roles_are_global_grants(self) -> None:
        ro = Permissions.of("read-only")
        self.assertEqual(ro.oci_actions("any/thing"), {"pull"})
        self.assertTrue(ro.may_maven("pull", "central", "x"))
        self.assertFalse(ro.may_maven("push", "releases", "x"))
        rw = Permissions.of("read-write")
        self.assertEqual(rw.oci_actions("x"), {"pull", "push", "delete"})
        self.assertFalse(rw.server_admin)
        admin = Permissions.of("admin")
        self.assertTrue(admin.server_admin)
        self.assertEqual(role_grants("none"), ())
        self.assertEqual(Permissions.of("none").oci_actions("x"), frozenset())

    def test_union_of_role_own_and_groups(self) -> None:
        p = Permissions.of("read-only", (grant("team-a/*", "push"),), group_roles=[None, "read-write"])
        self.assertEqual(p.oci_actions("z"), {"pull", "push", "delete"})
        self.assertTrue(Permissions.of(None, group_roles=["admin"]).server_admin)

    def test_anonymous(self) -> None:
        self.assertEqual(Permissions.anonymous(False).oci_actions("x"), frozenset())
        self.assertEqual(Permissions.anonymous(True).oci_actions("x"), {"pull"})
        self.assertFalse(Permissions.anonymous(True).may_maven("push", "releases"))

    def test_listing_shortcuts(self) -> None:
        p = Permissions((grant("team-a/*", "pull"),))
        self.assertFalse(p.sees_everything(maven=False))
        self.assertTrue(Permissions.of("read-only").sees_everything(maven=True))
        self.assertTrue(p.may_anywhere("pull", maven=False))
        self.assertFalse(p.may_anywhere("pull", maven=True))


class CoverTests(TestCase):
    def test_no_wider_than_the_creator(self) -> None:
        creator = Permissions((grant("team-a/*", "admin"), grant("maven:releases/com/example", "push", "pull")))
        fine = [
            grant("team-a/*", "push", "pull"),
            grant("team-a/app", "delete"),
            grant("team-a/sub/*", "admin"),
            grant("maven:releases/com/example/lib", "push"),
        ]
        self.assertEqual(creator.covers(fine), [])
        wide = [
            grant("*", "pull"),
            grant("team-*", "pull"),
            grant("team-b/*", "pull"),
            grant("maven:releases", "pull"),
            grant("maven:*/com/example", "pull"),
            grant("maven:releases/com/example", "delete"),
        ]
        self.assertEqual(creator.covers(wide), wide)
        self.assertEqual(Permissions.of("admin").covers(wide), [])
