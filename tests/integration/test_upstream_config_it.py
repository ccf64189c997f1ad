"""The config file's upstreams across a restart (issue 23.5), and an IPv6 upstream (issue 23.7).

Real processes: harbor-cache under ``twist`` (support.HarborServer) and, for
IPv6, distribution's docker-registry listening on [::1] with an image pushed
by skopeo.  Loopback only (127.0.0.1 and ::1).
"""

from __future__ import annotations

import json
import os
import shutil

from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support


def api(srv, method, path, body=None):
    status, _, answer = support.http(
        method, srv.url + path, body=body, headers={"Authorization": "Bearer " + srv.login()}
    )
    return status, (json.loads(answer) if answer else None)


def logged(srv, needle):
    """The main log's lines (it is JSON events) whose text contains ``needle``."""
    lines = []
    for record in srv.log_text().split("\x1e"):
        try:
            event = json.loads(record)
        except ValueError:
            continue
        if isinstance(event, dict) and needle in formatEvent(event):
            lines.append(formatEvent(event))
    return lines


class ConfigAsCodeIT(SynchronousTestCase):
    def write(self, srv, upstreams):
        with open(srv.config_path, "w") as f:
            f.write(support.toml_config(server={"public_url": srv.url}, upstreams=upstreams))

    def test_a_changed_file_applies_at_the_next_start(self):
        """Restart with a changed file: created, updated, removed among the file's; the API's stay;
        the file's are read-only (409 naming the file) and labelled managed_by config."""
        srv = support.HarborServer(
            support.toml_config(
                upstreams=[
                    {"name": "a", "url": "http://127.0.0.1:1", "prefix": "a"},
                    {"name": "b", "url": "http://127.0.0.1:2", "prefix": "b"},
                ]
            )
        )
        self.addCleanup(srv.close)
        status, body = api(srv, "GET", "/api/v1/upstreams")
        listed = {u["name"]: u for u in body["upstreams"]}
        self.assertEqual(
            {n: u["managed_by"] for n, u in listed.items()}, {"a": "config", "b": "config", "central": "config"}
        )
        status, body = api(srv, "PUT", "/api/v1/upstreams/%d" % listed["a"]["id"], {"priority": 9})
        self.assertEqual(status, 409, body)
        self.assertEqual(body["errors"][0]["code"], "CONFLICT")
        self.assertIn(srv.config_path, body["errors"][0]["message"])
        status, body = api(srv, "POST", "/api/v1/upstreams", {"name": "d", "url": "http://127.0.0.1:4", "prefix": "d"})
        self.assertEqual(status, 201, body)

        self.write(
            srv,
            [
                {"name": "a", "url": "http://127.0.0.1:3", "prefix": "a", "priority": 5},
                {"name": "c", "url": "http://127.0.0.1:5", "prefix": "c"},
            ],
        )
        srv.restart()
        status, body = api(srv, "GET", "/api/v1/upstreams")
        listed = {u["name"]: u for u in body["upstreams"] if u["kind"] == "oci"}
        self.assertEqual({n: u["managed_by"] for n, u in listed.items()}, {"a": "config", "c": "config", "d": "api"})
        self.assertEqual((listed["a"]["url"], listed["a"]["priority"]), ("http://127.0.0.1:3", 5))
        self.assertEqual(
            sorted(logged(srv, "of the config file")),
            sorted(
                [
                    # the first start
                    "upstream a of the config file created",
                    "upstream b of the config file created",
                    # the restart
                    "upstream b of the config file removed",
                    "upstream a of the config file updated: url, priority",
                    "upstream c of the config file created",
                ]
            ),
        )


class Ipv6UpstreamIT(SynchronousTestCase):
    def test_pull_and_probe_through_an_ipv6_upstream(self):
        """http://[::1]:<port>: a manifest and its blobs pull, the probe says healthy."""
        support.require("docker-registry", "skopeo")
        layout, images = support.oci_layout()
        with support.Registry() as pushed_here:  # skopeo cannot name an IPv6 host: push over IPv4
            support.push_layout(layout, pushed_here.hostport, "library/test", names=["single"])
            storage = os.path.join(self.mktemp(), "storage")
            shutil.copytree(pushed_here.storage, storage)
        registry = support.Registry(address="::1", storage=os.path.abspath(storage))
        self.addCleanup(registry.close)
        self.assertTrue(registry.url.startswith("http://[::1]:"))
        srv = support.HarborServer(support.oci_config(registry.url))
        self.addCleanup(srv.close)
        single = images["images"]["single"]
        status, headers, manifest = support.http(
            "GET", srv.url + "/v2/library/test/manifests/1", {"Accept": oci.OCI_MANIFEST}
        )
        self.assertEqual((status, headers.get("docker-content-digest")), (200, single["digest"]), manifest[:300])
        for layer in json.loads(manifest)["layers"]:
            status, _, blob = support.http("GET", srv.url + "/v2/library/test/blobs/" + layer["digest"])
            self.assertEqual((status, len(blob)), (200, layer["size"]))
        self.assertGreaterEqual(registry.wait_requests("GET", "/v2/library/test/manifests/1", 1), 1)
        status, body = api(srv, "POST", "/api/v1/upstreams/test", {"name": "t", "url": registry.url})
        self.assertEqual((status, body["reachable"], body["error"]), (200, True, None), body)
        _, body = api(srv, "GET", "/api/v1/upstreams")
        self.assertNotIn("InvalidCodepoint", srv.log_text())
        upstream = next(u for u in body["upstreams"] if u["name"] == "upstream")
        self.assertNotEqual(upstream["health"]["status"], "failing", upstream)
