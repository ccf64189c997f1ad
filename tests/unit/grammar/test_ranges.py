"""Tests for L{harbor_cache.grammar.ranges}."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.ranges import (
    UnsatisfiableRange,
    content_range_header,
    parse_range,
    unsatisfied_range_header,
)


class ParseRangeTests(SynchronousTestCase):
    def test_no_header(self):
        """No Range header means the whole body."""
        self.assertIsNone(parse_range(None, 100))

    def test_closed_range(self):
        """bytes=a-b gives the inclusive range (a, b)."""
        self.assertEqual(parse_range("bytes=0-1023", 2048), (0, 1023))

    def test_bytes_header(self):
        """The header may be given as bytes."""
        self.assertEqual(parse_range(b"bytes=10-19", 100), (10, 19))

    def test_single_byte(self):
        """bytes=0-0 selects exactly the first byte."""
        self.assertEqual(parse_range("bytes=0-0", 100), (0, 0))

    def test_end_clamped(self):
        """An end past the body is clamped to size - 1."""
        self.assertEqual(parse_range("bytes=90-500", 100), (90, 99))

    def test_open_range(self):
        """bytes=a- runs to the end of the body."""
        self.assertEqual(parse_range("bytes=40-", 100), (40, 99))

    def test_suffix_range(self):
        """bytes=-n selects the last n bytes."""
        self.assertEqual(parse_range("bytes=-10", 100), (90, 99))

    def test_suffix_longer_than_body(self):
        """A suffix longer than the body selects the whole body as a range."""
        self.assertEqual(parse_range("bytes=-500", 100), (0, 99))

    def test_whitespace_tolerated(self):
        """Spaces around the unit, '=', numbers and '-' are tolerated."""
        self.assertEqual(parse_range(" bytes = 1 - 2 ", 100), (1, 2))

    def test_unit_case_insensitive(self):
        """The bytes unit is matched case-insensitively."""
        self.assertEqual(parse_range("Bytes=1-2", 100), (1, 2))

    def test_trailing_comma(self):
        """Empty list elements are ignored, as static.py does."""
        self.assertEqual(parse_range("bytes=1-2,", 100), (1, 2))

    def test_start_at_size_unsatisfiable(self):
        """A range starting at the size is unsatisfiable."""
        self.assertRaises(UnsatisfiableRange, parse_range, "bytes=100-200", 100)

    def test_start_past_size_unsatisfiable(self):
        """An open range starting past the end is unsatisfiable."""
        self.assertRaises(UnsatisfiableRange, parse_range, "bytes=150-", 100)

    def test_zero_suffix_unsatisfiable(self):
        """bytes=-0 is unsatisfiable."""
        self.assertRaises(UnsatisfiableRange, parse_range, "bytes=-0", 100)

    def test_empty_body_unsatisfiable(self):
        """Any range on an empty body is unsatisfiable."""
        self.assertRaises(UnsatisfiableRange, parse_range, "bytes=0-", 0)
        self.assertRaises(UnsatisfiableRange, parse_range, "bytes=-5", 0)

    def test_unsatisfiable_is_value_error(self):
        """UnsatisfiableRange is a ValueError."""
        self.assertTrue(issubclass(UnsatisfiableRange, ValueError))

    def test_malformed_means_whole_body(self):
        """Malformed headers are ignored: the whole body is served."""
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=5-1",
            "bytes=+1-2",
            "bytes=1_0-20",
            "bytes=-1-5",
            "items=0-10",
            "0-10",
            "bytes=0x10-20",
            b"bytes=\xff-1",
            "bytes=١-٢",
        ]:
            self.assertIsNone(parse_range(header, 100), repr(header))

    def test_multiple_ranges_whole_body(self):
        """Several ranges are not supported: the whole body is served."""
        self.assertIsNone(parse_range("bytes=0-1,5-6", 100))

    def test_multiple_ranges_even_if_unsatisfiable(self):
        """A multi-range header never raises, even when its ranges miss the body."""
        self.assertIsNone(parse_range("bytes=200-300,400-500", 100))

    def test_reversed_range_past_end_ignored(self):
        """A syntactically invalid range (end < start) is ignored, not 416."""
        self.assertIsNone(parse_range("bytes=500-400", 100))


class HeaderTests(SynchronousTestCase):
    def test_content_range(self):
        """Content-Range for a 206 is 'bytes start-end/size'."""
        self.assertEqual(content_range_header(0, 1023, 2048), "bytes 0-1023/2048")

    def test_unsatisfied(self):
        """Content-Range for a 416 is 'bytes */size'."""
        self.assertEqual(unsatisfied_range_header(100), "bytes */100")
