"""A PostgreSQL outage under a real node: 503 INDEX_UNAVAILABLE, probes that tell it apart, two log lines.

The node is a real process (``twist``) on the tests' throwaway PostgreSQL
cluster (`tests.pg_support`), which this test stops (a fast shutdown: every
connection is cut, new ones refused) and starts again on the same port.  The
upstream is the shared docker-registry.  During the outage:

* a request that needs the index (a login, a cold manifest) is 503 with code
  ``INDEX_UNAVAILABLE`` in the error format, never 500;
* warm hits (a manifest by tag, a blob), answered from memory and disk, are still 200;
* ``/livez`` stays 200 (no restart), ``/readyz`` and ``/health`` are 503;

and the log says once that the database went away and once that it is back,
with no traceback, where adbapi alone logged one per failed transaction.
"""

from __future__ import annotations

import json
import time

from twisted.trial.unittest import SynchronousTestCase

from tests import pg_support
from tests.integration import oci_support as oci
from tests.integration import support

OUTAGE_SECONDS = 6


class IndexOutageTests(SynchronousTestCase):
    def setUp(self):
        support.require("docker-registry", "skopeo")
        self.db_url = pg_support.fresh_database_url(self)
        self.reg, images = support.shared_upstream()
        self.layer = min(images["images"]["single"]["layers"], key=lambda layer: layer["size"])["digest"]
        index = support._toml_table("[index]", {"url": self.db_url, "node_name": "outage", "pool_size": 4})
        self.srv = support.HarborServer(
            oci.harbor_config(self.reg.url) + "\n" + index + '\n[log]\naccess_file = "-"\n'
        )  # access events in the main log
        self.addCleanup(self.srv.close)

    def get(self, path, headers=None, method="GET", body=None):
        status, head, data = support.http(method, self.srv.url + path, headers=headers, body=body, timeout=30)
        return status, head, data

    def manifest(self, tag):
        return self.get("/v2/library/test/manifests/" + tag, {"Accept": oci.OCI_MANIFEST})

    def login(self):
        return self.get(
            "/api/v1/auth/login", method="POST", body={"username": "admin", "password": self.srv.admin_password}
        )

    def test_outage_is_503_index_unavailable_with_live_probes_and_two_log_lines(self):
        status, _, warm = self.manifest("1")
        self.assertEqual(status, 200)
        self.assertEqual(self.manifest("1")[0], 200)  # now in memory
        self.assertEqual(self.login()[0], 200)
        blob_path = "/v2/library/test/blobs/" + self.layer
        status, _, blob = self.get(blob_path)
        self.assertEqual((status, oci.sha256_digest(blob)), (200, self.layer))
        self.wait_for_hit(blob_path)  # its row is remembered from then on

        pg_support.pause()
        self.addCleanup(pg_support.resume)
        deadline = time.monotonic() + OUTAGE_SECONDS
        refused = 0
        while time.monotonic() < deadline:
            status, head, body = self.login()
            self.assertEqual(status, 503, body)
            self.assertEqual(json.loads(body)["errors"][0]["code"], "INDEX_UNAVAILABLE")
            self.assertEqual(head.get("Retry-After"), "5")
            refused += 1
            time.sleep(0.2)
        self.assertGreater(refused, 5)
        status, _, body = self.manifest("multi")  # cold: needs the index
        self.assertEqual((status, oci.oci_error_codes(body)), (503, ["INDEX_UNAVAILABLE"]))
        status, _, body = self.manifest("1")  # warm, from memory
        self.assertEqual((status, body), (200, warm))
        self.assertEqual(self.get(blob_path)[::2], (200, blob))  # warm: its row is remembered, its file on disk
        status, _, body = self.get("/livez")
        self.assertEqual((status, json.loads(body)["status"]), (200, "alive"))
        status, _, body = self.get("/readyz")
        self.assertEqual((status, json.loads(body)["problems"]), (503, ["index"]))
        self.assertEqual(self.get("/health")[0], 503)

        pg_support.resume()
        support.wait_http(self.srv.url + "/readyz", timeout=30)
        self.assertEqual(self.login()[0], 200)
        self.assertEqual(self.manifest("multi")[0], 200)
        time.sleep(4)  # a round of the 3 s timers after the outage

        events = self.events()
        away = [e for e in events if e.get("log_format", "").startswith("index: the database does not answer")]
        back = [e for e in events if e.get("log_format", "").startswith("index: the database answers again")]
        self.assertEqual((len(away), len(back)), (1, 1), self.srv.log_text()[-5000:])
        self.assertEqual(away[0]["log_level"]["name"], "error")
        self.assertGreaterEqual(back[0]["failed"], refused)
        loud = [e for e in events if e["log_level"]["name"] in ("critical", "error") or "log_failure" in e]
        self.assertEqual(loud, away)
        # Besides: one warning for the first transaction that lost its connection (retried once), none per request.
        warnings = [e for e in events if e["log_level"]["name"] == "warn" and "index" in e.get("log_namespace", "")]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertNotIn("Rollback failed", self.srv.log_text())

    def wait_for_hit(self, path):
        """GET ``path`` until the node answers it as a hit (the first GETs may join the download's commit)."""
        for _ in range(50):
            self.assertEqual(self.get(path)[0], 200)
            hits = [e for e in self.events() if e.get("path") == path and e.get("cache_status") == "hit"]
            if hits:
                return
            time.sleep(0.1)
        self.fail("no hit for " + path)

    def events(self):
        """The node's log events (one JSON object a line; the harness's own marker lines skipped)."""
        out = []
        for line in self.srv.log_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out
