"""Digests a hosted write is committing: its file moved (or about to move) into ``blobs/``, its row not written yet.

Hosted content is committed file first, row second: an OCI blob upload's
final PUT (or monolithic POST/PUT), a hosted manifest PUT and a Maven deploy
each rename the verified bytes to ``blobs/<digest>`` (and, with a bucket,
upload the object) and only then write the row that names them.  Every
deleter of content goes the other way (row first, then the file) and unlinks
a digest only when no row names it and nobody uses it; between the rename
and the row, a push of bytes whose last row was just evicted, cleared or
collected (or whose file is an orphan candidate) would have no row yet and
so lose its file.  The core therefore holds the digest here from before the
rename until after its row is written (or the write failed):
`Storage.busy`-style checks (`Evictor.busy_digests`, which the orphan sweeps
and eviction consult) see it, and `Storage`'s own unlinks skip it on the I/O
pool under `lock`, which `Storage._install` also takes, so a rename that
came after a deleter's checks is never undone by its unlink.

Holds are counted (two pushes of the same bytes at once) and a `Commit`
releases its own in ``finally`` (``with storage.commit() as commit:``).
"""

from __future__ import annotations

import threading
from types import TracebackType


class CommitHolds:
    """Counted digests being committed; read from the I/O pool (membership) and changed on the reactor."""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        #: taken around a rename into the store and around each "still held? then unlink" on the I/O pool
        self.lock = threading.Lock()

    def __contains__(self, digest: object) -> bool:
        return digest in self._count

    def digests(self) -> set[str]:
        return set(self._count)

    def hold(self, digest: str) -> None:
        self._count[digest] = self._count.get(digest, 0) + 1

    def release(self, digest: str) -> None:
        left = self._count.get(digest, 0) - 1
        if left > 0:
            self._count[digest] = left
        else:
            self._count.pop(digest, None)


class Commit:
    """One write's holds, taken as its digests become known (a Maven deploy's only in `TempBlob.finish`)."""

    def __init__(self, holds: CommitHolds) -> None:
        self._holds = holds
        self._held: list[str] = []

    def add(self, digest: str) -> None:
        """Hold ``digest`` until `release` (before its file is moved into place)."""
        self._holds.hold(digest)
        self._held.append(digest)

    def release(self) -> None:
        """The rows are written (or will not be): the digests are no longer this write's. Idempotent."""
        held, self._held = self._held, []
        for digest in held:
            self._holds.release(digest)

    def __enter__(self) -> Commit:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
