"""Single byte-range requests, parsed without touching the request.

Modelled on ``twisted.web.static.File``: a Range header we cannot use (absent,
malformed, another unit, several ranges) means "send the whole body with 200";
a well-formed range that starts past the end means 416.  The caller sets
status and headers; this module only does arithmetic.
"""

from __future__ import annotations

import re

__all__ = [
    "UnsatisfiableRange",
    "parse_range",
    "content_range_header",
    "unsatisfied_range_header",
]

_SPEC_RE = re.compile(r"\s*bytes\s*=(.*)", re.IGNORECASE | re.DOTALL)
_RANGE_RE = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")


# A position of 19 digits or more is beyond any body we hold; reading it as this
# keeps the arithmetic exact (and int() of thousands of digits raises).
_BEYOND_ANY_SIZE = 10**18


def _capped(digits: str) -> int | None:
    if not digits:
        return None
    return int(digits) if len(digits) <= 18 else _BEYOND_ANY_SIZE


class UnsatisfiableRange(ValueError):
    """The range does not overlap the body: answer 416 with ``bytes */size``."""


def parse_range(header: str | bytes | None, size: int) -> tuple[int, int] | None:
    """Turn a Range header into an inclusive ``(start, end)`` within ``size`` bytes.

    Accepts ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n``; ``end`` is clamped to
    ``size - 1``.

    @return: the range to send with 206, or L{None} to send the whole body
        with 200 (no header, a malformed one, or more than one range).
    @raise UnsatisfiableRange: when ``start >= size``, or for a zero-length
        suffix (``bytes=-0``) or any suffix of an empty body.
    """
    if header is None:
        return None
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    spec = _SPEC_RE.fullmatch(header)
    if spec is None:
        return None
    ranges = [part for part in spec.group(1).split(",") if part.strip()]
    if len(ranges) != 1:
        return None
    match = _RANGE_RE.fullmatch(ranges[0])
    if match is None:
        return None
    first, last = (_capped(g) for g in match.groups())
    if first is None and last is None:
        return None
    if first is None:
        suffix = last
        assert suffix is not None  # both None returned above
        if suffix == 0 or size <= 0:
            raise UnsatisfiableRange(f"suffix range of {suffix} bytes on {size} bytes")
        return max(0, size - suffix), size - 1
    start = first
    end = last
    if end is not None and end < start:
        # Syntactically invalid per RFC 9110: ignore the header.
        return None
    if start >= size:
        raise UnsatisfiableRange(f"range starts at {start} but size is {size}")
    if end is None or end >= size:
        end = size - 1
    return start, end


def content_range_header(start: int, end: int, size: int) -> str:
    """Content-Range value for a 206: ``bytes start-end/size``."""
    return f"bytes {start}-{end}/{size}"


def unsatisfied_range_header(size: int) -> str:
    """Content-Range value for a 416: ``bytes */size``."""
    return f"bytes */{size}"
