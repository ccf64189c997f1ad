"""Writers of new content: a temp file under ``DATA/tmp`` that is written and
hashed on the I/O pool as chunks arrive, with backpressure toward its producer."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.storage import disk
from harbor_cache.storage.errors import BlobCorrupt, SourceFailed, StorageFull, write_failure
from harbor_cache.storage.reader import GrowingSource

if TYPE_CHECKING:  # the layout creates temp blobs; a temp blob only names its layout
    from _hashlib import HASH

    from harbor_cache.storage.commits import Commit
    from harbor_cache.storage.layout import Storage

log = Logger()

# Queued-but-unwritten bytes above which the writer asks its producer to pause.
HIGH_WATER = 8 << 20
LOW_WATER = 2 << 20


# How a TempBlob's work is split over the I/O pool. False (the default): one lane writes each
# batch of chunks and then hashes it from the same buffers while they are still in the CPU cache;
# one thread hand-off per batch instead of one per lane. True: the write and each hash in lanes of
# their own, side by side (their sum no longer bounds a download, but every batch wakes every lane).
# One lane cost about 20% less CPU per cold MiB on the 2-core bench machine at no loss of time
# (bench/RESULTS.md, "Cold path, round 2").
PARALLEL_LANES = False


class _Lane:
    """One ordered stream of work over the chunks of a TempBlob (write and hash, or one of them)."""

    def __init__(self, work: Callable[[list[bytes | memoryview]], None]):
        self.work = work
        self.queue: deque[bytes | memoryview] = deque()
        self.pending = 0
        self.busy = False
        self.done = 0  # bytes through this lane since the blob was created

    def idle(self) -> bool:
        return not self.busy and not self.queue


class TempBlob(GrowingSource):
    """A file being written under ``DATA/tmp``, hashed as it grows.

    `write` queues a chunk and returns True when the caller should pause its
    producer (too much queued); `on_drain` is then called once the queue is
    low again.  `finish` waits for the queue, checks the digest and renames
    the file into the store; `abort` throws everything away.
    """

    def __init__(
        self,
        storage: Storage,
        total: int | None,
        extra_hashes: tuple[str, ...] = (),
        *,
        append_to: str | None = None,
        offset: int = 0,
        hashers: dict | None = None,
        write_behind: bool = True,
    ):
        """A new file under ``DATA/tmp``; or, with ``append_to``, more bytes for an existing file.

        Appending (an upload session's next chunk, `UploadFiles.appender`):
        the file holds ``offset`` bytes already; ``hashers`` are the hash
        states at that offset to continue ({} when this node does not have
        them: the digest is then computed from the file at the end).

        ``write_behind``: ask the kernel to start writing every few MiB
        (`disk.start_writeback`), so the fsync in `finish` only waits for the
        last few.  Right where a client waits for that fsync (a push is
        answered once its blob is durable); a download's readers are done
        before the fsync (`complete`), and there the early writeback only
        takes CPU from them while they stream (a cold 200 MiB blob was 4-8%
        faster without it, bench/RESULTS.md "Issue 17.2").
        """
        path = append_to or os.path.join(storage.tmp_dir, uuid.uuid4().hex)
        super().__init__(path, total)
        self._storage = storage
        if append_to is None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            self._hashers = {"sha256": hashlib.sha256()}
            self._hashers.update({name: hashlib.new(name) for name in extra_hashes})
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._hashers = dict(hashers or {})
            self.available = offset
        self._append_offset = None if append_to is None else offset
        # Where the write lane is in the file, and up to where it has asked for writeback (I/O pool only).
        self._file_end = offset
        self._writeback_from = offset
        self._write_behind = write_behind
        if PARALLEL_LANES:
            self._writer = _Lane(self._write_chunks)
            self._lanes = [self._writer] + [_Lane(self._hash_lane(h)) for h in self._hashers.values()]
        else:
            self._writer = _Lane(self._write_and_hash)
            self._lanes = [self._writer]
        self._high = False
        self._drained: list[defer.Deferred] = []
        # (bytes written since creation up to the end of a chunk, its release callback), oldest first
        self._tickets: deque[tuple[int, Callable[[], None]]] = deque()
        self._written = 0
        self.on_drain: Callable[[], None] | None = None
        self.received = offset
        self.digest: str | None = None
        self.hashes: dict[str, str] = {}
        self.closed = False
        # Called once with the reason when the blob fails (a local write error,
        # a bad digest): the upstream reader uses it to stop the transfer at once.
        self.on_failure: Callable[[Exception], None] | None = None
        # With a bucket behind the storage: upload the verified file before `finish` returns
        # (False for a fill of the local tier from the bucket itself).
        self.to_bucket = True

    @property
    def queued(self) -> int:
        """Bytes received but not yet through every lane (the slowest one counts)."""
        return max(lane.pending for lane in self._lanes)

    def write(self, data: bytes | memoryview, release: Callable[[], None] | None = None) -> bool:
        """Queue ``data`` for the file and every hash; True when the producer should pause.

        ``data`` may be a view of a buffer the caller reuses: ``release`` is
        then called once every lane is done with it (never, if the blob
        fails first: the buffer is simply not reused).
        """
        if self.closed or self.failure is not None:
            return False
        n = len(data)
        self.received += n
        self._written += n
        if release is not None:
            self._tickets.append((self._written, release))
        for lane in self._lanes:
            lane.queue.append(data)
            lane.pending += n
            self._kick(lane)
        if self.queued > HIGH_WATER:
            self._high = True
        return self._high

    def _kick(self, lane: _Lane) -> None:
        if lane.busy or not lane.queue or self.failure is not None:
            return
        chunks = list(lane.queue)
        lane.queue.clear()
        lane.busy = True
        n = sum(len(c) for c in chunks)
        d = self._storage.io.run(lane.work, chunks)
        d.addCallbacks(lambda _: self._lane_done(lane, n), lambda f: self._lane_failed(lane, f))

    def _write_chunks(self, chunks: list[bytes | memoryview]) -> None:
        """Runs on the I/O pool: append to the file, starting its writeback every few MiB."""
        for c in chunks:
            disk.write_all(self._fd, c)
            self._file_end += len(c)
        if self._write_behind and self._file_end - self._writeback_from >= disk.WRITEBACK_STEP:
            disk.start_writeback(self._fd, self._writeback_from, self._file_end - self._writeback_from)
            self._writeback_from = self._file_end

    def _write_and_hash(self, chunks: list[bytes | memoryview]) -> None:
        """Runs on the I/O pool: write a batch, then hash it from the same (cache-warm) buffers."""
        self._write_chunks(chunks)
        for hasher in self._hashers.values():
            for c in chunks:
                hasher.update(c)

    @staticmethod
    def _hash_lane(hasher: HASH) -> Callable[[list[bytes | memoryview]], None]:
        def work(chunks: list[bytes | memoryview]) -> None:
            """Runs on the I/O pool: hashlib releases the GIL for large updates."""
            for c in chunks:
                hasher.update(c)

        return work

    def _lane_done(self, lane: _Lane, n: int) -> None:
        lane.busy = False
        lane.pending -= n
        lane.done += n
        if self.failure is not None:
            if lane is self._writer:
                self._release_file()
            return
        tickets = self._tickets
        if tickets:
            through = min(other.done for other in self._lanes)
            while tickets and tickets[0][0] <= through:
                tickets.popleft()[1]()
        self._kick(lane)
        if lane is self._writer:
            self.available += n
            self._changed()
        if self._high and self.queued <= LOW_WATER:
            self._high = False
            if self.on_drain is not None:
                self.on_drain()
        if all(lane.idle() for lane in self._lanes):
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def _lane_failed(self, lane: _Lane, failure: Failure) -> None:
        lane.busy = False
        error = write_failure("write", failure.value)
        if isinstance(error, StorageFull):
            log.warn("writing {path} failed: {error}", path=self.path, error=error)
        else:
            log.failure("writing {path} failed", failure, path=self.path)
        self.abort(error)
        if lane is self._writer:
            self._release_file()

    def _wait_drained(self) -> defer.Deferred:
        if all(lane.idle() for lane in self._lanes):
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drained.append(d)
        return d

    def _failure(self) -> Exception:
        """The failure `abort` recorded (the first one, if several)."""
        assert self.failure is not None
        return self.failure

    async def _settle_writes(self) -> None:
        """Every queued write on disk, then no more writes; raises the failure of any that did not make it."""
        if self.failure is not None:
            raise self.failure
        await self._wait_drained()
        if self.failure is not None:
            raise self.failure
        self.closed = True

    async def finish(self, expected_digest: str | None = None, commit: Commit | None = None) -> str:
        """Wait for every byte, verify, let readers finish (`complete`), make durable, rename into the store.

        Returns the ``sha256:<hex>`` digest.  Raises `BlobCorrupt` (and aborts)
        when ``expected_digest`` (sha256 or, for Maven, any extra hash given
        as ``algo:hex``) does not match, or when ``total`` was announced and
        a different number of bytes arrived.  ``commit`` (a hosted write whose
        digest is known only now: a Maven deploy) holds the digest from before
        the rename until the caller's row is written (`storage.commits`).
        """
        await self._settle_writes()
        self.hashes = {name: h.hexdigest() for name, h in self._hashers.items()}
        digest = "sha256:" + self.hashes["sha256"]
        if self.total is not None and self.available != self.total:
            err = SourceFailed(f"short body: {self.available} of {self.total} bytes")
            self.abort(err)
            raise err
        if expected_digest is not None:
            algo, _, hexpart = expected_digest.partition(":")
            actual = self.hashes.get(algo)
            if actual != hexpart.lower():
                corrupt = BlobCorrupt(expected_digest, f"{algo}:{actual}")
                self.abort(corrupt)
                raise corrupt
        # Every byte is here and matches: readers may send the last one now.  Making the file durable
        # and renaming it into the store are the cache's own business; if they fail, the file only
        # stays out of the store (readers still sending are cut off, as for any failure).
        self.complete = True
        self._changed()
        fd = self._fd
        try:
            await self._storage.io.run(disk.sync_file, fd)
        except Exception as e:
            self.abort(write_failure("flushing to disk", e))
            raise self._failure() from None
        self._fd = -1
        await self._storage.io.run(os.close, fd)
        final = self._storage.blob_path(digest)
        if commit is not None:
            commit.add(digest)  # (before the rename: no unlink takes the file until the caller's row is written)
        try:
            await self._storage.io.run(self._storage._install, self.path, final)
        except Exception as e:
            self.abort(write_failure("commit", e))
            raise self._failure() from None
        if self._storage.tier is not None:
            # The bucket's copy before the caller's row (`Storage.committed`). The readers already have
            # every byte they may send; new ones open the installed file. A failed upload leaves that file
            # as a tier copy (it is not removed: nothing of this blob's own is left to clean up).
            self.path = final
            self._fd = -2
            try:
                await self._storage.committed(digest, final, self.available, upload=self.to_bucket)
            except Exception as e:
                self.abort(e)
                raise
        self.digest = digest
        self.path = final
        self.total = self.available
        self.verified = True
        self._changed()
        return digest

    async def close_append(self) -> int:
        """End one request's appending: every byte on disk, the descriptor closed; returns the file's size.

        The session file stays (it is not renamed: `UploadFiles.commit` does
        that at the end of the upload); no descriptor is held while the
        session waits for its next chunk.
        """
        await self._settle_writes()
        fd, self._fd = self._fd, -2
        await self._storage.io.run(os.close, fd)
        return self.available

    def _release_file(self) -> None:
        """Close and unlink the temp file, once no write is running on it (never close under a writer)."""
        if self._writer.busy or self._fd == -2:
            return
        fd, self._fd = self._fd, -2
        path = self.path
        keep_to = self._append_offset  # an upload session's file: cut back to where this request began

        def _remove() -> None:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                if keep_to is None:
                    os.unlink(path)
                else:
                    os.truncate(path, keep_to)
            except FileNotFoundError:
                pass

        self._storage.io.run(_remove).addErrback(lambda f: log.failure("removing temp file", f))

    def abort(self, reason: Exception) -> None:
        """Give up: readers are told (they abort their connections) and the temp file goes."""
        if self.verified or self.failure is not None:
            return
        self.failure = reason
        self.closed = True
        for lane in self._lanes:
            lane.queue.clear()
        self._tickets.clear()  # a lane may still be reading a buffer: it is never handed back
        self._release_file()
        self._changed()
        hook, self.on_failure = self.on_failure, None
        if hook is not None:
            try:
                hook(reason)
            except Exception:
                log.failure("failure hook of {path}", path=self.path)
        drained, self._drained = self._drained, []
        for d in drained:
            d.callback(None)
        if self.on_drain is not None:  # wake a paused producer: it sees `failure` and stops
            self.on_drain()


class Drainable(Protocol):
    """A write queue that calls ``on_drain`` when it is low again (`TempBlob`; it may also have ``queued``/``failure``)."""

    on_drain: Callable[[], None] | None


def drained(sink: Drainable) -> defer.Deferred[None]:
    """Fires once ``sink``'s write queue is low again, or it failed (a `TempBlob`, or any object with
    ``on_drain``, ``queued`` and ``failure``): the socket feeding it stays paused until then."""
    d: defer.Deferred[None] = defer.Deferred()

    def fire() -> None:
        sink.on_drain = None
        if not d.called:
            d.callback(None)

    sink.on_drain = fire
    if getattr(sink, "queued", None) == 0 or getattr(sink, "failure", None) is not None:
        fire()
    return d
