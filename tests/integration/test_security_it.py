"""Security hardening (issue 10) with real clients against the real server.

- point 10: with no ``public_url`` the token realm follows the address the
  client used, so ``skopeo copy`` to a server on any port works; a forged
  ``X-Forwarded-Host`` from an untrusted peer is ignored;
- point 1: over real HTTP, a registry token stops working as soon as its user
  is deleted or its password changed through the management API.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.support import check_ok, http, skopeo

_SERVER = None


def _server():
    """One server without public_url (a [server] table without it keeps the harness from adding one)."""
    global _SERVER
    if _SERVER is None or not _SERVER.running():
        config = "[server]\naccess_flush_seconds = 1\n" + support.oci_config("http://127.0.0.1:9", routes=["proxied/*"])
        _SERVER = support.HarborServer(config)
        push_support.ensure_user(_SERVER, *push_support.WRITER, "read-write")
    return _SERVER


class PublicUrlTests(SynchronousTestCase):
    def setUp(self):
        self.server = _server()

    def test_realm_follows_the_request_host(self):
        """The challenge names the host and port the client asked; X-Forwarded-Host from an untrusted peer
        does not change it."""
        status, headers, _ = http("GET", self.server.url + "/v2/")
        self.assertEqual(status, 401)
        self.assertIn('realm="http://%s/v2/token"' % self.server.hostport, headers["WWW-Authenticate"])
        status, headers, _ = http(
            "GET", self.server.url + "/v2/", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
        )
        self.assertIn('realm="http://%s/v2/token"' % self.server.hostport, headers["WWW-Authenticate"])

    def test_skopeo_copy_without_public_url(self):
        """skopeo copy --dest-creds to a server started on a free port without public_url succeeds."""
        support.require("skopeo")
        layout, images = support.oci_layout()
        check_ok(
            skopeo(
                "copy",
                "--dest-tls-verify=false",
                "--preserve-digests",
                "--dest-creds",
                "%s:%s" % push_support.WRITER,
                "oci:%s:single" % layout,
                "docker://%s/sec/single:1" % self.server.hostport,
                timeout=600,
            )
        )
        token = push_support.registry_token(self.server, *push_support.WRITER, "repository:sec/single:pull")
        status, headers, _ = http(
            "HEAD",
            self.server.url + "/v2/sec/single/manifests/1",
            headers={"Authorization": "Bearer " + token, "Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["Docker-Content-Digest"], images["images"]["single"]["digest"])


class TokenHolderTests(SynchronousTestCase):
    """Point 1 end to end: a registry token stops pushing the moment its user is deleted or changes password."""

    def setUp(self):
        self.server = _server()

    def test_deleted_and_changed_users_tokens_stop(self):
        admin = {"Authorization": "Bearer " + self.server.login()}
        for name, change in (("sec-deleted", "delete"), ("sec-changed", "password")):
            push_support.ensure_user(self.server, name, "first-password", "read-write")
            status, _, body = http("GET", self.server.url + "/api/v1/users", headers=admin)
            user_id = next(u["id"] for u in json.loads(body) if u["username"] == name)
            token = push_support.registry_token(self.server, name, "first-password", "repository:sec/holder:pull,push")
            bearer = {"Authorization": "Bearer " + token}
            self.assertEqual(http("POST", self.server.url + "/v2/sec/holder/blobs/uploads/", headers=bearer)[0], 202)
            if change == "delete":
                self.assertEqual(http("DELETE", self.server.url + "/api/v1/users/%d" % user_id, headers=admin)[0], 204)
            else:
                self.assertEqual(
                    http(
                        "PUT",
                        self.server.url + "/api/v1/users/%d" % user_id,
                        headers=admin,
                        body={"password": "second-password"},
                    )[0],
                    200,
                )
            status, headers, _ = http("POST", self.server.url + "/v2/sec/holder/blobs/uploads/", headers=bearer)
            self.assertEqual(status, 401, change)
            self.assertIn('error="invalid_token"', headers["WWW-Authenticate"])
