"""Hosted-content policies with real clients (issue 28, points 2 and 4).

skopeo pushes ``v1``, an immutable-tag rule covers ``team-a/*`` ``v*``, and
skopeo pushing a different image to ``v1`` is refused with the rule named in
the error it prints; the same image again is accepted.  A retention rule
then deletes the tags it does not keep, after a dry run listed exactly those.
"""

import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.support import check_ok, http, skopeo


class PoliciesTests(SynchronousTestCase):
    def setUp(self):
        support.require("skopeo")
        self.layout, self.images = support.oci_layout()
        self.server = push_support.hosted_server(self)
        self.host = self.server.hostport
        self.creds = "%s:%s" % push_support.WRITER
        self.token = self.server.login()

    def api(self, method, path, body=None):
        status, _, raw = http(
            method, self.server.url + path, headers={"Authorization": "Bearer " + self.token}, body=body
        )
        return status, (json.loads(raw) if raw else None)

    def copy(self, ref, target, *extra, preserve=True):
        return skopeo(
            "copy",
            "--dest-tls-verify=false",
            *(["--preserve-digests"] if preserve else []),
            "--dest-creds",
            self.creds,
            *extra,
            "oci:%s:%s" % (self.layout, ref),
            "docker://%s/%s" % (self.host, target),
            timeout=900,
        )

    def tags(self, name):
        cp = check_ok(skopeo("list-tags", "--tls-verify=false", "docker://%s/%s" % (self.host, name)))
        return sorted(json.loads(cp.stdout)["Tags"])

    def test_skopeo_cannot_move_an_immutable_tag(self):
        check_ok(self.copy("single", "team-a/app:v1"))
        status, rule = self.api("POST", "/api/v1/immutable-tags", {"repositories": "team-a/*", "tags": "v*"})
        self.assertEqual(status, 201, rule)
        refused = self.copy("multi", "team-a/app:v1", preserve=False)  # one platform's image: another manifest
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("rule %d" % rule["id"], refused.stderr)
        self.assertIn("denied", refused.stderr.lower())
        check_ok(self.copy("single", "team-a/app:v1"))  # the same image again: allowed
        raw = check_ok(
            skopeo("inspect", "--tls-verify=false", "--raw", "docker://%s/team-a/app:v1" % self.host, text=False)
        ).stdout
        self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), self.images["images"]["single"]["digest"])
        check_ok(self.copy("multi", "team-b/app:v1", "--all"))
        check_ok(self.copy("single", "team-b/app:v1"))  # no rule covers team-b

    def test_retention_dry_run_then_run(self):
        for tag in ("old", "v1", "new"):
            check_ok(self.copy("single", "team-a/app:" + tag))
        status, rule = self.api(
            "POST", "/api/v1/retention", {"repositories": "team-a/*", "keep_last": 1, "keep_tags": ["v*"]}
        )
        self.assertEqual(status, 201, rule)
        status, dry = self.api("POST", "/api/v1/retention/%d/run" % rule["id"], {"dry_run": True})
        self.assertEqual((status, [t["tag"] for t in dry["tags"]]), (200, ["old"]))
        self.assertEqual(self.tags("team-a/app"), ["new", "old", "v1"])
        status, done = self.api("POST", "/api/v1/retention/run", {"dry_run": False})
        self.assertEqual((status, done["deleted"]), (200, 1))
        self.assertEqual(self.tags("team-a/app"), ["new", "v1"])
