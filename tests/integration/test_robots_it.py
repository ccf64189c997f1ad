"""Robot accounts with real clients: skopeo logs in and pushes with ``robot$ci-a`` and its secret.

One live server (`push_support.hosted_server`); the robot is created through
``POST /api/v1/robots`` as a CI admin would.  Its secret is refused at once
after a rotation and while the robot is disabled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.support import check_ok, http, skopeo

ROBOT = "robot$ci-a"
GRANTS = [{"repositories": "*", "actions": ["pull", "push"]}]


class RobotClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("skopeo")
        self.layout, self.images = support.oci_layout()
        self.server = push_support.hosted_server(self)
        self.host = self.server.hostport
        self.token = self.server.login()
        status, _, body = self.api("POST", "/api/v1/robots", {"name": "ci-a", "grants": GRANTS, "expires_in_days": 1})
        self.assertEqual(status, 201, body)
        self.robot = json.loads(body)
        self.secret = self.robot["secret"]
        self.auth_dir = tempfile.mkdtemp(prefix="harbor-it-robot-")
        self.addCleanup(shutil.rmtree, self.auth_dir, True)

    def api(self, method: str, path: str, body: object = None) -> tuple[int, object, bytes]:
        return http(method, self.server.url + path, headers={"Authorization": "Bearer " + self.token}, body=body)

    def login(self, secret: str):
        """``skopeo login`` as the robot, the secret on stdin (as CI's login actions pass it)."""
        auth = os.path.join(self.auth_dir, "auth.json")
        return support.run(
            ["skopeo", "login", "--tls-verify=false", "--authfile", auth, "-u", ROBOT, "--password-stdin", self.host],
            input=secret,
            timeout=120,
        )

    def copy(self, target: str, secret: str):
        return skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "%s:%s" % (ROBOT, secret),
            "oci:%s:single" % self.layout,
            "docker://%s/%s" % (self.host, target),
            timeout=900,
        )

    def test_skopeo_login_with_the_robot_secret(self) -> None:
        """skopeo login passes with the secret and fails with a wrong one, after a rotation and while disabled."""
        check_ok(self.login(self.secret))
        self.assertNotEqual(self.login("wrong-secret").returncode, 0)
        status, _, body = self.api("GET", "/api/v1/robots/%d" % self.robot["id"])
        robot = json.loads(body)
        self.assertIsNotNone(robot["last_used_at"])
        self.assertEqual(robot["last_used_addr"], "127.0.0.1")
        status, _, body = self.api("POST", "/api/v1/robots/%d/secret" % self.robot["id"])
        self.assertEqual(status, 200, body)
        new = json.loads(body)["secret"]
        self.assertNotEqual(self.login(self.secret).returncode, 0)
        check_ok(self.login(new))
        status, _, body = self.api("PUT", "/api/v1/robots/%d" % self.robot["id"], {"disabled": True})
        self.assertEqual(status, 200, body)
        self.assertNotEqual(self.login(new).returncode, 0)

    def test_skopeo_copy_with_robot_credentials(self) -> None:
        """skopeo copy --dest-creds 'robot$ci-a:<secret>' pushes; the push is audited under the robot's name."""
        check_ok(self.copy("ci/single:1", self.secret))
        status, _, body = self.api("GET", "/api/v1/audit?actor_kind=robot&action=image.push")
        self.assertEqual(status, 200, body)
        self.assertEqual({e["actor"] for e in json.loads(body)["entries"]}, {ROBOT})

