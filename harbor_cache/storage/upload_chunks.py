"""Upload sessions' bytes in the bucket (``[storage] backend = "s3"``): one object per accepted chunk.

Nodes that share no data directory must continue each other's chunked
pushes (a PATCH on one node, the next PATCH or the PUT on another).  So
every chunk a node accepts is also stored as the object
``<prefix>uploads/<session>/<offset>`` (its bytes ``[offset, offset +
length)`` of the session), and the session's size in the index moves past
it only once that object is complete: the size the index records is always
covered by chunk objects.  Chunk objects rather than an S3 multipart upload,
because parts must be at least 5 MiB except the last, and a client's chunks
are whatever size it likes.

A node whose own file of the session is missing or shorter than the
recorded size (or longer: a chunk whose object failed) first rebuilds it:
the file is cut back to what this node knows matches the objects (the chunks
it wrote or read itself, kept in memory: `UploadChunks.local_end`), then the
missing chunks are streamed in, in order.  The chain is walked by offset, each
object's length giving the next one's key, so no listing is needed (ListObjectsV2
under a sub-prefix is what moto's signature check gets wrong, and what a
policy may not allow).

The objects are deleted when the session ends (committed, cancelled,
expired, broken; `forget`), and the bucket's orphan sweep removes the
``uploads/`` objects of sessions the index no longer has once they are
older than ``uploads.idle_seconds`` (a node that died before deleting them).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from harbor_cache.storage.s3 import S3Error, S3NotFound

if TYPE_CHECKING:
    from harbor_cache.storage.bucket import Bucket
    from harbor_cache.storage.layout import Storage

log = Logger()

_KEY = re.compile(r"^uploads/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(0|[1-9][0-9]{0,18})$")
#: a chain longer than this is not walked to its end when deleting (the orphan sweep gets the rest)
MAX_WALK = 100_000


class UploadChunksMissing(Exception):
    """The bucket's chunks of a session do not add up to its recorded size: the session cannot go on."""


def chunk_key(session_id: str, offset: int) -> str:
    return f"uploads/{session_id}/{offset}"


def session_of_key(key: str) -> tuple[str, int] | None:
    """(session id, offset) of a chunk object's key, or None for any other key."""
    m = _KEY.match(key)
    return None if m is None else (m.group(1), int(m.group(2)))


class UploadChunks:
    """The chunk objects of upload sessions, and what this node's session files hold of them."""

    def __init__(self, storage: Storage, bucket: Bucket):
        self.storage = storage
        self.bucket = bucket
        # session id -> [(offset, length)] of the chunks this node's file holds, as in the bucket, in order
        self.chains: dict[str, list[tuple[int, int]]] = {}

    def local_end(self, session_id: str) -> int:
        """Bytes of this node's session file known to match the chunk objects."""
        chain = self.chains.get(session_id)
        return chain[-1][0] + chain[-1][1] if chain else 0

    async def publish(self, session_id: str, path: str, offset: int, length: int, *, upload: bool = True) -> None:
        """Store bytes ``[offset, offset + length)`` of the session file as their chunk object.

        Raises `StorageUnavailable` (the caller must not record the new size).
        ``upload=False``: only note that this node's file holds them (the
        final chunk of a PUT that commits the blob at once).
        """
        if length <= 0:
            return
        key = chunk_key(session_id, offset)
        if upload:
            try:
                await self.bucket.client.put_file(key, path, offset=offset, length=length)
            except S3Error as e:
                log.warn("storing chunk {key} in the bucket failed: {error}", key=key, error=e)
                raise self._unavailable("upload", e) from None
        chain = self.chains.setdefault(session_id, [])
        if self.local_end(session_id) != offset:
            chain.clear()  # (cannot happen: the caller restored the file first) — trust nothing before
            return
        chain.append((offset, length))

    async def restore(self, session_id: str, path: str, size: int) -> int:
        """Make this node's file of the session hold exactly its first ``size`` bytes; returns the bytes fetched.

        Raises `UploadChunksMissing` when the objects do not cover ``size``
        (the session is lost), `StorageUnavailable` when the bucket does not
        answer (the session stays: the client may try again).
        """
        start = self.local_end(session_id)
        if start > size:
            start = 0
        start = await self.storage.io.run(_cut_to, path, start)
        chain = self.chains.setdefault(session_id, [])
        if start == 0:
            chain.clear()
        offset = start
        while offset < size:
            key = chunk_key(session_id, offset)
            try:
                response = await self.bucket.client.get_object(key)
            except S3NotFound:
                raise UploadChunksMissing(f"no chunk object at offset {offset} of {size}") from None
            except S3Error as e:
                raise self._unavailable("read", e) from None
            length = response.length if isinstance(response.length, int) else None
            if length is None or length <= 0 or offset + length > size:
                response.deliverBody(_Discard())
                raise UploadChunksMissing(f"the chunk object at offset {offset} is {length} bytes, not within {size}")
            await self._append(response, path, offset, length)
            chain.append((offset, length))
            offset += length
        return size - start

    async def _append(self, response: object, path: str, offset: int, length: int) -> None:
        from harbor_cache.storage.bucket import _stream_into
        from harbor_cache.storage.errors import SourceFailed
        from harbor_cache.storage.writer import TempBlob

        sink = TempBlob(self.storage, None, append_to=path, offset=offset, hashers={})
        try:
            await _stream_into(response, sink, self.bucket.clock, self.bucket.client.settings.timeout)
            got = await sink.close_append()
        except BaseException as e:
            if not sink.closed:
                sink.abort(e if isinstance(e, Exception) else SourceFailed("cancelled"))  # cut back to ``offset``
            if isinstance(e, SourceFailed):
                raise self._unavailable("read", e) from None
            raise
        if got != offset + length:
            await self.storage.io.run(_cut_to, path, offset)
            raise self._unavailable("read", SourceFailed(f"short chunk: {got - offset} of {length} bytes"))

    async def forget(self, session_id: str) -> None:
        """Delete the session's chunk objects (its end: committed, cancelled, expired); failures are only logged.

        The chain this node knows is deleted, then whatever follows it is
        found by HEAD requests (chunks another node wrote).
        """
        chain = self.chains.pop(session_id, [])
        keys = [chunk_key(session_id, offset) for offset, _ in chain]
        offset = chain[-1][0] + chain[-1][1] if chain else 0
        try:
            for _ in range(MAX_WALK):
                info = await self.bucket.client.head_object(chunk_key(session_id, offset))
                if info is None or info.size <= 0:
                    break
                keys.append(chunk_key(session_id, offset))
                offset += info.size
            if keys:
                failed = await self.bucket.client.delete_objects(keys)
                if failed:
                    log.warn(
                        "the bucket refused to delete chunks of {session}: {failed}", session=session_id, failed=failed
                    )
        except S3Error as e:
            log.warn(
                "the chunks of upload {session} stay in the bucket for the orphan sweep: {error}",
                session=session_id, error=e,
            )  # fmt: skip

    def drop(self, session_id: str) -> None:
        """This node's file of the session is gone: nothing of it is known to match any more."""
        self.chains.pop(session_id, None)

    def _unavailable(self, what: str, error: Exception) -> Exception:
        from harbor_cache.storage.bucket import unavailable

        self.bucket._saw_failure(error)
        return unavailable(what, error)


def _cut_to(path: str, length: int) -> int:
    """Blocking: the session file exists and holds at most ``length`` bytes; returns its (trusted) length.

    A file shorter than ``length`` (it was replaced) is emptied: only a
    prefix this node wrote or read itself is trusted.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        have = os.fstat(fd).st_size
        keep = length if have >= length else 0
        if have != keep:
            os.ftruncate(fd, keep)
        return keep
    finally:
        os.close(fd)


class _Discard(Protocol):
    """A body nobody reads (a chunk object refused before its bytes): its connection is closed."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]
