"""Tests for L{harbor_cache.upstream.routing}."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.upstream.routing import route_matches, upstream_repository_name


class RouteMatchesTests(SynchronousTestCase):
    def test_star_matches_everything(self):
        """'*' matches single- and multi-segment names."""
        self.assertTrue(route_matches(["*"], "nginx"))
        self.assertTrue(route_matches(["*"], "a/b/c"))

    def test_prefix_glob(self):
        """'ghcr/*' matches names under ghcr/ at any depth, and nothing else."""
        self.assertTrue(route_matches(["ghcr/*"], "ghcr/a/b"))
        self.assertFalse(route_matches(["ghcr/*"], "ghcrx/a"))
        self.assertFalse(route_matches(["ghcr/*"], "ghcr"))

    def test_exact(self):
        """A pattern without wildcards matches only that name."""
        self.assertTrue(route_matches(["library/nginx"], "library/nginx"))
        self.assertFalse(route_matches(["library/nginx"], "library/nginx2"))

    def test_any_of_several(self):
        """A name matches when any pattern does."""
        self.assertTrue(route_matches(["a/*", "b/*"], "b/x"))

    def test_empty_patterns(self):
        """No patterns match nothing."""
        self.assertFalse(route_matches([], "nginx"))

    def test_case_sensitive(self):
        """Matching is case-sensitive on every platform."""
        self.assertFalse(route_matches(["Library/*"], "library/nginx"))

    def test_question_and_class(self):
        """'?' and '[...]' work as in fnmatch."""
        self.assertTrue(route_matches(["img?"], "img1"))
        self.assertTrue(route_matches(["v[0-9]/*"], "v2/x"))


class UpstreamNameTests(SynchronousTestCase):
    def test_single_segment_prefixed(self):
        """A one-segment name gets library/ when the prefix is on."""
        self.assertEqual(upstream_repository_name("nginx", True), "library/nginx")

    def test_prefix_off(self):
        """Without the prefix option, names are unchanged."""
        self.assertEqual(upstream_repository_name("nginx", False), "nginx")

    def test_multi_segment_unchanged(self):
        """Names that already have a namespace are unchanged."""
        self.assertEqual(upstream_repository_name("bitnami/redis", True), "bitnami/redis")
        self.assertEqual(upstream_repository_name("library/nginx", True), "library/nginx")
