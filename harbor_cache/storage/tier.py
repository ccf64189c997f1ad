"""The local tier's bookkeeping: which committed files this node keeps on disk, least recently used first.

With ``[storage] backend = "s3"`` the bucket holds every committed object
and ``data_dir/blobs`` is a cache of it, bounded by ``local_cache_bytes``.
`LocalTier` only knows digests, sizes and their order of use (in memory,
rebuilt from the files' mtimes at start-up); `Storage` does the unlinks.
Losing a file from the tier loses nothing: the next read fetches it from
the bucket again (`Storage.open_streaming`: streamed while it fills the tier).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class LocalTier:
    def __init__(self, limit: int):
        self.limit = limit
        self.files: OrderedDict[str, int] = OrderedDict()  # digest -> size, least recently used first
        self.bytes = 0

    def load(self, scanned: Iterable[tuple[str, int, float]]) -> None:
        """Start from the files on disk ((digest, size, mtime)): the oldest are the first to go."""
        for digest, size, _ in sorted(scanned, key=lambda f: f[2]):
            self.add(digest, size)

    def add(self, digest: str, size: int) -> None:
        """A file is on the tier now (installed or filled), as the most recently used."""
        old = self.files.pop(digest, None)
        if old is not None:
            self.bytes -= old
        self.files[digest] = size
        self.bytes += size

    def touch(self, digest: str) -> None:
        """A read: the file is the most recently used (unknown digests are ignored)."""
        if digest in self.files:
            self.files.move_to_end(digest)

    def discard(self, digest: str) -> None:
        size = self.files.pop(digest, None)
        if size is not None:
            self.bytes -= size

    def victims(self, keep: set[str]) -> list[tuple[str, int]]:
        """The least recently used files to remove so that the tier fits its limit again, skipping ``keep``.

        A file being read or just installed is in ``keep``: the tier may stay
        above its limit until they are done (the next pass removes them).
        """
        excess = self.bytes - self.limit
        out: list[tuple[str, int]] = []
        if excess <= 0:
            return out
        for digest, size in self.files.items():
            if excess <= 0:
                break
            if digest in keep:
                continue
            out.append((digest, size))
            excess -= size
        return out
