"""Grants enforced with real clients (issue 27, point 6): push where granted, refusals naming the permission.

- skopeo, as a user holding the read-only role plus ``push`` on ``team-a/*``,
  pushes to team-a/app and is refused on team-b/app (403 DENIED, "push on
  team-b/app not granted");
- skopeo, as a robot (``robot$ci-a``, created through ``POST /api/v1/robots``)
  with ``pull``+``push`` on ``team-a/*``: the same, and the push is in the
  audit log under the robot's name with ``actor_kind=robot``;
- docker (a private dockerd, root only), as a pull-only user, pulls and is
  refused on push: its token holds pull only, the push is answered 403
  DENIED "insufficient_scope: push on team-a/app not granted" with
  ``WWW-Authenticate: Bearer ...,error="insufficient_scope"`` (docker prints
  "denied: " and the message);
- ``mvn deploy`` by a user, and by a robot (``robot$ci-mvn``, its secret as
  the ``<password>`` in settings.xml), with ``push`` on ``maven:releases``
  only works into releases and is refused (403, the missing permission in
  mvn's output) into snapshots.

Users' grants are set as an admin would, through ``PUT /api/v1/users/{id}``.
"""

import json
import os
import shutil
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.push_support import ensure_user
from tests.integration.support import check_ok, http, skopeo
from tests.integration.test_maven_deploy_it import library, settings_with_servers

TEAMER = ("teamer", "teamer-password")
PULLER = ("puller", "puller-password")
DEPLOYER = ("deployer", "deployer-pw-1")  # the name test_maven_deploy_it's settings.xml sends


def admin_api(server, method, path, body=None):
    """A management API call as the admin: (status, headers, parsed JSON body or raw bytes)."""
    status, headers, raw = http(
        method, server.url + path, headers={"Authorization": "Bearer " + server.login()}, body=body
    )
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw


def set_grants(server, username, grants):
    """Set a user's grants through ``PUT /api/v1/users/{id}``, as an admin does."""
    status, _, users = admin_api(server, "GET", "/api/v1/users")
    assert status == 200, users
    rows = users["users"] if isinstance(users, dict) else users
    (user_id,) = [u["id"] for u in rows if u["username"] == username]
    status, _, body = admin_api(server, "PUT", "/api/v1/users/%d" % user_id, {"grants": grants})
    assert status == 200, body
    assert body["grants"] == grants, body


def create_robot(server, name, grants):
    """``POST /api/v1/robots`` as the admin: (login name, secret, id)."""
    status, _, body = admin_api(
        server, "POST", "/api/v1/robots", {"name": name, "grants": grants, "expires_in_days": 1}
    )
    assert status == 201, body
    return body["name"], body["secret"], body["id"]


def _tmp(case, prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    case.addCleanup(shutil.rmtree, d, True)
    return d


class OciGrantTests(SynchronousTestCase):
    def setUp(self):
        support.require("skopeo")
        self.layout, self.images = support.oci_layout()
        self.server = push_support.hosted_server(self)
        self.host = self.server.hostport
        ensure_user(self.server, *TEAMER, "read-only")
        set_grants(self.server, TEAMER[0], [{"repositories": "team-a/*", "actions": ["push"]}])
        ensure_user(self.server, *PULLER, "read-only")

    def copy(self, target, creds):
        return skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "%s:%s" % creds,
            "oci:%s:single" % self.layout,
            "docker://%s/%s" % (self.host, target),
            timeout=900,
        )

    def test_skopeo_push_where_granted_denied_elsewhere(self):
        """push on team-a/*: skopeo pushes team-a/app; team-b/app is 403 DENIED naming the permission."""
        check_ok(self.copy("team-a/app:1", TEAMER))
        status, _, body = http(
            "GET", self.server.url + "/v2/team-a/app/tags/list", headers=push_support.basic_header(*TEAMER)
        )
        self.assertEqual((status, json.loads(body)["tags"]), (200, ["1"]))
        cp = self.copy("team-b/app:1", TEAMER)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("push on team-b/app not granted", cp.stderr)
        self.assertRegex(cp.stderr.lower(), "denied")
        # The same refusal as the wire shows it, with Basic credentials.
        status, _, body = http(
            "POST", self.server.url + "/v2/team-b/app/blobs/uploads/", headers=push_support.basic_header(*TEAMER)
        )
        error = json.loads(body)["errors"][0]
        self.assertEqual((status, error["code"], error["message"]), (403, "DENIED", "push on team-b/app not granted"))
        status, _, _ = http(
            "GET", self.server.url + "/v2/team-b/app/tags/list", headers=push_support.admin_basic(self.server)
        )
        self.assertEqual(status, 404)

    def test_docker_push_by_pull_only_user_is_insufficient_scope(self):
        """A pull-only user: docker pulls team-a/app, and its push is refused with insufficient_scope."""
        support.require("dockerd", "docker")
        support.needs_root("dockerd")
        check_ok(self.copy("team-a/app:1", TEAMER))
        env = self.start_dockerd()
        docker = lambda *args: support.run(["docker", *args], env=env, timeout=600)  # noqa: E731
        check_ok(
            support.run(["docker", "login", "-u", PULLER[0], "--password-stdin", self.host], env=env, input=PULLER[1])
        )
        check_ok(docker("pull", "%s/team-a/app:1" % self.host))
        check_ok(docker("tag", "%s/team-a/app:1" % self.host, "%s/team-a/app:2" % self.host))
        cp = docker("push", "%s/team-a/app:2" % self.host)
        self.assertNotEqual(cp.returncode, 0)
        # docker prints a 403's error code and message: the message names insufficient_scope and the permission.
        self.assertIn("denied: insufficient_scope: push on team-a/app not granted", cp.stdout + cp.stderr)
        # What docker was answered, with the token it holds (pull only): 403 with error="insufficient_scope".
        token = push_support.registry_token(self.server, *PULLER, "repository:team-a/app:pull,push")
        status, headers, body = http(
            "PUT",
            self.server.url + "/v2/team-a/app/manifests/2",
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            body=b"{}",
        )
        error = json.loads(body)["errors"][0]
        self.assertEqual(
            (status, error["code"], error["message"]),
            (403, "DENIED", "insufficient_scope: push on team-a/app not granted"),
        )
        self.assertIn('error="insufficient_scope"', headers.get("WWW-Authenticate"))
        status, _, body = http(
            "GET", self.server.url + "/v2/team-a/app/tags/list", headers=push_support.admin_basic(self.server)
        )
        self.assertEqual(json.loads(body)["tags"], ["1"])

    def start_dockerd(self):
        d = _tmp(self, "hit-gr-")  # short: the socket path must fit in sun_path
        sock = os.path.join(d, "docker.sock")
        daemon = support._Daemon("dockerd", os.path.join(d, "dockerd.log"))
        daemon.start(
            [
                "dockerd",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--data-root",
                os.path.join(d, "data"),
                "--exec-root",
                os.path.join(d, "exec"),
                "--pidfile",
                os.path.join(d, "dockerd.pid"),
                "-H",
                "unix://" + sock,
                "--insecure-registry",
                self.host,
            ]
        )
        self.addCleanup(daemon.stop, 20)
        env = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_CONFIG=os.path.join(d, "config"))
        deadline = time.monotonic() + 60
        while True:
            cp = support.run(["docker", "version"], env=env, timeout=30)
            if cp.returncode == 0:
                return env
            if not daemon.running() or time.monotonic() > deadline:
                with open(daemon.log_path, "rb") as f:
                    tail = f.read()[-3000:].decode("utf-8", "replace")
                support.unavailable("dockerd cannot run here: %s\n%s" % (cp.stderr[-500:], tail))
            time.sleep(0.2)


class RobotGrantTests(SynchronousTestCase):
    """A CI robot with pull and push on team-a/* (issue 27, point 6), created through the API."""

    def setUp(self):
        support.require("skopeo")
        self.layout, self.images = support.oci_layout()
        self.server = push_support.hosted_server(self)
        self.host = self.server.hostport
        name, secret, self.robot_id = create_robot(
            self.server, "ci-a", [{"repositories": "team-a/*", "actions": ["pull", "push"]}]
        )
        self.assertEqual(name, "robot$ci-a")
        self.robot = (name, secret)

    def copy(self, target):
        return skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "%s:%s" % self.robot,
            "oci:%s:single" % self.layout,
            "docker://%s/%s" % (self.host, target),
            timeout=900,
        )

    def test_robot_pushes_where_granted_denied_elsewhere_audited(self):
        """skopeo --dest-creds 'robot$ci-a:<secret>': team-a/app pushed and audited as the robot; team-b/app 403."""
        check_ok(self.copy("team-a/app:1"))
        status, _, body = http(
            "GET", self.server.url + "/v2/team-a/app/tags/list", headers=push_support.admin_basic(self.server)
        )
        self.assertEqual((status, json.loads(body)["tags"]), (200, ["1"]))
        cp = self.copy("team-b/app:1")
        self.assertNotEqual(cp.returncode, 0)
        # The robot may not even pull there: skopeo's first request (HEAD of a blob, no body to print) is 403.
        self.assertIn("team-b/app: 403 (Forbidden)", cp.stderr)
        # What the wire says, as the robot: 403 DENIED naming the missing permission.
        robot = push_support.basic_header(*self.robot)
        status, _, body = http("GET", self.server.url + "/v2/team-b/app/tags/list", headers=robot)
        error = json.loads(body)["errors"][0]
        self.assertEqual((status, error["code"], error["message"]), (403, "DENIED", "pull on team-b/app not granted"))
        # Given pull everywhere (push still on team-a/* only), skopeo gets as far as the push and prints why.
        grants = [{"repositories": "team-a/*", "actions": ["pull", "push"]}, {"repositories": "*", "actions": ["pull"]}]
        status, _, body = admin_api(self.server, "PUT", "/api/v1/robots/%d" % self.robot_id, {"grants": grants})
        self.assertEqual(status, 200, body)
        cp = self.copy("team-b/app:1")
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("push on team-b/app not granted", cp.stderr)
        self.assertIn("denied", cp.stderr.lower())
        status, _, body = http("POST", self.server.url + "/v2/team-b/app/blobs/uploads/", headers=robot)
        error = json.loads(body)["errors"][0]
        self.assertEqual((status, error["code"], error["message"]), (403, "DENIED", "push on team-b/app not granted"))
        status, _, _ = http(
            "GET", self.server.url + "/v2/team-b/app/tags/list", headers=push_support.admin_basic(self.server)
        )
        self.assertEqual(status, 404)
        status, _, body = admin_api(self.server, "GET", "/api/v1/audit?actor_kind=robot&action=image.push")
        self.assertEqual(status, 200, body)
        # The push, and the refused pushes, under the robot's name (the action filter matches by prefix).
        self.assertEqual(
            {(e["actor"], e["action"], e["target"]) for e in body["entries"]},
            {("robot$ci-a", "image.push", "team-a/app:1"), ("robot$ci-a", "image.push.refused", "team-b/app")},
        )
        status, _, body = admin_api(self.server, "GET", "/api/v1/audit?actor_kind=user&action=image.push")
        self.assertEqual((status, body["entries"]), (200, []))


def robot_settings(path, mirror_url, username, password):
    """support's settings.xml plus deploy credentials for hc-releases and hc-snapshots (XML-escaped)."""
    support.write_maven_settings(path, mirror_url)
    x = support._xml_escape
    servers = "".join(
        "    <server><id>%s</id><username>%s</username><password>%s</password></server>\n"
        % (sid, x(username), x(password))
        for sid in ("hc-releases", "hc-snapshots")
    )
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("<settings>\n", "<settings>\n  <servers>\n%s  </servers>\n" % servers, 1))
    return path


class MavenGrantTests(SynchronousTestCase):
    def setUp(self):
        support.require("mvn")
        self.up = support.shared_maven_upstream()
        self.srv = support.HarborServer(
            support.maven_config(
                [
                    {"id": "central", "url": self.up.url},
                    {"id": "releases", "type": "hosted"},
                    {"id": "snapshots", "type": "hosted"},
                    {"id": "public", "type": "group", "members": ["releases", "snapshots", "central"]},
                ]
            )
        )
        self.addCleanup(self.srv.close)
        ensure_user(self.srv, *DEPLOYER, "read-only")
        set_grants(self.srv, DEPLOYER[0], [{"repositories": "maven:releases", "actions": ["push"]}])
        self.dir = _tmp(self, "harbor-it-grants-")
        self.settings = settings_with_servers(
            os.path.join(self.dir, "settings.xml"), self.srv.url + "/artifacts/public/"
        )

    def deploy(self, project):
        m2 = os.path.join(self.dir, "m2")
        return support.mvn(self.settings, m2, "-C", "-Dmaven.test.skip=true", "deploy", cwd=project)

    def test_mvn_deploy_where_push_is_granted(self):
        """push on maven:releases: a release deploys; a SNAPSHOT (into snapshots) is refused, mvn says why."""
        java = ("Greeter.java", "package com.example.hc.greeter;\npublic class Greeter {}\n")
        cp = self.deploy(library(os.path.join(self.dir, "rel"), self.srv.url, "greeter", "1.0", java))
        check_ok(cp)
        self.assertIn("BUILD SUCCESS", cp.stdout)
        status, _, _ = http("GET", self.srv.url + "/artifacts/releases/com/example/hc/greeter/1.0/greeter-1.0.pom")
        self.assertEqual(status, 200)
        cp = self.deploy(library(os.path.join(self.dir, "snap"), self.srv.url, "greeter", "2.0-SNAPSHOT", java))
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("BUILD FAILURE", cp.stdout)
        self.assertIn("403", cp.stdout)
        self.assertIn("push on maven:snapshots/com/example/hc/greeter/2.0-SNAPSHOT", cp.stdout)
        status, _, listing = http(
            "GET", self.srv.url + "/repositories/snapshots/browse?path=com/example/hc/greeter/2.0-SNAPSHOT"
        )
        self.assertNotIn(b".jar", listing)

    def test_mvn_deploy_with_a_robot_secret(self):
        """robot$ci-mvn's secret as settings.xml's <password>: push on maven:releases deploys there, not to snapshots."""
        *robot, _ = create_robot(
            self.srv,
            "ci-mvn",
            [
                {"repositories": "maven:*", "actions": ["pull"]},
                {"repositories": "maven:releases", "actions": ["push"]},
            ],
        )
        self.assertEqual(robot[0], "robot$ci-mvn")
        self.settings = robot_settings(
            os.path.join(self.dir, "robot-settings.xml"), self.srv.url + "/artifacts/public/", *robot
        )
        java = ("Robot.java", "package com.example.hc.robotlib;\npublic class Robot {}\n")
        cp = self.deploy(library(os.path.join(self.dir, "rrel"), self.srv.url, "robotlib", "1.0", java))
        check_ok(cp)
        self.assertIn("BUILD SUCCESS", cp.stdout)
        status, _, _ = http("GET", self.srv.url + "/artifacts/releases/com/example/hc/robotlib/1.0/robotlib-1.0.pom")
        self.assertEqual(status, 200)
        cp = self.deploy(library(os.path.join(self.dir, "rsnap"), self.srv.url, "robotlib", "2.0-SNAPSHOT", java))
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("BUILD FAILURE", cp.stdout)
        self.assertIn("403", cp.stdout)
        self.assertIn("push on maven:snapshots/com/example/hc/robotlib/2.0-SNAPSHOT", cp.stdout)
        status, _, body = admin_api(self.srv, "GET", "/api/v1/audit?actor_kind=robot")
        self.assertEqual(status, 200, body)
        self.assertEqual(
            {(e["actor"], e["action"]) for e in body["entries"] if e["action"].startswith("artifact.deploy")},
            {("robot$ci-mvn", "artifact.deploy"), ("robot$ci-mvn", "artifact.deploy.refused")},
        )
