"""LDAP logins through the one credentials check: who asks the directory, what a yes writes, failing closed.

The directory is a fake here (`FakeDirectory`); the real ldap3 client against
slapd is tests/integration/test_ldap_it.py.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.identity.credentials import REMEMBER_SECONDS
from harbor_cache.core.identity.directory import UNUSABLE_PASSWORD, DirectoryLogin, map_groups
from harbor_cache.core.operations.audit import AuditLog
from harbor_cache.errors import DirectoryUnavailable
from harbor_cache.http.errors import status_of
from harbor_cache.upstream.ldap import DirectoryUser
from tests.unit.index.test_users import make_users

ROLES = (("devs", "read-write"), ("admins", "admin"), ("Readers", "read-only"), ("team-a", "group:team-a"))


class FakeDirectory:
    def __init__(self) -> None:
        self.users = {"alice": ("alice-pw", ("devs", "team-a")), "bob": ("bob-pw", ())}
        self.calls: list[str] = []
        self.down = False

    async def authenticate(self, username, password):
        self.calls.append(username)
        if self.down:
            raise DirectoryUnavailable("the LDAP directory cannot be reached", {"url": "ldap://x"})
        known = self.users.get(username)
        if known is None or known[0] != password or not password:
            return None
        return DirectoryUser(dn=f"uid={username},ou=people,dc=example,dc=org", groups=known[1])


class MapGroupsTests(SynchronousTestCase):
    def test_highest_role_wins(self):
        self.assertEqual(map_groups(ROLES, ("devs", "admins")), ("admin", ()))
        self.assertEqual(map_groups(ROLES, ("readers", "devs")), ("read-write", ()))

    def test_no_mapped_group_is_role_none(self):
        self.assertEqual(map_groups(ROLES, ()), ("none", ()))
        self.assertEqual(map_groups(ROLES, ("unmapped",)), ("none", ()))

    def test_group_targets(self):
        """``group:<name>`` makes the user a member of that harbor-cache group; cn compare case-insensitively."""
        self.assertEqual(map_groups(ROLES, ("TEAM-A",)), ("none", ("team-a",)))
        self.assertEqual(map_groups(ROLES, ("team-a", "readers")), ("read-only", ("team-a",)))


class DirectoryLoginTests(SynchronousTestCase):
    def setUp(self):
        self.users, self.index, self.clock, self.crypt = make_users(self)
        self.credentials = self.users.credentials
        self.directory = FakeDirectory()
        self.audit = AuditLog(self.index, self.clock, None)  # (settings: only prune reads them)
        self.credentials.directory = DirectoryLogin(self.directory, self.index, self.clock, ROLES, self.audit)
        self.wait(self.users.create("admin", "admin-pw", "admin"))

    def wait(self, coro):
        return self.successResultOf(defer.ensureDeferred(coro))

    def check(self, username, password):
        return self.wait(self.credentials.check(username, password))

    def audit_records(self):
        _, rows = self.wait(self.index.audit_page(offset=0, limit=100))
        return [(r.action, r.actor, json.loads(r.detail) if r.detail else None) for r in reversed(rows)]

    def test_first_login_writes_the_user_and_memberships(self):
        """A yes creates a source='ldap' row (DN, mapped role, unusable hash) and the group:<name> membership."""
        user = self.check("alice", "alice-pw")
        self.assertEqual(
            (user.username, user.source, user.external_id, user.role, user.password_hash, user.kind),
            ("alice", "ldap", "uid=alice,ou=people,dc=example,dc=org", "read-write", UNUSABLE_PASSWORD, "user"),
        )
        groups = self.wait(self.index.groups_of_user(user.id))
        self.assertEqual([(g.name, g.source, g.role) for g in groups], [("team-a", "ldap", None)])
        self.assertEqual(
            self.audit_records(),
            [("login.ldap", "alice", {"dn": user.external_id, "groups": ["team-a"], "role": "read-write"})],
        )

    def test_user_in_no_mapped_group_gets_role_none(self):
        user = self.check("bob", "bob-pw")
        self.assertEqual((user.role, user.source), ("none", "ldap"))

    def test_wrong_password_and_unknown_user_are_refused_and_audited(self):
        self.assertIsNone(self.check("alice", "wrong"))
        self.assertIsNone(self.check("mallory", "x"))
        self.assertIsNone(self.wait(self.index.get_user_by_name("alice")))
        self.assertEqual(
            self.audit_records(),
            [("login.failed", "alice", {"source": "ldap"}), ("login.failed", "mallory", {"source": "ldap"})],
        )

    def test_audit_records_carry_the_client_address(self):
        """The caller's address given to `Credentials.check` is in the directory login's audit records."""
        self.assertIsNone(self.wait(self.credentials.check("alice", "wrong", "192.0.2.7")))
        self.assertIsNotNone(self.wait(self.credentials.check("alice", "alice-pw", "192.0.2.8")))
        _, rows = self.wait(self.index.audit_page(offset=0, limit=100))
        self.assertEqual(
            [(r.action, r.client) for r in reversed(rows)], [("login.failed", "192.0.2.7"), ("login.ldap", "192.0.2.8")]
        )

    def test_empty_password_never_reaches_the_directory(self):
        """An empty password would be an unauthenticated bind: refused before the directory is asked."""
        self.assertIsNone(self.check("alice", ""))
        self.assertIsNone(self.check("alice", None))
        self.assertEqual(self.directory.calls, [])

    def test_success_is_remembered(self):
        """Many requests of one push bind once per REMEMBER_SECONDS; a wrong password is asked every time."""
        for _ in range(5):
            self.assertEqual(self.check("alice", "alice-pw").username, "alice")
        self.assertEqual(self.directory.calls, ["alice"])
        self.clock.advance(REMEMBER_SECONDS + 1)
        self.check("alice", "alice-pw")
        self.assertEqual(len(self.directory.calls), 2)
        self.assertIsNone(self.check("alice", "other"))
        self.assertEqual(len(self.directory.calls), 3)

    def test_role_and_memberships_follow_the_directory(self):
        """The next login the directory confirms rewrites role and LDAP memberships; local memberships stay."""
        user = self.check("alice", "alice-pw")
        self.directory.users["alice"] = ("alice-pw", ("admins",))
        self.clock.advance(REMEMBER_SECONDS + 1)
        again = self.check("alice", "alice-pw")
        self.assertEqual((again.id, again.role), (user.id, "admin"))
        self.assertEqual(self.wait(self.index.groups_of_user(user.id)), [])

    def test_local_users_never_ask_the_directory(self):
        """A local user logs in with the stored password while LDAP is on, and is never looked up there."""
        self.assertEqual(self.check("admin", "admin-pw").username, "admin")
        self.assertIsNone(self.check("admin", "wrong"))
        self.directory.down = True
        self.assertEqual(self.check("admin", "admin-pw").username, "admin")
        self.assertEqual(self.directory.calls, [])

    def test_directory_user_never_uses_a_stored_password(self):
        """With LDAP off, an LDAP user's row authenticates with nothing (its hash is unusable)."""
        self.check("alice", "alice-pw")
        self.credentials.directory = None
        for password in ("alice-pw", UNUSABLE_PASSWORD, ""):
            self.assertIsNone(self.check("alice", password))

    def test_local_name_taken_is_not_the_directorys(self):
        """A local user of the same name wins; the directory's alice is not asked."""
        self.wait(self.users.create("alice", "local-pw", "read-only"))
        self.assertIsNone(self.check("alice", "alice-pw"))
        self.assertEqual(self.check("alice", "local-pw").source, "local")
        self.assertEqual(self.directory.calls, [])

    def test_robot_names_are_never_the_directorys(self):
        self.directory.users["robot$ci"] = ("pw", ("admins",))
        self.assertIsNone(self.check("robot$ci", "pw"))
        self.assertEqual(self.directory.calls, [])

    def test_directory_down_fails_closed_and_logs_once(self):
        """Every LDAP login is DirectoryUnavailable (503) while down; one log line per outage, one when back."""
        self.check("alice", "alice-pw")
        self.clock.advance(REMEMBER_SECONDS + 1)
        self.directory.down = True
        logged: list[dict] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        for name in ("alice", "alice", "newcomer"):
            e = self.failureResultOf(defer.ensureDeferred(self.credentials.check(name, "pw")), DirectoryUnavailable)
            self.assertEqual((status_of(e.value), e.value.code), (503, "DIRECTORY_UNAVAILABLE"))
        down = [e for e in logged if "LDAP directory unavailable" in e.get("log_format", "")]
        self.assertEqual(len(down), 1)
        self.directory.down = False
        self.check("alice", "alice-pw")
        self.assertEqual(len([e for e in logged if "LDAP directory back" in e.get("log_format", "")]), 1)
