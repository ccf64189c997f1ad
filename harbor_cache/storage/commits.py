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

A hold that is taken and released entirely between a deleter's index check
and its unlink (the push's row written after the check read the index) is
not in the count any more when the unlink runs: a deleter therefore opens a
`Watch` before its index check (``with storage.committing.watch() as
seen:``) and passes it to `Storage`'s unlinks, which skip every digest held
at any moment since (and those held when the watch began).
"""

from __future__ import annotations

import threading
from types import TracebackType


class CommitHolds:
    """Counted digests being committed; read from the I/O pool (membership) and changed on the reactor."""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._watches: list[Watch] = []
        #: taken around a rename into the store and around each "still held? then unlink" on the I/O pool
        self.lock = threading.Lock()

    def __contains__(self, digest: object) -> bool:
        return digest in self._count

    def digests(self) -> set[str]:
        return set(self._count)

    def hold(self, digest: str) -> None:
        self._count[digest] = self._count.get(digest, 0) + 1
        for watch in self._watches:
            watch.seen.add(digest)

    def release(self, digest: str) -> None:
        left = self._count.get(digest, 0) - 1
        if left > 0:
            self._count[digest] = left
        else:
            self._count.pop(digest, None)

    def watch(self) -> Watch:
        """Note every digest held from now on (and those held now) until the watch ends: a deleter's
        index check to its unlink (``with holds.watch() as seen:``)."""
        watch = Watch(self, set(self._count))
        self._watches.append(watch)
        return watch

    def kept(self, digest: str, watch: Watch | None = None) -> bool:
        """Must an unlink leave ``digest``? (held now, or since ``watch`` began)"""
        return digest in self._count or (watch is not None and digest in watch.seen)


class Watch:
    """The digests held at any moment of one deleter's decision (`CommitHolds.watch`)."""

    def __init__(self, holds: CommitHolds, seen: set[str]) -> None:
        self._holds = holds
        self.seen = seen

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self in self._holds._watches:
            self._holds._watches.remove(self)


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
