"""Content-addressed files on disk, temp files that are hashed as they grow, and
the producers that stream a (possibly still growing) file to an HTTP response.

Layout: ``DATA/blobs/sha256/ab/abcd...`` for committed content and ``DATA/tmp/``
for writes in progress.  A file only ever appears under its digest name by an
atomic rename after its digest has been checked, so a crash leaves at most a
stray temp file, which `Storage.clean_temp` removes at the next start.  The
file is fsynced before that rename and its directory after it, so once the
index row is committed a power loss cannot leave the row pointing at a short
file (cost measured in ``bench/fsync_bench.py``).

Disk writes and hashing run on a thread pool (`ThreadIO`), never on the
reactor: the reactor only queues chunks and is told when they are on disk.
Readers follow the bytes that are on disk and never pass the writer; until the
content is verified they also hold back its last byte, so a client can never
receive a complete-looking body that later turns out to be corrupt.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

# How much a reader moves per read: large enough that per-chunk Python
# overhead stays small, small enough that one read never stalls the reactor.
READ_CHUNK = 1 << 20
# Queued-but-unwritten bytes above which the writer asks its producer to pause.
HIGH_WATER = 8 << 20
LOW_WATER = 2 << 20


class StorageIO(Protocol):
    def run(self, fn: Callable, *args) -> defer.Deferred: ...


class ThreadIO:
    """Runs blocking file work on a thread pool and reports back on the reactor."""

    def __init__(self, reactor, threadpool):
        self._reactor = reactor
        self._pool = threadpool

    def run(self, fn, *args):
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._pool, fn, *args)


class InlineIO:
    """Runs file work synchronously: for unit tests, where determinism beats speed."""

    def run(self, fn, *args):
        return defer.maybeDeferred(fn, *args)


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


def _write_failure(what: str, error: BaseException) -> SourceFailed:
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return StorageFull(f"{what} failed: disk full ({error.strerror})")
    return SourceFailed(f"{what} failed: {error}")


def _sync_file(fd: int) -> None:
    """Make the file's bytes durable (before it is renamed into the store)."""
    os.fsync(fd)


def _sync_dir(path: str) -> None:
    """Make a rename or a new entry in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class GrowingSource:
    """What readers need to know about a file that may still be growing.

    ``available`` bytes are on disk at ``path``; ``total`` is the final size when
    known.  ``verified`` means the file is complete and its digest checked;
    ``failure`` means it never will be.
    """

    def __init__(self, path: str, total: int | None):
        self.path = path
        self.total = total
        self.available = 0
        self.verified = False
        self.failure: Exception | None = None
        self._waiters: list[Callable[[], None]] = []
        # The storage's set of live RangeProducers, so eviction can see what is being read.
        self.readers: set | None = None

    def wait(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) the next time something changes."""
        self._waiters.append(callback)

    def unwait(self, callback: Callable[[], None]) -> None:
        try:
            self._waiters.remove(callback)
        except ValueError:
            pass

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            try:
                w()
            except Exception:
                log.failure("reader wake-up failed")


class StoredSource(GrowingSource):
    """A committed file: complete and verified from the start."""

    def __init__(self, path: str, size: int):
        super().__init__(path, size)
        self.available = size
        self.verified = True


class _Lane:
    """One ordered stream of work over the chunks of a TempBlob (the disk write, or one hash).

    Lanes run on the I/O pool side by side: writing and each hash release the
    GIL, so the slowest of them, not their sum, bounds a cold download.
    """

    def __init__(self, work: Callable[[list[bytes]], None]):
        self.work = work
        self.queue: deque[bytes] = deque()
        self.pending = 0
        self.busy = False

    def idle(self) -> bool:
        return not self.busy and not self.queue


class TempBlob(GrowingSource):
    """A file being written under ``DATA/tmp``, hashed as it grows.

    `write` queues a chunk and returns True when the caller should pause its
    producer (too much queued); `on_drain` is then called once the queue is
    low again.  `finish` waits for the queue, checks the digest and renames
    the file into the store; `abort` throws everything away.
    """

    def __init__(self, storage: Storage, total: int | None, extra_hashes: tuple[str, ...] = (), *,
                 append_to: str | None = None, offset: int = 0, hashers: dict | None = None):
        """A new file under ``DATA/tmp``; or, with ``append_to``, more bytes for an existing file.

        Appending (an upload session's next chunk, `UploadFiles.appender`):
        the file holds ``offset`` bytes already; ``hashers`` are the hash
        states at that offset to continue ({} when this node does not have
        them: the digest is then computed from the file at the end).
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
        self._writer = _Lane(self._write_chunks)
        self._lanes = [self._writer] + [_Lane(self._hash_lane(h)) for h in self._hashers.values()]
        self._high = False
        self._drained: list[defer.Deferred] = []
        self.on_drain: Callable[[], None] | None = None
        self.received = offset
        self.digest: str | None = None
        self.hashes: dict[str, str] = {}
        self.closed = False
        # Called once with the reason when the blob fails (a local write error,
        # a bad digest): the upstream reader uses it to stop the transfer at once.
        self.on_failure: Callable[[Exception], None] | None = None

    @property
    def queued(self) -> int:
        """Bytes received but not yet through every lane (the slowest one counts)."""
        return max(lane.pending for lane in self._lanes)

    def write(self, data: bytes) -> bool:
        if self.closed or self.failure is not None:
            return False
        self.received += len(data)
        for lane in self._lanes:
            lane.queue.append(data)
            lane.pending += len(data)
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

    def _write_chunks(self, chunks: list[bytes]) -> None:
        """Runs on the I/O pool: append to the file."""
        for c in chunks:
            _write_all(self._fd, c)

    @staticmethod
    def _hash_lane(hasher) -> Callable[[list[bytes]], None]:
        def work(chunks: list[bytes]) -> None:
            """Runs on the I/O pool: hashlib releases the GIL for large updates."""
            for c in chunks:
                hasher.update(c)

        return work

    def _lane_done(self, lane: _Lane, n: int) -> None:
        lane.busy = False
        lane.pending -= n
        if self.failure is not None:
            if lane is self._writer:
                self._release_file()
            return
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

    def _lane_failed(self, lane: _Lane, failure) -> None:
        lane.busy = False
        error = _write_failure("write", failure.value)
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

    async def finish(self, expected_digest: str | None = None) -> str:
        """Wait for every byte to reach disk, verify, rename into the store.

        Returns the ``sha256:<hex>`` digest.  Raises `BlobCorrupt` (and aborts)
        when ``expected_digest`` (sha256 or, for Maven, any extra hash given
        as ``algo:hex``) does not match, or when ``total`` was announced and
        a different number of bytes arrived.
        """
        await self._settle_writes()
        fd = self._fd
        try:
            await self._storage.io.run(_sync_file, fd)
        except Exception as e:
            self.abort(_write_failure("flushing to disk", e))
            raise self._failure() from None
        self._fd = -1
        await self._storage.io.run(os.close, fd)
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
        final = self._storage.blob_path(digest)
        try:
            await self._storage.io.run(self._storage._install, self.path, final)
        except Exception as e:
            self.abort(_write_failure("commit", e))
            raise self._failure() from None
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

        def _remove():
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


class Storage:
    """Files under one data directory: ``blobs/`` (committed), ``tmp/`` (in progress)."""

    def __init__(self, root: str, io: StorageIO, node: str | None = None):
        self.root = os.path.abspath(root)
        self.blob_dir = os.path.join(self.root, "blobs")
        # Several nodes on one data directory each write under tmp/<node>, so a
        # starting node's clean_temp never removes another node's work in progress.
        self.tmp_dir = os.path.join(self.root, "tmp") if node is None else os.path.join(self.root, "tmp", node)
        self.io = io
        self.live_readers: set[RangeProducer] = set()
        os.makedirs(self.blob_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)

    def clean_temp(self) -> int:
        """Remove what a previous run left half-written; run once at start-up."""
        removed = 0
        for name in os.listdir(self.tmp_dir):
            try:
                os.unlink(os.path.join(self.tmp_dir, name))
                removed += 1
            except (IsADirectoryError, FileNotFoundError, PermissionError):
                pass
        return removed

    def blob_path(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        if not hexpart or "/" in hexpart or "/" in algo or hexpart.startswith("."):
            raise ValueError(f"not a digest: {digest!r}")
        return os.path.join(self.blob_dir, algo, hexpart[:2], hexpart)

    def _install(self, tmp_path: str, final: str) -> None:
        """Rename a verified (already fsynced) temp file into the store, durably.

        The directory that receives the name is fsynced after the rename, and
        so are the parents of any directory created for it.
        """
        parent = os.path.dirname(final)
        created = []
        walk = parent
        while not os.path.isdir(walk) and walk.startswith(self.blob_dir):
            created.append(walk)
            walk = os.path.dirname(walk)
        os.makedirs(parent, exist_ok=True)
        os.replace(tmp_path, final)
        _sync_dir(parent)
        for path in created:
            _sync_dir(os.path.dirname(path))

    def new_temp(self, total: int | None = None, extra_hashes: tuple[str, ...] = ()) -> TempBlob:
        temp = TempBlob(self, total, extra_hashes)
        temp.readers = self.live_readers
        return temp

    def digests_being_read(self) -> set[str]:
        """Digests of committed files some response is streaming right now (eviction skips them)."""
        prefix = self.blob_dir + os.sep
        found = set()
        for producer in self.live_readers:
            path = producer.source.path
            if path.startswith(prefix):
                algo, _, hexpart = os.path.relpath(path, self.blob_dir).partition(os.sep)
                found.add(f"{algo}:{os.path.basename(hexpart)}")
        return found

    def stat_blob(self, digest: str) -> int | None:
        """Size of the committed file, or None when it is not on disk."""
        try:
            return os.stat(self.blob_path(digest)).st_size
        except (FileNotFoundError, ValueError):
            return None

    def open_stored(self, digest: str, size: int | None = None) -> StoredSource:
        path = self.blob_path(digest)
        if size is None:
            size = os.stat(path).st_size
        source = StoredSource(path, size)
        source.readers = self.live_readers
        return source

    async def store_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        """Write a small body (manifests, checksums) through the same verify-and-rename path."""
        temp = self.new_temp(len(data))
        temp.write(data)
        return await temp.finish(expected_digest)

    async def read_bytes(self, digest: str) -> bytes:
        """Read a small committed file (manifests) off the reactor thread."""

        def _read():
            with open(self.blob_path(digest), "rb") as f:
                return f.read()

        return await self.io.run(_read)

    async def delete_blob(self, digest: str) -> bool:
        def _delete():
            try:
                os.unlink(self.blob_path(digest))
                return True
            except FileNotFoundError:
                return False

        return await self.io.run(_delete)

    def usable(self) -> bool:
        """Can we still write here? (for /health)"""
        return os.access(self.tmp_dir, os.W_OK) and os.access(self.blob_dir, os.W_OK)

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer can still use on the data directory's filesystem."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    # -- the reserve: room for the remedy when the disk is full ----------------

    @property
    def reserve_path(self) -> str:
        return os.path.join(self.root, ".reserve")

    def ensure_reserve(self, size: int = RESERVE_BYTES) -> bool:
        """(Re)create DATA/.reserve; blocking (run on the I/O pool). False when there is no room."""
        try:
            if os.path.getsize(self.reserve_path) >= size:
                return True
        except FileNotFoundError:
            pass
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
            return True
        except OSError as e:
            if e.errno not in DISK_FULL_ERRNOS:
                log.warn("cannot keep {path}: {error}", path=self.reserve_path, error=e)
            try:
                os.unlink(self.reserve_path)
            except FileNotFoundError:
                pass
            return False

    def release_reserve(self) -> bool:
        """Give the reserve's space back (the disk is full); True when there was one."""
        try:
            os.unlink(self.reserve_path)
            return True
        except FileNotFoundError:
            return False

    # -- orphans ------------------------------------------------------------

    def scan_blobs(self) -> list[tuple[str, int, float]]:
        """(digest, size, mtime) of every committed file; blocking (run on the I/O pool)."""
        found = []
        for algo in os.listdir(self.blob_dir):
            algo_dir = os.path.join(self.blob_dir, algo)
            if not os.path.isdir(algo_dir):
                continue
            for prefix in os.listdir(algo_dir):
                prefix_dir = os.path.join(algo_dir, prefix)
                try:
                    names = os.listdir(prefix_dir)
                except NotADirectoryError:
                    continue
                for name in names:
                    try:
                        st = os.stat(os.path.join(prefix_dir, name))
                    except FileNotFoundError:
                        continue
                    found.append((f"{algo}:{name}", st.st_size, st.st_mtime))
        return found


@implementer(IPushProducer)
class RangeProducer:
    """Moves bytes ``[start, end]`` of a source to a consumer, following the writer.

    Only moves bytes: status and headers are the caller's job.  Honours the
    consumer's pause/resume, wakes when the writer appends (no polling),
    closes its file in `stopProducing`.  ``end`` None means "to the end of the
    source, whatever length it turns out to have".

    `done` fires with None when every byte went out, or errbacks with
    `SourceFailed` when the source failed mid-way; in that case the caller
    must make the client see an incomplete body (abort the connection).
    """

    def __init__(self, source: GrowingSource, consumer, start: int = 0, end: int | None = None):
        self.source = source
        self.consumer = consumer
        self.offset = start
        self.end = end
        self.sent = 0
        self.paused = False
        self.stopped = False
        self.consumer_gone = False
        self._fd = -1
        self._pumping = False
        self.done: defer.Deferred = defer.Deferred(lambda d: self.stopProducing())

    def start(self) -> defer.Deferred:
        if self.stopped:
            return self.done
        try:
            self._fd = os.open(self.source.path, os.O_RDONLY)
        except OSError as e:
            src = self.source
            if e.errno == errno.ENOENT and not src.verified and src.failure is None:
                # Joined just as the file is being renamed into the store: its
                # new path is known once the rename is done (or it failed).
                src.wait(self._start_again)
                return self.done
            self._finish(SourceFailed(f"cannot open {src.path}: {e.strerror}"))
            return self.done
        if self.source.readers is not None:
            self.source.readers.add(self)
        self.consumer.registerProducer(self, True)
        self._pump()
        return self.done

    def _limit(self) -> int:
        """How far (exclusive) we may read now."""
        src = self.source
        limit = src.available
        if not src.verified:
            # Hold back the last byte until the digest is checked.
            if src.total is not None:
                limit = min(limit, src.total - 1)
        if self.end is not None:
            limit = min(limit, self.end + 1)
        return limit

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self.paused and not self.stopped:
                src = self.source
                if src.failure is not None:
                    self._finish(SourceFailed(str(src.failure)))
                    return
                target_end = self.end + 1 if self.end is not None else (src.total if src.verified else None)
                if target_end is not None and self.offset >= target_end:
                    self._finish(None)
                    return
                limit = self._limit()
                if self.offset >= limit:
                    if src.verified and self.end is None and src.total is not None and self.offset >= src.total:
                        self._finish(None)
                        return
                    src.wait(self._wake)
                    return
                n = min(READ_CHUNK, limit - self.offset)
                try:
                    data = os.pread(self._fd, n, self.offset)
                except OSError as e:
                    if e.errno == errno.EINTR:
                        continue
                    self._finish(SourceFailed(f"read failed: {e.strerror}"))
                    return
                if not data:
                    self._finish(SourceFailed("file shorter than announced"))
                    return
                self.offset += len(data)
                self.sent += len(data)
                self.consumer.write(data)
        finally:
            self._pumping = False

    def _start_again(self) -> None:
        if not self.stopped:
            self.start()

    def _wake(self) -> None:
        if not self.stopped and not self.paused:
            self._pump()

    def _close(self) -> None:
        self.source.unwait(self._wake)
        self.source.unwait(self._start_again)
        if self.source.readers is not None:
            self.source.readers.discard(self)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _finish(self, error: Exception | None) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._close()
        try:
            self.consumer.unregisterProducer()
        except Exception:
            pass
        if error is None:
            self.done.callback(None)
        else:
            self.done.errback(error)

    # IPushProducer
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The consumer went away (or we were cancelled): stop, close the file.

        ``consumer_gone`` tells the caller that the response cannot be
        finished: the transport calls this just before the request learns
        that its connection is lost.
        """
        if self.stopped:
            return
        self.stopped = True
        self.consumer_gone = True
        self._close()
        if not self.done.called:
            self.done.callback(None)
