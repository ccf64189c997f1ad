"""Blob upload sessions (distribution's blobwriter): start, append, complete, monolithic, cancel, expire.

Sessions are recorded in the index, their bytes in ``DATA/uploads/<id>`` on
the shared data directory (`storage.uploads`), so any node continues a session
another node started and a restart keeps them.  Each request opens the
session's file for appending and closes it before it answers: an idle session
holds no descriptor.  Sessions are capped per user and overall
(``uploads.max_sessions_per_user``, ``uploads.max_sessions``: 429
TOOMANYREQUESTS) and removed after ``uploads.idle_seconds`` untouched
(`expire_uploads`, run by a timer on every node).

Request bodies arrive as a body source (`request_body.StreamedBody`: bytes
pulled from the socket as they arrive, never spooled first) and go straight
into the session's temp file, hashed as they come; the socket is paused while
the file's write queue is full, so memory stays flat whatever the size.  The
core only knows the source's ``length`` (None when chunked), ``stream_to(sink)``
and ``read_all(limit)``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from twisted.logger import Logger

from harbor_cache.core.operations.diskspace import DiskSpace
from harbor_cache.core.operations.quotas import QuotaBook
from harbor_cache.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    StorageUnavailable,
    TooManyRequests,
    UploadRangeInvalid,
)
from harbor_cache.grammar.digests import parse_digest
from harbor_cache.grammar.mediatypes import MAX_MANIFEST_BYTES
from harbor_cache.storage import BlobCorrupt, SourceFailed, StorageFull, TempBlob
from harbor_cache.storage.upload_chunks import UploadChunksMissing
from harbor_cache.storage.uploads import SESSION_ID, UploadFiles

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.oci.cache import OciCache
    from harbor_cache.index import Index
    from harbor_cache.metrics import Metrics
    from harbor_cache.storage import Storage

log = Logger()

UPLOAD_IDLE_SECONDS = 3600.0
# How long one request may hold a session for writing before another may take it (a node died mid-PATCH).
UPLOAD_WRITE_HOLD_SECONDS = 600.0


class _SessionLost(Exception):
    """The session's chunk objects do not cover its recorded size: it ends (404 BLOB_UPLOAD_UNKNOWN)."""


class RequestBodySource(Protocol):
    """Where pushed bytes come from (`request_body.StreamedBody` or `BufferedBody`)."""

    @property
    def length(self) -> int | None:
        """The declared Content-Length; None when the body is chunked."""
        ...

    def stream_to(self, sink: TempBlob) -> Awaitable[int]: ...

    async def read_all(self, limit: int) -> bytes: ...


@dataclass
class UploadSession:
    """One upload session as the index records it (any node may continue it)."""

    id: str
    name: str
    owner: str
    size: int

    @property
    def offset(self) -> int:
        """Bytes received so far (the next chunk must start here)."""
        return self.size


class HostedUploads:
    """The state of the hosted registry and its upload sessions; `HostedRegistry` adds manifests and deletes."""

    def __init__(
        self,
        *,
        cache: OciCache,
        index: Index,
        storage: Storage,
        metrics: Metrics,
        clock: IReactorTime,
        upload_idle_seconds: float = UPLOAD_IDLE_SECONDS,
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        node: str = "local",
    ) -> None:
        self.cache = cache
        self.index = index
        self.storage = storage
        self.metrics = metrics
        self.clock = clock
        self.upload_idle_seconds = upload_idle_seconds
        self.max_manifest_bytes = max_manifest_bytes
        self.node = node
        self.files = UploadFiles(storage)
        # A `core.operations.diskspace.DiskSpace` (set by the service): a push that would end below the floor is 507 unread.
        self.space: DiskSpace | None = None
        # A `core.operations.quotas.QuotaBook` (set by the service): a push beyond a quota is 403 DENIED.
        self.quotas: QuotaBook | None = None
        # session id -> (offset, hash states at that offset) for sessions this node wrote last
        self._hash_state: dict[str, tuple[int, dict]] = {}

    # -- upload sessions ------------------------------------------------------

    def _setting(self, key: str, default: int) -> int:
        settings = getattr(self.cache, "settings", None)
        try:
            return int(settings.get(key)) if settings is not None else default
        except KeyError:
            return default

    async def start_upload(self, name: str, owner: str | None = None) -> UploadSession:
        """A new session of ``owner`` (None: anonymous), or 429 TOOMANYREQUESTS when a cap is reached."""
        session_id = str(uuid.uuid4())
        who = owner or ""
        per_owner = self._setting("uploads.max_sessions_per_user", 64)
        overall = self._setting("uploads.max_sessions", 1024)
        outcome = await self.index.create_upload(session_id, name, who, self.clock.seconds(), per_owner, overall)
        if outcome != "ok":
            limit, setting = (
                (per_owner, "uploads.max_sessions_per_user")
                if outcome == "owner_cap"
                else (overall, "uploads.max_sessions")
            )
            raise TooManyRequests(
                "too many open upload sessions: finish or cancel some first",
                {"limit": limit, "setting": setting, "user": who or None},
                headers={"Retry-After": "60"},
            )
        try:
            await self.files.create(session_id)
        except BaseException:
            await self.index.delete_upload(session_id)
            raise
        return UploadSession(session_id, name, who, 0)

    async def get_upload(self, name: str, session_id: str) -> UploadSession:
        """The live session ``session_id`` of repository ``name``; raises BlobUploadUnknown."""
        row = None
        if SESSION_ID.match(session_id):
            row = await self.index.get_upload(session_id)
        if row is None or row.repository != name:
            raise BlobUploadUnknown("upload session unknown", {"name": name, "session": session_id})
        return UploadSession(row.id, row.repository, row.owner, row.size)

    async def cancel_upload(self, session: UploadSession) -> None:
        await self._drop(session)

    async def _drop(self, session: UploadSession) -> None:
        self._hash_state.pop(session.id, None)
        await self.index.delete_upload(session.id)
        await self.files.remove(session.id)

    async def expire_uploads(self) -> int:
        """Remove sessions idle for longer than ``uploads.idle_seconds`` (any node's); returns how many."""
        now = self.clock.seconds()
        idle = self._setting("uploads.idle_seconds", int(self.upload_idle_seconds))
        stale = await self.index.stale_uploads(now - idle, now)
        for session_id in stale:
            self._hash_state.pop(session_id, None)
            await self.files.remove(session_id)
            log.info("upload {session} expired after {idle} s idle", session=session_id, idle=idle)
        if self.files.chunks is not None:
            # Nodes share no data directory: the files here of sessions that ended on other nodes.
            await self.files.sweep_local(now - idle, self._session_live)
        return len(stale)

    async def _session_live(self, session_id: str) -> bool:
        return await self.index.get_upload(session_id) is not None

    def _hashers_at(self, session: UploadSession) -> dict:
        """The hash state at the session's offset when this node has it, else {} (hash the file at the end)."""
        offset, hashers = self._hash_state.pop(session.id, (None, None))
        if offset == session.size and hashers is not None:
            return hashers
        return {"sha256": hashlib.sha256()} if session.size == 0 else {}

    async def _claim(self, session: UploadSession) -> None:
        """Make this request the session's only writer (on any node), or 416."""
        if not await self.index.claim_upload_write(
            session.id, self.node, session.size, self.clock.seconds(), UPLOAD_WRITE_HOLD_SECONDS
        ):
            raise UploadRangeInvalid(
                "another request is writing to this upload (or it moved on)", {"session": session.id}
            )

    async def append(
        self,
        session: UploadSession,
        body: RequestBodySource,
        content_range: tuple[int, int] | None,
        *,
        publish: bool = True,
    ) -> int:
        """Append these bytes to session X: stream ``body`` into the session's file; returns the new offset.

        This is the seam between how bytes arrive (the request body, pulled
        from the socket as the file's write queue allows) and where they go
        (the session file's appender, a `TempBlob` opened for appending at
        the session's offset and closed before this returns).  With a bucket
        this node's file is first rebuilt from the session's chunk objects
        when another node wrote the last chunks, and the new chunk becomes an
        object before the index records the new size (``publish=False``: the
        final PUT's chunk, committed at once by this node).  The session is
        claimed in the index while it is written, so a second request on any
        node gets 416 instead of interleaving bytes.  ``content_range``
        (inclusive, as in the ``Content-Range`` header) must start at the
        session's offset and cover exactly the body: with a Content-Length that
        is checked before a byte is read (416, nothing written); a chunked body
        that ends up longer or shorter than its range ends the session (416).
        """
        length = body.length
        expected_length = None
        if content_range is not None:
            start, end = content_range
            expected_length = end - start + 1
            if start != session.offset or (length is not None and expected_length != length):
                raise UploadRangeInvalid(
                    "chunk does not continue the upload",
                    {"offset": session.offset, "range": f"{start}-{end}", "length": length},
                )
        self._check_room(length)
        await self._check_quota(session.name, None if length is None else session.size + length, None, session.owner)
        await self._claim(session)
        before = size = session.size
        broken = False
        copied = 0
        try:
            await self._restore(session)
            hashers = self._hashers_at(session)
            sink = self.files.appender(session.id, before, hashers)
            try:
                try:
                    copied = await self._stream_into(sink, body)
                except BaseException:
                    # A body cut off mid-way (client gone, too slow, too large): whatever arrived stays
                    # appended (the client can ask for the offset and resume), unless the file broke.
                    if sink.failure is None:
                        size = await sink.close_append()
                        if hashers:
                            self._hash_state[session.id] = (size, hashers)
                    else:
                        broken = True
                    raise
                size = await sink.close_append()
            except BaseException as e:
                if sink.failure is None and not sink.closed:
                    sink.abort(e if isinstance(e, Exception) else SourceFailed("cancelled"))
                if sink.failure is not None:
                    broken = True  # the file could not be written: the session ends
                raise
            finally:
                if size > before and not broken:
                    # With a bucket the chunk becomes an object before the index moves past it (any node
                    # continues from there); if that fails the session stays at ``before``.
                    appended, size = size, before
                    await self.files.publish(session.id, before, appended - before, upload=publish)
                    size = appended
        except _SessionLost:
            broken = True
            raise BlobUploadUnknown(
                "upload session lost: its chunks are not in the bucket; start the upload again",
                {"name": session.name, "session": session.id},
            ) from None
        finally:
            await self.index.end_upload_write(session.id, self.node, size, self.clock.seconds())
            session.size = size
            if broken:
                await self._drop(session)
        if expected_length is not None and copied != expected_length:
            assert content_range is not None  # the expected length comes from it
            await self._drop(session)
            raise UploadRangeInvalid(
                "chunk length does not match its Content-Range",
                {"offset": before, "range": f"{content_range[0]}-{content_range[1]}", "length": copied},
            )
        if hashers:
            self._hash_state[session.id] = (size, hashers)
        self.metrics.push_bytes.inc(copied)
        return session.offset

    async def _restore(self, session: UploadSession) -> None:
        """(With a bucket) this node's file of the session holds its recorded bytes; `_SessionLost` when it cannot."""
        try:
            fetched = await self.files.restore(session.id, session.size)
        except UploadChunksMissing as e:
            log.warn("upload {session} cannot go on: {error}", session=session.id, error=e)
            raise _SessionLost() from None
        if fetched:
            self._hash_state.pop(session.id, None)
            log.info(
                "upload {session}: {bytes} bytes of chunks other nodes wrote fetched from the bucket",
                session=session.id, bytes=fetched,
            )  # fmt: skip

    def _check_room(self, length: int | None) -> None:
        if self.space is not None:
            self.space.check_upload_room(length)

    async def _check_quota(self, name: str, adding: int | None, digest: str | None, actor: str | None) -> None:
        """403 DENIED when ``adding`` bytes (None: unknown yet) would take ``name`` beyond a quota."""
        if self.quotas is not None:
            await self.quotas.check_blob(name, adding, digest, actor=actor)

    async def _stream_into(self, temp: TempBlob, body: RequestBodySource) -> int:
        if body.length == 0:
            return 0
        copied = await body.stream_to(temp)
        if isinstance(temp.failure, StorageFull):
            raise temp.failure  # (507, `oci.hosted`)
        if temp.failure is not None:
            raise BlobUploadInvalid("upload failed while writing", str(temp.failure))
        return copied

    async def complete_upload(
        self, session: UploadSession, digest: str, body: RequestBodySource, content_range: tuple[int, int] | None
    ) -> str:
        """Append the optional last chunk, verify ``digest`` and commit the blob as hosted.

        On a digest mismatch the session ends, nothing is stored and
        `DigestInvalid` is raised.
        """
        expected = _upload_digest(digest)
        if body.length != 0 or content_range is not None:
            await self.append(session, body, content_range, publish=False)
        await self._claim(session)
        try:
            await self._check_quota(session.name, session.size, expected, session.owner)
            await self._restore(session)  # (with a bucket: the chunks other nodes took)
        except _SessionLost:
            await self._drop(session)
            raise BlobUploadUnknown(
                "upload session lost: its chunks are not in the bucket; start the upload again",
                {"name": session.name, "session": session.id},
            ) from None
        except StorageUnavailable:
            await self.index.end_upload_write(session.id, self.node, session.size, self.clock.seconds())
            raise  # (the session stays: the client may try the PUT again)
        except BaseException:
            await self._drop(session)  # (refused: nothing is committed, the session's file goes)
            raise
        offset, hashers = self._hash_state.pop(session.id, (None, None))
        known = hashers["sha256"].hexdigest() if hashers and offset == session.size and "sha256" in hashers else None
        # From before the file is moved into place until its row is written: no eviction, clear, collection
        # or orphan sweep unlinks it in between (`storage.commits`).
        with self.storage.commit() as commit:
            commit.add(expected)
            try:
                got = await self.files.commit(session.id, expected, session.size, known)
            except BlobCorrupt as e:
                raise DigestInvalid(
                    "content does not match the digest", {"expected": expected, "actual": e.actual}
                ) from None
            finally:
                await self.index.delete_upload(session.id)
                await self.files.forget(session.id)  # (with a bucket: the chunk objects)
            return await self._record_blob(session.name, got, session.size)

    async def upload_monolithic(self, name: str, digest: str, body: RequestBodySource) -> str:
        """POST ...?digest=: the whole blob in one request."""
        expected = _upload_digest(digest)
        self._check_room(body.length)
        await self._check_quota(name, body.length, expected, None)
        temp = self.storage.new_temp(body.length)
        try:
            copied = await self._stream_into(temp, body)
            if body.length is None:
                await self._check_quota(name, copied, expected, None)  # (chunked: known only now)
        except BaseException as e:
            temp.abort(e if isinstance(e, Exception) else SourceFailed("cancelled"))
            raise
        self.metrics.push_bytes.inc(copied)
        return await self._commit(name, temp, expected)

    async def _commit(self, name: str, temp: TempBlob, expected: str) -> str:
        with self.storage.commit() as commit:  # (the digest held from the rename to its row: `storage.commits`)
            try:
                got = await temp.finish(expected, commit)
            except BlobCorrupt as e:
                raise DigestInvalid(
                    "content does not match the digest", {"expected": expected, "actual": e.actual}
                ) from None
            except StorageFull:
                raise  # (507, `oci.hosted`)
            except SourceFailed as e:
                raise BlobUploadInvalid("upload could not be stored", str(e)) from None
            return await self._record_blob(name, got, temp.available)  # == total once finished

    async def _record_blob(self, name: str, got: str, size: int) -> str:
        await self.index.put_entry(
            kind="hosted",
            type_="blob",
            repository="",
            key=got,
            digest=got,
            size=size,
            now=self.clock.seconds(),
        )
        await self.index.claim_blob(name, got, self.clock.seconds())
        self.cache.blob_pushed(name, got)
        self.metrics.pushes.labels("blob").inc()
        log.info("pushed blob {digest} ({bytes} bytes) to {name}", digest=got, bytes=size, name=name)
        return got


def _upload_digest(digest: str | None) -> str:
    """The digest an upload is checked against: sha256 only (files are stored under their sha256)."""
    if not digest:
        raise DigestInvalid("digest parameter missing")
    try:
        parsed = parse_digest(digest)
    except ValueError as e:
        raise DigestInvalid("invalid digest", {"digest": digest, "reason": str(e)}) from None
    if parsed.algorithm != "sha256":
        raise DigestInvalid("uploads must name a sha256 digest", {"digest": digest})
    return str(parsed)
