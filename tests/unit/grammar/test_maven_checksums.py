"""Tests for L{harbor_cache.grammar.maven_checksums}: a checksum file's algorithm and digest."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.maven_checksums import parse_checksum
from harbor_cache.grammar.maven_paths import checksum_algorithm

SHA1 = "a9993e364706816aba3e25717850c26c9cd0d89d"


class ChecksumAlgorithmTests(SynchronousTestCase):
    def test_by_extension(self):
        self.assertEqual(checksum_algorithm("g/a/1.0/a-1.0.jar.sha1"), "sha1")
        self.assertEqual(checksum_algorithm("g/a/1.0/a-1.0.jar.md5"), "md5")
        self.assertEqual(checksum_algorithm("g/a/1.0/a-1.0.pom.sha256"), "sha256")
        self.assertEqual(checksum_algorithm("g/a/maven-metadata.xml.sha512"), "sha512")

    def test_other_files_have_none(self):
        self.assertIsNone(checksum_algorithm("g/a/1.0/a-1.0.jar"))
        self.assertIsNone(checksum_algorithm(".sha1"))  # names no file


class ParseChecksumTests(SynchronousTestCase):
    def test_the_first_word_lower_cased(self):
        self.assertEqual(parse_checksum(SHA1.encode(), "sha1"), SHA1)
        self.assertEqual(parse_checksum(SHA1.upper().encode() + b"  a-1.0.jar\n", "sha1"), SHA1)

    def test_none_when_there_is_no_digest(self):
        self.assertIsNone(parse_checksum(b"", "sha1"))
        self.assertIsNone(parse_checksum(b"  \n", "sha1"))
        self.assertIsNone(parse_checksum(SHA1.encode(), "md5"))  # wrong length
        self.assertIsNone(parse_checksum(b"z" * 40, "sha1"))
        self.assertIsNone(parse_checksum(b"\xff" * 40, "sha1"))
