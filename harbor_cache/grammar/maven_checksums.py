"""Maven checksum files: which algorithm a path's extension names, and the digest a checksum file holds."""

from __future__ import annotations

from harbor_cache.grammar.maven_paths import checksum_base

CHECKSUM_ALGORITHMS = {".sha1": "sha1", ".md5": "md5", ".sha256": "sha256", ".sha512": "sha512"}
_HEX_LENGTHS = {"sha1": 40, "md5": 32, "sha256": 64, "sha512": 128}


def checksum_algorithm(path: str) -> str | None:
    """The hashlib name for a checksum file's extension, or None for any other file."""
    for extension, algorithm in CHECKSUM_ALGORITHMS.items():
        if path.endswith(extension) and checksum_base(path) is not None:
            return algorithm
    return None


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
