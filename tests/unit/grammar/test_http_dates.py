"""Tests for L{harbor_cache.grammar.http_dates}: the same dates Twisted reads and writes, without Twisted."""

from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http

from harbor_cache.grammar.http_dates import format_http_date, parse_http_date

# What clients and upstreams send: the three formats, variants Twisted accepts, and junk.
CORPUS = [
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994",
    "06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Wed, 31 Dec 1969 23:59:59 GMT",
    "Thursday, 01-Jan-70 00:00:00 GMT",
    "Monday, 01-Jan-68 00:00:00 GMT",
    "Tue, 29 Feb 2028 23:59:59 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "sun, 06 nov 1994 08:49:37 gmt",
    "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49 GMT",
    "Sun, 06 Nov 1994 8:9:7 GMT",
    "Sun, xx Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994",
    "Nov 1994",
    "1994",
    "-",
    "a-b-c d",
    "Sun,",
    " ",
    "Sun, 06 Nov 1994 08:49:37 GMT extra words",
    "Sun, 06 Nov 1994 08:49:37 +0000",
    "Sun, 06 Növ 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37 GMT \u2603",
    "Sun, \uff10\uff16 Nov 1994 08:49:37 GMT",
]


def twisted_parse(value: str | None) -> float | None:
    """What the Maven core did before: Twisted's reader, unreadable as None."""
    if not value:
        return None
    try:
        return float(http.stringToDatetime(value.encode("latin-1")))
    except (ValueError, IndexError, KeyError, UnicodeEncodeError):
        return None


class HttpDateTests(SynchronousTestCase):
    def test_reads_as_twisted_reads(self):
        for value in CORPUS:
            self.assertEqual(parse_http_date(value), twisted_parse(value), value)

    def test_known_values(self):
        self.assertEqual(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777.0)
        self.assertEqual(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777.0)
        self.assertEqual(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777.0)
        self.assertIsNone(parse_http_date(None))
        self.assertIsNone(parse_http_date(""))
        self.assertIsNone(parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"))
        self.assertIsNone(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT \u2603"))

    def test_writes_as_twisted_writes(self):
        for seconds in (0, 0.75, 784111777, 951782400.5, 1796300000.25, 253402300799):
            self.assertEqual(format_http_date(seconds), http.datetimeToString(seconds), seconds)
        self.assertEqual(format_http_date(784111777), b"Sun, 06 Nov 1994 08:49:37 GMT")

    def test_a_written_date_reads_back(self):
        for seconds in (0, 784111777, 1796300000):
            self.assertEqual(parse_http_date(format_http_date(seconds).decode()), float(seconds))
