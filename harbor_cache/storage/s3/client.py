"""`S3Client`: S3's object API on the reactor, signed by botocore, carried by treq.

Every operation goes through `_call`: credentials (off the reactor when they
must be resolved or refreshed), the URL for the addressing style, the SigV4
headers, one unbuffered treq request guarded by a no-progress timer, and the
retry loop of `wire.retryable` with full-jitter backoff on the given clock.
Bodies are never held whole: `get_object` hands back the response for the
caller to stream with backpressure, uploads stream from files
(`bodies.FileRegionProducer`).  Failures end as `S3Error` (``code``,
``status``), `S3NotFound`, or `S3Unavailable` once the attempts are spent.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from harbor_cache.storage.io import StorageIO
from harbor_cache.storage.s3 import wire
from harbor_cache.storage.s3.auth import (
    UNSIGNED_PAYLOAD,
    Addresser,
    CredentialSource,
    payload_hash,
    presign_url,
    sign_headers,
)
from harbor_cache.storage.s3.bodies import BytesProducer, FileRegionProducer, LocalReadError, read_limited
from harbor_cache.storage.s3.config import S3Error, S3NotFound, S3Settings, S3Unavailable
from harbor_cache.storage.s3.wire import MultipartUpload, ObjectInfo

log = Logger()

#: S3 deletes at most this many keys per DeleteObjects request
DELETE_BATCH = 1000


class _Body:
    """A request body that can be made again for each attempt: bytes, or a region of a file."""

    def __init__(
        self, data: bytes | None = None, path: str | None = None, offset: int = 0, length: int = 0,
        sha256: str | None = None,
    ) -> None:  # fmt: skip
        self.data = data
        self.path = path
        self.offset = offset
        self.length = len(data) if data is not None else length
        self.sha256 = payload_hash(data) if data is not None else (sha256 or UNSIGNED_PAYLOAD)
        self.last: FileRegionProducer | None = None

    def producer(self, io: StorageIO, chunk: int, on_progress: Callable[[], None]) -> Any:
        if self.data is not None:
            return BytesProducer(self.data)
        assert self.path is not None
        self.last = FileRegionProducer(self.path, self.offset, self.length, io, chunk, on_progress)
        return self.last


class _NoAnswer(Exception):
    """An attempt got no response (connection refused or reset, timeout): retryable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class S3Client:
    """One bucket (under ``settings.prefix``) of an S3-compatible store.

    ``http``: a treq ``HTTPClient`` (its agent's pool decides connection
    reuse); ``io``: where blocking work runs (credential resolution, file
    reads); ``clock``: timers and backoff sleeps; ``rng``: the jitter (seeded
    in tests).  ``credentials`` replaces the settings' source (tests).
    """

    def __init__(
        self,
        settings: S3Settings,
        http: Any,
        io: StorageIO,
        clock: IReactorTime,
        *,
        rng: random.Random | None = None,
        credentials: CredentialSource | None = None,
    ) -> None:
        self.settings = settings
        self._http = http
        self._io = io
        self._clock = clock
        self._rng = rng or random.Random()
        self.credentials = credentials or CredentialSource(settings, io)
        self.addresser = Addresser(settings)
        self.retries = 0  # attempts that failed and were tried again (for metrics and tests)

    # -- the one request path --------------------------------------------------

    async def _call(
        self,
        method: str,
        key: str | None,
        *,
        query: tuple[tuple[str, str | None], ...] = (),
        headers: dict[str, str] | None = None,
        body: _Body | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """The response of the first attempt whose status is in ``ok``; its body is the caller's to read."""
        url = self.addresser.url(key, query)
        what = f"{method} {self.addresser.full_key(key) if key is not None else '(bucket)'}"
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self._attempt(method, url, headers or {}, body)
            except _NoAnswer as e:
                status, code, message = None, e.code, str(e)
            else:
                if response.code in ok:
                    return response
                content = await self._read_error(response)
                status = response.code
                code, message = wire.error_of(status, content)
                if not wire.retryable(status, code):
                    cls = S3NotFound if code in wire.NOT_FOUND_CODES or status == 404 else S3Error
                    raise cls(f"{what}: {status} {code} {message}".rstrip(), code=code, status=status, key=key)
            if attempt == attempts:
                raise S3Unavailable(
                    f"{what}: {code} ({message}) after {attempts} attempts", code=code, status=status, attempts=attempts
                )
            self.retries += 1
            delay = wire.backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap, self._rng)
            log.info(
                "S3 {what} failed ({code}), attempt {attempt}/{attempts}; again in {delay:.3f}s",
                what=what, code=code, attempt=attempt, attempts=attempts, delay=delay,
            )  # fmt: skip
            await task.deferLater(self._clock, delay, lambda: None)
        raise AssertionError("unreachable")

    async def _read_error(self, response: Any) -> bytes:
        try:
            return await read_limited(response, self.settings.max_xml_bytes)
        except Exception:
            return b""

    async def _attempt(self, method: str, url: str, headers: dict[str, str], body: _Body | None) -> Any:
        credentials = await self.credentials.get()
        sha = body.sha256 if body is not None else payload_hash(None)
        signed = sign_headers(credentials, self.settings.region, method, url, headers, sha)
        timeout = self.settings.timeout
        timed_out = []

        def expire() -> None:
            timed_out.append(True)
            request.cancel()

        timer = self._clock.callLater(timeout, expire)

        def progress() -> None:
            if timer.active():
                timer.reset(timeout)

        producer = body.producer(self._io, self.settings.read_chunk, progress) if body is not None else None
        request: defer.Deferred[Any] = self._http.request(
            method,
            url,
            headers=Headers({k.encode(): [v.encode()] for k, v in signed.items()}),
            data=producer,
            unbuffered=True,
        )
        # The caller's cancellation (a client gone, a shutdown) must end the operation, not be retried
        # like a dropped connection: it reaches `outer`, which cancels the request and raises CancelledError.
        cancelled = []

        def cancel(_: Any) -> None:
            cancelled.append(True)
            request.cancel()

        outer: defer.Deferred[Any] = defer.Deferred(cancel)
        request.addBoth(_settle_into, outer)
        try:
            return await outer
        except Exception as e:
            if cancelled:
                raise defer.CancelledError() from None
            local = getattr(producer, "failure", None)
            if isinstance(local, LocalReadError):
                raise S3Error(str(local), code="LocalReadError") from None
            if timed_out:
                raise _NoAnswer("Timeout", f"no progress for {timeout:g}s") from None
            raise _NoAnswer("ConnectionError", f"{e.__class__.__name__}: {e}") from None
        finally:
            if timer.active():
                timer.cancel()

    async def _xml(self, response: Any) -> Any:
        return wire.parse(await read_limited(response, self.settings.max_xml_bytes))

    async def _done(self, response: Any) -> None:
        """Read an answer whose body we do not need, so its connection goes back to the pool."""
        try:
            await read_limited(response, self.settings.max_xml_bytes)
        except Exception:
            pass

    # -- objects -----------------------------------------------------------------

    async def head_object(self, key: str) -> ObjectInfo | None:
        """What the store knows of ``key``, or None when it does not exist."""
        try:
            response = await self._call("HEAD", key)
        except S3NotFound:
            return None
        await self._done(response)
        return ObjectInfo(
            key=key,
            size=int(_header(response, "content-length") or 0),
            etag=_header(response, "etag") or "",
            last_modified=_header(response, "last-modified") or "",
            content_type=_header(response, "content-type"),
        )

    async def get_object(self, key: str, byte_range: tuple[int, int | None] | None = None) -> Any:
        """The unread response for ``key`` (200, or 206 for ``byte_range`` = (first, last or None), inclusive).

        The caller streams the body (``deliverBody``) with its own
        backpressure; S3NotFound when the key does not exist.
        """
        headers = {}
        if byte_range is not None:
            first, last = byte_range
            headers["Range"] = f"bytes={first}-{'' if last is None else last}"
        return await self._call("GET", key, headers=headers, ok=(200, 206))

    async def put_object(
        self,
        key: str,
        data: bytes | str,
        *,
        content_type: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        offset: int = 0,
    ) -> str:
        """Store ``data`` (bytes, or a file path streamed from disk) as ``key``; returns the ETag.

        For a file, ``sha256`` (hex) lets the store verify the body (else it is
        sent as UNSIGNED-PAYLOAD); ``size`` saves a stat; with ``offset`` (and
        ``size``) only that region of the file is the object (an upload
        session's chunk).
        """
        if isinstance(data, bytes):
            body = _Body(data=data)
        else:
            length = size if size is not None else await self._io.run(_file_size, data) - offset
            body = _Body(path=data, offset=offset, length=length, sha256=sha256)
        headers = {"Content-Type": content_type} if content_type else {}
        response = await self._call("PUT", key, headers=headers, body=body)
        await self._done(response)
        return _header(response, "etag") or ""

    async def delete_object(self, key: str) -> None:
        """Remove ``key``; a key that is already gone is not an error."""
        try:
            response = await self._call("DELETE", key, ok=(200, 204))
        except S3NotFound:
            return
        await self._done(response)

    async def delete_objects(self, keys: list[str]) -> dict[str, str]:
        """Remove ``keys`` in batches of 1000; returns {key: error code} for those the store refused."""
        failed: dict[str, str] = {}
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            payload = wire.delete_body([self.addresser.full_key(k) for k in batch])
            md5 = base64.b64encode(hashlib.md5(payload, usedforsecurity=False).digest()).decode()
            response = await self._call(
                "POST", None, query=(("delete", None),), headers={"Content-MD5": md5}, body=_Body(data=payload)
            )
            root = await self._xml(response)
            for error in wire.children(root, "Error"):
                failed[self._relative(wire.text(error, "Key"))] = wire.text(error, "Code")
        return failed

    async def list_objects_v2(
        self, prefix: str = "", page_size: int = 1000, start_after: str | None = None
    ) -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix`` (relative to the client's prefix), page by page (continuation tokens).

        ``start_after``: only the keys after this one (relative too; S3's StartAfter), so that a walk of a
        large bucket can stop and resume later from the last key it saw without holding the listing.
        """
        token: str | None = None
        while True:
            query: list[tuple[str, str | None]] = [("list-type", "2"), ("max-keys", str(page_size))]
            if self.addresser.full_key(prefix):
                query.append(("prefix", self.addresser.full_key(prefix)))
            if token:
                query.append(("continuation-token", token))
            elif start_after:
                query.append(("start-after", self.addresser.full_key(start_after)))
            root = await self._xml(await self._call("GET", None, query=tuple(sorted(query, key=lambda q: q[0]))))
            for item in wire.children(root, "Contents"):
                yield ObjectInfo(
                    key=self._relative(wire.text(item, "Key")),
                    size=int(wire.text(item, "Size", "0")),
                    etag=wire.text(item, "ETag"),
                    last_modified=wire.text(item, "LastModified"),
                )
            token = wire.text(root, "NextContinuationToken") or None
            if wire.text(root, "IsTruncated").lower() != "true" or not token:
                return

    async def presign_get(self, key: str, expires_seconds: int) -> str:
        """A URL anyone can GET ``key`` with for ``expires_seconds`` (a query-string SigV4 signature)."""
        if not 1 <= expires_seconds <= 7 * 24 * 3600:
            raise ValueError("a presigned URL lives between 1 second and 7 days")
        credentials = await self.credentials.get()
        return presign_url(credentials, self.settings.region, self.addresser.url(key), expires_seconds)

    def _relative(self, full_key: str) -> str:
        prefix = self.settings.prefix
        return full_key[len(prefix) :] if prefix and full_key.startswith(prefix) else full_key

    # -- multipart uploads -------------------------------------------------------------

    async def create_multipart_upload(self, key: str, *, content_type: str | None = None) -> str:
        """Start a multipart upload of ``key``; its upload id."""
        headers = {"Content-Type": content_type} if content_type else {}
        root = await self._xml(await self._call("POST", key, query=(("uploads", None),), headers=headers))
        upload_id = wire.text(root, "UploadId")
        if not upload_id:
            raise S3Error(f"CreateMultipartUpload of {key}: no UploadId in the answer", code="BadAnswer", key=key)
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, path: str, offset: int, length: int) -> str:
        """Upload ``length`` bytes of ``path`` from ``offset`` as part ``number`` (1-based); the part's ETag."""
        query = (("partNumber", str(number)), ("uploadId", upload_id))
        body = _Body(path=path, offset=offset, length=length)
        response = await self._call("PUT", key, query=query, body=body)
        await self._done(response)
        etag = _header(response, "etag")
        if not etag:
            raise S3Error(f"UploadPart {number} of {key}: no ETag in the answer", code="BadAnswer", key=key)
        return etag

    async def complete_multipart_upload(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> str:
        """Commit the upload from ``parts`` [(number, etag)]; the object's ETag.

        S3 may answer 200 and still fail (an ``<Error>`` body, sent after a long
        assembly): that is raised (and retried) like any error answer.
        """
        body = _Body(data=wire.complete_body(sorted(parts)))
        for attempt in range(1, self.settings.max_attempts + 1):
            root = await self._xml(await self._call("POST", key, query=(("uploadId", upload_id),), body=body))
            if wire.root_name(root) != "Error":
                return wire.text(root, "ETag")
            code, message = wire.text(root, "Code"), wire.text(root, "Message")
            if not wire.retryable(200, code) or attempt == self.settings.max_attempts:
                raise S3Error(f"CompleteMultipartUpload of {key}: {code} {message}", code=code, status=200, key=key)
            self.retries += 1
            delay = wire.backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap, self._rng)
            await task.deferLater(self._clock, delay, lambda: None)
        raise AssertionError("unreachable")

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; an upload that is already gone is not an error."""
        try:
            response = await self._call("DELETE", key, query=(("uploadId", upload_id),), ok=(200, 204))
        except S3NotFound:
            return
        await self._done(response)

    async def list_multipart_uploads(self, prefix: str = "") -> list[MultipartUpload]:
        """The uploads in progress under ``prefix`` (relative to the client's prefix), all pages."""
        uploads: list[MultipartUpload] = []
        markers: list[tuple[str, str | None]] = []
        while True:
            query: list[tuple[str, str | None]] = [("uploads", None), *markers]
            if self.addresser.full_key(prefix):
                query.append(("prefix", self.addresser.full_key(prefix)))
            root = await self._xml(await self._call("GET", None, query=tuple(sorted(query, key=lambda q: q[0]))))
            for item in wire.children(root, "Upload"):
                uploads.append(
                    MultipartUpload(
                        self._relative(wire.text(item, "Key")),
                        wire.text(item, "UploadId"),
                        wire.text(item, "Initiated"),
                    )
                )
            if wire.text(root, "IsTruncated").lower() != "true":
                return uploads
            markers = [
                ("key-marker", wire.text(root, "NextKeyMarker")),
                ("upload-id-marker", wire.text(root, "NextUploadIdMarker")),
            ]

    async def put_file(
        self,
        key: str,
        path: str,
        *,
        part_size: int | None = None,
        content_type: str | None = None,
        sha256: str | None = None,
        offset: int = 0,
        length: int | None = None,
    ) -> str:
        """Store the file at ``path`` as ``key``: one PUT up to the threshold, else a multipart upload.

        ``offset``/``length``: only that region of the file (None: to its end).

        A multipart upload that fails in any way (a part, the completion, a
        cancellation) is aborted before the error is raised: the key is either
        the whole file or untouched, never a half-committed object.
        """
        from harbor_cache.storage.s3.transfer import put_file

        return await put_file(
            self, key, path, part_size=part_size, content_type=content_type, sha256=sha256, offset=offset, length=length
        )


def _settle_into(result: Any, outer: defer.Deferred[Any]) -> None:
    """Hand the request's result to ``outer`` unless the caller already cancelled it (then drop it)."""
    if outer.called:
        return
    if isinstance(result, Failure):
        outer.errback(result)
    else:
        outer.callback(result)


def _file_size(path: str) -> int:
    import os

    return os.stat(path).st_size


def _header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    if not values:
        return None
    value = values[-1]
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
