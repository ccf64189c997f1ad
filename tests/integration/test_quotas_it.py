"""Quotas with real clients: skopeo pushes under and over a namespace quota, mvn deploy over a Maven quota.

- skopeo copies the single image into team-a/one under a quota just large
  enough for it; a second copy into team-a/two is accepted too (its blobs are
  counted once per quota); the quota then reports that usage.
- skopeo copies it into team-b/x under a quota smaller than its layers: the
  push fails with DENIED and skopeo prints the quota, its limit and the usage.
- ``mvn deploy`` of a library into a hosted repository with a tiny quota
  fails, and mvn prints the reason phrase naming the quota.
"""

import json
import os
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.push_support import ensure_user
from tests.integration.support import check_ok, skopeo
from tests.integration.test_maven_deploy_it import WRITER, library, settings_with_servers


def _api(server: Any, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, _, answer = support.http(method, server.url + path, headers={"Authorization": "Bearer " + token}, body=body)
    return status, (json.loads(answer) if answer else None)


class SkopeoQuotaTests(SynchronousTestCase):
    def setUp(self) -> None:
        support.require("skopeo")
        self.layout, self.images = support.oci_layout()
        self.server = push_support.hosted_server(self)
        self.token = self.server.login()

    def copy(self, target: str) -> Any:
        return skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            "%s:%s" % push_support.WRITER,
            "oci:%s:single" % self.layout,
            "docker://%s/%s" % (self.server.hostport, target),
            timeout=900,
        )

    def test_push_under_and_over_a_quota(self) -> None:
        single = self.images["images"]["single"]
        blobs = single["bytes_total"]  # config, layers and manifest
        status, quota = _api(
            self.server, self.token, "POST", "/api/v1/quotas", {"repositories": "team-a/*", "max_bytes": blobs + 65536}
        )
        self.assertEqual(status, 201, quota)
        check_ok(self.copy("team-a/one:1"))
        check_ok(self.copy("team-a/two:1"))  # the same blobs: counted once
        status, seen = _api(self.server, self.token, "GET", "/api/v1/quotas/%d" % quota["id"])
        self.assertEqual(status, 200)
        self.assertGreaterEqual(seen["used_bytes"], blobs)
        self.assertLess(seen["used_bytes"], blobs + 65536)
        self.assertEqual(seen["used_tags"], 2)

        status, small = _api(
            self.server, self.token, "POST", "/api/v1/quotas", {"repositories": "team-b/*", "max_bytes": 100}
        )
        self.assertEqual(status, 201, small)
        cp = self.copy("team-b/x:1")
        self.assertNotEqual(cp.returncode, 0, cp.stdout)
        output = cp.stdout + cp.stderr
        self.assertIn("denied", output.lower())
        self.assertIn("quota team-b/* exceeded: it allows 100 bytes", output)
        status, seen = _api(self.server, self.token, "GET", "/api/v1/quotas/%d" % small["id"])
        self.assertLessEqual(seen["used_bytes"], 100)
        _, audit = _api(self.server, self.token, "GET", "/api/v1/audit?action=quota")
        self.assertIn("quota.refused", [r["action"] for r in audit["entries"]])


class MavenQuotaTests(SynchronousTestCase):
    def test_mvn_deploy_over_a_quota_is_refused(self) -> None:
        support.require("mvn")
        up = support.shared_maven_upstream()
        srv = support.HarborServer(
            support.maven_config(
                [
                    {"id": "central", "url": up.url},
                    {"id": "releases", "type": "hosted"},
                    {"id": "snapshots", "type": "hosted"},
                    {"id": "public", "type": "group", "members": ["releases", "snapshots", "central"]},
                ]
            )
        )
        self.addCleanup(srv.close)
        ensure_user(srv, WRITER[0], WRITER[1], "read-write")
        work = tempfile.mkdtemp(prefix="harbor-it-quota-")
        self.addCleanup(shutil.rmtree, work, True)
        settings = settings_with_servers(os.path.join(work, "settings.xml"), srv.url + "/artifacts/public/")
        status, quota = _api(
            srv, srv.login(), "POST", "/api/v1/quotas", {"repositories": "maven:releases", "max_bytes": 200}
        )
        self.assertEqual(status, 201, quota)
        project = library(
            os.path.join(work, "greeter"),
            srv.url,
            "greeter",
            "1.0",
            ("Greeter.java", "package com.example.hc.greeter;\npublic class Greeter {}\n"),
        )
        cp = support.mvn(settings, os.path.join(work, "m2"), "-C", "-Dmaven.test.skip=true", "deploy", cwd=project)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("BUILD FAILURE", cp.stdout)
        self.assertIn("quota maven:releases exceeded: it allows 200 bytes", cp.stdout)
        status, seen = _api(srv, srv.login(), "GET", "/api/v1/quotas/%d" % quota["id"])
        self.assertLessEqual(seen["used_bytes"], 200)
