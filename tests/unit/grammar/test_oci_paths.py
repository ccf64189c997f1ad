"""Tests for L{harbor_cache.grammar.oci_paths}."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.oci_paths import V2Route, parse_v2_path

DIGEST = "sha256:" + "a" * 64


class ParseV2PathTests(SynchronousTestCase):
    def test_base(self):
        """The empty path is the API base."""
        self.assertEqual(parse_v2_path(""), V2Route("base", None, None))

    def test_catalog(self):
        """_catalog is the catalog."""
        self.assertEqual(parse_v2_path("_catalog"), V2Route("catalog", None, None))

    def test_token(self):
        """token is the token endpoint."""
        self.assertEqual(parse_v2_path("token"), V2Route("token", None, None))

    def test_manifest_by_tag(self):
        """<name>/manifests/<tag> is a manifest route."""
        self.assertEqual(
            parse_v2_path("library/nginx/manifests/latest"),
            V2Route("manifest", "library/nginx", "latest"),
        )

    def test_manifest_by_digest(self):
        """<name>/manifests/<digest> keeps the digest as the reference."""
        self.assertEqual(parse_v2_path(f"nginx/manifests/{DIGEST}"), V2Route("manifest", "nginx", DIGEST))

    def test_deep_name(self):
        """Names may have any number of segments."""
        self.assertEqual(parse_v2_path("a/b/c/d/manifests/1"), V2Route("manifest", "a/b/c/d", "1"))

    def test_blob(self):
        """<name>/blobs/<digest> is a blob route."""
        self.assertEqual(parse_v2_path(f"library/nginx/blobs/{DIGEST}"), V2Route("blob", "library/nginx", DIGEST))

    def test_upload_start(self):
        """<name>/blobs/uploads/ starts an upload (no session)."""
        self.assertEqual(parse_v2_path("library/nginx/blobs/uploads/"), V2Route("upload", "library/nginx", None))

    def test_upload_start_without_slash(self):
        """<name>/blobs/uploads without the trailing slash also starts an upload."""
        self.assertEqual(parse_v2_path("nginx/blobs/uploads"), V2Route("upload", "nginx", None))

    def test_upload_session(self):
        """<name>/blobs/uploads/<id> addresses an upload session."""
        self.assertEqual(parse_v2_path("nginx/blobs/uploads/abc-123"), V2Route("upload", "nginx", "abc-123"))

    def test_tags(self):
        """<name>/tags/list lists tags."""
        self.assertEqual(parse_v2_path("library/nginx/tags/list"), V2Route("tags", "library/nginx", None))

    def test_referrers(self):
        """<name>/referrers/<digest> lists referrers."""
        self.assertEqual(parse_v2_path(f"nginx/referrers/{DIGEST}"), V2Route("referrers", "nginx", DIGEST))

    def test_marker_inside_name(self):
        """The last marker splits: a name containing 'manifests' still parses."""
        self.assertEqual(parse_v2_path("a/manifests/b/manifests/c"), V2Route("manifest", "a/manifests/b", "c"))
        self.assertEqual(parse_v2_path("blobs/x/blobs/uploads/"), V2Route("upload", "blobs/x", None))
        self.assertEqual(parse_v2_path("tags/list/tags/list"), V2Route("tags", "tags/list", None))

    def test_name_not_validated(self):
        """Invalid names are passed through; names.py judges them."""
        self.assertEqual(parse_v2_path("Bad Name/manifests/x"), V2Route("manifest", "Bad Name", "x"))

    def test_unknown(self):
        """Paths that are no endpoint give None."""
        for path in [
            "nginx",
            "library/nginx",
            "_catalog/",
            "manifests/latest",
            "/manifests/latest",
            "nginx/manifests/",
            "nginx/manifests",
            "nginx/blobs/",
            "nginx/tags",
            "nginx/tags/lists",
            "nginx/referrers/",
            "blobs/uploads/",
            "nginx/blobs/uploads/a/b",
            "nginx/other/x",
        ]:
            self.assertIsNone(parse_v2_path(path), path)

    def test_fields(self):
        """V2Route exposes kind, name and reference by name."""
        route = parse_v2_path("n/blobs/uploads/s")
        self.assertEqual((route.kind, route.name, route.reference), ("upload", "n", "s"))
