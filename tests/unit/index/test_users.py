"""UserService: the rules about users (uniqueness, roles, passwords, the last admin, login cost)."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.identity.credentials import Credentials
from harbor_cache.core.identity.users import UserService
from harbor_cache.errors import BadRequest, Conflict, NotFound
from harbor_cache.http.errors import status_of
from harbor_cache.index import Index
from harbor_cache.testing import InlineBcrypt, InlinePool
from tests.unit.base import inline_index

T0 = 1_700_000_000.0


def make_users(case) -> tuple[UserService, Index, Clock, InlineBcrypt]:
    tmp = case.mktemp()
    os.makedirs(tmp)
    pool = InlinePool(os.path.join(tmp, "index.sqlite"))
    case.addCleanup(pool.close)
    index = inline_index(pool)
    case.successResultOf(defer.ensureDeferred(index.migrate()))
    clock = Clock()
    clock.advance(T0)
    crypt = InlineBcrypt()
    users = UserService(index, clock, Credentials(index, clock, crypt.check), hasher=crypt.hash)
    return users, index, clock, crypt


class UserRuleTests(SynchronousTestCase):
    def setUp(self):
        self.users, self.index, self.clock, self.crypt = make_users(self)
        self.admin = self.wait(self.users.create("admin", "admin-pw", "admin"))

    def wait(self, coro):
        return self.successResultOf(defer.ensureDeferred(coro))

    def fails(self, coro, kind):
        return self.failureResultOf(defer.ensureDeferred(coro), kind).value

    def test_create_stores_a_bcrypt_hash(self):
        """A new user gets an id, the role, times, and a bcrypt hash (never the password)."""
        row = self.wait(self.users.create("bob", "pw", "read-only"))
        self.assertEqual((row.username, row.role, row.created_at), ("bob", "read-only", T0))
        self.assertTrue(row.password_hash.startswith("$2b$"))

    def test_duplicate_username_conflicts(self):
        """A taken username is a 409 Conflict."""
        e = self.fails(self.users.create("admin", "x", "read-only"), Conflict)
        self.assertEqual(status_of(e), 409)

    def test_bad_fields_are_bad_requests(self):
        """Unknown role, empty or missing password, bad usernames: 400, nothing created."""
        for username, password, role in [
            ("u", "pw", "root"),
            ("u", "pw", None),
            ("u", "pw", "Admin"),
            ("u", "", "read-only"),
            ("u", None, "read-only"),
            ("u", 5, "read-only"),
            ("", "pw", "read-only"),
            (None, "pw", "read-only"),
            ("a b", "pw", "read-only"),
            ("a:b", "pw", "read-only"),
            ("a\x00", "pw", "read-only"),
            ("x" * 129, "pw", "read-only"),
            ("u", "p" * 73, "read-only"),
            ("u", "\ud800", "read-only"),
        ]:
            e = self.fails(self.users.create(username, password, role), BadRequest)
            self.assertEqual(status_of(e), 400)
        self.assertEqual(len(self.wait(self.users.list())), 1)

    def test_update_role_and_password(self):
        """update changes only the given fields and bumps updated_at."""
        bob = self.wait(self.users.create("bob", "old", "read-only"))
        self.clock.advance(60)
        row = self.wait(self.users.update(bob.id, role="read-write"))
        self.assertEqual((row.role, row.password_hash, row.updated_at), ("read-write", bob.password_hash, T0 + 60))
        self.wait(self.users.update(bob.id, password="new"))
        self.assertIsNone(self.wait(self.users.authenticate("bob", "old")))
        self.assertEqual(self.wait(self.users.authenticate("bob", "new")).role, "read-write")

    def test_update_validates(self):
        """A bad role or empty password is refused and changes nothing."""
        self.fails(self.users.update(self.admin.id, role="superuser"), BadRequest)
        self.fails(self.users.update(self.admin.id, password=""), BadRequest)
        self.assertEqual(self.wait(self.users.get(self.admin.id)), self.admin)

    def test_unknown_ids(self):
        """Unknown, zero, negative and out-of-range ids are NotFound."""
        for user_id in (999, 0, -1, 1 << 70):
            self.fails(self.users.get(user_id), NotFound)
            self.fails(self.users.update(user_id, role="admin"), NotFound)
            self.fails(self.users.delete(user_id), NotFound)

    def test_last_admin_cannot_be_demoted_or_deleted(self):
        """The only admin stays: demotion and deletion are 409."""
        self.fails(self.users.update(self.admin.id, role="read-write"), Conflict)
        self.fails(self.users.delete(self.admin.id), Conflict)
        self.assertEqual(self.wait(self.users.get(self.admin.id)).role, "admin")

    def test_an_admin_can_go_when_another_remains(self):
        """With two admins one may be demoted, then the other is the last."""
        other = self.wait(self.users.create("root2", "pw", "admin"))
        self.wait(self.users.update(self.admin.id, role="read-only"))
        self.fails(self.users.delete(other.id), Conflict)
        self.wait(self.users.update(self.admin.id, role="admin"))
        self.wait(self.users.delete(other.id))
        self.assertEqual([u.username for u in self.wait(self.users.list())], ["admin"])

    def test_delete(self):
        """A deleted user is gone."""
        bob = self.wait(self.users.create("bob", "pw", "read-only"))
        self.wait(self.users.delete(bob.id))
        self.assertIsNone(self.wait(self.users.find(bob.id)))

    def test_authenticate(self):
        """Right password: the row; wrong password: None."""
        self.assertEqual(self.wait(self.users.authenticate("admin", "admin-pw")).id, self.admin.id)
        self.assertIsNone(self.wait(self.users.authenticate("admin", "nope")))

    def test_unknown_user_costs_one_bcrypt_check(self):
        """An unknown user (or a non-string name) still runs one bcrypt check, against a dummy hash."""
        for name in ("ghost", None, "", "x" * 500):
            self.crypt.checks.clear()
            self.assertIsNone(self.wait(self.users.authenticate(name, "pw")))
            self.assertEqual(self.crypt.checks, [("pw", None)])
        # A name no user can have (a control character, a lone surrogate) is bad input, refused before
        # any lookup: it reveals nothing about which users exist (issue 24.7).
        for name in ("\ud800", "a\x00b", "\x1b[31m"):
            self.crypt.checks.clear()
            failure = self.failureResultOf(defer.ensureDeferred(self.users.authenticate(name, "pw")), BadRequest)
            self.assertIn("control characters", failure.value.message)
            self.assertEqual(self.crypt.checks, [])
        self.crypt.checks.clear()
        self.wait(self.users.authenticate("admin", "wrong"))
        self.assertEqual(self.crypt.checks, [("wrong", self.admin.password_hash)])
