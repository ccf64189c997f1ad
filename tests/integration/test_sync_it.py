"""Sync rules against a real distribution registry: a tag pushed upstream is cached by the next run, no client
asking, and a skopeo pull of it afterwards is served from the cache (the registry sees no new GET)."""

import json
import os
import shutil
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support


def _access_lines(srv):
    path = os.path.join(srv.data_dir, "access.log")
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


class SyncTests(SynchronousTestCase):
    def setUp(self):
        self.layout, self.images = support.oci_layout(seed=2, large=1)
        self.reg = support.Registry()
        self.addCleanup(self.reg.close)
        support.push_layout(self.layout, self.reg.hostport, "library/test", names=["single"])
        config = oci.harbor_config(self.reg.url) + '\n[log]\naccess_file = "access.log"\n'
        self.srv = support.HarborServer(config)
        self.addCleanup(self.srv.close)
        self.token = self.srv.login()

    def api(self, method, path, body=None):
        status, _, raw = support.http(method, self.srv.url + path, {"Authorization": "Bearer " + self.token}, body=body)
        return status, (json.loads(raw) if raw else None)

    def run_rule(self, rule_id):
        status, run = self.api("POST", "/api/v1/sync/%d/run" % rule_id)
        self.assertEqual(status, 202, run)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, runs = self.api("GET", "/api/v1/sync/%d/runs" % rule_id)
            latest = runs["runs"][0]
            if latest["id"] == run["id"] and latest["status"] != "running":
                return latest
            time.sleep(0.2)
        self.fail("the run did not finish: %r" % (latest,))

    def test_new_tag_is_cached_before_any_client_asks(self):
        status, error = self.api(
            "POST",
            "/api/v1/sync",
            {"upstream": "nope", "repositories": ["library/test"], "tags": ["*"], "interval_seconds": 300},
        )
        self.assertEqual((status, error["errors"][0]["code"]), (400, "BAD_REQUEST"))
        status, rule = self.api(
            "POST",
            "/api/v1/sync",
            {
                "upstream": "upstream",
                "repositories": ["library/test"],
                "tags": ["*"],
                "platforms": ["linux/amd64"],
                "interval_seconds": 300,
            },
        )
        self.assertEqual(status, 201, rule)
        first = self.run_rule(rule["id"])
        self.assertEqual((first["status"], first["manifests"], first["tags_seen"]), ("succeeded", 1, 1), first)

        # A new tag upstream: an index (amd64 + arm64); the next run takes it, amd64 only.
        support.push_layout(self.layout, self.reg.hostport, "library/test", names=["multi"])
        second = self.run_rule(rule["id"])
        self.assertEqual((second["status"], second["manifests"], second["tags_seen"]), ("succeeded", 2, 2), second)
        multi = self.images["images"]["multi"]
        # amd64's config and layers, but for those the first run fetched already (the images share a layer)
        self.assertIn(second["blobs"], range(1, 2 + len(multi["manifests"]["amd64"]["layers"])))

        # no client: the server writes its access lines within a second; give a line of the runs that moment
        def client_lines():
            return len([x for x in _access_lines(self.srv) if x["path"].startswith("/v2/")])

        self.assertEqual(support.wait_count(client_lines, 1, timeout=2), 0)

        # A skopeo pull of the new tag is a hit: the registry sees no new manifest or blob GET. (The registry logs
        # each GET after its answer: the run's last lines may still be coming, so count once they have stopped.)
        def upstream_gets():
            return self.reg.count_requests("GET", "/manifests/") + self.reg.count_requests("GET", "/blobs/")

        gets = support.settled_count(upstream_gets, quiet=0.5)
        out = tempfile.mkdtemp(prefix="harbor-it-sync-")
        self.addCleanup(shutil.rmtree, out, True)
        support.check_ok(
            support.skopeo(
                "copy",
                "--src-tls-verify=false",
                "--override-os=linux",
                "--override-arch=amd64",
                "docker://%s/library/test:multi" % self.srv.hostport,
                "oci:%s:multi" % os.path.join(out, "layout"),
            )
        )
        # a GET passed on would be logged a moment after its answer: give it that moment
        self.assertEqual(support.wait_count(upstream_gets, gets + 1, timeout=2), gets)
        deadline = time.monotonic() + 10  # the access file is written within a second or so
        while True:
            pulled = [x for x in _access_lines(self.srv) if x["path"].startswith("/v2/library/test/")]
            if any("/blobs/" in x["path"] for x in pulled) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(any("/blobs/" in x["path"] for x in pulled), pulled)
        self.assertEqual({x["cache_status"] for x in pulled if x["status"] == "200"} - {"hit"}, set(), pulled)
        self.assertIn("/v2/library/test/manifests/multi", [x["path"] for x in pulled])
        amd64 = multi["manifests"]["amd64"]
        self.assertIn("/v2/library/test/manifests/" + amd64["digest"], [x["path"] for x in pulled])
        # arm64 was left out by the rule's platforms: never fetched upstream.
        arm64 = multi["manifests"]["arm64"]
        self.assertEqual(self.reg.count_requests("GET", "/manifests/" + arm64["digest"]), 0)
