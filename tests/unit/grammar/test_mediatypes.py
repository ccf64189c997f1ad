"""Tests for L{harbor_cache.grammar.mediatypes}."""

import json

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.mediatypes import (
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1_SIGNED,
    DOCKER_MANIFEST_V2,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    InvalidManifest,
    accepts,
    detect_manifest_media_type,
    manifest_references,
    served_manifest_type,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
D4 = "sha512:" + "4" * 128


def dump(document):
    return json.dumps(document).encode()


class ConstantsTests(SynchronousTestCase):
    def test_values(self):
        """The constants hold the registered media type strings."""
        self.assertEqual(OCI_MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        self.assertEqual(OCI_INDEX, "application/vnd.oci.image.index.v1+json")
        self.assertEqual(DOCKER_MANIFEST_V2, "application/vnd.docker.distribution.manifest.v2+json")
        self.assertEqual(DOCKER_MANIFEST_LIST, "application/vnd.docker.distribution.manifest.list.v2+json")
        self.assertEqual(DOCKER_MANIFEST_V1_SIGNED, "application/vnd.docker.distribution.manifest.v1+prettyjws")
        self.assertEqual(OCI_EMPTY, "application/vnd.oci.empty.v1+json")

    def test_sets(self):
        """Indexes are manifest types; OCI_EMPTY is not a manifest type."""
        self.assertTrue(INDEX_TYPES <= MANIFEST_TYPES)
        self.assertEqual(INDEX_TYPES, {OCI_INDEX, DOCKER_MANIFEST_LIST})
        self.assertNotIn(OCI_EMPTY, MANIFEST_TYPES)
        self.assertIsInstance(MANIFEST_TYPES, frozenset)


class AcceptsTests(SynchronousTestCase):
    def test_absent_header(self):
        """No Accept header accepts everything."""
        self.assertTrue(accepts(None, OCI_MANIFEST))

    def test_empty_header(self):
        """An empty Accept header accepts everything."""
        self.assertTrue(accepts("  ", OCI_MANIFEST))

    def test_exact(self):
        """A listed media type is accepted."""
        self.assertTrue(accepts(OCI_MANIFEST, OCI_MANIFEST))

    def test_not_listed(self):
        """A media type not listed (and no wildcard) is refused."""
        self.assertFalse(accepts(DOCKER_MANIFEST_V2, OCI_INDEX))

    def test_joined_headers(self):
        """Several Accept headers joined with ',' are all considered."""
        header = f"{DOCKER_MANIFEST_V2}, {DOCKER_MANIFEST_LIST},{OCI_INDEX}"
        self.assertTrue(accepts(header, OCI_INDEX))
        self.assertTrue(accepts(header, DOCKER_MANIFEST_LIST))
        self.assertFalse(accepts(header, OCI_MANIFEST))

    def test_star(self):
        """*/* accepts everything."""
        self.assertTrue(accepts("*/*", OCI_MANIFEST))

    def test_type_wildcard(self):
        """application/* accepts application types only."""
        self.assertTrue(accepts("application/*", OCI_MANIFEST))
        self.assertFalse(accepts("text/*", OCI_MANIFEST))

    def test_case_insensitive(self):
        """Media types compare case-insensitively."""
        self.assertTrue(accepts(OCI_MANIFEST.upper(), OCI_MANIFEST))

    def test_q_ignored(self):
        """Non-zero quality values do not matter."""
        self.assertTrue(accepts(f"{OCI_MANIFEST};q=0.1", OCI_MANIFEST))
        self.assertTrue(accepts(f"{OCI_MANIFEST} ; q=0.5 ; foo=bar", OCI_MANIFEST))

    def test_q_zero_refuses(self):
        """q=0 means the type is not acceptable."""
        self.assertFalse(accepts(f"{OCI_MANIFEST};q=0", OCI_MANIFEST))
        self.assertFalse(accepts(f"{OCI_MANIFEST}; q=0.000", OCI_MANIFEST))

    def test_q_zero_beats_wildcard(self):
        """An exact q=0 entry overrides */*."""
        self.assertFalse(accepts(f"*/*, {OCI_MANIFEST};q=0", OCI_MANIFEST))
        self.assertTrue(accepts(f"*/*, {OCI_MANIFEST};q=0", OCI_INDEX))

    def test_wildcard_q_zero(self):
        """*/*;q=0 alone refuses everything."""
        self.assertFalse(accepts("*/*;q=0", OCI_MANIFEST))

    def test_bad_q_is_acceptance(self):
        """An unreadable q value counts as 1."""
        self.assertTrue(accepts(f"{OCI_MANIFEST};q=abc", OCI_MANIFEST))

    def test_media_type_with_params(self):
        """Parameters on the media type being tested are ignored."""
        self.assertTrue(accepts(OCI_MANIFEST, OCI_MANIFEST + "; charset=utf-8"))


class DetectTests(SynchronousTestCase):
    def test_content_type_wins(self):
        """A known manifest Content-Type is used as is."""
        body = dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        self.assertEqual(detect_manifest_media_type(body, DOCKER_MANIFEST_LIST), DOCKER_MANIFEST_LIST)

    def test_content_type_params_stripped(self):
        """Content-Type parameters are dropped before matching."""
        body = dump({"schemaVersion": 2})
        self.assertEqual(detect_manifest_media_type(body, OCI_MANIFEST + "; charset=utf-8"), OCI_MANIFEST)

    def test_generic_content_type_uses_field(self):
        """With a non-manifest Content-Type the body's mediaType is used."""
        body = dump({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_V2, "config": {}, "layers": []})
        self.assertEqual(detect_manifest_media_type(body, "application/json"), DOCKER_MANIFEST_V2)

    def test_no_content_type_uses_field(self):
        """With no Content-Type the body's mediaType is used."""
        body = dump({"mediaType": OCI_INDEX, "manifests": []})
        self.assertEqual(detect_manifest_media_type(body, None), OCI_INDEX)

    def test_infer_index(self):
        """A body with 'manifests' and no mediaType is an OCI index."""
        self.assertEqual(detect_manifest_media_type(dump({"schemaVersion": 2, "manifests": []}), None), OCI_INDEX)

    def test_infer_manifest(self):
        """A body with 'config' and 'layers' and no mediaType is an OCI manifest."""
        body = dump({"schemaVersion": 2, "config": {}, "layers": []})
        self.assertEqual(detect_manifest_media_type(body, None), OCI_MANIFEST)

    def test_infer_v1(self):
        """A schemaVersion 1 body is a signed Docker v1 manifest."""
        body = dump({"schemaVersion": 1, "name": "x", "fsLayers": []})
        self.assertEqual(detect_manifest_media_type(body, ""), DOCKER_MANIFEST_V1_SIGNED)

    def test_unidentifiable(self):
        """A JSON object matching no rule is an invalid manifest."""
        self.assertRaises(InvalidManifest, detect_manifest_media_type, dump({"hello": 1}), None)

    def test_not_json(self):
        """A non-JSON body is an invalid manifest, even with a manifest Content-Type."""
        self.assertRaises(InvalidManifest, detect_manifest_media_type, b"not json", OCI_MANIFEST)

    def test_not_utf8(self):
        """Undecodable bytes are an invalid manifest."""
        self.assertRaises(InvalidManifest, detect_manifest_media_type, b"\xff\xfe\x00{", None)

    def test_not_object(self):
        """A JSON array or scalar is an invalid manifest."""
        self.assertRaises(InvalidManifest, detect_manifest_media_type, b"[]", None)
        self.assertRaises(InvalidManifest, detect_manifest_media_type, b"2", OCI_MANIFEST)

    def test_deep_nesting(self):
        """Pathologically nested JSON is an invalid manifest, not a RecursionError."""
        self.assertRaises(InvalidManifest, detect_manifest_media_type, b"[" * 100000, None)

    def test_invalid_manifest_is_value_error(self):
        """InvalidManifest is a ValueError."""
        self.assertTrue(issubclass(InvalidManifest, ValueError))


class ReferencesTests(SynchronousTestCase):
    def test_image_manifest(self):
        """Config then layers are blobs; there are no children."""
        body = dump(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": D1, "size": 1},
                "layers": [{"digest": D2, "size": 2}, {"digest": D4, "size": 3}],
                "subject": {"digest": D3, "size": 4},
            }
        )
        self.assertEqual(manifest_references(body), ([D1, D2, D4], []))

    def test_index(self):
        """An index's manifests are children; it has no blobs."""
        body = dump({"schemaVersion": 2, "manifests": [{"digest": D1}, {"digest": D2}]})
        self.assertEqual(manifest_references(body), ([], [D1, D2]))

    def test_duplicates_removed(self):
        """A digest repeated among layers is listed once, first position kept."""
        body = dump({"config": {"digest": D1}, "layers": [{"digest": D2}, {"digest": D1}, {"digest": D2}]})
        self.assertEqual(manifest_references(body), ([D1, D2], []))

    def test_schema1(self):
        """A schema 1 manifest's fsLayers blobSums are blobs."""
        body = dump({"schemaVersion": 1, "fsLayers": [{"blobSum": D1}, {"blobSum": D2}, {"blobSum": D1}]})
        self.assertEqual(manifest_references(body), ([D1, D2], []))

    def test_empty_object(self):
        """An object without references has none."""
        self.assertEqual(manifest_references(b"{}"), ([], []))

    def test_bad_json(self):
        """Bad JSON raises InvalidManifest."""
        self.assertRaises(InvalidManifest, manifest_references, b"{")
        self.assertRaises(InvalidManifest, manifest_references, b'"x"')

    def test_layers_not_list(self):
        """'layers' that is not a list raises InvalidManifest."""
        self.assertRaises(InvalidManifest, manifest_references, dump({"layers": {"digest": D1}}))

    def test_descriptor_without_digest(self):
        """A descriptor missing its digest raises InvalidManifest."""
        self.assertRaises(InvalidManifest, manifest_references, dump({"layers": [{"size": 1}]}))
        self.assertRaises(InvalidManifest, manifest_references, dump({"manifests": ["x"]}))
        self.assertRaises(InvalidManifest, manifest_references, dump({"config": "x"}))

    def test_bad_digest(self):
        """A malformed digest (which could become a path) raises InvalidManifest."""
        self.assertRaises(InvalidManifest, manifest_references, dump({"layers": [{"digest": "sha256:../../x"}]}))

    def test_unsupported_digest(self):
        """A digest with an algorithm we cannot verify raises InvalidManifest."""
        self.assertRaises(InvalidManifest, manifest_references, dump({"manifests": [{"digest": "blake3:" + "a" * 64}]}))


class ServedTypeTests(SynchronousTestCase):
    def test_manifest_types_as_they_are(self):
        for media_type in MANIFEST_TYPES:
            self.assertEqual(served_manifest_type(media_type), media_type)

    def test_anything_else_as_octet_stream(self):
        """What an upstream may call a manifest that is no manifest type is never served as that type."""
        for media_type in ("text/html", "application/xml", "image/svg+xml", OCI_EMPTY, "", "TEXT/HTML"):
            self.assertEqual(served_manifest_type(media_type), "application/octet-stream", media_type)
