"""Single-flight downloads: one upstream body per key, however many clients ask.

`Downloads.start` registers the download under its key *before* anything is
awaited, so a second caller always finds it.  The body goes into a `TempBlob`
(hashed as it grows); every client streams from that growing file at its own
pace.  At the end the digest is checked, the file renamed into the store, the
caller's ``commit`` hook records it in the index, and only then is the key
released, so there is never a moment when neither the index nor the
in-flight table knows the content.  On any failure the temp file goes, the
readers are aborted, the upstream transfer is stopped, the key is released at
once (the next request starts afresh) and nothing is recorded.

A body whose end was only the upstream closing the connection (no
``Content-Length``, no chunking) may be truncated: it is committed only when
an expected digest (the OCI digest, the Maven ``.sha1``) verified it.

Both fronts use this: OCI blobs keyed by digest, Maven files by repository and path.

The core describes each download with one `DownloadJob`: its key, how to
open the upstream response (and which upstream answered), the digest the
body must have, and how to record it once verified.

Several nodes on one index (`leases.LeaseBook`): a download that can be
*adopted* (the job's ``adopt``: "is it committed by now? then here is the
stored source") first takes the key's lease in the index. A node
that finds the lease held by another node fetches nothing: its clients wait
until the other node commits the file to the shared store and are then
served that file (with ``[storage] backend = "s3"`` the nodes share no data
directory: ``adopt`` streams the committed object from the bucket into this
node's local tier, and those requests are logged as "coalesced" from
"bucket": `Download.cache_status`, `Download.served_from`); when the other
node dies, its lease expires and this node takes the download over.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from harbor_cache.core.flight.observable import Observable
from harbor_cache.core.seams import CacheStatus
from harbor_cache.storage import Storage, TempBlob
from harbor_cache.upstream.body import UpstreamBodyFailed, abandon_body, stream_to_temp
from harbor_cache.upstream.http import header, response_length

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.flight.leases import LeaseBook
    from harbor_cache.core.operations.diskspace import DiskSpace
    from harbor_cache.core.operations.history import StatsHistory
    from harbor_cache.metrics import Metrics

log = Logger()


class Opened(NamedTuple):
    """An upstream's 200 response (unbuffered) and the name of the upstream that gave it."""

    response: Any
    source: str


class Adopted(NamedTuple):
    """What another node committed: the value `commit` would have returned, and the stored file."""

    result: Any
    stored: Any


class DownloadJob(Protocol):
    """One download as the core describes it to `Downloads`.

    ``key`` identifies it in the in-flight table (and the lease); ``front``
    and ``source`` label its metrics until `open` names the upstream that
    answered (so ``source`` is the upstream expected to answer: joins of a
    download that fails before any answer are counted under it); ``extra_hashes`` are computed beside the sha256 as the body
    arrives (Maven's sha1).  ``adoptable``: with a lease book, another node
    may be fetching it, and `adopt` finds its commit.
    """

    @property
    def key(self) -> Hashable: ...

    @property
    def front(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def extra_hashes(self) -> tuple[str, ...]: ...

    @property
    def adoptable(self) -> bool: ...

    async def open(self) -> Opened:
        """The upstream's 200 response; raises when there is none."""

    async def expected_digest(self) -> str | None:
        """The digest the whole body must have, asked for once the body has ended; None: nothing to check."""

    async def commit(self, download: Download) -> Any:
        """Record the verified file (``download.temp``); the value becomes ``download.result``."""

    async def adopt(self) -> Adopted | None:
        """The file as another node committed it, or None while it is not there."""


class Download:
    """One upstream body on its way to the store."""

    def __init__(self, key: Hashable, front: str, source: str):
        self.key = key
        self.front = front
        self.source = source
        self.response = None
        self.temp: TempBlob | None = None
        self.headers_ready = Observable()
        self.committed = Observable()
        self.result: Any = None
        self.joined = 0
        # Joins before `source` is known (the upstream has not answered yet): counted once it is.
        self.unlabelled_joins = 0
        self.source_known = False
        self.started_at: float | None = None
        # Another node downloaded it (the lease was theirs) and this node served its commit: "bucket" when
        # the content came from the bucket (``[storage] backend = "s3"``), "node" from the shared data directory.
        self.adopted_from: str | None = None

    @property
    def served_from(self) -> str:
        """The access log's ``upstream`` for this download's clients: the upstream, or "bucket" (adopted from it)."""
        return "bucket" if self.adopted_from == "bucket" else self.source

    def cache_status(self, status: CacheStatus) -> CacheStatus:
        """A request's status for this download: one that would start it is "coalesced" when another node did."""
        return "coalesced" if status == "miss" and self.adopted_from is not None else status

    @property
    def length(self) -> int | None:
        return None if self.temp is None else self.temp.total

    def header(self, name: str) -> str | None:
        return None if self.response is None else header(self.response, name)


class Downloads:
    """The in-flight table and the work of each download."""

    def __init__(
        self,
        storage: Storage,
        clock: IReactorTime,
        metrics: Metrics,
        idle_timeout: float = 30.0,
        leases: LeaseBook | None = None,
    ) -> None:
        self.storage = storage
        self.leases = leases  # a LeaseBook when several nodes share the index, else None
        self.clock = clock
        self.metrics = metrics
        self.idle_timeout = idle_timeout
        self.inflight: dict[Hashable, Download] = {}
        # A `core.operations.diskspace.DiskSpace`: a body the disk cannot take is refused
        # (507) before anything is written.  None: no check.
        self.space: DiskSpace | None = None
        # A `core.operations.history.StatsHistory` that upstream bytes and body failures are also counted in.
        self.history: StatsHistory | None = None

    def _history_counter(self, inc: Callable[[int], None], source: str) -> Callable[[int], None]:
        """``inc`` (the Prometheus child) plus the traffic history's in-memory counter, per chunk received."""
        history = self.history
        assert history is not None

        def on_bytes(n: int) -> None:
            inc(n)
            history.count("upstream_bytes", source, n)

        return on_bytes

    def get(self, key: Hashable) -> Download | None:
        dl = self.inflight.get(key)
        if dl is not None:
            dl.joined += 1
            if dl.source_known:
                self.metrics.coalesced.labels(dl.front, dl.source).inc()
            else:
                dl.unlabelled_joins += 1
        return dl

    def _label_joins(self, dl: Download) -> None:
        """``dl.source`` is final: the joins so far are counted under it, later ones at once."""
        dl.source_known = True
        if dl.unlabelled_joins:
            self.metrics.coalesced.labels(dl.front, dl.source).inc(dl.unlabelled_joins)
            dl.unlabelled_joins = 0

    def start(self, job: DownloadJob) -> Download:
        """Begin ``job``'s download; the caller then waits on ``download.headers_ready``."""
        if job.key in self.inflight:
            raise RuntimeError(f"download {job.key!r} already in flight")
        dl = Download(job.key, job.front, job.source)
        dl.started_at = self.clock.seconds()
        self.inflight[job.key] = dl
        self.metrics.inflight.labels(job.front).inc()
        defer.Deferred.fromCoroutine(self._run(dl, job))
        return dl

    async def _run(self, dl: Download, job: DownloadJob) -> None:
        lease = None
        try:
            if job.adoptable and self.leases is not None:
                lease, adopted = await self.leases.hold_or_adopt(lease_name(dl.key), job.adopt)
                if lease is None:
                    # Another node fetched it: the upstream its row names (else "node").
                    dl.source = getattr(adopted.result, "upstream", None) or "node"
                    dl.adopted_from = "bucket" if self.storage.bucket is not None else "node"
                    self._label_joins(dl)
                    dl.result, dl.temp = adopted
                    dl.headers_ready.fire(dl)
                    dl.committed.fire(dl)
                    return
            if self.space is not None:
                self.space.check_room(None)  # not even worth asking the upstream
            self.storage.check_writable()  # nor while the bucket it would be committed to is unreachable
            response, dl.source = await job.open()
            self._label_joins(dl)
            dl.response = response
            if self.space is not None:
                try:
                    self.space.check_room(response_length(response))
                except Exception:
                    abandon_body(response)
                    raise
            # No write-behind: the readers are done before the fsync (see `TempBlob`).
            dl.temp = self.storage.new_temp(response_length(response), job.extra_hashes, write_behind=False)
            dl.headers_ready.fire(dl)
            counter = self.metrics.upstream_bytes.labels(dl.front, dl.source)
            on_bytes = counter.inc if self.history is None else self._history_counter(counter.inc, dl.source)
            end_certain = await stream_to_temp(response, dl.temp, self.clock, self.idle_timeout, on_bytes)
            expected = await job.expected_digest()
            if not end_certain and expected is None:
                raise UpstreamBodyFailed(
                    "the body ended with the connection, with no length and no checksum to show it is whole"
                )
            await dl.temp.finish(expected)
            dl.result = await job.commit(dl)
            dl.committed.fire(dl)
        except BaseException as e:
            reason = type(e).__name__
            self._label_joins(dl)  # no upstream answered: under the one expected to (the job's source)
            if dl.headers_ready.fired:
                # The upstream answered but its body failed or did not verify;
                # failures before that are counted where the upstream is chosen.
                self.metrics.upstream_errors.labels(dl.front, dl.source, _body_failure_reason(e)).inc()
                if self.history is not None:
                    self.history.count("upstream_errors", dl.source)
            log.warn(
                "download {key} from {source} failed: {reason}: {error}",
                key=dl.key,
                source=dl.source,
                reason=reason,
                error=e,
            )
            if dl.temp is not None:
                dl.temp.abort(e if isinstance(e, Exception) else Exception(reason))
            dl.headers_ready.fail(e)
            dl.committed.fail(e)
        finally:
            if self.inflight.get(dl.key) is dl:
                del self.inflight[dl.key]
            self.metrics.inflight.labels(dl.front).dec()
            if lease is not None:
                await lease.release()


def lease_name(key: Hashable) -> str:
    """The index's name for a download key: "download:" and its parts joined by "/"."""
    parts = key if isinstance(key, tuple) else (key,)
    return "download:" + "/".join(str(p) for p in parts)


def _body_failure_reason(error: BaseException) -> str:
    from harbor_cache.storage import BlobCorrupt
    from harbor_cache.upstream.body import UpstreamStalled

    if isinstance(error, BlobCorrupt):
        return "digest_mismatch"
    if isinstance(error, UpstreamStalled):
        return "stalled"
    return "body"
