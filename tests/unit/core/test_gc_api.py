"""POST and GET /api/v1/gc over a whole app: pushes through /v2, collection through the API.

The registry is a `HostedRegistryCase` (sqlite inline, a Clock); the
management API is reached through the same site (``self.api``).  What a client
sees: deleted tags free their layers, tagged images stay whole, a dry run
changes nothing, the history, the audit record, the metrics, bad bodies and
roles, and a manifest PUT racing the collector failing cleanly.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import succeed

from tests.unit.base import HostedRegistryCase, error_code, header, sha256

GRACE = 3600


class GcApiTests(HostedRegistryCase):
    def push(self, name: str, tag: str, layers: list[bytes]) -> tuple[str, list[str]]:
        body = self.image_manifest(name, layers, config=b'{"tag":"%s"}' % tag.encode())
        response, content = self.put_manifest(name, tag, body)
        self.assertEqual(response.code, 201, content)
        digests = [layer["digest"] for layer in json.loads(body)["layers"]] + [json.loads(body)["config"]["digest"]]
        return header(response, "Docker-Content-Digest") or "", digests

    def blob_status(self, name: str, digest: str) -> int:
        response, _ = self.fetch("GET", f"/v2/{name}/blobs/{digest}")
        return response.code

    def test_deleted_tag_frees_layers_and_tagged_images_stay_whole(self) -> None:
        _, kept_blobs = self.push("team/app", "keep", [b"shared", b"kept layer"])
        _, gone_blobs = self.push("team/app", "drop", [b"shared", b"dropped layer"])
        response, _ = self.fetch("DELETE", "/v2/team/app/manifests/drop")
        self.assertEqual(response.code, 202)
        self.clock.advance(GRACE + 1)

        code, dry = self.api("POST", "/api/v1/gc", {"dry_run": True})
        self.assertEqual(code, 200, dry)
        self.assertEqual((dry["dry_run"], dry["manifests"], dry["blobs"]), (True, 1, 2))
        self.assertEqual(self.blob_status("team/app", gone_blobs[1]), 200)

        code, report = self.api("POST", "/api/v1/gc")
        self.assertEqual(code, 200, report)
        self.assertEqual((report["dry_run"], report["manifests"], report["blobs"]), (False, 1, 2))
        self.assertGreater(report["freed_bytes"], len(b"dropped layer"))
        self.assertEqual(report["reason"], "manual")
        self.assertTrue(report["finished_at"].endswith("Z"))
        for digest in (gone_blobs[1], gone_blobs[2]):
            self.assertEqual(self.blob_status("team/app", digest), 404)
        for digest in kept_blobs:
            self.assertEqual(self.blob_status("team/app", digest), 200)
        response, _ = self.fetch("GET", "/v2/team/app/manifests/keep")
        self.assertEqual(response.code, 200)

        code, history = self.api("GET", "/api/v1/gc")
        self.assertEqual(code, 200)
        self.assertEqual([r["dry_run"] for r in history["runs"]], [False, True])
        self.assertEqual(
            (history["grace_seconds"], history["interval_seconds"], history["running"]), (3600, 86400, False)
        )
        _, records = self.successResultOf(self.drive(self.app.index.audit_page(offset=0, limit=10, action="gc")))
        self.assertEqual([(r.action, r.actor) for r in records], [("gc.run", "admin"), ("gc.run", "admin")])
        self.assertEqual(json.loads(records[0].detail)["blobs"], 2)
        self.assertEqual(self.app.metrics.gc_removed.labels("blob")._value.get(), 2)

    def test_untagged_within_grace_stays(self) -> None:
        body = self.image_manifest("team/app", [b"fresh"])
        digest = sha256(body)
        response, _ = self.put_manifest("team/app", digest, body)
        self.assertEqual(response.code, 201)
        self.clock.advance(GRACE - 60)
        code, report = self.api("POST", "/api/v1/gc")
        self.assertEqual((code, report["manifests"], report["blobs"]), (200, 0, 0))
        response, _ = self.fetch("GET", f"/v2/team/app/manifests/{digest}")
        self.assertEqual(response.code, 200)

    def test_bad_body_and_roles(self) -> None:
        code, body = self.api("POST", "/api/v1/gc", {"dry_run": "yes"})
        self.assertEqual((code, body["errors"][0]["code"]), (400, "BAD_REQUEST"))
        code, body = self.api("POST", "/api/v1/gc", b"[1]")
        self.assertEqual((code, body["errors"][0]["code"]), (400, "BAD_REQUEST"))
        for method in ("POST", "GET"):
            code, body = self.api(method, "/api/v1/gc", user="writer")
            self.assertEqual((code, body["errors"][0]["code"]), (403, "DENIED"))
        self.assertEqual(self.api("GET", "/api/v1/gc")[1]["runs"], [])

    def test_manifest_put_racing_the_sweep_fails_cleanly(self) -> None:
        """The blob passes the PUT's checks, then is swept before the PUT's transaction: 400, nothing recorded."""
        layer = self.push_blob("team/app", b"lonely layer")
        config = self.push_blob("team/app", b"{}")
        self.clock.advance(GRACE + 1)
        index = self.app.index
        put = index.put_hosted_manifest

        swept: list[bool] = []

        async def swept_first(**kw: Any) -> Any:
            if not swept:  # the first PUT only
                swept.append(True)
                await self.app.gc.collect()
            return await put(**kw)

        self.patch(index, "put_hosted_manifest", swept_first)
        self.patch(self.app.gc, "_cooperate", lambda: succeed(None))  # the PUT's request runs it inline
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 12}],
            }
        ).encode()
        response, content = self.put_manifest("team/app", "v1", body)
        self.assertEqual(response.code, 400, content)
        self.assertEqual(error_code(content), "MANIFEST_BLOB_UNKNOWN")
        response, _ = self.fetch("GET", "/v2/team/app/manifests/v1")
        self.assertEqual(response.code, 404)
        # The client uploads again and the push goes through.
        self.push_blob("team/app", b"lonely layer")
        self.push_blob("team/app", b"{}")
        response, content = self.put_manifest("team/app", "v1", body)
        self.assertEqual(response.code, 201, content)
