"""Content digests as the OCI distribution spec writes them.

A digest is ``algorithm ":" encoded``.  The grammar accepts any algorithm
name, but only the algorithms we can actually verify (sha256, sha512) are
usable: a well-formed digest with another algorithm raises
:class:`UnsupportedDigest` so the front can answer ``DIGEST_INVALID`` /
``UNSUPPORTED`` instead of pretending to check it.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = [
    "Digest",
    "InvalidDigest",
    "UnsupportedDigest",
    "SUPPORTED_ALGORITHMS",
    "parse_digest",
    "is_digest_reference",
    "new_hasher",
    "digest_bytes",
]

# distribution-spec: algorithm-component (algorithm-separator algorithm-component)*
# ":" encoded, with algorithm-separator [+._-] and encoded [a-zA-Z0-9=_-]+
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# Registered algorithms: exact length of their lowercase-hex encoding.
SUPPORTED_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[0-9a-f]+")


class InvalidDigest(ValueError):
    """The string is not a digest we can use (bad syntax or bad encoding)."""


class UnsupportedDigest(InvalidDigest):
    """The digest is well formed but names an algorithm we cannot verify."""


class Digest(NamedTuple):
    """A parsed digest; ``str(d)`` gives back the canonical ``alg:hex`` form."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(s: str) -> Digest:
    """Parse ``s`` as a digest of a supported algorithm.

    @raise UnsupportedDigest: well-formed, but the algorithm is not sha256 or
        sha512.
    @raise InvalidDigest: anything else that is not a valid digest, including
        a sha256/sha512 digest whose hex is the wrong length or not lowercase.
    """
    if not isinstance(s, str) or _DIGEST_RE.fullmatch(s) is None:
        raise InvalidDigest(f"invalid digest: {s!r}")
    algorithm, encoded = s.split(":", 1)
    length = SUPPORTED_ALGORITHMS.get(algorithm)
    if length is None:
        raise UnsupportedDigest(f"unsupported digest algorithm: {algorithm!r}")
    if len(encoded) != length or _LOWER_HEX_RE.fullmatch(encoded) is None:
        raise InvalidDigest(f"invalid {algorithm} digest: expected {length} lowercase hex characters")
    return Digest(algorithm, encoded)


def is_digest_reference(ref: str) -> bool:
    """True when a manifest reference must be treated as a digest, not a tag.

    Tags can never contain ``:``, so any reference with one is a digest (and
    must then pass :func:`parse_digest`).
    """
    return ":" in ref


def new_hasher(algorithm: str) -> HASH:
    """Return a fresh hashlib object for a supported algorithm.

    @raise UnsupportedDigest: for any other algorithm name.
    """
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise UnsupportedDigest(f"unsupported digest algorithm: {algorithm!r}")
    return hashlib.new(algorithm)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    """Digest of a small in-memory body (manifests); big bodies hash as they stream."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return Digest(algorithm, hasher.hexdigest())
