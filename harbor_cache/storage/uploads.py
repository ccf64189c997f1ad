"""The files of upload sessions, shared by every node: ``DATA/uploads/<session id>``.

A session's bytes live in one file on the shared data directory, so a PATCH
on one node and the next PATCH or the PUT on another continue the same
upload, and a restart loses nothing. Each request opens the file for
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

from harbor_cache.storage import disk
from harbor_cache.storage.errors import BlobCorrupt
from harbor_cache.storage.layout import Storage
from harbor_cache.storage.writer import TempBlob

SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HASH_READ = 1 << 20


class UploadFiles:
    def __init__(self, storage: Storage):
        self.storage = storage
        self.dir = os.path.join(storage.root, "uploads")
        os.makedirs(self.dir, exist_ok=True)

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

    async def remove(self, session_id: str) -> None:
        path = self.path(session_id)

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
