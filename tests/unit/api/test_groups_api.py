"""/api/v1/groups and the grants of /api/v1/users (api/groups.py, api/front.py): shapes, errors, audit."""

from __future__ import annotations

import json

from harbor_cache.core.identity.principals import permissions_of
from tests.unit.api.test_api import ROLES, ApiCase

GRANT = {"repositories": "team-a/*", "actions": ["pull", "push"]}
MAVEN_GRANT = {"repositories": "maven:releases/com/example", "actions": ["admin"]}


class GrantsApiCase(ApiCase):
    def setUp(self):
        super().setUp()
        self.admin = self.token("admin")

    def call(self, method, path, body=None, token=None):
        return self.request(method, path, body, token=token or self.admin)

    def audit(self, action):
        """(target, detail) of the audit records of ``action``, oldest first."""
        _, rows = self.wait(self.index.audit_page(limit=1000, offset=0))
        return [(r.target, json.loads(r.detail) if r.detail else None) for r in reversed(rows) if r.action == action]


class UserGrantsTests(GrantsApiCase):
    def test_create_and_update_with_grants(self):
        """POST and PUT take grants; every user JSON carries grants and source; the audit has the grants."""
        r = self.call(
            "POST", "/api/v1/users", {"username": "ci", "password": "pw", "role": "read-only", "grants": [GRANT]}
        )
        self.assertEqual(r.code, 201, r.body)
        user = r.json()
        self.assertEqual((user["grants"], user["source"]), ([GRANT], "local"))
        self.assertEqual(self.call("GET", f"/api/v1/users/{user['id']}").json()["grants"], [GRANT])
        r = self.call("PUT", f"/api/v1/users/{user['id']}", {"grants": [GRANT, MAVEN_GRANT]})
        self.assertEqual(r.json()["grants"], [GRANT, MAVEN_GRANT])
        listed = {u["username"]: u for u in self.call("GET", "/api/v1/users").json()}
        self.assertEqual(listed["ci"]["grants"], [GRANT, MAVEN_GRANT])
        self.call("PUT", f"/api/v1/users/{user['id']}", {"role": "read-write"})  # grants left out: kept
        self.assertEqual(self.call("GET", f"/api/v1/users/{user['id']}").json()["grants"], [GRANT, MAVEN_GRANT])
        self.assertEqual(self.audit("user.create")[-1], ("ci", {"role": "read-only", "grants": [GRANT]}))
        self.assertEqual(
            [d for _, d in self.audit("user.update")], [{"grants": [GRANT, MAVEN_GRANT]}, {"role": "read-write"}]
        )

    def test_bad_grants_are_400_naming_the_problem(self):
        uid = self.accounts["read-only"].id
        for body, words in (
            ({"grants": [{"repositories": "a/*", "actions": ["fly"]}]}, "unknown grant action: fly"),
            ({"grants": [{"repositories": "", "actions": ["pull"]}]}, "non-empty string"),
            ({"grants": "everything"}, "grants must be a list"),
            ({"grants": [{"repositories": "maven:", "actions": ["pull"]}]}, "repository id"),
            ({"grants": None}, "grants"),
        ):
            r = self.call("PUT", f"/api/v1/users/{uid}", body)
            self.assert_error(r, 400, "BAD_REQUEST")
            self.assertIn(words, r.json()["errors"][0]["message"])
        r = self.call("POST", "/api/v1/users", {"username": "x", "password": "p", "role": "read-only", "grants": [1]})
        self.assert_error(r, 400, "BAD_REQUEST")
        self.assertEqual(self.call("GET", f"/api/v1/users/{uid}").json()["grants"], [])
        self.assertNotIn("x", [u["username"] for u in self.call("GET", "/api/v1/users").json()])

    def test_robot_names_are_refused(self):
        r = self.call("POST", "/api/v1/users", {"username": "robot$ci", "password": "p", "role": "read-only"})
        self.assert_error(r, 400, "BAD_REQUEST")
        self.assertIn("robot$", r.json()["errors"][0]["message"])

    def test_external_users_password_is_409(self):
        """PUT with a password for an LDAP or OIDC user: 409 (not ours to set); their grants still change."""
        for source, words in (("ldap", "directory"), ("oidc", "CLI secret")):
            row = self.wait(self.index.create_user(f"ext-{source}", "!" + source, "none", 1.0))
            self.successResultOf(
                self.index._run(
                    "t",
                    lambda txn, s=source, i=row.id: self.index._exec(
                        txn, "UPDATE users SET source = ? WHERE id = ?", (s, i)
                    ),
                )
            )
            r = self.call("PUT", f"/api/v1/users/{row.id}", {"password": "new-password"})
            self.assert_error(r, 409, "CONFLICT")
            self.assertIn(words, r.json()["errors"][0]["message"])
            self.assertEqual(self.wait(self.index.get_user(row.id)).password_hash, "!" + source)
            r = self.call("PUT", f"/api/v1/users/{row.id}", {"grants": [GRANT]})
            self.assertEqual((r.code, r.json()["grants"]), (200, [GRANT]))
        self.assertNotIn("password_changed", json.dumps(self.audit("user.update")))

    def test_robot_rows_are_not_listed(self):
        """GET /api/v1/users lists people only; a robot's id is 404 here."""
        self.wait(self.index.create_user("robot$ci", "!", "none", 1.0))
        robot = self.wait(self.index.get_user_by_name("robot$ci"))
        self.successResultOf(
            self.index._run(
                "t", lambda txn: self.index._exec(txn, "UPDATE users SET kind = 'robot' WHERE id = ?", (robot.id,))
            )
        )
        self.assertEqual([u["username"] for u in self.call("GET", "/api/v1/users").json()], list(ROLES))
        self.assert_error(self.call("GET", f"/api/v1/users/{robot.id}"), 404, "NOT_FOUND")


class GroupEndpointTests(GrantsApiCase):
    def create(self, **body):
        r = self.call("POST", "/api/v1/groups", body)
        self.assertEqual(r.code, 201, r.body)
        return r.json()

    def test_crud(self):
        """Create (201, Location), get, list, partial update, delete (204, then 404)."""
        group = self.create(name="devs", description="developers", grants=[GRANT], members=["read-only"])
        self.assertEqual(
            {k: v for k, v in group.items() if k not in ("id", "created_at", "updated_at")},
            {
                "name": "devs",
                "description": "developers",
                "role": None,
                "grants": [GRANT],
                "members": ["read-only"],
                "source": "local",
            },
        )
        self.assertEqual(group["created_at"], "2023-11-14T22:13:20Z")
        gid = group["id"]
        self.assertEqual(self.call("GET", f"/api/v1/groups/{gid}").json(), group)
        self.assertEqual(self.call("GET", "/api/v1/groups").json(), {"groups": [group]})
        self.clock.advance(60)
        r = self.call("PUT", f"/api/v1/groups/{gid}", {"role": "read-write", "members": ["read-write", "read-only"]})
        self.assertEqual(r.code, 200, r.body)
        changed = r.json()
        self.assertEqual(
            (changed["role"], changed["members"], changed["grants"]),
            ("read-write", ["read-only", "read-write"], [GRANT]),
        )
        self.assertEqual(changed["updated_at"], "2023-11-14T22:14:20Z")
        r = self.call("DELETE", f"/api/v1/groups/{gid}")
        self.assertEqual((r.code, r.body), (204, b""))
        self.assert_error(self.call("GET", f"/api/v1/groups/{gid}"), 404, "NOT_FOUND")
        self.assert_error(self.call("DELETE", f"/api/v1/groups/{gid}"), 404, "NOT_FOUND")
        self.assert_error(self.call("PUT", f"/api/v1/groups/{gid}", {"name": "x"}), 404, "NOT_FOUND")

    def test_errors(self):
        """409 for a taken name; 400 naming an unknown member or a bad grant; nothing created then."""
        gid = self.create(name="devs")["id"]
        self.assert_error(self.call("POST", "/api/v1/groups", {"name": "devs"}), 409, "CONFLICT")
        other = self.create(name="ops")["id"]
        self.assert_error(self.call("PUT", f"/api/v1/groups/{other}", {"name": "devs"}), 409, "CONFLICT")
        r = self.call("POST", "/api/v1/groups", {"name": "g", "members": ["read-only", "nobody"]})
        self.assert_error(r, 400, "BAD_REQUEST")
        self.assertIn("nobody", r.json()["errors"][0]["message"])
        r = self.call("PUT", f"/api/v1/groups/{gid}", {"grants": [{"repositories": "a", "actions": ["fly"]}]})
        self.assert_error(r, 400, "BAD_REQUEST")
        self.assertIn("fly", r.json()["errors"][0]["message"])
        for body in ({"role": "god", "name": "g"}, {"name": "a b"}, {}, ["g"], {"name": "robot$ci"}):
            self.assert_error(self.call("POST", "/api/v1/groups", body), 400, "BAD_REQUEST")
        r = self.call("PUT", f"/api/v1/groups/{gid}", {"name": "robot$devs"})
        self.assert_error(r, 400, "BAD_REQUEST")
        self.assertIn("robot$", r.json()["errors"][0]["message"])
        self.assertEqual([g["name"] for g in self.call("GET", "/api/v1/groups").json()["groups"]], ["devs", "ops"])

    def test_admin_only(self):
        gid = self.create(name="devs")["id"]
        for role in ("read-write", "read-only"):
            token = self.token(role)
            for method, path, body in (
                ("GET", "/api/v1/groups", None),
                ("POST", "/api/v1/groups", {"name": "x"}),
                ("GET", f"/api/v1/groups/{gid}", None),
                ("PUT", f"/api/v1/groups/{gid}", {"name": "y"}),
                ("DELETE", f"/api/v1/groups/{gid}", None),
            ):
                self.assert_error(self.call(method, path, body, token=token), 403, "DENIED")
        self.assert_error(self.request("GET", "/api/v1/groups"), 401, "UNAUTHORIZED")

    def test_audit_records_the_changes(self):
        """group.create has the fields, group.update what changed (from, to), group.delete what went."""
        gid = self.create(name="devs", grants=[GRANT])["id"]
        self.call("PUT", f"/api/v1/groups/{gid}", {"members": ["read-only"], "description": "same"})
        self.call("DELETE", f"/api/v1/groups/{gid}")
        self.assertEqual(
            self.audit("group.create"),
            [("devs", {"id": gid, "name": "devs", "description": "", "role": None, "grants": [GRANT], "members": []})],
        )
        self.assertEqual(
            self.audit("group.update"),
            [
                (
                    "devs",
                    {
                        "id": gid,
                        "members": {"from": [], "to": ["read-only"]},
                        "description": {"from": "", "to": "same"},
                    },
                )
            ],
        )
        self.assertEqual(
            self.audit("group.delete"),
            [("devs", {"id": gid, "role": None, "grants": [GRANT], "members": ["read-only"]})],
        )

    def test_group_grants_apply_to_members(self):
        """What the API stores is what `permissions_of` reads: a member gets the group's grants and role."""
        self.create(name="devs", role="read-write", grants=[MAVEN_GRANT], members=["read-only"])
        member = self.wait(self.users.get(self.accounts["read-only"].id))
        perms = self.wait(permissions_of(self.index, member, False))
        self.assertTrue(perms.may_oci("push", "anything"))
        self.assertTrue(perms.may_maven("delete", "releases", "com/example/a/1/a-1.jar"))
