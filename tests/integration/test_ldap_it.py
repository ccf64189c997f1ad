"""LDAP logins against a real directory (Debian's slapd, tests/ldap_support.py) on every front.

One slapd (StartTLS and ldaps, a CA made by the test) is shared by the module;
harbor-cache servers run ``twist`` with ``[auth.ldap]`` pointing at it.  Proved
here: API login, Basic on ``/v2/``, ``/v2/token``, Maven (``POST /token`` and a
Basic deploy), group -> role mapping, wrong passwords refused, StartTLS and
ldaps checked against ``ca_file`` (without it the test CA is not trusted: 503),
the directory stopped -> 503 ``DIRECTORY_UNAVAILABLE`` on each front while the
local admin still logs in, the bind password never in the server log, and an
LDAP user of the group mapped to ``read-write`` pushing an image with podman.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests import ldap_support
from tests.integration import support
from tests.integration.support import check_ok, http, podman

POM = b"<project><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId><artifactId>a</artifactId><version>1.0</version></project>"


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def error_code(body):
    return json.loads(body)["errors"][0]["code"]


_shared: dict = {}


def shared_slapd():
    """The module's slapd, started on first use and stopped at exit (trial has no setUpClass)."""
    if "slapd" not in _shared:
        if not ldap_support.available():
            support.unavailable("slapd is not installed (apt-get install slapd ldap-utils)")
        _shared["slapd"] = ldap_support.Slapd()
        support._CLOSE_AT_EXIT.append(_shared["slapd"].close)
    return _shared["slapd"]


def shared_server():
    """One harbor-cache (StartTLS with ca_file, a hosted Maven repository) for the login checks."""
    if "server" not in _shared:
        slapd = shared_slapd()
        _shared["server"] = support.HarborServer(
            support.maven_config([{"id": "releases", "type": "hosted"}]) + "\n" + slapd.config_toml()
        )
    return _shared["server"]


def ldap_server(case, slapd, **ldap_options):
    config = (
        support.maven_config([{"id": "releases", "type": "hosted"}], server=None)
        + "\n"
        + slapd.config_toml(**ldap_options)
    )
    server = support.HarborServer(config)
    case.addCleanup(server.close)
    return server


def api_login(server, username, password):
    return http("POST", server.url + "/api/v1/auth/login", body={"username": username, "password": password})


class LdapLoginTests(SynchronousTestCase):
    """One server (StartTLS with ca_file) for the login checks that change nothing shared."""

    def setUp(self):
        self.slapd = shared_slapd()
        self.server = shared_server()

    def test_api_login_and_group_roles(self):
        """alice (devs -> read-write), carol (admins -> admin) and bob (no group -> "none") log in;
        the role decides: only carol may list users; the users' rows say source ldap."""
        tokens = {}
        for name in ("alice", "bob", "carol"):
            status, _, body = api_login(self.server, name, ldap_support.PASSWORDS[name])
            self.assertEqual(status, 200, body)
            tokens[name] = json.loads(body)["token"]
        status, _, body = http(
            "GET", self.server.url + "/api/v1/users", headers={"Authorization": "Bearer " + tokens["carol"]}
        )
        self.assertEqual(status, 200, body)
        users = {u["username"]: u for u in json.loads(body)}
        self.assertEqual(
            {n: users[n]["role"] for n in ("alice", "bob", "carol")},
            {"alice": "read-write", "bob": "none", "carol": "admin"},
        )
        status, _, _ = http(
            "GET", self.server.url + "/api/v1/users", headers={"Authorization": "Bearer " + tokens["alice"]}
        )
        self.assertEqual(status, 403)

    def test_wrong_password_and_injection_refused(self):
        """Wrong password, unknown user and a wildcard username are 401 on the API and on /v2/."""
        for username, password in (("alice", "wrong"), ("nobody", "x"), ("*", "alice-pw"), ("alic*", "alice-pw")):
            status, _, body = api_login(self.server, username, password)
            self.assertEqual(status, 401, (username, body))
            status, _, _ = http("GET", self.server.url + "/v2/", headers=basic(username, password))
            self.assertEqual(status, 401, username)

    def test_basic_on_v2_and_token(self):
        """Basic on /v2/ and GET /v2/token with an LDAP user's directory password."""
        status, _, body = http("GET", self.server.url + "/v2/", headers=basic("alice", "alice-pw"))
        self.assertEqual(status, 200, body)
        status, _, body = http(
            "GET",
            self.server.url + "/v2/token?service=harbor-cache&scope=repository:team/x:push,pull",
            headers=basic("alice", "alice-pw"),
        )
        self.assertEqual(status, 200, body)
        self.assertIn("token", json.loads(body))

    def test_maven_token_and_deploy(self):
        """POST /token with Basic, and a Basic deploy: alice (read-write) deploys, bob (none) is refused."""
        status, _, body = http("POST", self.server.url + "/token", headers=basic("alice", "alice-pw"))
        self.assertEqual(status, 200, body)
        path = "/artifacts/releases/com/example/a/1.0/a-1.0.pom"
        status, _, body = http("PUT", self.server.url + path, headers=basic("alice", "alice-pw"), body=POM)
        self.assertIn(status, (200, 201), body)
        status, _, _ = http(
            "PUT", self.server.url + path.replace("1.0", "2.0"), headers=basic("bob", "bob-pw"), body=POM
        )
        self.assertEqual(status, 403)
        status, _, _ = http(
            "PUT", self.server.url + path.replace("1.0", "3.0"), headers=basic("alice", "nope"), body=POM
        )
        self.assertEqual(status, 401)

    def test_bind_password_never_in_the_log(self):
        api_login(self.server, "alice", "alice-pw")
        api_login(self.server, "alice", "wrong")
        log = self.server.log_text()
        self.assertNotIn(ldap_support.SERVICE_PASSWORD, log)
        self.assertNotIn("alice-pw", log)


class LdapTlsTests(SynchronousTestCase):
    def setUp(self):
        self.slapd = shared_slapd()

    def test_ldaps_with_ca_file(self):
        server = ldap_server(self, self.slapd, ldaps=True)
        status, _, body = api_login(server, "alice", "alice-pw")
        self.assertEqual(status, 200, body)

    def test_untrusted_certificate_fails_closed(self):
        """Without ca_file the system store does not know the test CA: 503, never a plain-text bind."""
        server = ldap_server(self, self.slapd, ca_file=False)
        status, _, body = api_login(server, "alice", "alice-pw")
        self.assertEqual((status, error_code(body)), (503, "DIRECTORY_UNAVAILABLE"), body)


class LdapOutageTests(SynchronousTestCase):
    def setUp(self):
        self.slapd = shared_slapd()
        self.server = ldap_server(self, self.slapd)

    def test_directory_down_is_503_on_every_front_and_local_admin_logs_in(self):
        self.slapd.stop()
        try:
            url = self.server.url
            status, _, body = api_login(self.server, "alice", "alice-pw")
            self.assertEqual((status, error_code(body)), (503, "DIRECTORY_UNAVAILABLE"), body)
            for method, path in (
                ("GET", "/v2/"),
                ("GET", "/v2/token?service=harbor-cache&scope=repository:team/x:pull"),
                ("POST", "/token"),
                ("PUT", "/artifacts/releases/com/example/a/1.0/a-1.0.pom"),
            ):
                status, _, body = http(
                    method, url + path, headers=basic("alice", "alice-pw"), body=POM if method == "PUT" else None
                )
                self.assertEqual(status, 503, (path, body))
                self.assertIn(b"DIRECTORY_UNAVAILABLE", body, path)
            status, _, body = api_login(self.server, "admin", self.server.admin_password)
            self.assertEqual(status, 200, body)
            status, _, _ = http("GET", url + "/v2/", headers=basic("admin", self.server.admin_password))
            self.assertEqual(status, 200)
        finally:
            self.slapd.start()
        status, _, body = api_login(self.server, "alice", "alice-pw")
        self.assertEqual(status, 200, body)
        log = self.server.log_text()
        self.assertEqual(log.count("LDAP directory unavailable"), 1, log[-3000:])
        self.assertIn("LDAP directory back", log)
        self.assertNotIn(ldap_support.SERVICE_PASSWORD, log)


class LdapPodmanPushTests(SynchronousTestCase):
    def test_ldap_user_of_the_read_write_group_pushes_with_podman(self):
        """alice (LDAP group devs -> read-write) pushes with podman; bob (no mapped group) is refused."""
        support.require("podman")
        slapd = shared_slapd()
        layout, _ = support.oci_layout()
        server = support.HarborServer(
            support.oci_config("http://127.0.0.1:9", routes=["proxied/*"]) + "\n" + slapd.config_toml()
        )
        self.addCleanup(server.close)
        root = tempfile.mkdtemp(prefix="harbor-it-ldap-podman-")
        self.addCleanup(shutil.rmtree, root, True)
        check_ok(podman(root, "pull", "oci:%s:single" % layout, timeout=900))
        image = check_ok(podman(root, "images", "--format", "{{.ID}}")).stdout.split()[0]
        target = "docker://%s/team/ldap:1" % server.hostport
        check_ok(podman(root, "push", "--tls-verify=false", "--creds", "alice:alice-pw", image, target, timeout=900))
        status, _, body = http("GET", server.url + "/v2/team/ldap/tags/list", headers=basic("alice", "alice-pw"))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["tags"], ["1"])
        refused = podman(root, "push", "--tls-verify=false", "--creds", "bob:bob-pw", image, target.replace(":1", ":2"))
        self.assertNotEqual(refused.returncode, 0)
