"""Repository names and tags, checked with the distribution-spec grammar."""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "is_valid_repository_name", "is_valid_tag"]

MAX_NAME_LENGTH = 255

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def is_valid_repository_name(name: str) -> bool:
    """True for a name such as ``library/nginx`` the spec allows (<= 255 chars)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        return False
    return _NAME_RE.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    """True for a tag such as ``1.25-alpine`` (1-128 chars, no leading ``.`` or ``-``)."""
    if not isinstance(tag, str):
        return False
    return _TAG_RE.fullmatch(tag) is not None
