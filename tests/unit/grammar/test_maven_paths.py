"""Tests for L{harbor_cache.grammar.maven_paths}."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.maven_paths import (
    InvalidPath,
    MavenPath,
    checksum_algorithm,
    checksum_base,
    content_type_for,
    is_checksum,
    is_metadata,
    is_mutable,
    is_snapshot,
    normalize_artifact_path,
    normalize_browse_path,
    parent_path,
    split_path,
)

JAR = "org/springframework/spring-core/5.3.21/spring-core-5.3.21.jar"

# Raw (still percent-encoded) artifact paths that must all be refused.
TRAVERSAL_CORPUS = [
    "",
    "/",
    "..",
    ".",
    "../",
    "../etc/passwd",
    "a/../b",
    "a/..",
    "a/../../etc/passwd",
    "./a",
    "a/./b",
    "a/.",
    "a/./",
    "/etc/passwd",
    "//etc/passwd",
    "a//b",
    "a///",
    "a//",
    "%2e%2e/etc/passwd",
    "%2E%2E%2Fetc%2Fpasswd",
    "%2e%2e%2f",
    "..%2f..%2fetc%2fpasswd",
    "a/%2e%2e/b",
    "a/%2e/b",
    "a/.%2e/b",
    "a/%2E.",
    "%2fetc%2fpasswd",
    "a%2f%2fb",
    "%252e%252e/etc",
    "%252e%252e%252fetc",
    "a/%252fb",
    "%25%32%65%25%32%65/x",
    "a\\b",
    "a%5cb",
    "a%5C..%5Cb",
    "..\\..\\windows",
    "a%00b",
    "a/b.jar%00.pom",
    "a\x00b",
    "a%0ab",
    "a%0d%0aSet-Cookie:x",
    "a\tb",
    "a%7fb",
    "a%1fb",
    "%ff%fe/a",
    "a/%c0%ae%c0%ae/b",
]


class ArtifactPathTests(SynchronousTestCase):
    def test_plain_path(self):
        """A normal artifact path comes back unchanged."""
        self.assertEqual(normalize_artifact_path(JAR), JAR)

    def test_decoded_once(self):
        """Percent-encoding is decoded once."""
        self.assertEqual(normalize_artifact_path("org/a%20b/x%2By.jar"), "org/a b/x+y.jar")

    def test_plus_is_not_space(self):
        """'+' in a path is a literal plus, not a space."""
        self.assertEqual(normalize_artifact_path("a/b+c.jar"), "a/b+c.jar")

    def test_utf8(self):
        """Encoded UTF-8 decodes to text."""
        self.assertEqual(normalize_artifact_path("a/%C3%A9.jar"), "a/é.jar")

    def test_trailing_slash_dropped(self):
        """A single trailing slash (a directory) is dropped."""
        self.assertEqual(normalize_artifact_path("org/apache/"), "org/apache")

    def test_dots_inside_names(self):
        """Dots inside names are fine ('.m2', 'a..b', '1.0.'); a segment of dots alone is not ('...')."""
        self.assertEqual(normalize_artifact_path(".m2/a..b/1.0./x"), ".m2/a..b/1.0./x")

    def test_segments_other_servers_read_as_dot_dot(self):
        """';' parameters (Tomcat), trailing dots/spaces (IIS), NFKC dots: all refused, encoded or not."""
        for raw in (
            "a/..;/b",
            "a/..;x=1/b",
            "..;/etc/passwd",
            "a/%2e%2e;/b",
            "a/b;jsessionid=1/c.jar",
            "a/.../b",
            "a/.. /b",
            "a/..%20/b",
            "a/%EF%BC%8E%EF%BC%8E/b",
            "a/\uff0e\uff0e/b",
            "a/. ./b",
        ):
            with self.assertRaises(InvalidPath, msg=repr(raw)):
                normalize_artifact_path(raw)
        with self.assertRaises(InvalidPath):
            normalize_browse_path("a/..;/b")

    def test_length_limits(self):
        """Over 2048 characters: PathTooLong (414); a segment over 255 bytes: InvalidPath."""
        from harbor_cache.grammar.maven_paths import PathTooLong

        with self.assertRaises(PathTooLong):
            normalize_artifact_path("a/" * 1100 + "x.jar")
        with self.assertRaises(InvalidPath):
            normalize_artifact_path("a/" + "b" * 256 + "/x.jar")
        self.assertEqual(normalize_artifact_path("a/" + "b" * 255), "a/" + "b" * 255)

    def test_lone_percent(self):
        """A '%' not followed by two hex digits is an ordinary character."""
        self.assertEqual(normalize_artifact_path("a/100%"), "a/100%")

    def test_traversal_corpus(self):
        """Every path in the traversal corpus raises InvalidPath."""
        for raw in TRAVERSAL_CORPUS:
            with self.assertRaises(InvalidPath, msg=repr(raw)):
                normalize_artifact_path(raw)

    def test_invalid_path_is_value_error(self):
        """InvalidPath is a ValueError."""
        self.assertTrue(issubclass(InvalidPath, ValueError))


class BrowsePathTests(SynchronousTestCase):
    def test_root(self):
        """None, '' and '/' mean the repository root."""
        for raw in (None, "", "/"):
            self.assertEqual(normalize_browse_path(raw), "")

    def test_plain(self):
        """A normal directory path comes back unchanged."""
        self.assertEqual(normalize_browse_path("org/springframework"), "org/springframework")

    def test_trailing_slash(self):
        """A trailing slash is allowed and dropped."""
        self.assertEqual(normalize_browse_path("org/springframework/"), "org/springframework")

    def test_not_decoded_again(self):
        """Already-decoded input is not decoded again: leftover %XX is refused."""
        self.assertRaises(InvalidPath, normalize_browse_path, "%2e%2e")
        self.assertRaises(InvalidPath, normalize_browse_path, "a%2fb")

    def test_decoded_traversal(self):
        """Decoded traversal attempts are refused."""
        for raw in ["..", "../x", "a/../b", "./a", "a/.", "a//b", "/org", "//", "a\\b", "a\x00b", "a\nb"]:
            with self.assertRaises(InvalidPath, msg=repr(raw)):
                normalize_browse_path(raw)

    def test_traversal_corpus_decoded(self):
        """The traversal corpus, decoded once (strict UTF-8), is still refused."""
        from urllib.parse import unquote

        for raw in TRAVERSAL_CORPUS:
            try:
                decoded = unquote(raw, errors="strict")
            except UnicodeDecodeError:
                continue  # the web layer would not hand us these
            if decoded in ("", "/"):
                continue  # these are the root
            with self.assertRaises(InvalidPath, msg=repr(decoded)):
                normalize_browse_path(decoded)


class ContentTypeTests(SynchronousTestCase):
    def test_table(self):
        """Content types follow the kagami table."""
        cases = {
            "a.jar": "application/java-archive",
            "a.pom": "application/xml",
            "maven-metadata.xml": "application/xml",
            "a.jar.sha1": "text/plain",
            "a.jar.sha256": "text/plain",
            "a.jar.sha512": "text/plain",
            "a.jar.md5": "text/plain",
            "a.jar.asc": "application/pgp-signature",
            "a.zip": "application/octet-stream",
            "a.module": "application/octet-stream",
            "noext": "application/octet-stream",
        }
        for name, expected in cases.items():
            self.assertEqual(content_type_for(name), expected, name)

    def test_full_path(self):
        """A full path is typed by its file name."""
        self.assertEqual(content_type_for(JAR), "application/java-archive")

    def test_case_insensitive(self):
        """Extensions match regardless of case."""
        self.assertEqual(content_type_for("A.JAR"), "application/java-archive")


class ClassificationTests(SynchronousTestCase):
    def test_is_checksum(self):
        """.sha1, .sha256, .sha512 and .md5 files are checksums."""
        for path in ["a.jar.sha1", "a.jar.sha256", "a.jar.sha512", "a/b.pom.md5"]:
            self.assertTrue(is_checksum(path), path)
        for path in ["a.jar", "a.jar.asc", "sha1", ""]:
            self.assertFalse(is_checksum(path), path)

    def test_checksum_base(self):
        """checksum_base strips the checksum extension, or gives None."""
        self.assertEqual(checksum_base("a/b.jar.sha1"), "a/b.jar")
        self.assertEqual(checksum_base("a/b.jar.sha256"), "a/b.jar")
        self.assertEqual(checksum_base("a/b.jar.sha512"), "a/b.jar")
        self.assertEqual(checksum_base("a/b.jar.md5"), "a/b.jar")
        self.assertIsNone(checksum_base("a/b.jar"))

    def test_is_metadata(self):
        """maven-metadata.xml and its checksums are metadata at any depth."""
        for path in [
            "maven-metadata.xml",
            "org/a/maven-metadata.xml",
            "org/a/maven-metadata.xml.sha1",
            "org/a/maven-metadata.xml.md5",
        ]:
            self.assertTrue(is_metadata(path), path)
        for path in ["org/a/x-maven-metadata.xml", "org/a/maven-metadata.xml.asc", JAR, ""]:
            self.assertFalse(is_metadata(path), path)

    def test_is_snapshot(self):
        """Paths with a -SNAPSHOT segment are snapshots."""
        self.assertTrue(is_snapshot("org/a/1.0-SNAPSHOT/a-1.0-20240101.000000-1.jar"))
        self.assertTrue(is_snapshot("org/a/1.0-SNAPSHOT"))
        self.assertFalse(is_snapshot(JAR))
        self.assertFalse(is_snapshot("org/a/1.0-snapshot/a.jar"))

    def test_is_mutable(self):
        """Metadata and SNAPSHOT files are mutable; release files are not."""
        self.assertTrue(is_mutable("org/a/maven-metadata.xml"))
        self.assertTrue(is_mutable("org/a/maven-metadata.xml.sha1"))
        self.assertTrue(is_mutable("org/a/1.0-SNAPSHOT/a-1.0-20240101.000000-1.jar"))
        self.assertTrue(is_mutable("org/a/1.0-SNAPSHOT/maven-metadata.xml"))
        self.assertFalse(is_mutable(JAR))
        self.assertFalse(is_mutable(JAR + ".sha1"))


class PathShapeTests(SynchronousTestCase):
    def test_parent_path(self):
        """parent_path is None for the root, '' for top level, else the directory."""
        self.assertIsNone(parent_path(""))
        self.assertEqual(parent_path("org"), "")
        self.assertEqual(parent_path("org/apache"), "org")
        self.assertEqual(parent_path(JAR), "org/springframework/spring-core/5.3.21")

    def test_split_path(self):
        """split_path gives the segments; the root has none."""
        self.assertEqual(split_path(""), [])
        self.assertEqual(split_path("org"), ["org"])
        self.assertEqual(split_path("org/apache/x.jar"), ["org", "apache", "x.jar"])


class MavenPathTests(SynchronousTestCase):
    """`MavenPath` holds what the classifying functions say, computed once at parse time."""

    CORPUS = [
        JAR,
        JAR + ".sha1",
        JAR + ".md5",
        "org/example/lib/maven-metadata.xml",
        "org/example/lib/maven-metadata.xml.sha256",
        "org/example/lib/1.0-SNAPSHOT/lib-1.0-20240101.120000-1.jar",
        "org/example/lib/1.0-SNAPSHOT/maven-metadata.xml.sha512",
        "org/example/lib",
        "org/example/lib/1.0",
        "org/example/lib/1.0/lib-1.0.pom",
        "org/example/lib/1.0/lib-1.0.JAR",
        "a/.sha1",
        "notes",
    ]

    def test_properties_match_the_functions(self):
        for path in self.CORPUS:
            p = MavenPath.of(path)
            self.assertEqual(p.path, path)
            self.assertEqual(p.name, path.rpartition("/")[2])
            self.assertEqual(p.content_type, content_type_for(path), path)
            self.assertEqual(p.checksum_base, checksum_base(path), path)
            self.assertEqual(p.checksum_algorithm, checksum_algorithm(path), path)
            self.assertEqual(p.is_checksum, is_checksum(path), path)
            self.assertEqual(p.metadata, is_metadata(path), path)
            self.assertEqual(p.mutable, is_mutable(path), path)
            self.assertFalse(p.directory_listing(None), path)
            self.assertFalse(p.directory_listing("text/plain"), path)

    def test_directory_listing(self):
        """An HTML answer is a directory's index unless the name has a file extension Maven repositories hold."""
        for html in ("text/html", "Text/HTML; charset=utf-8", "application/xhtml+xml"):
            self.assertTrue(MavenPath.of("org/example/lib").directory_listing(html))
            self.assertTrue(MavenPath.of("org/example/lib/1.0").directory_listing(html))
            self.assertFalse(MavenPath.of(JAR).directory_listing(html))
            self.assertFalse(MavenPath.of("org/example/lib/1.0/lib-1.0.JAR").directory_listing(html))
            self.assertFalse(MavenPath.of("org/example/lib/maven-metadata.xml.sha1").directory_listing(html))
        for other in (None, "", "application/java-archive", "text/plain"):
            self.assertFalse(MavenPath.of("org/example/lib").directory_listing(other))

    def test_parse_validates_as_normalize_artifact_path(self):
        self.assertEqual(MavenPath.parse("org/apache/").path, "org/apache")
        self.assertEqual(MavenPath.parse("org/caf%C3%A9/x.jar").path, "org/café/x.jar")
        for raw in TRAVERSAL_CORPUS:
            self.assertRaises(InvalidPath, MavenPath.parse, raw)

    def test_frozen(self):
        p = MavenPath.of(JAR)
        self.assertRaises(AttributeError, setattr, p, "mutable", True)
        self.assertEqual(p, MavenPath.of(JAR))
