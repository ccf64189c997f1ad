"""A robot's secret and tokens on every front: rotation kills them, disabled and expired robots are refused.

The ways in: Basic on ``/v2/``, a ``/v2/token`` registry token, the
management API login and its token, Maven ``POST /token`` and an artifact
token.  Until the enforce lane lands the fronts still decide by role, and a
robot's role is 'none': where a robot with valid credentials is refused by
role (403), the test tells "credentials refused" (401) from it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet import defer

from harbor_cache.auth import InvalidToken, credential_stamp
from harbor_cache.core.identity.standing import LAST_USE_INTERVAL
from harbor_cache.core.identity.token_holders import current_holder
from tests.unit.api.test_robots import DAY, TEAM_A, RobotCase

ROBOT = "robot$ci-a"


def basic_header(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class RobotAccessCase(RobotCase):
    def setUp(self) -> None:
        super().setUp()
        self.robot = self.create()
        self.secret = self.robot["secret"]
        self.path = f"/api/v1/robots/{self.robot['id']}"

    def status(self, method: str, path: str, headers: dict[str, str] | None = None) -> int:
        response, _ = self.fetch(method, path, headers=headers, user=None)
        return int(response.code)

    def v2_basic(self, secret: str | None = None) -> int:
        return self.status("GET", "/v2/", basic_header(ROBOT, secret or self.secret))

    def v2_token(self, secret: str | None = None) -> tuple[int, str]:
        response, body = self.fetch(
            "GET", "/v2/token?service=harbor-cache&scope=repository:team-a/app:pull",
            headers=basic_header(ROBOT, secret or self.secret), user=None,
        )  # fmt: skip
        return response.code, (json.loads(body)["token"] if response.code == 200 else "")

    def v2_bearer(self, token: str) -> int:
        return self.status("GET", "/v2/", {"Authorization": "Bearer " + token})

    def api_login(self, user: str = ROBOT, password: str | None = None) -> str:
        code, body = self.api(
            "POST", "/api/v1/auth/login", {"username": user, "password": password or self.secret}, user=None
        )
        return body["token"] if code == 200 else ""

    def api_status(self, token: str) -> int:
        return self.api("GET", "/api/v1/cache/stats", user=None, token=token)[0]

    def maven_token_status(self, secret: str | None = None) -> int:
        """POST /token: 401 when the credentials are refused; 403 when they pass but role 'none' holds no scope."""
        return self.status("POST", "/token", basic_header(ROBOT, secret or self.secret))

    def artifact_token(self) -> str:
        row = self.successResultOf(self.drive(self.app.index.get_user_by_name(ROBOT)))
        return self.app.artifact_tokens.mint(
            ROBOT, ["releases"], ["artifacts:delete"], 1, stamp=credential_stamp(row.password_hash)
        )

    def artifact_delete_status(self, token: str) -> int:
        """401: the token's holder is refused; 403/404: it passed the holder check."""
        return self.status("DELETE", "/artifacts/releases/com/x/1/x-1.jar", {"Authorization": "Bearer " + token})

    def holder(self) -> Any:
        claims = {"sub": ROBOT}
        row = self.successResultOf(self.drive(self.app.index.get_user_by_name(ROBOT)))
        claims["cst"] = credential_stamp(row.password_hash)
        return claims


class CredentialsTests(RobotAccessCase):
    def test_credentials_check_accepts_a_robot(self) -> None:
        """robot$ci-a + secret passes the one credentials check (Basic on /v2/ and Maven, logins)."""
        row = self.successResultOf(self.drive(self.app.credentials.check(ROBOT, self.secret)))
        self.assertEqual((row.username, row.kind), (ROBOT, "robot"))
        self.assertIsNone(self.successResultOf(self.drive(self.app.credentials.check(ROBOT, "wrong"))))

    def test_the_secret_works_on_every_front(self) -> None:
        self.assertEqual(self.v2_basic(), 200)
        code, token = self.v2_token()
        self.assertEqual(code, 200)
        self.assertEqual(self.v2_bearer(token), 200)
        api = self.api_login()
        self.assertEqual(self.api_status(api), 200)
        self.assertEqual(self.maven_token_status(), 403)  # credentials pass; role 'none' holds no scope today
        self.assertNotEqual(self.artifact_delete_status(self.artifact_token()), 401)
        self.assertEqual(self.v2_basic("wrong"), 401)
        self.assertEqual(self.maven_token_status("wrong"), 401)


class RotateTests(RobotAccessCase):
    def test_rotate_kills_the_old_secret_and_its_tokens(self) -> None:
        _, registry_token = self.v2_token()
        api_token = self.api_login()
        artifact_token = self.artifact_token()
        claims = self.holder()
        code, rotated = self.as_("admin", "POST", self.path + "/secret")
        self.assertEqual(code, 200, rotated)
        new = rotated["secret"]
        self.assertNotEqual(new, self.secret)
        self.assertEqual(rotated["name"], ROBOT)
        # the old secret
        self.assertEqual(self.v2_basic(), 401)
        self.assertEqual(self.v2_token()[0], 401)
        self.assertEqual(self.api_login(), "")
        self.assertEqual(self.maven_token_status(), 401)
        # tokens minted with it: registry, management, artifact
        self.assertEqual(self.v2_bearer(registry_token), 401)
        self.assertEqual(self.api_status(api_token), 401)
        self.assertEqual(self.artifact_delete_status(artifact_token), 401)
        f = self.failureResultOf(self.drive(current_holder(self.app.index, claims, ROBOT, now=self.clock.seconds())))
        f.trap(InvalidToken)
        # the new one
        self.assertEqual(self.v2_basic(new), 200)
        self.assertEqual(self.api_status(self.api_login(password=new)), 200)
        self.assertEqual(self.maven_token_status(new), 403)

    def test_deleted_robot_is_refused(self) -> None:
        api_token = self.api_login()
        self.assertEqual(self.as_("admin", "DELETE", self.path)[0], 204)
        self.assertEqual(self.v2_basic(), 401)
        self.assertEqual(self.api_status(api_token), 401)


class StandingTests(RobotAccessCase):
    def assert_refused_everywhere(self, registry_token: str, api_token: str, artifact_token: str) -> None:
        self.assertEqual(self.v2_basic(), 401)
        self.assertEqual(self.v2_token()[0], 401)
        self.assertEqual(self.api_login(), "")
        self.assertEqual(self.maven_token_status(), 401)
        self.assertEqual(self.v2_bearer(registry_token), 401)
        self.assertEqual(self.api_status(api_token), 401)
        self.assertEqual(self.artifact_delete_status(artifact_token), 401)
        self.assertIsNone(self.successResultOf(self.drive(self.app.credentials.check(ROBOT, self.secret))))

    def tokens_now(self) -> tuple[str, str, str]:
        code, registry_token = self.v2_token()
        self.assertEqual(code, 200)
        api_token = self.api_login()
        self.assertEqual(self.api_status(api_token), 200)
        return registry_token, api_token, self.artifact_token()

    def test_disabled_robot_is_refused_everywhere_and_enabling_restores_it(self) -> None:
        registry_token, api_token, artifact_token = self.tokens_now()
        code, robot = self.as_("admin", "PUT", self.path, {"disabled": True})
        self.assertEqual((code, robot["disabled"]), (200, True))
        self.assert_refused_everywhere(registry_token, api_token, artifact_token)
        r = self.api("GET", "/api/v1/cache/stats", user=None, token=api_token)
        self.assertEqual(r[1]["errors"][0]["detail"], "account disabled")
        self.as_("admin", "PUT", self.path, {"disabled": False})
        self.assertEqual(self.v2_basic(), 200)
        self.assertEqual(self.api_status(api_token), 200)
        self.assertEqual(self.v2_bearer(registry_token), 200)

    def test_expired_robot_is_refused_everywhere(self) -> None:
        self.as_("admin", "PUT", self.path, {"expires_in_days": 1})
        self.clock.advance(DAY - 60)
        self.tokens.clear()
        registry_token, api_token, artifact_token = self.tokens_now()
        self.clock.advance(60)
        self.assert_refused_everywhere(registry_token, api_token, artifact_token)
        code, robot = self.as_("admin", "GET", self.path)
        self.assertEqual(robot["expires_at"], "2023-11-15T22:13:20Z")
        self.as_("admin", "PUT", self.path, {"expires_in_days": -1})
        self.assertEqual(self.v2_basic(), 200)


class LastUseTests(RobotAccessCase):
    def last_use(self, name: str = ROBOT) -> tuple[float | None, str | None]:
        row = self.successResultOf(self.drive(self.app.index.get_user_by_name(name)))
        return row.last_used_at, row.last_used_addr

    def test_last_use_is_recorded_and_throttled(self) -> None:
        """Time and client address; at most one write per robot per LAST_USE_INTERVAL seconds."""
        start = self.clock.seconds()
        self.assertEqual(self.v2_basic(), 200)
        when, addr = self.last_use()
        self.assertEqual(when, start)
        self.assertTrue(addr)
        self.clock.advance(LAST_USE_INTERVAL - 1)
        self.api_status(self.api_login())
        self.assertEqual(self.last_use()[0], start)  # throttled: no write
        self.clock.advance(1)
        self.assertEqual(self.v2_basic(), 200)
        self.assertEqual(self.last_use()[0], start + LAST_USE_INTERVAL)
        code, robot = self.as_("admin", "GET", self.path)
        self.assertEqual(robot["last_used_at"], "2023-11-14T22:14:20Z")
        self.assertEqual(robot["last_used_addr"], addr)
        self.assertIsNone(self.last_use("admin")[0])  # users are not tracked

    def test_token_use_counts(self) -> None:
        api_token = self.api_login()
        self.clock.advance(LAST_USE_INTERVAL)
        self.assertEqual(self.api_status(api_token), 200)
        self.assertEqual(self.last_use()[0], self.clock.seconds())

    def test_a_failing_write_never_fails_the_request(self) -> None:
        def broken(*args: Any) -> Any:
            raise RuntimeError("index down")

        self.app.index.note_robot_use = broken  # type: ignore[method-assign,assignment]
        self.assertEqual(self.v2_basic(), 200)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_the_request_never_waits_for_the_write(self) -> None:
        """A write that never finishes (a stuck index) does not hold the request."""
        stuck: defer.Deferred[None] = defer.Deferred()
        self.app.index.note_robot_use = lambda *args: stuck  # type: ignore[method-assign,assignment]
        self.assertEqual(self.v2_basic(), 200)
        self.assertEqual(len(self.app.credentials.last_use.pending), 1)
        stuck.callback(None)
        self.assertEqual(len(self.app.credentials.last_use.pending), 0)


class TokenRobotTests(RobotAccessCase):
    def test_a_team_robot_has_only_its_grants(self) -> None:
        """permissions_of: a robot holds its grants and nothing of a role."""
        from harbor_cache.core.identity.principals import permissions_of

        row = self.successResultOf(self.drive(self.app.index.get_user_by_name(ROBOT)))
        perms = self.successResultOf(self.drive(permissions_of(self.app.index, row, anonymous_pull=False)))
        self.assertEqual(perms.oci_actions("team-a/app"), frozenset(TEAM_A[0]["actions"]))
        self.assertEqual(perms.oci_actions("team-b/app"), frozenset())
        self.assertFalse(perms.server_admin)
