"""Tests for L{harbor_cache.grammar.names}."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.names import is_valid_repository_name, is_valid_tag


class RepositoryNameTests(SynchronousTestCase):
    def test_valid_names(self):
        """Ordinary names, with any depth and the allowed separators, are valid."""
        for name in [
            "nginx",
            "library/nginx",
            "a/b/c/d",
            "my.registry/ns_1/img__x",
            "foo-bar",
            "foo---bar",
            "0",
            "a.b_c__d-e",
        ]:
            self.assertTrue(is_valid_repository_name(name), name)

    def test_invalid_names(self):
        """Uppercase, leading/trailing/doubled separators and odd characters are invalid."""
        for name in [
            "",
            "Nginx",
            "/nginx",
            "nginx/",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a.-b",
            "a___b",
            "a b",
            "a:b",
            "a@b",
            "../etc",
            "a/../b",
            "a/./b",
            "nginx\n",
            ".",
        ]:
            self.assertFalse(is_valid_repository_name(name), repr(name))

    def test_length_limit(self):
        """Names up to 255 characters are valid, longer ones are not."""
        self.assertTrue(is_valid_repository_name("a" * 255))
        self.assertFalse(is_valid_repository_name("a" * 256))
        self.assertFalse(is_valid_repository_name("a/" * 127 + "ab"))

    def test_pathological_input_is_fast(self):
        """A long run of separators does not cause catastrophic backtracking."""
        self.assertFalse(is_valid_repository_name("a" + "-" * 200 + "!"))


class TagTests(SynchronousTestCase):
    def test_valid_tags(self):
        """Tags of letters, digits, '_', '.', '-' starting with a word char are valid."""
        for tag in ["latest", "1.25-alpine", "_x", "V1", "a" * 128, "1_2.3-4"]:
            self.assertTrue(is_valid_tag(tag), tag)

    def test_invalid_tags(self):
        """Empty, too long, leading '.'/'-', or with other characters is invalid."""
        for tag in ["", "a" * 129, ".x", "-x", "a/b", "a:b", "a b", "latest\n", "é"]:
            self.assertFalse(is_valid_tag(tag), repr(tag))
