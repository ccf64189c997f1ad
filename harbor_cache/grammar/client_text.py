"""Text a client sends that may reach the index (usernames, filters, list cursors): no control characters.

PostgreSQL refuses NUL in ``text`` (the query fails: a 500 and a critical log
line), a lone surrogate (JSON allows ``"\\ud800"``) cannot be encoded for any
database, and no name, filter or cursor ever legitimately holds a control
character.  Every such string goes through `is_clean_text` where it enters,
and a front answers 400 in the usual error format: the index never sees it,
whichever index is configured.
"""

from __future__ import annotations

import re

__all__ = ["is_clean_text"]

# C0 controls (NUL included), DEL, C1 controls (Unicode category Cc), and surrogates (Cs).
_UNCLEAN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_clean_text(text: str) -> bool:
    """True when ``text`` holds no control character and no lone surrogate."""
    return _UNCLEAN.search(text) is None
