"""/api/v1/sync (api/sync.py): CRUD, runs and history over the whole app, admin only, audited, in /metrics."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import generate_latest

from harbor_cache.testing import FakeRegistry
from tests.unit.base import OCI_MANIFEST, USERS, OciCacheCase, header

RULE = {"upstream": "fake", "repositories": ["library/python"], "tags": ["3.*-slim"], "interval_seconds": 600}


class SyncApiTests(OciCacheCase):
    upstream: FakeRegistry

    def setUp(self) -> None:
        super().setUp()
        for name, (password, role) in USERS.items():
            self.add_user(name, password, role)

    def token(self, user: str) -> str:
        body = json.dumps({"username": user, "password": USERS[user][0]}).encode()
        response, raw = self.fetch("POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}, user=None)
        self.assertEqual(response.code, 200, raw)
        return str(json.loads(raw)["token"])

    def call(self, method: str, path: str, body: Any = None, user: str = "admin") -> tuple[int, Any, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response, raw = self.fetch(method, path, data, headers, user=None)
        return response.code, (json.loads(raw) if raw else None), response

    def test_crud(self) -> None:
        code, rule, response = self.call("POST", "/api/v1/sync", RULE)
        self.assertEqual(code, 201, rule)
        self.assertEqual(header(response, "Location"), f"/api/v1/sync/{rule['id']}")
        self.assertIsNone(rule["last_run"])
        code, listed, _ = self.call("GET", "/api/v1/sync")
        self.assertEqual([r["id"] for r in listed["rules"]], [rule["id"]])
        code, changed, _ = self.call("PUT", f"/api/v1/sync/{rule['id']}", {**RULE, "newest": 2, "enabled": False})
        self.assertEqual((code, changed["newest"], changed["enabled"]), (200, 2, False))
        self.assertEqual(self.call("GET", f"/api/v1/sync/{rule['id']}")[1]["newest"], 2)
        self.assertEqual(self.call("DELETE", f"/api/v1/sync/{rule['id']}")[0], 204)
        self.assertEqual(self.call("GET", f"/api/v1/sync/{rule['id']}")[0], 404)
        actions = [e["action"] for e in self.call("GET", "/api/v1/audit?action=sync")[1]["entries"]]
        self.assertEqual(actions, ["sync.delete", "sync.update", "sync.create"])

    def test_bad_rules_are_400(self) -> None:
        for body, text in (
            ({**RULE, "upstream": "nope"}, "no OCI upstream named"),
            ({**RULE, "interval_seconds": 5}, "sync.min_interval_seconds"),
            ({**RULE, "tags": ["[abc]"]}, "tags"),
            ({"maven_repository": "nope", "artifacts": ["a:b"], "interval_seconds": 600}, "maven_repository"),
        ):
            code, error, _ = self.call("POST", "/api/v1/sync", body)
            self.assertEqual(code, 400, body)
            self.assertEqual(error["errors"][0]["code"], "BAD_REQUEST")
            self.assertIn(text, error["errors"][0]["message"])

    def test_min_interval_is_a_setting(self) -> None:
        self.assertEqual(
            self.call("PUT", "/api/v1/config", {"entries": [{"key": "sync.min_interval_seconds", "value": "60"}]})[0],
            200,
        )
        self.assertEqual(self.call("POST", "/api/v1/sync", {**RULE, "interval_seconds": 60})[0], 201)

    def test_admin_only(self) -> None:
        self.assertEqual(self.call("GET", "/api/v1/sync", user="writer")[0], 403)
        self.assertEqual(self.call("POST", "/api/v1/sync", RULE, user="reader")[0], 403)

    def test_run_history_metrics(self) -> None:
        layer = self.upstream.add_blob(b"layer")
        config = self.upstream.add_blob(b"{}")
        self.upstream.add_manifest(
            "library/python",
            "3.12-slim",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}],
            },
        )
        rule_id = self.call("POST", "/api/v1/sync", RULE)[1]["id"]
        self.assertEqual(self.call("POST", "/api/v1/sync/999/run")[0], 404)
        code, run, response = self.call("POST", f"/api/v1/sync/{rule_id}/run")
        self.assertEqual((code, run["status"]), (202, "running"))
        self.assertEqual(header(response, "Location"), f"/api/v1/sync/{rule_id}/runs")
        self.flush()
        runs = self.call("GET", f"/api/v1/sync/{rule_id}/runs")[1]["runs"]
        self.assertEqual(
            [(r["id"], r["status"], r["manifests"], r["blobs"]) for r in runs], [(run["id"], "succeeded", 1, 2)]
        )
        self.assertEqual(self.call("GET", "/api/v1/sync")[1]["rules"][0]["last_run"]["id"], run["id"])
        self.assertEqual(
            self.call("GET", "/api/v1/audit?action=sync.run")[1]["entries"][0]["target"], f"rule {rule_id}"
        )
        text = generate_latest(self.app.metrics.registry)  # what /metrics serves
        self.assertIn(b'harbor_cache_sync_runs_total{status="succeeded"} 1.0', text)
        self.assertIn(b'harbor_cache_sync_fetched_bytes_total{sync="%d"}' % rule_id, text)
