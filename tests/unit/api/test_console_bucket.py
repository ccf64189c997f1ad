"""The console over a bucket: an index's platform sizes come from manifests that are only in the bucket
(this node's tier lost them), filled back as the registry paths do, never from the upstream."""

from __future__ import annotations

import os

from tests.unit.api import test_console_truth as truth
from tests.unit.core.test_bucket_core import MemoryBucket

INDEX = "application/vnd.oci.image.index.v1+json"


class ConsoleOverBucketTests(truth.ConsoleTruthTests):
    """(The console truth tests again, over the bucket, plus the fill.)"""

    def setUp(self) -> None:
        super().setUp()
        self.bucket = MemoryBucket()
        self.app.storage.use_bucket(self.bucket, 1 << 30)  # type: ignore[arg-type]

    def test_platform_sizes_fill_from_the_bucket(self) -> None:
        _, amd_digest = self.upstream.add_manifest("library/multi", "amd", self.image_doc)
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {
                    "mediaType": self.image_doc["mediaType"],
                    "digest": amd_digest,
                    "size": len(self.image_body),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
        self.upstream.add_manifest("library/multi", "1", index, INDEX)
        self.pull("/v2/library/multi/manifests/1")
        self.pull("/v2/library/multi/manifests/" + amd_digest)
        os.unlink(self.app.storage.blob_path(amd_digest))  # trimmed from this node's tier ...
        self.app.oci.manifests.discard(amd_digest)  # ... and not in memory (another node, or a restart)
        before = self.upstream.count("GET", "/manifests/")
        view = self.api_get("/api/v1/images/manifest?repository=library/multi&reference=1")
        self.assertEqual(
            [p["image_size"] for p in view["platforms"]], [len(self.config) + len(self.layer)]
        )  # fmt: skip
        self.assertEqual(self.upstream.count("GET", "/manifests/"), before)
        self.assertIsNotNone(self.app.storage.stat_blob(amd_digest))  # filled back
