"""The hosted registry: what clients push is kept here as the only copy.

Blob uploads are sessions recorded in the index, their bytes in
``DATA/uploads/<id>`` on the shared data directory (`storage.uploads`), so any
node continues a session another node started and a restart keeps them.
Each request opens the session's file for appending and closes it before it
answers: an idle session holds no descriptor. Sessions are capped per user
and overall (``uploads.max_sessions_per_user``, ``uploads.max_sessions``:
429 TOOMANYREQUESTS) and removed after ``uploads.idle_seconds`` untouched
(`expire_uploads`, run by a timer on every node).

Request bodies arrive as a body source (`request_body.StreamedBody`: bytes
pulled from the socket as they arrive, never spooled first) and go straight
into the session's temp file, hashed as they come; the socket is paused while
the file's write queue is full, so memory stays flat whatever the size.  The
core only knows the source's ``length`` (None when chunked), ``stream_to(sink)``
and ``read_all(limit)``.

Manifests pushed here are checked (size, JSON, media type, digest, every
referenced blob and child manifest present) and recorded as **hosted**:
eviction never removes them, and the blobs and children they reference are
made hosted too.  A pushed tag is served before any upstream lookup.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.logger import Logger

from harbor_cache.core.operations.diskspace import DiskSpace
from harbor_cache.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Conflict,
    DigestInvalid,
    ErrorCode,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    NotHosted,
    TooLarge,
    TooManyRequests,
    UploadRangeInvalid,
)
from harbor_cache.grammar.digests import digest_bytes, parse_digest
from harbor_cache.grammar.mediatypes import (
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    INDEX_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    InvalidManifest,
    detect_manifest_media_type,
    manifest_references,
)
from harbor_cache.storage import BlobCorrupt, SourceFailed, StorageFull, TempBlob
from harbor_cache.storage.uploads import SESSION_ID, UploadFiles

log = Logger()

UPLOAD_IDLE_SECONDS = 3600.0
# How long one request may hold a session for writing before another may take it (a node died mid-PATCH).
UPLOAD_WRITE_HOLD_SECONDS = 600.0


class RequestBodySource(Protocol):
    """Where pushed bytes come from (`request_body.StreamedBody` or `BufferedBody`)."""

    length: int | None

    def stream_to(self, sink) -> Any: ...

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


@dataclass
class PushedManifest:
    digest: str
    media_type: str
    subject: str | None


class HostedRegistry:
    def __init__(
        self,
        *,
        cache,
        index,
        storage,
        metrics,
        clock,
        upload_idle_seconds: float = UPLOAD_IDLE_SECONDS,
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        node: str = "local",
    ):
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
        # session id -> (offset, hash states at that offset) for sessions this node wrote last
        self._hash_state: dict[str, tuple[int, dict]] = {}

    # -- upload sessions ------------------------------------------------------

    def ensure_writable(self, name: str) -> None:
        """403 DENIED for a name a read-only proxy namespace serves (see `OciCache.ensure_writable`)."""
        self.cache.ensure_writable(name)

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
        return len(stale)

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
        self, session: UploadSession, body: RequestBodySource, content_range: tuple[int, int] | None
    ) -> int:
        """Append these bytes to session X: stream ``body`` into the session's file; returns the new offset.

        This is the seam between how bytes arrive (the request body, pulled
        from the socket as the file's write queue allows) and where they go
        (the session file's appender, a `TempBlob` opened for appending at
        the session's offset and closed before this returns).  The session is
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
        await self._claim(session)
        before = size = session.size
        hashers = self._hashers_at(session)
        sink = self.files.appender(session.id, before, hashers)
        broken = False
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

    def _check_room(self, length: int | None) -> None:
        if self.space is not None:
            self.space.check_upload_room(length)

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
            await self.append(session, body, content_range)
        await self._claim(session)
        offset, hashers = self._hash_state.pop(session.id, (None, None))
        known = hashers["sha256"].hexdigest() if hashers and offset == session.size and "sha256" in hashers else None
        try:
            got = await self.files.commit(session.id, expected, session.size, known)
        except BlobCorrupt as e:
            raise DigestInvalid(
                "content does not match the digest", {"expected": expected, "actual": e.actual}
            ) from None
        finally:
            await self.index.delete_upload(session.id)
        return await self._record_blob(session.name, got, session.size)

    async def upload_monolithic(self, name: str, digest: str, body: RequestBodySource) -> str:
        """POST ...?digest=: the whole blob in one request."""
        expected = _upload_digest(digest)
        self._check_room(body.length)
        temp = self.storage.new_temp(body.length)
        try:
            copied = await self._stream_into(temp, body)
        except BaseException as e:
            temp.abort(e if isinstance(e, Exception) else SourceFailed("cancelled"))
            raise
        self.metrics.push_bytes.inc(copied)
        return await self._commit(name, temp, expected)

    async def _commit(self, name: str, temp: TempBlob, expected: str) -> str:
        try:
            got = await temp.finish(expected)
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
        await self.index.claim_blob(name, got)
        self.cache.blob_pushed(name, got)
        self.metrics.pushes.labels("blob").inc()
        log.info("pushed blob {digest} ({bytes} bytes) to {name}", digest=got, bytes=size, name=name)
        return got

    async def mount(self, name: str, digest: str) -> bool:
        """Whether a blob can be mounted (we hold it); a mounted blob is claimed by ``name``."""
        if await self.cache.stored_blob_size(digest) is None:
            return False
        await self.index.claim_blob(name, digest)
        return True

    # -- blobs ----------------------------------------------------------------

    async def record_legacy_blob_refs(self) -> int:
        """At start: record the blobs of hosted manifests pushed before blob claims existed.

        Without this, a blob DELETE could still remove a layer such a manifest
        needs. Reads each such manifest once (later starts find none left,
        except manifests that need no blob). Returns how many were recorded.
        """
        recorded = 0
        for row in await self.index.hosted_manifests_without_refs():
            try:
                body = await self.storage.read_bytes(row.digest)
                blobs, _ = manifest_references(body)
            except (OSError, InvalidManifest) as e:
                log.warn(
                    "cannot read hosted manifest {name}@{key} to record its blobs: {error}",
                    name=row.repository,
                    key=row.key,
                    error=e,
                )
                continue
            if blobs:
                await self.index.add_blob_refs(row.repository, row.key, blobs)
                recorded += 1
        return recorded

    async def delete_blob(self, name: str, digest: str) -> None:
        """Remove repository ``name``'s claim on a blob (see ``Index.release_blob``).

        The file goes only when no repository claims or needs it. A blob a
        hosted manifest of ``name`` still needs is refused (409 DENIED: delete
        the manifest first); one ``name`` never held is 404; cached (proxy)
        blobs are refused with `NotHosted`.
        """
        outcome, detail = await self.index.release_blob(name, digest)
        if outcome == "unknown":
            raise BlobUnknown("blob unknown to registry", {"digest": digest})
        if outcome == "proxy":
            raise NotHosted("cached blobs are removed through the management API", {"digest": digest})
        if outcome == "in_use":
            raise Conflict(
                "blob is still used by a manifest of this repository; delete the manifest first",
                {"digest": digest, "manifest": detail},
                code=ErrorCode.DENIED,
            )
        orphans = detail
        self.cache.invalidate("blob", "", digest)
        for d in orphans:
            await self.storage.delete_blob(d)

    # -- manifests -------------------------------------------------------------

    async def read_manifest_body(self, body: RequestBodySource) -> bytes:
        """The request body, refused (413 SIZE_INVALID) above the manifest limit: from Content-Length
        before it is read, or as soon as a chunked body goes over."""
        if body.length is not None and body.length > self.max_manifest_bytes:
            raise TooLarge("manifest too large", {"size": body.length, "limit": self.max_manifest_bytes})
        try:
            return await body.read_all(self.max_manifest_bytes)
        except TooLarge:
            raise TooLarge("manifest too large", {"limit": self.max_manifest_bytes}) from None

    async def put_manifest(
        self, name: str, reference: str, body: bytes, content_type: str | None, tag: str | None
    ) -> PushedManifest:
        """Validate and store a pushed manifest; ``reference`` is a checked digest or the tag.

        Raises ManifestInvalid (bad JSON, unknown type, Content-Type and
        ``mediaType`` disagreeing), DigestInvalid (body does not match the
        digest in the URL), ManifestBlobUnknown (a referenced blob or child
        manifest is missing), SizeInvalid (too large).
        """
        if len(body) > self.max_manifest_bytes:
            raise TooLarge("manifest too large", {"size": len(body), "limit": self.max_manifest_bytes})
        media_type, document = _check_manifest(body, content_type)
        if tag is None:
            parsed = parse_digest(reference)
            if str(digest_bytes(body, parsed.algorithm)) != reference:
                raise DigestInvalid("manifest does not match the digest", {"digest": reference})
            key = reference
        else:
            key = str(digest_bytes(body, "sha256"))
        try:
            blobs, children = manifest_references(body)
        except InvalidManifest as e:
            raise ManifestInvalid("manifest not valid", str(e)) from None
        declared = _descriptor_sizes(document)
        needed: list[int] = []
        for digest in blobs:
            stored_size = await self.cache.stored_blob_size(digest)
            if stored_size is None:
                raise ManifestBlobUnknown("blob unknown to registry", {"digest": digest})
            _check_size(digest, declared, stored_size)
            entry = await self.index.get_entry("blob", "", digest)
            if entry is not None and entry.kind != "hosted":
                needed.append(entry.id)
        for digest in children:
            entry = await self.index.get_entry("manifest", name, digest)
            if entry is None or self.storage.stat_blob(entry.digest) is None:
                raise ManifestBlobUnknown("manifest unknown to registry", {"digest": digest})
            _check_size(digest, declared, entry.size)
            if entry.kind != "hosted":
                needed.append(entry.id)
        if needed:
            await self.index.mark_hosted(needed)
        subject = _subject(document)
        referrer = None
        if subject is not None:
            referrer = {
                "subject": subject,
                "artifact_type": _artifact_type(document),
                "annotations": json.dumps(document["annotations"])
                if isinstance(document.get("annotations"), dict)
                else None,
            }
        stored = await self.storage.store_bytes(body, key if key.startswith("sha256:") else None)
        await self.index.put_hosted_manifest(
            repository=name,
            key=key,
            digest=stored,
            size=len(body),
            media_type=media_type,
            now=self.clock.seconds(),
            tag=tag,
            referrer=referrer,
            blobs=blobs,
        )
        self.cache.manifest_pushed(name, key, body, media_type, tag)
        self.metrics.pushes.labels("manifest").inc()
        self.metrics.push_bytes.inc(len(body))
        log.info("pushed manifest {digest} to {name}{tag}", digest=key, name=name, tag=f":{tag}" if tag else "")
        return PushedManifest(key, media_type, subject)

    async def delete_manifest(self, name: str, reference: str, is_tag: bool) -> None:
        """DELETE by digest removes a hosted manifest and its tags; by tag only the (hosted) tag."""
        if is_tag:
            if await self.index.delete_hosted_tag(name, reference) is None:
                if await self.index.get_tag(name, reference) is not None:
                    raise NotHosted("cached tags are removed through the management API", {"tag": reference})
                raise ManifestUnknown("manifest unknown", {"name": name, "reference": reference})
            self.cache.forget_tag(name, reference)
            return
        kind, orphans = await self.index.delete_hosted_entry("manifest", name, reference)
        if kind is None:
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": reference})
        if kind != "hosted":
            raise NotHosted("cached manifests are removed through the management API", {"digest": reference})
        self.cache.invalidate("manifest", name, reference)
        for d in orphans:
            await self.storage.delete_blob(d)

    # -- listings ---------------------------------------------------------------

    async def list_tags(self, name: str, n: int | None, last: str | None) -> tuple[list[str], bool, bool]:
        """One page of tags, whether more follow, and whether the list is the cache's alone
        because the upstream did not answer (a proxied name asks its upstream first).

        NameUnknown when the repository has none at all.
        """
        if self.cache.route(name).proxied:
            return await self.cache.list_proxied_tags(name, n, last)
        limit = None if n is None else n + 1
        tags = await self.index.list_tags_page(name, last, limit) if n != 0 else []
        if not tags and last is None and not await self.index.repository_known(name):
            raise NameUnknown("repository name not known to registry", {"name": name})
        more = n is not None and len(tags) > n
        return tags[:n] if n is not None else tags, more, False

    async def list_repositories(self, n: int | None, last: str | None) -> tuple[list[str], bool]:
        if n == 0:
            return [], False
        names = await self.index.list_repositories_page(last, None if n is None else n + 1)
        more = n is not None and len(names) > n
        return names[:n] if n is not None else names, more

    async def referrers(self, name: str, subject: str, artifact_type: str | None) -> dict[str, Any]:
        """The referrers of ``subject`` as an OCI image index (empty when there are none)."""
        rows = await self.index.list_referrers(name, subject, artifact_type)
        manifests = []
        for row in rows:
            descriptor: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
            if row.artifact_type:
                descriptor["artifactType"] = row.artifact_type
            if row.annotations:
                descriptor["annotations"] = json.loads(row.annotations)
            manifests.append(descriptor)
        return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}


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


# What may be pushed: schema 2 only. Schema 1 (deprecated, unsigned bodies
# that carry no sizes) is still served from upstreams but never accepted.
PUSHABLE_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST})


def _check_manifest(body: bytes, content_type: str | None) -> tuple[str, dict]:
    """(media type, document): the media type from Content-Type, checked against the body's ``mediaType``.

    Content-Type, when sent, must be a pushable manifest type (``text/plain``
    is refused, not sniffed); ``schemaVersion`` must be the integer 2.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ManifestInvalid("manifest is not valid JSON", str(e)) from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest is not a JSON object")
    declared = (content_type or "").split(";", 1)[0].strip().lower() or None
    if declared is not None and declared not in PUSHABLE_TYPES:
        raise ManifestInvalid(
            "Content-Type is not a manifest type this registry accepts",
            {"content_type": declared, "accepted": sorted(PUSHABLE_TYPES)},
        )
    version = document.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise ManifestInvalid("schemaVersion must be 2", {"schemaVersion": version})
    try:
        media_type = detect_manifest_media_type(body, declared)
    except InvalidManifest as e:
        raise ManifestInvalid("manifest not valid", str(e)) from None
    if media_type not in PUSHABLE_TYPES:
        raise ManifestInvalid("unsupported manifest media type", {"mediaType": media_type})
    inner = document.get("mediaType")
    if inner is not None and (not isinstance(inner, str) or inner.strip().lower() != media_type):
        raise ManifestInvalid(
            "mediaType in the body does not match Content-Type", {"content_type": media_type, "mediaType": inner}
        )
    if media_type in INDEX_TYPES and not isinstance(document.get("manifests"), list):
        raise ManifestInvalid("an index needs a manifests list")
    if media_type not in INDEX_TYPES and "config" not in document:
        raise ManifestInvalid("an image manifest needs a config descriptor")
    return media_type, document


def _descriptor_sizes(document: dict) -> dict[str, int]:
    """Digest -> size of every config, layer and child descriptor; each must carry an integer size."""
    descriptors = []
    if isinstance(document.get("config"), dict):
        descriptors.append(("config", document["config"]))
    for field in ("layers", "manifests"):
        items = document.get(field)
        if isinstance(items, list):
            descriptors.extend((f"{field}[{i}]", d) for i, d in enumerate(items) if isinstance(d, dict))
    sizes: dict[str, int] = {}
    for where, descriptor in descriptors:
        size = descriptor.get("size")
        if type(size) is not int or size < 0:
            raise ManifestInvalid(f"{where}: size must be a non-negative integer", {"size": size})
        digest = descriptor.get("digest")
        if isinstance(digest, str):
            if sizes.get(digest, size) != size:
                raise ManifestInvalid(f"{where}: two sizes for one digest", {"digest": digest})
            sizes[digest] = size
    return sizes


def _check_size(digest: str, declared: dict[str, int], stored: int) -> None:
    """A descriptor must state the size of what is stored under its digest (400 MANIFEST_INVALID)."""
    size = declared.get(digest)
    if size is not None and size != stored:
        raise ManifestInvalid(
            "descriptor size differs from the stored content", {"digest": digest, "size": size, "stored": stored}
        )


def _subject(document: dict) -> str | None:
    subject = document.get("subject")
    if not isinstance(subject, dict):
        return None
    digest = subject.get("digest")
    if not isinstance(digest, str):
        return None
    try:
        return str(parse_digest(digest))
    except ValueError:
        raise ManifestInvalid("subject has no valid digest") from None


def _artifact_type(document: dict) -> str | None:
    """``artifactType``, else the config's media type (the referrers API's rule for images)."""
    value = document.get("artifactType")
    if isinstance(value, str) and value:
        return value
    config = document.get("config")
    if isinstance(config, dict) and isinstance(config.get("mediaType"), str):
        return config["mediaType"]
    return None
