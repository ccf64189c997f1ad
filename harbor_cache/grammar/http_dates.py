"""HTTP dates (RFC 9110 5.6.7): reading If-Modified-Since and Last-Modified, writing Last-Modified.

Twisted's ``http.stringToDatetime``/``datetimeToString`` read and write the
same, but pull the reactor's web stack into a grammar; these follow them
exactly (the three formats a client may send, two-digit years, epoch floor),
so a date reads and prints as it always has.
"""

from __future__ import annotations

import calendar
import time

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS_LOWER = tuple(d.lower() for d in _WEEKDAYS)
_MONTHS_LOWER = tuple(m and m.lower() for m in _MONTHS)
# calendar.mdays: days of each month in a common year (index 0 unused)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def format_http_date(seconds: float) -> bytes:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` for epoch seconds (the Last-Modified header's bytes)."""
    year, month, day, hh, mm, ss, wd, _, _ = time.gmtime(seconds)
    return b"%s, %02d %3s %4d %02d:%02d:%02d GMT" % (
        _WEEKDAYS[wd].encode("ascii"),
        day,
        str(_MONTHS[month]).encode("ascii"),
        year,
        hh,
        mm,
        ss,
    )


def parse_http_date(value: str | None) -> float | None:
    """Epoch seconds of an HTTP date, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return float(_seconds(value.encode("latin-1").decode("ascii")))
    except (ValueError, IndexError, KeyError, UnicodeError):
        return None


def _seconds(text: str) -> int:
    """Twisted's ``stringToDatetime``: RFC 1123, RFC 850 or asctime; ValueError/IndexError when unreadable."""
    parts = text.split()
    if parts[0][0:3].lower() not in _WEEKDAYS_LOWER:
        # The weekday might have been left out.
        try:
            return _seconds("Sun, " + text)
        except ValueError:
            pass
    count = len(parts)
    if (count == 5 or count == 6) and parts[1].isdigit():
        # Sun, 06 Nov 1994 08:49:37 GMT ("GMT" literal, or absent)
        day, month, year, clock = parts[1], parts[2], int(parts[3]), parts[4]
    elif (count == 3 or count == 4) and parts[1].find("-") != -1:
        # Sunday, 06-Nov-94 08:49:37 GMT: a two-digit year
        day, month, short = parts[1].split("-")
        clock = parts[2]
        year = int(short)
        if year < 69:
            year = year + 2000
        elif year < 100:
            year = year + 1900
    elif len(parts) == 5:
        # Sun Nov  6 08:49:37 1994 (asctime)
        day, month, year, clock = parts[2], parts[1], int(parts[4]), parts[3]
    else:
        raise ValueError(f"Unknown datetime format {text!r}")
    month_number = _MONTHS_LOWER.index(month.lower())
    hour, minute, second = map(int, clock.split(":"))
    return _timegm(year, month_number, int(day), hour, minute, second)


def _timegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Seconds since the epoch of a GMT time (years before 1970 are refused, as Twisted does)."""
    if year < 1970:
        raise ValueError("Years prior to 1970 not supported")
    assert 1 <= month <= 12
    days = 365 * (year - 1970) + calendar.leapdays(1970, year)
    for i in range(1, month):
        days = days + _DAYS_IN_MONTH[i]
    if month > 2 and calendar.isleap(year):
        days = days + 1
    days = days + day - 1
    return ((days * 24 + hour) * 60 + minute) * 60 + second
