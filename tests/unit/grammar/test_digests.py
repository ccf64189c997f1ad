"""Tests for L{harbor_cache.grammar.digests}."""

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.digests import (
    Digest,
    InvalidDigest,
    UnsupportedDigest,
    digest_bytes,
    is_digest_reference,
    new_hasher,
    parse_digest,
)

SHA256 = hashlib.sha256(b"hello").hexdigest()
SHA512 = hashlib.sha512(b"hello").hexdigest()


class ParseDigestTests(SynchronousTestCase):
    def test_sha256(self):
        """A sha256 digest with 64 lowercase hex characters parses."""
        self.assertEqual(parse_digest(f"sha256:{SHA256}"), Digest("sha256", SHA256))

    def test_sha512(self):
        """A sha512 digest with 128 lowercase hex characters parses."""
        self.assertEqual(parse_digest(f"sha512:{SHA512}"), Digest("sha512", SHA512))

    def test_str_round_trips(self):
        """str() of a Digest is the canonical algorithm:hex form."""
        text = f"sha256:{SHA256}"
        self.assertEqual(str(parse_digest(text)), text)

    def test_fields(self):
        """A Digest exposes algorithm and hex by name."""
        digest = parse_digest(f"sha256:{SHA256}")
        self.assertEqual((digest.algorithm, digest.hex), ("sha256", SHA256))

    def test_uppercase_hex_invalid(self):
        """Uppercase hex is not the canonical encoding and is rejected."""
        self.assertRaises(InvalidDigest, parse_digest, f"sha256:{SHA256.upper()}")

    def test_uppercase_hex_not_unsupported(self):
        """Bad hex for a known algorithm is invalid, not unsupported."""
        with self.assertRaises(InvalidDigest) as ctx:
            parse_digest(f"sha256:{SHA256.upper()}")
        self.assertNotIsInstance(ctx.exception, UnsupportedDigest)

    def test_short_hex_invalid(self):
        """A sha256 digest with too few hex characters is invalid."""
        self.assertRaises(InvalidDigest, parse_digest, f"sha256:{SHA256[:-1]}")

    def test_long_hex_invalid(self):
        """A sha256 digest with too many hex characters is invalid."""
        self.assertRaises(InvalidDigest, parse_digest, f"sha256:{SHA256}0")

    def test_sha512_length_for_sha256_invalid(self):
        """A sha256 digest carrying a sha512-length encoding is invalid."""
        self.assertRaises(InvalidDigest, parse_digest, f"sha256:{SHA512}")

    def test_non_hex_invalid(self):
        """Characters outside 0-9a-f are rejected for sha256."""
        self.assertRaises(InvalidDigest, parse_digest, "sha256:" + "g" * 64)

    def test_missing_colon_invalid(self):
        """A string without a colon is not a digest."""
        self.assertRaises(InvalidDigest, parse_digest, SHA256)

    def test_empty_invalid(self):
        """The empty string is not a digest."""
        self.assertRaises(InvalidDigest, parse_digest, "")

    def test_empty_parts_invalid(self):
        """An empty algorithm or an empty encoding is invalid."""
        self.assertRaises(InvalidDigest, parse_digest, f":{SHA256}")
        self.assertRaises(InvalidDigest, parse_digest, "sha256:")

    def test_uppercase_algorithm_invalid(self):
        """The grammar only allows lowercase algorithm names."""
        self.assertRaises(InvalidDigest, parse_digest, f"SHA256:{SHA256}")

    def test_whitespace_invalid(self):
        """Surrounding whitespace or a trailing newline is rejected."""
        self.assertRaises(InvalidDigest, parse_digest, f" sha256:{SHA256}")
        self.assertRaises(InvalidDigest, parse_digest, f"sha256:{SHA256}\n")

    def test_path_characters_invalid(self):
        """Slashes and dots in the encoding are rejected (digests become paths)."""
        self.assertRaises(InvalidDigest, parse_digest, "sha256:../../etc/passwd")

    def test_two_colons_invalid(self):
        """Only one colon is allowed."""
        self.assertRaises(InvalidDigest, parse_digest, f"sha256:{SHA256}:x")

    def test_unknown_algorithm_unsupported(self):
        """A well-formed digest with an unknown algorithm is unsupported."""
        self.assertRaises(UnsupportedDigest, parse_digest, "md5:d41d8cd98f00b204e9800998ecf8427e")

    def test_separator_algorithm_unsupported(self):
        """Algorithm names with separators (e.g. multihash+base58) are well formed
        but unsupported."""
        self.assertRaises(
            UnsupportedDigest, parse_digest, "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
        )

    def test_unsupported_is_invalid(self):
        """UnsupportedDigest is an InvalidDigest and a ValueError."""
        self.assertTrue(issubclass(UnsupportedDigest, InvalidDigest))
        self.assertTrue(issubclass(InvalidDigest, ValueError))


class ReferenceTests(SynchronousTestCase):
    def test_digest_reference(self):
        """A reference containing a colon is a digest reference."""
        self.assertTrue(is_digest_reference(f"sha256:{SHA256}"))

    def test_malformed_digest_reference(self):
        """Even a malformed digest with a colon is treated as a digest, not a tag."""
        self.assertTrue(is_digest_reference("sha256:nothex"))

    def test_tag_reference(self):
        """A tag is not a digest reference."""
        self.assertFalse(is_digest_reference("1.25-alpine"))


class HasherTests(SynchronousTestCase):
    def test_sha256_hasher(self):
        """new_hasher('sha256') hashes like hashlib.sha256."""
        hasher = new_hasher("sha256")
        hasher.update(b"hello")
        self.assertEqual(hasher.hexdigest(), SHA256)

    def test_sha512_hasher(self):
        """new_hasher('sha512') hashes like hashlib.sha512."""
        hasher = new_hasher("sha512")
        hasher.update(b"hello")
        self.assertEqual(hasher.hexdigest(), SHA512)

    def test_unknown_hasher(self):
        """new_hasher refuses algorithms we do not support, even if hashlib has them."""
        self.assertRaises(UnsupportedDigest, new_hasher, "md5")

    def test_digest_bytes(self):
        """digest_bytes returns the Digest of an in-memory body."""
        self.assertEqual(digest_bytes(b"hello"), Digest("sha256", SHA256))
        self.assertEqual(digest_bytes(b"hello", "sha512"), Digest("sha512", SHA512))
