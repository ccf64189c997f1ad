"""Maven checksum files: the digest a checksum file holds (`maven_paths.checksum_algorithm` names its algorithm)."""

from __future__ import annotations

_HEX_LENGTHS = {"sha1": 40, "md5": 32, "sha256": 64, "sha512": 128}


def parse_checksum(body: bytes, algorithm: str) -> str | None:
    """The lower-case hex digest at the start of a checksum file, or None when there is none."""
    try:
        words = body.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    if not words:
        return None
    first = words[0].lower()
    if len(first) != _HEX_LENGTHS[algorithm] or any(c not in "0123456789abcdef" for c in first):
        return None
    return first
