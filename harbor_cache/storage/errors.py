"""What can go wrong with stored content."""

from __future__ import annotations

import errno


class BlobCorrupt(Exception):
    """The bytes written do not match the digest they were promised to have."""

    def __init__(self, expected: str, actual: str):
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SourceFailed(Exception):
    """The growing file will never be completed (upstream failure, corruption)."""


class StorageFull(SourceFailed):
    """A write or flush failed because the disk (or the quota) is full."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Bytes kept in DATA/.reserve: given back when the disk is full so that
# deleting rows (which sqlite must journal) can still run; see `release_reserve`.
RESERVE_BYTES = 16 << 20


def write_failure(what: str, error: BaseException | None) -> SourceFailed:
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return StorageFull(f"{what} failed: disk full ({error.strerror})")
    return SourceFailed(f"{what} failed: {error}")
