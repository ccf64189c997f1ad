"""Groups, memberships and users' grants on SQLite and PostgreSQL, through `GroupService` and `UserService`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.auth.permissions import load_grants
from harbor_cache.core.identity.credentials import Credentials
from harbor_cache.core.identity.groups import GroupService
from harbor_cache.core.identity.principals import permissions_of
from harbor_cache.core.identity.users import UserService
from harbor_cache.errors import BadRequest, Conflict, NotFound
from harbor_cache.testing import InlineBcrypt, InlinePool
from tests.unit.base import failure, inline_index, postgres_pool, run, sqlite_pool

GRANT = {"repositories": "team-a/*", "actions": ["push", "pull"]}


if TYPE_CHECKING:
    _Case = SynchronousTestCase
else:
    _Case = object  # (trial must not collect the mixin itself)


class GroupRowsMixin(_Case):
    def open_pool(self) -> InlinePool:
        raise NotImplementedError

    def setUp(self) -> None:
        self.index = inline_index(self.open_pool())
        run(self, self.index.migrate())
        self.clock = Clock()
        self.clock.advance(1000)
        crypt = InlineBcrypt()
        self.users = UserService(
            self.index, self.clock, Credentials(self.index, self.clock, crypt.check), hasher=crypt.hash
        )
        self.groups = GroupService(self.index, self.clock)
        self.admin = run(self, self.users.create("admin", "pw", "admin"))
        self.alice = run(self, self.users.create("alice", "pw", "read-only"))
        self.bob = run(self, self.users.create("bob", "pw", "read-only"))

    def sql(self, statement: str, args: tuple = ()) -> None:
        self.successResultOf(self.index._run("test", lambda txn: self.index._exec(txn, statement, args)))

    def robot(self, role: str = "none") -> int:
        """A robot row as the robots lane stores it (here only to see that people-only rules skip it)."""
        run(self, self.index.create_user("robot$ci", "!", role, 1.0))
        self.sql("UPDATE users SET kind = 'robot' WHERE username = ?", ("robot$ci",))
        return run(self, self.index.get_user_by_name("robot$ci")).id

    def test_crud(self) -> None:
        """Create with members and grants, read, list, change, delete; the memberships go with the group."""
        row, members = run(
            self,
            self.groups.create(
                {
                    "name": "devs",
                    "description": "d",
                    "role": "read-write",
                    "grants": [GRANT],
                    "members": ["bob", "alice", "bob"],
                }
            ),
        )
        self.assertEqual((row.name, row.description, row.role, row.source), ("devs", "d", "read-write", "local"))
        self.assertEqual(members, ["alice", "bob"])
        self.assertEqual(
            [g.as_json() for g in load_grants(row.grants)], [{"repositories": "team-a/*", "actions": ["pull", "push"]}]
        )
        run(self, self.groups.create({"name": "ops"}))
        self.assertEqual(
            [(g.name, m) for g, m in run(self, self.groups.list())], [("devs", ["alice", "bob"]), ("ops", [])]
        )
        self.clock.advance(5)
        row, members = run(self, self.groups.update(row.id, {"role": None, "members": ["alice"], "description": "x"}))
        self.assertEqual(
            (row.role, row.description, row.name, row.updated_at, members), (None, "x", "devs", 1005, ["alice"])
        )
        self.assertEqual(len(load_grants(row.grants)), 1)  # left out: kept
        self.assertEqual([g.name for g in run(self, self.index.groups_of_user(self.alice.id))], ["devs"])
        self.assertEqual(run(self, self.index.groups_of_user(self.bob.id)), [])
        gone, _ = run(self, self.groups.delete(row.id))
        self.assertEqual(gone.name, "devs")
        self.assertEqual(run(self, self.index.groups_of_user(self.alice.id)), [])
        failure(self, self.groups.get(row.id), NotFound)
        failure(self, self.groups.delete(row.id), NotFound)
        failure(self, self.groups.update(row.id, {"name": "z"}), NotFound)

    def test_conflicts_and_bad_fields(self) -> None:
        """A taken name is 409 (create and rename); bad names, roles, grants and unknown members are 400."""
        devs, _ = run(self, self.groups.create({"name": "devs"}))
        ops, _ = run(self, self.groups.create({"name": "ops"}))
        failure(self, self.groups.create({"name": "devs"}), Conflict)
        failure(self, self.groups.update(ops.id, {"name": "devs"}), Conflict)
        run(self, self.groups.update(devs.id, {"name": "devs"}))  # its own name is no conflict
        for body in (
            {},
            {"name": ""},
            {"name": "a b"},
            {"name": "a:b"},
            {"name": "x" * 129},
            {"name": "g", "role": "root"},
            {"name": "g", "description": 5},
            {"name": "g", "grants": [{"repositories": "a", "actions": ["fly"]}]},
            {"name": "g", "grants": "all"},
            {"name": "g", "members": "alice"},
        ):
            failure(self, self.groups.create(body), BadRequest)
        unknown = failure(self, self.groups.create({"name": "g", "members": ["alice", "carol"]}), BadRequest)
        self.assertIn("carol", unknown.message)
        bad_grant = failure(
            self, self.groups.update(devs.id, {"grants": [{"repositories": "", "actions": ["pull"]}]}), BadRequest
        )
        self.assertIn("grants", bad_grant.message)
        failure(self, self.groups.update(devs.id, {"members": None}), BadRequest)
        self.assertEqual([g.name for g, _ in run(self, self.groups.list())], ["devs", "ops"])  # nothing half-made

    def test_robots_are_no_members(self) -> None:
        """A robot's username is no member name (robots hold only their own grants)."""
        self.robot()
        e = failure(self, self.groups.create({"name": "g", "members": ["robot$ci"]}), BadRequest)
        self.assertIn("robot$ci", e.message)

    def test_member_changes_leave_directory_memberships(self) -> None:
        """Setting members replaces local memberships only; an LDAP one stays (and is listed)."""
        devs, _ = run(self, self.groups.create({"name": "devs", "members": ["alice"]}))
        self.sql("INSERT INTO group_members (group_id, user_id, source) VALUES (?, ?, 'ldap')", (devs.id, self.bob.id))
        _, members = run(self, self.groups.update(devs.id, {"members": []}))
        self.assertEqual(members, ["bob"])
        _, members = run(self, self.groups.update(devs.id, {"members": ["bob", "alice"]}))  # bob: already in, via ldap
        self.assertEqual(members, ["alice", "bob"])
        _, members = run(self, self.groups.update(devs.id, {"members": []}))
        self.assertEqual(members, ["bob"])

    def test_group_grants_reach_members(self) -> None:
        """A member's permissions are the union of own and group grants (`permissions_of`)."""
        run(self, self.users.update(self.alice.id, grants=[{"repositories": "maven:releases", "actions": ["push"]}]))
        run(self, self.groups.create({"name": "devs", "grants": [GRANT], "members": ["alice"]}))
        alice = run(self, self.users.get(self.alice.id))
        perms = run(self, permissions_of(self.index, alice, False))
        self.assertTrue(perms.may_oci("push", "team-a/app"))
        self.assertFalse(perms.may_oci("push", "team-b/app"))
        self.assertTrue(perms.may_maven("push", "releases", "com/x/1/x-1.jar"))

    def test_deleting_a_user_ends_their_memberships(self) -> None:
        devs, _ = run(self, self.groups.create({"name": "devs", "members": ["alice", "bob"]}))
        run(self, self.users.delete(self.bob.id))
        self.assertEqual(run(self, self.groups.get(devs.id))[1], ["alice"])

    def test_user_grants(self) -> None:
        """Grants on create and update, stored in canonical form; bad ones are 400 naming the problem."""
        carol = run(self, self.users.create("carol", "pw", "read-only", [GRANT]))
        self.assertEqual(carol.grants, '[{"repositories":"team-a/*","actions":["pull","push"]}]')
        carol = run(self, self.users.update(carol.id, grants=[]))
        self.assertEqual(carol.grants, "[]")
        e = failure(
            self, self.users.create("dave", "pw", "read-only", [{"repositories": "x", "actions": []}]), BadRequest
        )
        self.assertIn("grants: grant actions must be a non-empty list", e.message)
        failure(self, self.users.update(carol.id, grants={"repositories": "x"}), BadRequest)
        self.assertEqual(run(self, self.users.get(carol.id)).grants, "[]")

    def test_robot_names_and_rows_are_not_users(self) -> None:
        """No person may be called robot$…; robots are neither listed, found, nor counted as admins."""
        failure(self, self.users.create("robot$x", "pw", "read-only"), BadRequest)
        robot_id = self.robot(role="admin")
        self.assertEqual([u.username for u in run(self, self.users.list())], ["admin", "alice", "bob"])
        failure(self, self.users.get(robot_id), NotFound)
        failure(self, self.users.delete(robot_id), NotFound)
        failure(self, self.users.update(self.admin.id, role="read-only"), Conflict)  # the robot is no second admin
        failure(self, self.users.delete(self.admin.id), Conflict)
        self.assertEqual(len(run(self, self.index.list_users())), 4)  # the index still has every row


class SqliteGroupTests(GroupRowsMixin, SynchronousTestCase):
    def open_pool(self) -> InlinePool:
        return sqlite_pool(self)


class PostgresGroupTests(GroupRowsMixin, SynchronousTestCase):
    def open_pool(self) -> InlinePool:
        return postgres_pool(self)
