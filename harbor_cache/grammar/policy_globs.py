"""The globs of hosted-content policies (retention and immutable-tag rules): what a pattern may be.

A pattern is matched with ``fnmatchcase`` against a whole repository name or
tag: ``*`` matches any run of characters (``/`` included, so ``team-a/*``
covers ``team-a/app`` and ``team-a/sub/app``), ``?`` one character.  Brackets
are refused rather than given fnmatch's character-class meaning, so what an
operator writes is what is matched, and a typo is a clear 400 instead of a
rule that silently matches nothing.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

MAX_PATTERN_LENGTH = 255

# The characters of repository names and tags (distribution-spec), plus the two wildcards.
_REPOSITORY_PATTERN = re.compile(r"[a-z0-9._/*?-]+")
_TAG_PATTERN = re.compile(r"[A-Za-z0-9._*?-]+")


class BadPattern(ValueError):
    """A pattern that cannot be a policy glob; the message says why."""


def check_pattern(value: object, field: str, *, tag: bool) -> str:
    """``value`` as a glob of repository names (``tag=False``) or tags; BadPattern saying what is wrong."""
    if not isinstance(value, str) or not value:
        raise BadPattern(f"{field}: expected a non-empty glob string")
    if len(value) > MAX_PATTERN_LENGTH:
        raise BadPattern(f"{field}: a glob is at most {MAX_PATTERN_LENGTH} characters")
    allowed = _TAG_PATTERN if tag else _REPOSITORY_PATTERN
    if not allowed.fullmatch(value):
        what = "tag characters (A-Z a-z 0-9 . _ -)" if tag else "repository-name characters (a-z 0-9 . _ - /)"
        raise BadPattern(f"{field}: {value!r} is not a valid glob: use {what} and the wildcards * and ?")
    return value


def matches(name: str, pattern: str) -> bool:
    """Whether ``name`` matches ``pattern`` (case-sensitively, as a whole)."""
    return fnmatchcase(name, pattern)
