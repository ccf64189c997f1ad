"""The files of upload sessions: ``DATA/uploads/<session id>``, and with a bucket their chunk objects.

A session's bytes live in one file on the shared data directory, so a PATCH
on one node and the next PATCH or the PUT on another continue the same
upload, and a restart loses nothing.  With ``[storage] backend = "s3"`` the
nodes share no data directory: each accepted chunk is also an object in the
bucket (`upload_chunks.UploadChunks`), a node rebuilds its own file from them
before it continues a session (`restore`), and `sweep_local` removes the files
of sessions that ended on another node. Each request opens the file for
appending and closes it before it answers (`TempBlob.close_append`): an idle
session holds no file descriptor, however many there are.

The digest is computed while the bytes arrive when this node saw every
earlier chunk (the hash state stays in memory, keyed by session and
offset); otherwise it is computed from the file at the end, on the I/O pool.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Awaitable, Callable

from harbor_cache.storage import disk
from harbor_cache.storage.errors import BlobCorrupt
from harbor_cache.storage.layout import Storage
from harbor_cache.storage.upload_chunks import UploadChunks
from harbor_cache.storage.writer import TempBlob

SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HASH_READ = 1 << 20


class UploadFiles:
    def __init__(self, storage: Storage):
        self.storage = storage
        self.dir = os.path.join(storage.root, "uploads")
        os.makedirs(self.dir, exist_ok=True)
        self._chunks: UploadChunks | None = None

    @property
    def chunks(self) -> UploadChunks | None:
        """With ``[storage] backend = "s3"``: every chunk is an object too, so any node continues any session."""
        bucket = self.storage.bucket
        if bucket is None:
            return None
        if self._chunks is None or self._chunks.bucket is not bucket:
            self._chunks = UploadChunks(self.storage, bucket)
        return self._chunks

    def path(self, session_id: str) -> str:
        if not SESSION_ID.match(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return os.path.join(self.dir, session_id)

    async def create(self, session_id: str) -> None:
        path = self.path(session_id)

        def _create() -> None:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

        await self.storage.io.run(_create)

    def appender(self, session_id: str, offset: int, hashers: dict) -> TempBlob:
        """A sink for one request's bytes (``write``/``on_drain``), appended at ``offset``; end with ``close_append``."""
        return TempBlob(self.storage, None, append_to=self.path(session_id), offset=offset, hashers=hashers)

    async def restore(self, session_id: str, size: int) -> int:
        """With a bucket: make this node's file hold the session's ``size`` bytes (fetched chunks); returns bytes fetched.

        Raises `UploadChunksMissing` (the session is lost) or `StorageUnavailable`.
        Without a bucket the shared file is the session: nothing to do.
        """
        chunks = self.chunks
        if chunks is None:
            return 0
        return await chunks.restore(session_id, self.path(session_id), size)

    async def publish(self, session_id: str, offset: int, length: int, *, upload: bool = True) -> None:
        """With a bucket: store the chunk just appended at ``offset`` as its object (before the size is recorded).

        ``upload=False``: this node's file holds it and commits it at once; no object is needed.
        """
        chunks = self.chunks
        if chunks is not None:
            await chunks.publish(session_id, self.path(session_id), offset, length, upload=upload)

    async def forget(self, session_id: str) -> None:
        """The session ended (committed): its chunk objects go (its file was renamed into the store)."""
        chunks = self.chunks
        if chunks is not None:
            await chunks.forget(session_id)

    async def sweep_local(self, idle_before: float, live: Callable[[str], Awaitable[bool]]) -> int:
        """Remove this node's files of sessions untouched since ``idle_before`` that ``live`` says are over.

        With separate data directories a session committed, cancelled or
        expired on another node leaves its file here; returns how many went.
        """

        def _old() -> list[str]:
            found = []
            for name in os.listdir(self.dir):
                try:
                    if SESSION_ID.match(name) and os.stat(os.path.join(self.dir, name)).st_mtime < idle_before:
                        found.append(name)
                except FileNotFoundError:
                    pass
            return found

        removed = 0
        for session_id in await self.storage.io.run(_old):
            if not await live(session_id):
                await self.remove(session_id, chunks=False)
                removed += 1
        return removed

    async def remove(self, session_id: str, *, chunks: bool = True) -> None:
        """The session is over: its file goes, and (``chunks``) its chunk objects."""
        path = self.path(session_id)
        objects = self.chunks
        if objects is not None:
            if chunks:
                await objects.forget(session_id)
            else:
                objects.drop(session_id)

        def _remove() -> None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

        await self.storage.io.run(_remove)

    async def commit(self, session_id: str, expected: str, size: int, sha256_hex: str | None) -> str:
        """Check the whole file against ``expected`` (sha256:...) and move it into the store under its digest.

        ``sha256_hex`` is the digest computed as the bytes arrived, or None
        (read the file). Raises `BlobCorrupt` (the file is removed: the
        session is over either way).
        """
        path = self.path(session_id)

        def _check_and_sync() -> str:
            fd = os.open(path, os.O_RDONLY)
            try:
                actual_size = os.fstat(fd).st_size
                if actual_size != size:
                    raise BlobCorrupt(expected, f"{actual_size} bytes on disk, {size} recorded")
                hexdigest = sha256_hex
                if hexdigest is None:
                    h = hashlib.sha256()
                    while chunk := os.read(fd, HASH_READ):
                        h.update(chunk)
                    hexdigest = h.hexdigest()
                disk.sync_file(fd)
                return "sha256:" + hexdigest
            finally:
                os.close(fd)

        try:
            digest = await self.storage.io.run(_check_and_sync)
            if digest != expected:
                raise BlobCorrupt(expected, digest)
        except BaseException:
            await self.remove(session_id)
            raise
        final = self.storage.blob_path(digest)
        await self.storage.io.run(self.storage._install, path, final)
        await self.storage.committed(digest, final, size)  # the bucket's copy before the caller's row
        return digest
