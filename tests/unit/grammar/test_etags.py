"""Tests for L{harbor_cache.grammar.etags}: If-None-Match per RFC 9110, weak comparison."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.etags import ANY, if_none_match_hits, opaque_tag, parse_if_none_match

DIGEST = "sha256:" + "ab" * 32
ETAG = '"%s"' % DIGEST


class ParseIfNoneMatchTests(SynchronousTestCase):
    def test_star(self):
        """``*`` is ANY, alone or (leniently) anywhere in a list."""
        self.assertIs(parse_if_none_match("*"), ANY)
        self.assertIs(parse_if_none_match(' "a", * '), ANY)

    def test_list_of_quoted_tags(self):
        """A list gives the opaque tags in order; weak and strong alike, whitespace and empty elements skipped."""
        self.assertEqual(parse_if_none_match('"a", W/"b",,\t"c" ,'), ["a", "b", "c"])

    def test_comma_inside_quotes_belongs_to_the_tag(self):
        """etagc includes ``,``: the list is split outside quotes only."""
        self.assertEqual(parse_if_none_match('"a, b", "c"'), ["a, b", "c"])

    def test_unquoted_values_are_read_as_their_tag(self):
        """An unquoted element (``sha256:...``, as Docker's registry tolerates) is the tag it spells."""
        self.assertEqual(parse_if_none_match("sha256:x, W/y"), ["sha256:x", "y"])

    def test_unclosed_quote_is_no_tag(self):
        """A quote never closed ends the list: nothing after it is a tag."""
        self.assertEqual(parse_if_none_match('"a", "b'), ["a"])

    def test_bytes_are_latin1(self):
        """Header bytes are read as Latin-1, so obs-text in a tag survives."""
        self.assertEqual(parse_if_none_match(b'"caf\xe9"'), ["caf\xe9"])

    def test_opaque_tag(self):
        """W/ and the quotes are not part of what weak comparison compares."""
        self.assertEqual([opaque_tag(t) for t in ('W/"x"', '"x"', "x", ' "x" ')], ["x"] * 4)


class IfNoneMatchHitsTests(SynchronousTestCase):
    def test_matches(self):
        """Quoted, weak, in a list, unquoted, or ``*``: a hit (304)."""
        for header in (ETAG, "W/" + ETAG, '"other", ' + ETAG, DIGEST, "*", ETAG.encode()):
            self.assertTrue(if_none_match_hits(header, ETAG), header)

    def test_weak_comparison_of_our_weak_tag(self):
        """Our own ETag may be weak: If-None-Match compares weakly either way."""
        self.assertTrue(if_none_match_hits('"x"', 'W/"x"'))

    def test_misses(self):
        """Another tag, an empty header, no header, or no ETag of ours: no hit."""
        for header in ('"other"', "", None, ",", '"%s' % DIGEST):
            self.assertFalse(if_none_match_hits(header, ETAG), header)
        self.assertFalse(if_none_match_hits("*", None))

    def test_a_comma_in_a_quoted_tag_does_not_split_it(self):
        """``"x, <digest>"`` is one tag, not our digest (the OCI front's split on every comma said 304)."""
        self.assertFalse(if_none_match_hits('"x, %s"' % DIGEST, ETAG))

    def test_case_sensitive(self):
        """Opaque tags compare byte for byte; ``w/`` is not the weak prefix."""
        self.assertFalse(if_none_match_hits(ETAG.upper(), ETAG))
        self.assertFalse(if_none_match_hits("w/" + ETAG, ETAG))
