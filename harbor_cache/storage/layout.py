"""The data directory's layout: ``blobs/<algo>/<ab>/<hex>`` for committed content,
``tmp/[<node>/]`` for writes in progress, ``.reserve`` for the bytes given back
when the disk is full; and the operations that move files between them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from twisted.logger import Logger

from harbor_cache.grammar.ranges import UnsatisfiableRange, parse_range
from harbor_cache.storage import disk
from harbor_cache.storage.commits import Commit, CommitHolds, Watch
from harbor_cache.storage.errors import DISK_FULL_ERRNOS, RESERVE_BYTES
from harbor_cache.storage.io import StorageIO
from harbor_cache.storage.reader import GrowingSource, RangeProducer, StoredSource
from harbor_cache.storage.writer import TempBlob

if TYPE_CHECKING:
    from harbor_cache.storage.bucket import Bucket
    from harbor_cache.storage.tier import LocalTier

log = Logger()


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
        # [storage] backend = "s3": the bucket is the store and blobs/ its local tier (`use_bucket`).
        self.bucket: Bucket | None = None
        self.tier: LocalTier | None = None
        #: ``[storage] redirect``: blob GETs of committed content are sent to a presigned URL valid this long
        self.redirect_expiry: int | None = None
        #: digests hosted writes are committing (file in place, row on its way): never unlinked (`commits`)
        self.committing = CommitHolds()
        os.makedirs(self.blob_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)

    def use_bucket(self, bucket: Bucket, local_cache_bytes: int) -> None:
        """Make ``bucket`` the store of committed content and ``blobs/`` a tier of at most ``local_cache_bytes``.

        The tier's order of use starts from the files' mtimes (`load_tier`, at start-up).
        """
        from harbor_cache.storage.tier import LocalTier

        self.bucket = bucket
        self.tier = LocalTier(local_cache_bytes)

    def load_tier(self) -> int:
        """Blocking (start-up, on the I/O pool): the tier's files as they are on disk; returns their bytes."""
        if self.tier is None:
            return 0
        self.tier.load(item for shard in self.blob_shards() for item in self.scan_shard(shard))
        return self.tier.bytes

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
        with self.committing.lock:  # (never between an unlink's "still not held?" and its unlink)
            os.replace(tmp_path, final)
        disk.sync_dir(parent)
        for path in created:
            disk.sync_dir(os.path.dirname(path))

    def commit(self) -> Commit:
        """Holds for one hosted write: ``with storage.commit() as commit:`` around "move into place + write
        the row", ``commit.add(digest)`` before the move (`commits`)."""
        return Commit(self.committing)

    def _unlink_unless_committing(self, digest: str, watch: Watch | None = None) -> bool | None:
        """Blocking (I/O pool): unlink ``digest``'s file unless a hosted write holds it (or did since ``watch``
        began); True when it went, False when it was not there, None when it is being committed (kept, and
        its object too)."""
        with self.committing.lock:
            if self.committing.kept(digest, watch):
                return None
            try:
                os.unlink(self.blob_path(digest))
                return True
            except FileNotFoundError:
                return False

    def new_temp(
        self, total: int | None = None, extra_hashes: tuple[str, ...] = (), *, write_behind: bool = True
    ) -> TempBlob:
        temp = TempBlob(self, total, extra_hashes, write_behind=write_behind)
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

    def holds(self, digest: str) -> bool:
        """Whether committed content whose index row the caller found is there, without fetching it.

        With a bucket the row is the proof (a row is written only once its
        object is complete): a HEAD or a manifest's check of its blobs need
        not fill the tier with the whole file.  On the filesystem: the file.
        """
        return self.bucket is not None or self.stat_blob(digest) is not None

    async def ensure_local(self, digest: str, size: int | None = None) -> bool:
        """Is the committed file on this node's disk (True), fetched from the bucket if need be?

        False: not on disk and (without a bucket, or not in it) nowhere: the
        caller's "row without a file" path (refetch upstream, 404). Raises
        `StorageUnavailable` when the bucket does not answer. Callers check
        `stat_blob` first, so a warm hit costs what it always did.
        """
        if self.stat_blob(digest) is not None:
            if self.tier is not None:
                self.tier.touch(digest)
            return True
        if self.bucket is None:
            return False
        return await self.bucket.fill(self, digest, size)

    async def redirect_url(self, digest: str) -> str | None:
        """A presigned URL of the committed object of ``digest`` when redirects are on, else None.

        The caller has found the index row: a row is only written once its
        object is complete, so the URL is signed without asking the bucket.
        """
        if self.redirect_expiry is None or self.bucket is None:
            return None
        return await self.bucket.presign(digest, self.redirect_expiry)

    def check_writable(self) -> None:
        """Raise `StorageUnavailable` when the last probe found the bucket unreachable (before a cold download)."""
        if self.bucket is not None and self.bucket.reachable is False:
            from harbor_cache.storage.bucket import unavailable

            raise unavailable("commit", Exception("the last probe found the bucket unreachable"))

    async def committed(self, digest: str, path: str, size: int, *, upload: bool = True) -> None:
        """A verified file was just installed at ``path``: upload it to the bucket (before any row names it).

        Then the tier is trimmed to its limit. Raises `StorageUnavailable`
        when the upload failed (the local file stays, as a tier copy).
        """
        if self.tier is None:
            return
        self.tier.add(digest, size)
        if self.bucket is not None and upload:
            await self.bucket.upload(digest, path)
        await self.trim_tier(keep={digest})

    async def trim_tier(self, keep: set[str] = frozenset()) -> int:  # type: ignore[assignment]
        """Remove least recently used files from the tier (never from the bucket) beyond its limit."""
        if self.tier is None:
            return 0
        victims = self.tier.victims(set(keep) | self.digests_being_read() | self.committing.digests())
        if not victims:
            return 0
        for digest, _ in victims:
            self.tier.discard(digest)
        paths = [self.blob_path(d) for d, _ in victims]

        def _unlink() -> None:
            for path in paths:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

        await self.io.run(_unlink)
        return sum(size for _, size in victims)

    def open_stored(self, digest: str, size: int | None = None) -> StoredSource:
        """The committed file of ``digest``, opened now when it is there.

        The descriptor is opened here rather than when the response starts
        streaming, so a tier trim (or any unlink) between the two cannot cut
        the response off: on POSIX an open file outlives its name.  The
        source closes it when garbage-collected if no reader takes it.  A
        file that is gone already gives a source without a descriptor (its
        reader fails, as it always did); `open_local` fills and retries instead.
        """
        try:
            return self._open(digest, size)
        except FileNotFoundError:
            if size is None:
                raise
            source = StoredSource(self.blob_path(digest), size)
            source.readers = self.live_readers
            return source

    def stored_source(self, digest: str, size: int) -> StoredSource:
        """The committed file of ``digest`` as a source that opens it only when a reader starts (no descriptor held:
        for answers kept in memory, whose body is served from memory and the file read only for a Range)."""
        source = StoredSource(self.blob_path(digest), size)
        source.readers = self.live_readers
        return source

    async def open_local(self, digest: str, size: int | None = None) -> StoredSource | None:
        """`ensure_local` and `open_stored` as one step: the opened file, or None when it is nowhere.

        A file trimmed from the tier between the two (the trim unlinks on
        the I/O pool) is filled again once.  Raises `StorageUnavailable`.
        """
        for _ in range(2):
            try:
                return self._open(digest, size)
            except FileNotFoundError:
                pass
            if self.bucket is None or not await self.bucket.fill(self, digest, size):
                return None
        return None

    async def open_streaming(
        self, digest: str, size: int | None = None, range_header: bytes | None = None
    ) -> GrowingSource | None:
        """`open_local` without waiting for the fill: the tier's file, else the bucket's fill of it as it grows
        (`Bucket.stream`: the first byte goes out once the bucket's answer has begun, not once the whole
        object is hashed, durable and installed), or None when it is nowhere.  With the request's
        ``range_header`` naming a part of the object, a tier miss is that part as the bucket's ranged answer
        (`Bucket.open_range`, the fill beside it).  Raises `StorageUnavailable`."""
        try:
            return self._open(digest, size)
        except FileNotFoundError:
            pass
        if self.bucket is None:
            return None
        if range_header is not None and size:
            try:
                wanted = parse_range(range_header, size)
            except UnsatisfiableRange:
                wanted = None  # (answered 416 by the front)
            if wanted is not None and wanted != (0, size - 1):
                ranged = await self.bucket.open_range(self, digest, size, *wanted)
                if ranged is not None:
                    return ranged
        return await self.bucket.stream(self, digest, size)

    def _open(self, digest: str, size: int | None) -> StoredSource:
        if self.tier is not None:
            self.tier.touch(digest)
        path = self.blob_path(digest)
        fd = os.open(path, os.O_RDONLY)
        try:
            if size is None:
                size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        source = StoredSource(path, size, fd)
        source.readers = self.live_readers
        return source

    async def store_bytes(self, data: bytes, expected_digest: str | None = None, commit: Commit | None = None) -> str:
        """Write a small body (manifests, checksums) through the same verify-and-rename path
        (``commit``: a hosted write's holds, `TempBlob.finish`)."""
        temp = self.new_temp(len(data))
        temp.write(data)
        return await temp.finish(expected_digest, commit)

    async def read_bytes(self, digest: str) -> bytes:
        """Read a small committed file (manifests) off the reactor thread."""

        def _read() -> bytes:
            with open(self.blob_path(digest), "rb") as f:
                return f.read()

        if self.tier is not None:
            self.tier.touch(digest)
        try:
            return await self.io.run(_read)
        except FileNotFoundError:
            if self.bucket is None or not await self.ensure_local(digest):
                raise
        return await self.io.run(_read)

    async def delete_blob(self, digest: str, watch: Watch | None = None) -> bool:
        """Remove committed content no row points at any more: the local file, then the bucket's object.

        ``watch``: the caller's `CommitHolds.watch`, begun before it asked the index (`storage.commits`)."""
        found = await self.io.run(self._unlink_unless_committing, digest, watch)
        if found is None:
            return False  # (a push of the same bytes is committing it: its row is on its way)
        if self.tier is not None:
            self.tier.discard(digest)
        if self.bucket is not None:
            if not self.committing.kept(digest, watch):  # (held since the unlink: its object is uploaded again)
                await self._delete_objects([digest])
            return True
        return found

    async def delete_blobs(self, digests: list[str], watch: Watch | None = None) -> None:
        """`delete_blob` for many (eviction's batches): the local files in one trip to the I/O pool, then the objects."""

        def _unlink_all() -> list[str]:
            return [d for d in digests if self._unlink_unless_committing(d, watch) is not None]

        digests = await self.io.run(_unlink_all)  # (less those being committed meanwhile: their rows are on the way)
        if self.tier is not None:
            for d in digests:
                self.tier.discard(d)
        if self.bucket is not None:
            digests = [d for d in digests if not self.committing.kept(d, watch)]  # (held since: uploaded again)
            if digests:
                await self._delete_objects(digests)

    async def remove_orphan_files(self, digests: list[str], cutoff: float, watch: Watch | None = None) -> list[str]:
        """The orphan sweep's unlinks: each file of ``digests`` still older than ``cutoff`` (one renamed in
        since the scan is a new commit) goes, and leaves the tier's byte count and LRU order with it.
        Returns the digests whose files went."""

        def _unlink_old() -> list[str]:
            gone = []
            for digest in digests:
                try:
                    if os.stat(self.blob_path(digest)).st_mtime <= cutoff and self._unlink_unless_committing(
                        digest, watch
                    ):
                        gone.append(digest)
                except FileNotFoundError:
                    pass
            return gone

        gone = await self.io.run(_unlink_old)
        if self.tier is not None:
            for digest in gone:
                self.tier.discard(digest)
        return gone

    async def _delete_objects(self, digests: list[str]) -> None:
        """The bucket's objects of content whose rows are gone; when the bucket does not answer they stay,
        as orphans the reconciler removes later (the delete the caller asked for is done: no row names them)."""
        assert self.bucket is not None
        from harbor_cache.errors import StorageUnavailable

        try:
            await self.bucket.delete(digests)
        except StorageUnavailable:
            log.warn("{count} objects stay in the bucket for the orphan sweep", count=len(digests))

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

    def blob_shards(self) -> list[str]:
        """The shard directories of ``blobs/`` ("sha256/ab"), sorted; blocking (run on the I/O pool).

        A few hundred names whatever the file count: the orphan sweep walks
        one shard at a time from a cursor (`core.operations.orphans`).
        """
        shards: list[str] = []
        with os.scandir(self.blob_dir) as algos:
            for algo in algos:
                if not algo.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(algo.path) as prefixes:
                    shards.extend(f"{algo.name}/{p.name}" for p in prefixes if p.is_dir(follow_symlinks=False))
        return sorted(shards)

    def scan_shard(self, shard: str) -> Iterator[tuple[str, int, float]]:
        """(digest, size, mtime) of each committed file in one shard, as `os.scandir` finds them.

        A generator over an open directory: the caller takes a batch at a time
        (`take`, on the I/O pool), so memory holds one batch, not the shard.
        """
        algo = shard.split("/", 1)[0]
        try:
            listing = os.scandir(os.path.join(self.blob_dir, shard))
        except (FileNotFoundError, NotADirectoryError):
            return
        with listing:
            for item in listing:
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield f"{algo}:{item.name}", st.st_size, st.st_mtime


def take(items: Iterator[tuple[str, int, float]], count: int) -> list[tuple[str, int, float]]:
    """The next ``count`` items of an iterator (fewer at its end); blocking when it reads a directory."""
    return list(itertools.islice(items, count))
