"""Robot accounts (/api/v1/robots, core/identity/robots.py): who may create them, names, expiry, secrets.

A whole app on fakes (`HarborTestCase`) with real bcrypt at cost 4: the
admin, writer and reader of `USERS`, plus ``teamadmin`` who holds ``admin``
on ``team-a/*`` only.  What a robot's secret and tokens do on the other
fronts (rotation, disabling, expiry, last use) is in test_robot_access.
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.logger import ILogObserver, globalLogPublisher

from harbor_cache.settings.startup import MavenRepositoryConfig
from tests.unit.base import USERS, HarborTestCase

DAY = 86400
TEAM_A = [{"repositories": "team-a/*", "actions": ["pull", "push"]}]


class RobotCase(HarborTestCase):
    """`USERS` and ``teamadmin`` (admin on team-a/*), settings loaded; a hosted Maven repository ``releases``."""

    start_time = 1_700_000_000

    def make_config(self) -> dict[str, Any]:
        return {"maven_repositories": (MavenRepositoryConfig(id="releases", type="hosted"),)}

    def setUp(self) -> None:
        super().setUp()
        self.successResultOf(self.drive(self.app.settings.load()))
        for name, (password, role) in USERS.items():
            self.add_user(name, password, role)
        self.add_user("teamadmin", "team-pw", "read-only")
        self.set_grants("teamadmin", [{"repositories": "team-a/*", "actions": ["admin"]}])
        self.tokens: dict[str, str] = {}

    def set_grants(self, username: str, grants: list) -> None:
        """A user's own grants, written straight into the row (the grants API is another lane's)."""
        conn = self.app.db_pool.conn
        conn.execute("UPDATE users SET grants = ? WHERE username = ?", (json.dumps(grants), username))
        conn.commit()

    def token_of(self, user: str, password: str | None = None) -> str:
        if user not in self.tokens:
            password = password or ("team-pw" if user == "teamadmin" else USERS[user][0])
            code, body = self.api("POST", "/api/v1/auth/login", {"username": user, "password": password}, user=None)
            self.assertEqual(code, 200, body)
            self.tokens[user] = body["token"]
        return self.tokens[user]

    def as_(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.api(method, path, body, user=None, token=self.token_of(user))

    def create(self, user: str = "admin", **fields: Any) -> dict:
        body = {"name": "ci-a", "description": "CI of team A", "grants": TEAM_A, "expires_in_days": 30, **fields}
        code, answer = self.as_(user, "POST", "/api/v1/robots", body)
        self.assertEqual(code, 201, answer)
        return answer

    def assert_error(self, answer: tuple[int, Any], status: int, code: str, words: str = "") -> None:
        self.assertEqual(answer[0], status, answer[1])
        error = answer[1]["errors"][0]
        self.assertEqual(error["code"], code)
        self.assertIn(words, error["message"])


class CreateTests(RobotCase):
    def test_create_answers_the_secret_once(self) -> None:
        """201 with the robot$ login name and the secret; GET and the list never show it again."""
        robot = self.create()
        self.assertEqual(robot["name"], "robot$ci-a")
        self.assertEqual(robot["description"], "CI of team A")
        self.assertEqual(robot["grants"], TEAM_A)
        self.assertEqual(robot["expires_at"], "2023-12-14T22:13:20Z")  # 30 days after 2023-11-14T22:13:20Z
        self.assertIs(robot["disabled"], False)
        self.assertEqual(robot["created_by"], "admin")
        self.assertEqual(robot["created_at"], "2023-11-14T22:13:20Z")
        self.assertIsNone(robot["last_used_at"])
        self.assertIsNone(robot["last_used_addr"])
        self.assertGreaterEqual(len(robot["secret"]), 43)
        code, one = self.as_("admin", "GET", f"/api/v1/robots/{robot['id']}")
        self.assertEqual(code, 200)
        self.assertNotIn("secret", one)
        self.assertEqual({k: v for k, v in robot.items() if k != "secret"}, one)
        code, listing = self.as_("admin", "GET", "/api/v1/robots")
        self.assertEqual(listing, {"robots": [one]})

    def test_secret_is_stored_as_bcrypt(self) -> None:
        """The row holds a bcrypt hash of the secret (role none, kind robot), never the secret."""
        robot = self.create()
        row = self.successResultOf(self.drive(self.app.index.get_user_by_name("robot$ci-a")))
        self.assertTrue(row.password_hash.startswith("$2"), row.password_hash)
        self.assertNotIn(robot["secret"], row.password_hash)
        self.assertEqual((row.kind, row.role), ("robot", "none"))

    def test_create_and_rotate_answers_are_not_cached(self) -> None:
        """Cache-Control: no-store on the answers holding a secret."""
        self.token_of("admin")
        body = json.dumps({"name": "ci-a", "grants": TEAM_A}).encode()
        headers = {"Authorization": "Bearer " + self.tokens["admin"]}
        response = self.successResultOf(self.settle(self.request("POST", "/api/v1/robots", headers, body)))
        self.assertEqual(response.code, 201)
        self.assertEqual(response.headers.getRawHeaders("Cache-Control"), ["no-store"])
        location = response.headers.getRawHeaders("Location")[0]
        rotated = self.successResultOf(self.settle(self.request("POST", location + "/secret", headers)))
        self.assertEqual(rotated.headers.getRawHeaders("Cache-Control"), ["no-store"])

    def test_secret_is_never_logged_nor_audited(self) -> None:
        events: list[dict] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        robot = self.create()
        code, rotated = self.as_("admin", "POST", f"/api/v1/robots/{robot['id']}/secret")
        self.assertEqual(code, 200)
        text = repr(events)
        self.assertNotIn(robot["secret"], text)
        self.assertNotIn(rotated["secret"], text)
        _, rows = self.successResultOf(self.drive(self.app.index.audit_page(offset=0, limit=100)))
        audit = repr(rows)
        self.assertNotIn(robot["secret"], audit)
        self.assertNotIn(rotated["secret"], audit)

    def test_bad_names_are_400(self) -> None:
        for name in ("", "CI", "a" * 65, "a b", "a/b", "robot$x", "ä", 5, None):
            self.assert_error(
                self.as_("admin", "POST", "/api/v1/robots", {"name": name, "grants": TEAM_A}),
                400,
                "BAD_REQUEST",
                "name must be 1-64 characters",
            )
        self.assertEqual(self.create(name="a" * 64)["name"], "robot$" + "a" * 64)
        self.assertEqual(self.create(name="ci.b_c-9")["name"], "robot$ci.b_c-9")

    def test_duplicate_is_409(self) -> None:
        self.create()
        self.assert_error(
            self.as_("admin", "POST", "/api/v1/robots", {"name": "ci-a", "grants": TEAM_A}), 409, "CONFLICT"
        )

    def test_grants_are_validated(self) -> None:
        """A malformed grant is 400 naming the problem; grants are required."""
        bad = [{"repositories": "team-a/*", "actions": ["fly"]}]
        self.assert_error(
            self.as_("admin", "POST", "/api/v1/robots", {"name": "x", "grants": bad}), 400, "BAD_REQUEST", "fly"
        )
        self.assert_error(self.as_("admin", "POST", "/api/v1/robots", {"name": "x"}), 400, "BAD_REQUEST", "grants")
        self.assert_error(
            self.as_("admin", "POST", "/api/v1/robots", {"name": "x", "grants": "all"}), 400, "BAD_REQUEST", "list"
        )

    def test_expiry(self) -> None:
        """1..robots.max_expiry_days days; -1 or null never; left out: the maximum; anything else 400."""
        self.assertIsNone(self.create(name="never-a", expires_in_days=-1)["expires_at"])
        self.assertIsNone(self.create(name="never-b", expires_in_days=None)["expires_at"])
        self.assertEqual(self.create(name="max", expires_in_days=365)["expires_at"], "2024-11-13T22:13:20Z")
        code, robot = self.as_("admin", "POST", "/api/v1/robots", {"name": "default", "grants": TEAM_A})
        self.assertEqual(robot["expires_at"], "2024-11-13T22:13:20Z")
        for bad in (0, -2, 366, "30", 1.5, True):
            self.assert_error(
                self.as_("admin", "POST", "/api/v1/robots", {"name": "x", "grants": TEAM_A, "expires_in_days": bad}),
                400,
                "BAD_REQUEST",
                "robots.max_expiry_days",
            )
        self.successResultOf(self.drive(self.app.settings.update([("robots.max_expiry_days", "10")])))
        self.assert_error(
            self.as_("admin", "POST", "/api/v1/robots", {"name": "x", "grants": TEAM_A, "expires_in_days": 30}),
            400,
            "BAD_REQUEST",
            "from 1 to 10",
        )


class CreatorTests(RobotCase):
    def test_a_writer_without_admin_may_not_create(self) -> None:
        self.assert_error(
            self.as_("writer", "POST", "/api/v1/robots", {"name": "w", "grants": TEAM_A}), 403, "DENIED", "admin"
        )

    def test_admin_on_a_pattern_may_create_within_it(self) -> None:
        """teamadmin (admin on team-a/*) creates robots on team-a names; anything wider is 403 naming it."""
        self.assertEqual(self.create("teamadmin")["created_by"], "teamadmin")
        narrow = [{"repositories": "team-a/app", "actions": ["admin"]}]
        self.assertEqual(self.create("teamadmin", name="narrow", grants=narrow)["grants"], narrow)
        for wide in ("team-b/*", "*", "team-*", "maven:releases"):
            grants = [*TEAM_A, {"repositories": wide, "actions": ["pull"]}]
            self.assert_error(
                self.as_("teamadmin", "POST", "/api/v1/robots", {"name": "wide", "grants": grants}),
                403,
                "DENIED",
                repr(wide),
            )

    def test_robots_may_not_manage_robots(self) -> None:
        robot = self.create(grants=[{"repositories": "*", "actions": ["admin"]}])
        code, body = self.api(
            "POST", "/api/v1/auth/login", {"username": "robot$ci-a", "password": robot["secret"]}, user=None
        )
        self.assertEqual(code, 200, body)
        token = body["token"]
        answer = self.api("POST", "/api/v1/robots", {"name": "child", "grants": TEAM_A}, user=None, token=token)
        self.assert_error(answer, 403, "DENIED", "robot accounts cannot manage")
        self.assert_error(self.api("GET", "/api/v1/robots", user=None, token=token), 403, "DENIED")

    def test_visibility(self) -> None:
        """Admins see all; others the robots they created or administer; the rest is 404."""
        mine = self.create("teamadmin", name="mine")
        within = self.create(name="within", grants=[{"repositories": "team-a/app", "actions": ["pull"]}])
        other = self.create(name="other", grants=[{"repositories": "team-b/*", "actions": ["pull"]}])
        names = lambda user: [r["name"] for r in self.as_(user, "GET", "/api/v1/robots")[1]["robots"]]  # noqa: E731
        self.assertEqual(names("admin"), ["robot$mine", "robot$within", "robot$other"])
        self.assertEqual(names("teamadmin"), ["robot$mine", "robot$within"])
        self.assertEqual(names("reader"), [])
        self.assert_error(self.as_("teamadmin", "GET", f"/api/v1/robots/{other['id']}"), 404, "NOT_FOUND")
        self.assert_error(self.as_("teamadmin", "DELETE", f"/api/v1/robots/{other['id']}"), 404, "NOT_FOUND")
        self.assertEqual(self.as_("teamadmin", "GET", f"/api/v1/robots/{within['id']}")[0], 200)
        self.assertEqual(self.as_("teamadmin", "GET", f"/api/v1/robots/{mine['id']}")[0], 200)
        self.assert_error(self.as_("admin", "GET", "/api/v1/robots/999"), 404, "NOT_FOUND")

    def test_a_creator_who_lost_admin_may_only_take_access_away(self) -> None:
        robot = self.create("teamadmin")
        self.set_grants("teamadmin", [])
        path = f"/api/v1/robots/{robot['id']}"
        self.assert_error(self.as_("teamadmin", "POST", path + "/secret"), 403, "DENIED")
        self.assert_error(self.as_("teamadmin", "PUT", path, {"description": "x"}), 403, "DENIED")
        self.assertEqual(self.as_("teamadmin", "PUT", path, {"disabled": True})[0], 200)
        self.assert_error(self.as_("teamadmin", "PUT", path, {"disabled": False}), 403, "DENIED")
        self.assertEqual(self.as_("teamadmin", "DELETE", path)[0], 204)


class ChangeTests(RobotCase):
    def test_update_fields(self) -> None:
        robot = self.create("teamadmin")
        path = f"/api/v1/robots/{robot['id']}"
        narrower = [{"repositories": "team-a/app", "actions": ["pull"]}]
        code, changed = self.as_(
            "teamadmin", "PUT", path, {"description": "now", "grants": narrower, "expires_in_days": -1}
        )
        self.assertEqual(code, 200, changed)
        self.assertEqual((changed["description"], changed["grants"], changed["expires_at"]), ("now", narrower, None))
        self.clock.advance(DAY)
        self.tokens.clear()  # the login token lived a day
        code, changed = self.as_("teamadmin", "PUT", path, {"expires_in_days": 2})
        self.assertEqual(changed["expires_at"], "2023-11-17T22:13:20Z")
        self.assertEqual(changed["updated_at"], "2023-11-15T22:13:20Z")
        for bad in ({"description": None}, {"grants": None}, {"disabled": None}, {"disabled": "yes"}):
            self.assert_error(self.as_("teamadmin", "PUT", path, bad), 400, "BAD_REQUEST")
        self.assert_error(self.as_("teamadmin", "PUT", path, {"expires_in_days": 0}), 400, "BAD_REQUEST")
        wide = [{"repositories": "team-b/*", "actions": ["pull"]}]
        self.assert_error(self.as_("teamadmin", "PUT", path, {"grants": wide}), 403, "DENIED", "team-b/*")
        self.assert_error(self.as_("admin", "PUT", "/api/v1/robots/999", {"description": "x"}), 404, "NOT_FOUND")

    def test_lifecycle_is_audited(self) -> None:
        robot = self.create()
        path = f"/api/v1/robots/{robot['id']}"
        self.as_("admin", "PUT", path, {"description": "x"})
        self.as_("admin", "PUT", path, {"disabled": True})
        self.as_("admin", "PUT", path, {"disabled": False})
        self.as_("admin", "POST", path + "/secret")
        self.assertEqual(self.as_("admin", "DELETE", path)[0], 204)
        robot_records = [(a, t) for a, t in self.audit_actions() if a.startswith("robot.")]
        self.assertEqual(
            robot_records,
            [
                ("robot.create", "robot$ci-a"),
                ("robot.update", "robot$ci-a"),
                ("robot.disable", "robot$ci-a"),
                ("robot.update", "robot$ci-a"),
                ("robot.rotate", "robot$ci-a"),
                ("robot.delete", "robot$ci-a"),
            ],
        )
        self.assert_error(self.as_("admin", "GET", path), 404, "NOT_FOUND")
        self.assert_error(self.as_("admin", "DELETE", path), 404, "NOT_FOUND")

    def test_audit_filters_by_actor_kind(self) -> None:
        """actor_kind=robot: records of robot$ actors; user: the other named actors; anything else 400."""
        robot = self.create()
        self.api("POST", "/api/v1/auth/login", {"username": "robot$ci-a", "password": robot["secret"]}, user=None)
        code, page = self.as_("admin", "GET", "/api/v1/audit?actor_kind=robot")
        self.assertEqual(code, 200, page)
        self.assertEqual([(e["actor"], e["action"]) for e in page["entries"]], [("robot$ci-a", "login")])
        code, page = self.as_("admin", "GET", "/api/v1/audit?actor_kind=user")
        self.assertTrue(page["entries"])
        self.assertNotIn("robot$ci-a", {e["actor"] for e in page["entries"]})
        self.assertIn(("admin", "robot.create"), {(e["actor"], e["action"]) for e in page["entries"]})
        code, page = self.as_("admin", "GET", "/api/v1/audit")
        self.assertIn("robot$ci-a", {e["actor"] for e in page["entries"]})
        self.assert_error(self.as_("admin", "GET", "/api/v1/audit?actor_kind=bot"), 400, "BAD_REQUEST")
        r = self.as_("admin", "GET", "/api/v1/audit/export?format=json&actor_kind=robot")
        self.assertEqual([e["actor"] for e in r[1]["entries"]], ["robot$ci-a"])


class UsersApiTests(RobotCase):
    def test_robots_are_not_users(self) -> None:
        """/api/v1/users neither lists nor touches robots; robot$ names are reserved for robots."""
        robot = self.create()
        code, users = self.as_("admin", "GET", "/api/v1/users")
        self.assertNotIn("robot$ci-a", [u["username"] for u in users])
        path = f"/api/v1/users/{robot['id']}"
        self.assert_error(self.as_("admin", "GET", path), 404, "NOT_FOUND")
        self.assert_error(self.as_("admin", "PUT", path, {"role": "admin"}), 404, "NOT_FOUND")
        self.assert_error(self.as_("admin", "DELETE", path), 404, "NOT_FOUND")
        body = {"username": "robot$sneaky", "password": "pw", "role": "admin"}
        self.assert_error(self.as_("admin", "POST", "/api/v1/users", body), 400, "BAD_REQUEST", "reserved")
