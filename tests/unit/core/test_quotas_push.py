"""Quotas through a whole app: the API, pushes refused before their body or at the commit, gauges, audit.

Each push goes over an in-memory transport into the real `HarborSite` (see
tests/unit/oci/test_push_before_body.py): a refusal decided from the headers must be
written before a byte of the body is asked for.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.base import OCI_MANIFEST, error_code, sha256
from tests.unit.oci.test_push_before_body import RELEASE, Wire, head


class QuotaWire(Wire):
    def __init__(self, case: SynchronousTestCase) -> None:
        super().__init__(case)
        case.successResultOf(
            Deferred.fromCoroutine(self.app.index.create_user("admin", "admin-pw", "admin", self.clock.seconds()))
        )
        self.token = self.login("admin", "admin-pw")

    def login(self, user: str, password: str) -> str:
        body = json.dumps({"username": user, "password": password}).encode()
        status, _, answer = self.send(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.case.assertEqual(status, 200, answer)
        return str(json.loads(answer)["token"])

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        raw = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token or self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode() + data
        status, _, answer = self.send(raw)
        return status, (json.loads(answer) if answer else None)

    def quota(self, repositories: str, max_bytes: int, **more: int) -> dict:
        status, body = self.api(
            "POST", "/api/v1/quotas", {"repositories": repositories, "max_bytes": max_bytes, **more}
        )
        self.case.assertEqual(status, 201, body)
        return dict(body)

    def push_blob(self, name: str, data: bytes) -> tuple[int, bytes]:
        path = f"/v2/{name}/blobs/uploads/?digest={sha256(data)}"
        status, _, body = self.send(head("POST", path, f"Content-Length: {len(data)}") + data)
        return status, body

    def push_manifest(self, name: str, tag: str, blobs: list[bytes]) -> tuple[int, bytes]:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(blobs[0]),
                "size": len(blobs[0]),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b), "size": len(b)}
                for b in blobs[1:]
            ],
        }
        data = json.dumps(doc).encode()
        status, _, body = self.send(
            head("PUT", f"/v2/{name}/manifests/{tag}", f"Content-Type: {OCI_MANIFEST}", f"Content-Length: {len(data)}")
            + data
        )
        return status, body

    def audit_actions(self) -> list[tuple[str, str | None]]:
        _, records = self.case.successResultOf(Deferred.fromCoroutine(self.app.index.audit_page(offset=0, limit=50)))
        return [(r.action, r.target) for r in records]


class QuotaApiTests(SynchronousTestCase):
    def test_crud_usage_and_audit(self) -> None:
        w = QuotaWire(self)
        created = w.quota("team-a/*", 1000, max_tags=2)
        self.assertEqual(
            {k: created[k] for k in ("repositories", "max_bytes", "max_tags", "used_bytes", "used_tags")},
            {"repositories": "team-a/*", "max_bytes": 1000, "max_tags": 2, "used_bytes": 0, "used_tags": 0},
        )
        maven = w.quota("maven:releases", 50)
        self.assertIsNone(maven["used_tags"])
        status, listed = w.api("GET", "/api/v1/quotas")
        self.assertEqual((status, [q["id"] for q in listed["quotas"]]), (200, [created["id"], maven["id"]]))
        status, changed = w.api(
            "PUT", f"/api/v1/quotas/{created['id']}", {"repositories": "team-a/*", "max_bytes": 2000}
        )
        self.assertEqual((status, changed["max_bytes"], changed["max_tags"]), (200, 2000, None))
        self.assertEqual(w.api("GET", f"/api/v1/quotas/{created['id']}")[1]["max_bytes"], 2000)
        self.assertEqual(w.api("DELETE", f"/api/v1/quotas/{maven['id']}")[0], 204)
        self.assertEqual(w.api("GET", f"/api/v1/quotas/{maven['id']}")[0], 404)
        self.assertEqual(
            [a for a in w.audit_actions() if a[0].startswith("quota.")],
            [
                ("quota.delete", "maven:releases"),
                ("quota.update", "team-a/*"),
                ("quota.create", "maven:releases"),
                ("quota.create", "team-a/*"),
            ],
        )

    def test_bad_bodies_and_roles(self) -> None:
        w = QuotaWire(self)
        for body in (
            {"repositories": "maven:nope", "max_bytes": 1},
            {"repositories": "Bad Glob", "max_bytes": 1},
            {"repositories": "team/*", "max_bytes": 0},
            {"repositories": "team/*", "max_bytes": 1, "max_tags": -2},
        ):
            status, answer = w.api("POST", "/api/v1/quotas", body)
            self.assertEqual((status, answer["errors"][0]["code"]), (400, "BAD_REQUEST"), body)
        unknown = w.api("POST", "/api/v1/quotas", {"repositories": "maven:nope", "max_bytes": 1})[1]
        self.assertIn("unknown Maven repository id 'nope'", unknown["errors"][0]["message"])
        w.quota("team/*", 5)
        self.assertEqual(w.api("POST", "/api/v1/quotas", {"repositories": "team/*", "max_bytes": 9})[0], 409)
        writer = w.login("writer", "writer-pw")
        for method, path in (("GET", "/api/v1/quotas"), ("POST", "/api/v1/quotas"), ("DELETE", "/api/v1/quotas/1")):
            self.assertEqual(w.api(method, path, {}, token=writer)[0], 403)


class QuotaPushTests(SynchronousTestCase):
    def test_blob_beyond_the_quota_is_denied_unread(self) -> None:
        """A PATCH, POST or PUT whose Content-Length would go beyond: 403 DENIED naming the quota and the
        usage, before the body is read; nothing is kept; another namespace is not limited."""
        w = QuotaWire(self)
        w.quota("team-a/*", 1000)
        status, _ = w.push_blob("team-a/x", b"a" * 600)
        self.assertEqual(status, 201)
        location = (
            w.send(head("POST", "/v2/team-a/y/blobs/uploads/", "Content-Length: 0"))[1]
            .split(b"Location: ")[1]
            .split(b"\r\n")[0]
            .decode()
        )
        for method, path in (
            ("PATCH", location),
            ("PUT", location + "?digest=" + sha256(b"b" * 500)),
            ("POST", "/v2/team-a/z/blobs/uploads/?digest=" + sha256(b"b" * 500)),
        ):
            status, body = w.answered_unread(head(method, path, "Content-Length: 500"))
            self.assertEqual((method, status, error_code(body)), (method, 403, "DENIED"))
            message = json.loads(body)["errors"][0]["message"]
            self.assertIn("quota team-a/*", message)
            self.assertIn("1000 bytes, 600 are used and this push adds 500", message)
        self.assertEqual(w.tmp_files(), [])
        self.assertEqual(w.push_blob("team-b/x", b"b" * 5000)[0], 201)
        # the same layer again, into a sibling repository, adds nothing
        self.assertEqual(w.push_blob("team-a/y", b"a" * 600)[0], 201)
        self.assertIn(("quota.refused", "team-a/z"), w.audit_actions())

    def test_chunked_upload_is_denied_at_the_commit(self) -> None:
        """Chunked PATCHes carry no length: the commit is refused, the session and its file go."""
        w = QuotaWire(self)
        w.quota("team-a/*", 100)
        raw = w.send(head("POST", "/v2/team-a/x/blobs/uploads/", "Content-Length: 0"))[1]
        location = raw.split(b"Location: ")[1].split(b"\r\n")[0].decode()
        data = b"c" * 150
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
        status, _, _ = w.send(head("PATCH", location, "Transfer-Encoding: chunked") + chunked)
        self.assertEqual(status, 202)
        status, _, body = w.send(head("PUT", location + "?digest=" + sha256(data), "Content-Length: 0"))
        self.assertEqual((status, error_code(body)), (403, "DENIED"))
        self.assertEqual(w.tmp_files(), [])
        self.assertIsNone(w.app.storage.stat_blob(sha256(data)))

    def test_manifests_and_tags_count(self) -> None:
        w = QuotaWire(self)
        quota = w.quota("team-a/*", 10_000, max_tags=1)
        for blob in (b"{}", b"layer"):
            self.assertEqual(w.push_blob("team-a/x", blob)[0], 201)
        status, body = w.push_manifest("team-a/x", "v1", [b"{}", b"layer"])
        self.assertEqual(status, 201, body)
        usage = w.api("GET", f"/api/v1/quotas/{quota['id']}")[1]
        self.assertEqual(usage["used_tags"], 1)
        self.assertGreater(usage["used_bytes"], 7)  # the two blobs and the manifest
        self.assertEqual(w.push_manifest("team-a/x", "v1", [b"{}", b"layer"])[0], 201)  # the same tag again
        status, body = w.push_manifest("team-a/x", "v2", [b"{}", b"layer"])
        self.assertEqual((status, error_code(body)), (403, "DENIED"))
        self.assertIn("allows 1 tags and 1 are used", json.loads(body)["errors"][0]["message"])
        status, _ = w.api("PUT", f"/api/v1/quotas/{quota['id']}", {"repositories": "team-a/*", "max_bytes": 10})
        # the same manifest in a sibling repository is counted already; another one is not
        self.assertEqual(w.push_manifest("team-a/y", "v1", [b"{}", b"layer"])[0], 201)
        status, body = w.push_manifest("team-a/y", "v2", [b"{}"])
        self.assertEqual((status, error_code(body)), (403, "DENIED"))
        self.assertIn("quota team-a/* exceeded: it allows 10 bytes", json.loads(body)["errors"][0]["message"])

    def test_maven_deploy_beyond_the_quota_is_403_unread(self) -> None:
        w = QuotaWire(self)
        quota = w.quota("maven:releases", 100)
        status, _, _ = w.send(head("PUT", RELEASE, "Content-Length: 60") + b"j" * 60)
        self.assertEqual(status, 201)
        other = RELEASE.replace("1.0", "2.0")
        status, body = w.answered_unread(head("PUT", other, "Content-Length: 41"))
        self.assertEqual((status, error_code(body)), (403, "DENIED"))
        status, _, body = w.send(
            head("PUT", other, "Transfer-Encoding: chunked") + b"29\r\n" + b"k" * 41 + b"\r\n0\r\n\r\n"
        )
        self.assertEqual(status, 403)
        self.assertEqual(w.tmp_files(), [])
        raw = w.send(head("PUT", other, "Content-Length: 41") + b"k" * 41)
        self.assertIn(
            b"403 quota maven:releases exceeded: it allows 100 bytes, 60 are used and this push adds 41", raw[1]
        )
        self.assertEqual(w.api("GET", f"/api/v1/quotas/{quota['id']}")[1]["used_bytes"], 60)
        self.assertEqual(w.send(head("PUT", other, "Content-Length: 40") + b"k" * 40)[0], 201)

    def test_gauges(self) -> None:
        w = QuotaWire(self)
        quota = w.quota("team-a/*", 1000)
        w.push_blob("team-a/x", b"a" * 10)
        self.successResultOf(w.app.refresh_gauges())
        registry = w.app.metrics.registry
        self.assertEqual(registry.get_sample_value("harbor_cache_quota_used_bytes", {"quota": "team-a/*"}), 10)
        self.assertEqual(registry.get_sample_value("harbor_cache_quota_limit_bytes", {"quota": "team-a/*"}), 1000)
        w.api("DELETE", f"/api/v1/quotas/{quota['id']}")
        self.successResultOf(w.app.refresh_gauges())
        self.assertIsNone(registry.get_sample_value("harbor_cache_quota_used_bytes", {"quota": "team-a/*"}))
