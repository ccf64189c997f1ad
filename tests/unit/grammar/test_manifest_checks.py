"""Tests for L{harbor_cache.grammar.manifest_checks}: the pure checks of a pushed manifest.

The hosted core turns each `ManifestRefused` into 400 MANIFEST_INVALID with the
same message and detail (tests.unit.oci.test_hosted covers that end to end).
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.manifest_checks import (
    PUSHABLE_TYPES,
    ManifestRefused,
    artifact_type,
    check_pushable,
    descriptor_sizes,
    subject_digest,
)
from harbor_cache.grammar.mediatypes import OCI_INDEX, OCI_MANIFEST

DIGEST = "sha256:" + "a" * 64
IMAGE = {
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "b" * 64, "size": 5}],
}


def body(document) -> bytes:
    return json.dumps(document).encode()


class CheckPushableTests(SynchronousTestCase):
    def refused(self, raw: bytes, content_type: str | None) -> ManifestRefused:
        return self.assertRaises(ManifestRefused, check_pushable, raw, content_type)

    def test_an_image_manifest_is_pushable(self):
        media_type, document = check_pushable(body(IMAGE), OCI_MANIFEST + "; charset=utf-8")
        self.assertEqual(media_type, OCI_MANIFEST)
        self.assertEqual(document["layers"][0]["size"], 5)

    def test_refusals_carry_the_error_bodys_message_and_detail(self):
        self.assertEqual(self.refused(b"{", OCI_MANIFEST).message, "manifest is not valid JSON")
        self.assertEqual(self.refused(b"[]", OCI_MANIFEST).message, "manifest is not a JSON object")
        e = self.refused(body(IMAGE), "text/plain")
        self.assertEqual(e.message, "Content-Type is not a manifest type this registry accepts")
        self.assertEqual(e.detail, {"content_type": "text/plain", "accepted": sorted(PUSHABLE_TYPES)})
        e = self.refused(body({**IMAGE, "schemaVersion": 1}), OCI_MANIFEST)
        self.assertEqual((e.message, e.detail), ("schemaVersion must be 2", {"schemaVersion": 1}))
        e = self.refused(body({**IMAGE, "mediaType": OCI_INDEX}), OCI_MANIFEST)
        self.assertEqual(e.message, "mediaType in the body does not match Content-Type")
        no_config = {k: v for k, v in IMAGE.items() if k != "config"}
        self.assertEqual(
            self.refused(body(no_config), OCI_MANIFEST).message, "an image manifest needs a config descriptor"
        )

    def test_a_refusal_is_a_value_error(self):
        self.assertIsInstance(ManifestRefused("x"), ValueError)


class DescriptorTests(SynchronousTestCase):
    def test_sizes_by_digest(self):
        self.assertEqual(descriptor_sizes(IMAGE), {DIGEST: 2, "sha256:" + "b" * 64: 5})

    def test_a_missing_or_negative_size_is_refused(self):
        layers = [{"digest": DIGEST, "size": -1}]
        e = self.assertRaises(ManifestRefused, descriptor_sizes, {**IMAGE, "layers": layers})
        self.assertEqual((e.message, e.detail), ("layers[0]: size must be a non-negative integer", {"size": -1}))

    def test_two_sizes_for_one_digest_are_refused(self):
        layers = [{"digest": DIGEST, "size": 3}]
        e = self.assertRaises(ManifestRefused, descriptor_sizes, {**IMAGE, "layers": layers})
        self.assertEqual((e.message, e.detail), ("layers[0]: two sizes for one digest", {"digest": DIGEST}))

    def test_subject_and_artifact_type(self):
        self.assertIsNone(subject_digest(IMAGE))
        self.assertEqual(subject_digest({"subject": {"digest": DIGEST}}), DIGEST)
        self.assertRaises(ManifestRefused, subject_digest, {"subject": {"digest": "nope"}})
        self.assertEqual(artifact_type(IMAGE), "application/vnd.oci.image.config.v1+json")
        self.assertEqual(artifact_type({**IMAGE, "artifactType": "x/y"}), "x/y")
