"""Decimal numbers from the wire, without surprises.

``str.isdigit`` accepts superscripts and other scripts' digits (``"²"``,
``"٣"``) that ``int`` then refuses or reads unexpectedly, and ``int`` refuses
more than 4300 digits outright: both used to surface as 500s. Every number a
client or an upstream sends goes through `parse_decimal`: ASCII digits only,
at most ``max_digits`` of them (18 keeps every value inside a signed 64-bit
integer, so SQLite and struct packing never overflow either).  A number that
may have a fraction (hours of a token's life) goes through `parse_fraction`:
``float`` would also read ``"５"``, ``"1_0"``, ``"1e3"``, ``"nan"`` and ``"inf"``.
"""

from __future__ import annotations

import re

MAX_DIGITS = 18


def parse_decimal(text: str | None, max_digits: int = MAX_DIGITS) -> int | None:
    """The non-negative integer ``text`` spells in ASCII digits, or None (empty, other characters, too long)."""
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


_FRACTION = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,9})?")


def parse_fraction(text: str | None) -> float | None:
    """The non-negative number ``text`` spells as ASCII digits with an optional ``.fraction``, or None."""
    if not text or not _FRACTION.fullmatch(text):
        return None
    return float(text)
