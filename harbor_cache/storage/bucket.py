"""The bucket behind `Storage` (``[storage] backend = "s3"``): commits, fills of the local tier, deletes, probes.

Keys are the data directory's content-addressed paths under the configured
prefix (``<prefix>blobs/sha256/ab/<hex>``), so a file-system cache and a
bucket hold the same names.  The order that keeps the index honest:

* a commit uploads the verified file (`S3Client.put_file`: one PUT, or a
  multipart upload that is aborted on any failure) before the caller gets
  the digest and writes its row, so a row never names an incomplete object;
* a delete removes the tier's copy, then the object, after the caller has
  deleted the row (an object without a row is an orphan the reconciler
  removes later; a row without an object would be a lie);
* a fill (content committed but not on this node's tier: evicted, or
  written by another node) streams the object into a temp file that is
  hashed as it arrives and renamed into the tier only when its digest
  matches, so a corrupted object is refused and never installed.  Readers
  may stream that temp file while it grows (`stream`, one fill per digest
  however many read it), as they stream a cold download: they hold back
  the last byte until the digest matched, so a corrupt object never
  reaches a client whole.

Every S3 failure that survives the client's retries reaches the caller as
`StorageUnavailable` (503 ``STORAGE_UNAVAILABLE``).  `probe` is the cheap
periodic listing behind /readyz; each change of state is logged once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from harbor_cache.errors import StorageUnavailable
from harbor_cache.storage.bucket_range import BucketRange
from harbor_cache.storage.errors import BlobCorrupt, SourceFailed
from harbor_cache.storage.s3 import S3Client, S3Error, S3NotFound, S3Settings

if TYPE_CHECKING:
    from harbor_cache.settings.storage import StorageConfig
    from harbor_cache.storage.layout import Storage
    from harbor_cache.storage.writer import TempBlob

log = Logger()


def s3_settings(config: StorageConfig) -> S3Settings:
    """The client's settings from ``[storage]`` (`S3Settings` checks what the parser did not, e.g. the endpoint)."""
    return S3Settings(
        bucket=config.bucket or "",
        endpoint=config.endpoint,
        region=config.region,
        prefix=config.prefix,
        addressing=config.addressing,
        access_key_id=config.access_key_id,
        secret_access_key=config.secret_access_key,
        max_attempts=config.max_attempts,
        backoff_base=config.backoff_base_seconds,
        backoff_cap=config.backoff_cap_seconds,
        timeout=config.timeout_seconds,
        multipart_threshold=config.multipart_threshold_bytes,
        part_size=config.part_size_bytes,
    )


def blob_key(digest: str) -> str:
    """``blobs/<algo>/<ab>/<hex>``: the same path as under the data directory."""
    algo, _, hexpart = digest.partition(":")
    if not hexpart or "/" in hexpart or "/" in algo or hexpart.startswith("."):
        raise ValueError(f"not a digest: {digest!r}")
    return f"blobs/{algo}/{hexpart[:2]}/{hexpart}"


def digest_of_key(key: str) -> str | None:
    """The digest a key names, or None for a key that is not a committed object's."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "blobs" or parts[3][:2] != parts[2] or not parts[3]:
        return None
    return f"{parts[1]}:{parts[3]}"


def unavailable(what: str, error: Exception) -> StorageUnavailable:
    return StorageUnavailable(
        "the object store is unavailable; try again later",
        {"operation": what, "reason": getattr(error, "code", type(error).__name__)},
        headers={"Retry-After": "5"},
    )


class Bucket:
    """One bucket of an S3-compatible store as the committed content of a node (see the module docstring)."""

    def __init__(self, client: S3Client, clock: IReactorTime, probe_interval: float = 10.0):
        self.client = client
        self.clock = clock
        self.probe_interval = probe_interval
        #: the last probe's verdict (None: not probed yet); /readyz reports "bucket" while it is False
        self.reachable: bool | None = None
        self._fills: dict[str, _Fill] = {}  # digest -> its fill in flight
        #: digests whose object a fill refused (corrupt, short): `stream` answers None for them (a miss, so the
        #: caller downloads the content again and its commit replaces the object) instead of streaming it again
        self.refused: set[str] = set()
        self._probe_call: IDelayedCall | None = None
        self._probing = False
        #: bytes of objects no row pointed at in the last reconciler pass (counted in bucket bytes until removed)
        self.orphan_bytes = 0
        self.pool: Any = None  # the HTTP connection pool `attach_bucket` made (closed at stop)

    # -- commits and deletes ---------------------------------------------------------

    async def upload(self, digest: str, path: str) -> None:
        """Store the verified file at ``path`` under its digest's key; raises `StorageUnavailable`."""
        algo, _, hexpart = digest.partition(":")
        try:
            await self.client.put_file(blob_key(digest), path, sha256=hexpart if algo == "sha256" else None)
            self.refused.discard(digest)
        except S3Error as e:
            log.warn("storing {digest} in the bucket failed: {error}", digest=digest, error=e)
            self._saw_failure(e)
            raise unavailable("upload", e) from None

    async def delete(self, digests: list[str]) -> None:
        """Remove the objects of ``digests`` (their rows are already gone); raises `StorageUnavailable`."""
        if not digests:
            return
        try:
            if len(digests) == 1:
                await self.client.delete_object(blob_key(digests[0]))
                return
            failed = await self.client.delete_objects([blob_key(d) for d in digests])
        except S3Error as e:
            self._saw_failure(e)
            raise unavailable("delete", e) from None
        if failed:
            log.warn("the bucket refused to delete {count} objects: {failed}", count=len(failed), failed=failed)

    # -- redirects ---------------------------------------------------------------------

    async def presign(self, digest: str, expires_seconds: int) -> str | None:
        """A URL anyone can GET the object of ``digest`` with for ``expires_seconds``; None when no URL can be
        signed (the credential chain failed: the caller serves the bytes itself, which may still work)."""
        try:
            return await self.client.presign_get(blob_key(digest), expires_seconds)
        except Exception as e:
            log.warn("cannot presign a URL for {digest}: {error}; serving it here", digest=digest, error=e)
            return None

    # -- fills of the local tier -------------------------------------------------------

    def fill(self, storage: Storage, digest: str, size: int | None) -> defer.Deferred[bool]:
        """Fetch ``digest`` into ``storage``'s tier: True once installed, False when the bucket does not have it
        (or has a corrupt copy); raises `StorageUnavailable`.  One fetch per digest however many ask."""
        waiter: defer.Deferred[bool] = defer.Deferred()
        self._start_fill(storage, digest, size).waiters.append(waiter)
        return waiter

    def stream(self, storage: Storage, digest: str, size: int | None) -> defer.Deferred[TempBlob | None]:
        """The fill of ``digest`` as a growing file, as soon as the bucket's answer has begun (None: not in
        the bucket).  Readers stream it while it fills, as they stream a cold download: the last byte waits
        for the digest (`TempBlob.complete`), a corrupt or broken fill fails them (`SourceFailed`).  Joins
        the fill in flight, if any; raises `StorageUnavailable`."""
        opened: defer.Deferred[TempBlob | None] = defer.Deferred()
        if digest in self.refused:
            opened.callback(None)
            return opened
        flight = self._start_fill(storage, digest, size)
        if flight.temp is not None:
            opened.callback(flight.temp)
        else:
            flight.openers.append(opened)
        return opened

    async def open_range(self, storage: Storage, digest: str, size: int, first: int, last: int) -> BucketRange | None:
        """Bytes ``[first, last]`` of the object of ``digest`` as the store's ranged answer, to stream straight
        to a client (`bucket_range`), with the tier's fill started beside it; None: serve it from the fill
        instead (not in the bucket, refused before, or a store that ignored the Range).  `StorageUnavailable`."""
        if digest in self.refused:
            return None
        key = blob_key(digest)
        try:
            response = await self.client.get_object(key, (first, last))
        except S3NotFound:
            return None
        except S3Error as e:
            self._saw_failure(e)
            raise unavailable("read", e) from None
        ranged = BucketRange(key, size, first, last, response, self.clock, self.client.settings.timeout)
        if response.code != 206:
            ranged.discard()
            return None
        self.fill(storage, digest, size).addErrback(lambda _: None)  # (its failures are logged, or the next read's)
        return ranged

    def _start_fill(self, storage: Storage, digest: str, size: int | None) -> _Fill:
        flight = self._fills.get(digest)
        if flight is None:
            flight = self._fills[digest] = _Fill()  # (before the fetch starts: it may end at once)
            defer.ensureDeferred(self._fill(storage, digest, size, flight)).addBoth(self._filled, digest)
        return flight

    def _filled(self, result: Any, digest: str) -> None:
        flight = self._fills.pop(digest, None)
        if flight is None:
            return
        flight.opened(None if not isinstance(result, Failure) else result)
        for waiter in flight.waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _fill(self, storage: Storage, digest: str, size: int | None, flight: _Fill) -> bool:
        key = blob_key(digest)
        try:
            response = await self.client.get_object(key)
        except S3NotFound:
            return False
        except S3Error as e:
            self._saw_failure(e)
            raise unavailable("read", e) from None
        if size is None:
            length = response.headers.getRawHeaders(b"content-length")
            size = int(length[-1]) if length and length[-1].isdigit() else None
        temp = storage.new_temp(size, write_behind=False)
        temp.to_bucket = False  # it comes from there
        flight.temp = temp
        flight.opened(temp)
        try:
            await _stream_into(response, temp, self.clock, self.client.settings.timeout)
            await temp.finish(digest)
        except BlobCorrupt as e:
            log.error("the bucket's {key} is not {digest} ({error}): refused", key=key, digest=digest, error=e)
            self.refused.add(digest)
            return False
        except SourceFailed as e:
            if not temp.failure:
                temp.abort(e)
            if "short body" in str(e) and size is not None:
                log.error("the bucket's {key} is not {size} bytes: refused", key=key, size=size)
                self.refused.add(digest)
                return False
            raise unavailable("read", e) from None
        except BaseException as e:
            temp.abort(e if isinstance(e, Exception) else SourceFailed(str(e)))
            raise
        return True

    # -- reachability (/readyz) -----------------------------------------------------------

    def start_probing(self) -> None:
        self._probe_call = self.clock.callLater(0, self._tick)

    def stop_probing(self) -> None:
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        self._probe_call = None

    async def close(self) -> None:
        self.stop_probing()
        if self.pool is not None:
            await self.pool.closeCachedConnections()

    def _tick(self) -> None:
        self._probe_call = None
        d = defer.ensureDeferred(self.probe())
        d.addErrback(lambda f: log.failure("bucket probe", f))

        def again(_: Any) -> None:
            if self._probe_call is None and self.probe_interval > 0:
                self._probe_call = self.clock.callLater(self.probe_interval, self._tick)

        d.addBoth(again)

    async def probe(self) -> bool:
        """One listing request of at most one key (no retries beyond the client's): is the bucket there?"""
        if self._probing:
            return bool(self.reachable)
        self._probing = True
        try:
            async for _ in self.client.list_objects_v2("", page_size=1):
                break
        except S3Error as e:
            self._set_reachable(False, e)
        else:
            self._set_reachable(True)
        finally:
            self._probing = False
        return bool(self.reachable)

    def _saw_failure(self, error: Exception) -> None:
        from harbor_cache.storage.s3 import S3Unavailable

        if isinstance(error, S3Unavailable):
            self._set_reachable(False, error)

    def _set_reachable(self, ok: bool, error: Exception | None = None) -> None:
        if ok == self.reachable:
            return
        before, self.reachable = self.reachable, ok
        settings = self.client.settings
        if ok:
            if before is False:
                log.info("the bucket {bucket} answers again", bucket=settings.bucket)
        else:
            log.warn(
                "the bucket {bucket} at {endpoint} is unreachable ({error}): requests that need it answer "
                "503 STORAGE_UNAVAILABLE; warm hits from the local tier go on",
                bucket=settings.bucket, endpoint=settings.endpoint_url, error=error,
            )  # fmt: skip


class _Fill:
    """One fill in flight: who waits for its end (`fill`), who waits for its growing file (`stream`)."""

    def __init__(self) -> None:
        self.waiters: list[defer.Deferred[bool]] = []
        self.openers: list[defer.Deferred[TempBlob | None]] = []
        self.temp: TempBlob | None = None

    def opened(self, result: TempBlob | Failure | None) -> None:
        openers, self.openers = self.openers, []
        for opener in openers:
            if isinstance(result, Failure):
                opener.errback(result)
            else:
                opener.callback(result)


class _IntoTemp(Protocol):
    """A response body into a `TempBlob`, pausing the connection while the blob's write queue is high."""

    def __init__(self, temp: TempBlob, done: defer.Deferred[None], clock: IReactorTime, timeout: float):
        self.temp = temp
        self.done = done
        self.timeout = timeout
        self.timer = clock.callLater(timeout, self._stalled)

    def _stalled(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
        if not self.done.called:
            self.done.errback(SourceFailed(f"no bytes from the bucket for {self.timeout:g}s"))

    def dataReceived(self, data: bytes) -> None:
        if self.timer.active():
            self.timer.reset(self.timeout)
        if self.temp.write(data):
            self.transport.pauseProducing()  # type: ignore[union-attr]
            self.temp.on_drain = self._drained

    def _drained(self) -> None:
        self.temp.on_drain = None
        if self.transport is not None and not self.done.called:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.timer.active():
            self.timer.cancel()
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(None)
        else:
            self.done.errback(SourceFailed(f"the bucket's answer broke off: {reason.value}"))


async def _stream_into(response: Any, temp: TempBlob, clock: IReactorTime, timeout: float) -> None:
    done: defer.Deferred[None] = defer.Deferred()
    response.deliverBody(_IntoTemp(temp, done, clock, timeout))
    await done


def attach_bucket(storage: Storage, config: StorageConfig, reactor: Any, clock: IReactorTime) -> Bucket:
    """Put the ``[storage]`` bucket behind ``storage`` (its own HTTP connection pool, the storage's I/O pool).

    Raises ValueError naming what `S3Settings` refuses (an endpoint that is not a URL...).
    """
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    settings = s3_settings(config)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 16
    pool.cachedConnectionTimeout = 60
    agent = Agent(reactor, connectTimeout=min(10.0, config.timeout_seconds), pool=pool)
    client = S3Client(settings, HTTPClient(agent), storage.io, clock)
    bucket = Bucket(client, clock, config.probe_interval_seconds)
    bucket.pool = pool
    storage.use_bucket(bucket, config.local_cache_bytes)
    if config.redirect:
        storage.redirect_expiry = config.redirect_expiry_seconds
    log.info(
        "content in bucket {bucket} at {endpoint} (prefix {prefix!r}); local tier {root} up to {limit} bytes",
        bucket=settings.bucket, endpoint=settings.endpoint_url, prefix=settings.prefix,
        root=storage.blob_dir, limit=config.local_cache_bytes,
    )  # fmt: skip
    return bucket
