"""The ``Authorization`` header's Basic and Bearer forms, parsed strictly."""

from __future__ import annotations

import base64
import binascii
import re

from twisted.logger import Logger

log = Logger()


# RFC 6750 b64token.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _split_authorization(header: bytes | str | None, scheme: str) -> str | None:
    """The credentials after scheme (case-insensitive), or None."""
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(header, str):
        return None
    given, sep, credentials = header.strip().partition(" ")
    if not sep or given.lower() != scheme:
        return None
    credentials = credentials.strip()
    if not credentials or any(c.isspace() for c in credentials):
        return None
    return credentials


def parse_basic_authorization(header: bytes | str | None) -> tuple[str, str] | None:
    """
    (username, password) from "Basic base64(user:pass)", or None for a
    missing, non-Basic or malformed header.  The password is everything after
    the first ":" (it may hold more colons, or be a JWT); it may be empty,
    the username may not.
    """
    credentials = _split_authorization(header, "basic")
    if credentials is None:
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return None
    return username, password


def parse_bearer_authorization(header: bytes | str | None) -> str | None:
    """The token from "Bearer <token>", or None when absent or malformed."""
    credentials = _split_authorization(header, "bearer")
    if credentials is None or not _BEARER_TOKEN.fullmatch(credentials):
        return None
    return credentials
