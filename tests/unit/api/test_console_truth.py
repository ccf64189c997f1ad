"""The console's images and cache pages say the truth (issue 29 point 5), on a real app over a fake registry.

* one row per upstream image, whatever key clients reached it by (containerd's ``?ns=docker.io``
  files ``library/test`` under ``docker.io/library/test``; docker with a mirror asks ``library/test``;
  ``library_prefix`` makes ``test`` the same image), with its registry as a field;
* an index's platforms carry their image's size (config + layers) when the platform is cached;
* a blob row names an image that uses it and counts its reads.
"""

from __future__ import annotations

import json
from typing import Any

from harbor_cache.settings.startup import UpstreamConfig
from tests.unit.base import OCI_MANIFEST, OciCacheCase

INDEX = "application/vnd.oci.image.index.v1+json"


class ConsoleTruthTests(OciCacheCase):
    def make_config(self) -> dict[str, Any]:
        hub = UpstreamConfig(
            name="hub", url=self.upstream_url, registry="docker.io", routes=("*",), library_prefix=True
        )
        return {"upstreams": (hub,)}

    def setUp(self) -> None:
        super().setUp()
        self.config = b'{"architecture":"amd64","os":"linux"}'
        self.layer = b"layer bytes " * 100
        self.config_digest = self.upstream.add_blob(self.config)
        self.layer_digest = self.upstream.add_blob(self.layer)
        self.image_doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.config_digest,
                "size": len(self.config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": self.layer_digest,
                    "size": len(self.layer),
                }
            ],
        }
        self.image_body, self.image_digest = self.upstream.add_manifest("library/test", "1", self.image_doc)
        self.add_user("boss", "boss-pw", "admin")
        response, body = self.fetch(
            "POST",
            "/api/v1/auth/login",
            json.dumps({"username": "boss", "password": "boss-pw"}).encode(),
            {"Content-Type": "application/json"},
            user=None,
        )
        self.assertEqual(response.code, 200, body)
        self.bearer = {"Authorization": "Bearer " + json.loads(body)["token"]}

    def api_get(self, path: str) -> Any:
        response, body = self.fetch("GET", path, headers=self.bearer, user=None)
        self.assertEqual(response.code, 200, body)
        return json.loads(body)

    def pull(self, path: str) -> bytes:
        response, body = self.fetch("GET", path, user=None)
        self.assertEqual(response.code, 200, body)
        return body

    def test_one_row_per_upstream_image(self) -> None:
        """Three keys of docker.io's library/test are one row: registry, image, every path, distinct counts."""
        self.pull("/v2/library/test/manifests/1?ns=docker.io")
        self.pull("/v2/library/test/manifests/1")
        self.pull("/v2/test/manifests/1")
        repos = self.api_get("/api/v1/images")["repositories"]
        self.assertEqual(len(repos), 1, repos)
        row = repos[0]
        self.assertEqual((row["registry"], row["image"]), ("docker.io", "library/test"))
        self.assertEqual(row["paths"], ["docker.io/library/test", "library/test", "test"])
        self.assertEqual((row["tag_count"], row["manifest_count"], row["cached"]), (1, 1, True))
        # the row's name is a key its tags can be browsed by
        tags = self.api_get("/api/v1/images/tags?repository=" + row["name"])["tags"]
        self.assertEqual([t["tag"] for t in tags], ["1"])

    def test_platform_rows_carry_the_image_size(self) -> None:
        """A cached platform shows config + layers; one never pulled shows null, and upstream is not asked for it."""
        other, other_digest = self.upstream.add_manifest("library/multi", "arm", {**self.image_doc, "annotations": {}})
        _, amd_digest = self.upstream.add_manifest("library/multi", "amd", self.image_doc)
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": amd_digest,
                    "size": len(self.image_body),
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": other_digest,
                    "size": len(other),
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
            ],
        }
        self.upstream.add_manifest("library/multi", "1", index, INDEX)
        self.pull("/v2/library/multi/manifests/1")
        self.pull("/v2/library/multi/manifests/" + amd_digest)
        before = self.upstream.count("GET", "/manifests/")
        view = self.api_get("/api/v1/images/manifest?repository=library/multi&reference=1")
        sizes = {p["architecture"]: p["image_size"] for p in view["platforms"]}
        self.assertEqual(sizes, {"amd64": len(self.config) + len(self.layer), "arm64": None})
        self.assertEqual(self.upstream.count("GET", "/manifests/"), before)
        image = self.api_get("/api/v1/images/manifest?repository=library/multi&reference=" + amd_digest)
        self.assertEqual(image["image_size"], len(self.config) + len(self.layer))

    def test_blob_rows_name_their_image_and_count_reads(self) -> None:
        """Three clients read a layer: its row names library/test and says 3 hits."""
        self.pull("/v2/library/test/manifests/1")
        for _ in range(3):
            self.assertEqual(self.pull("/v2/library/test/blobs/" + self.layer_digest), self.layer)
        self.successResultOf(self.drive(self.app.access.flush()))
        entries = self.api_get("/api/v1/cache/entries?front=oci")["entries"]
        blob = next(e for e in entries if e["key"] == self.layer_digest)
        self.assertEqual((blob["image"], blob["image_count"], blob["hits"]), ("library/test", 1, 3))
        manifest = next(e for e in entries if e["type"] == "manifest")
        self.assertNotIn("image", manifest)
