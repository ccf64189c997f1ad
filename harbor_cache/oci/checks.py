"""Checks both halves of ``/v2/`` (the pull front and the hosted front) make on names, digests and scopes."""

from __future__ import annotations

from harbor_cache.errors import DigestInvalid, NameInvalid
from harbor_cache.grammar.digests import InvalidDigest, UnsupportedDigest, parse_digest
from harbor_cache.grammar.names import is_valid_repository_name
from harbor_cache.http.request import HarborRequest


def check_name(name: str) -> None:
    if not is_valid_repository_name(name):
        raise NameInvalid("invalid repository name", {"name": name})


def check_digest(digest: str) -> str:
    try:
        return str(parse_digest(digest))
    except UnsupportedDigest:
        raise DigestInvalid("unsupported digest algorithm", {"digest": digest}) from None
    except InvalidDigest:
        raise DigestInvalid("invalid digest", {"digest": digest}) from None


def scope_name(request: HarborRequest, key: str) -> str:
    """The repository name to check the caller's access (and token scope) against: the name the
    client wrote, which differs from the cache key for containerd's ``?ns=``."""
    return getattr(request, "scope_name", None) or key
