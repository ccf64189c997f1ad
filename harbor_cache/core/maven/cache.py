"""The Maven cache core: decides hit, miss, join, revalidate or serve stale for repository files.

A Maven file is named by (repository id, path).  A cached file is served from
its blob; a missing one is fetched once through `Downloads` (keyed
``("maven", repository, path)``), streamed to every client that asks while it
is written, checked against the upstream's ``<path>.sha1`` when there is one,
and only then committed (index row + blob).  The ``.sha1`` fetched for that
check is stored too, so the build tool's next request for it is a hit.

Release files never change once cached.  ``maven-metadata.xml``, anything
under a ``-SNAPSHOT`` directory and their checksums follow
``maven.metadata_ttl_seconds``: after it a conditional GET
(``If-Modified-Since``) either confirms the copy (304: the TTL restarts) or
brings the new body through the same download path.  When the upstream cannot
answer, the cached copy is served stale.  An upstream 404 is remembered for
``cache.negative_ttl_seconds``.  A file that is neither cached nor reachable
upstream is a 404 (as Nexus answers), so a build tool treats it as absent.

Warm hits touch neither SQL nor the upstream: rows are kept in memory once
looked up, and last-access times are batched by `AccessRecorder`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from harbor_cache.core.flight.access import NegativeCache, Outcomes
from harbor_cache.core.flight.downloads import Adopted, Downloads
from harbor_cache.core.flight.memory import BoundedMemory
from harbor_cache.core.flight.observable import SingleFlight
from harbor_cache.core.maven.browse import MavenBrowse
from harbor_cache.core.maven.deploy import hash_file
from harbor_cache.core.maven.download import MavenDownload
from harbor_cache.core.maven.files import CachedRow, MavenFile, MemoryHits, RowMemory, whole_body
from harbor_cache.core.maven.group import MavenGroups
from harbor_cache.core.maven.removal import MavenRemoval
from harbor_cache.core.operations.diskspace import is_disk_full
from harbor_cache.core.seams import BlobStore, CacheIndex, CacheStatus, MavenRemote
from harbor_cache.errors import HarborError, NotFound, UnknownRepository, UpstreamBadResponse
from harbor_cache.grammar.http_dates import format_http_date, parse_http_date
from harbor_cache.grammar.maven_paths import MavenPath, content_type_for
from harbor_cache.index import EntryWrite
from harbor_cache.index.rows import Entry
from harbor_cache.storage import BlobCorrupt, GrowingSource
from harbor_cache.upstream.body import discard_body
from harbor_cache.upstream.http import NotModified, UpstreamError, UpstreamNotFound, header
from harbor_cache.upstream.maven import NotAFile

if TYPE_CHECKING:
    from collections.abc import Iterable

    from twisted.python.failure import Failure
    from twisted.web.iweb import IResponse

    from harbor_cache.core.flight.access import AccessRecorder
    from harbor_cache.core.flight.downloads import Download
    from harbor_cache.metrics import Metrics
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.settings.startup import MavenRepositoryConfig

log = Logger()

# Small files (POMs, checksums, metadata) are kept in memory once read, so a warm hit is one dict lookup and one
# write: no file open, no producer; and up to MEMORY_ROWS index rows (`RowMemory`), a few hundred bytes each.
SMALL_FILE_BYTES, SMALL_MEMORY_BYTES, MEMORY_ROWS = 64 << 10, 32 << 20, 100_000


class MavenCache(MavenRemoval, MavenBrowse):
    """Proxy, hosted and group Maven files: hit, miss, join, revalidate or serve stale; delete."""

    def __init__(
        self,
        *,
        repositories: Iterable[MavenRepositoryConfig],
        upstreams: Mapping[str, MavenRemote],
        index: CacheIndex,
        storage: BlobStore,
        downloads: Downloads,
        settings: RuntimeSettings,
        access: AccessRecorder,
        metrics: Metrics,
        clock: IReactorTime,
    ) -> None:
        """``repositories``: the configured `MavenRepositoryConfig`s in order;
        ``upstreams``: proxy repository id -> `upstream.maven.MavenUpstream`.

        Hosted repositories are served from what was deployed (never an
        upstream, never revalidated); groups go through `MavenGroups`.
        """
        self.repositories = {r.id: r for r in repositories}
        self.upstreams = upstreams
        self.index = index
        self.storage = storage
        self.downloads = downloads
        self.settings = settings
        self.access = access
        self.metrics = metrics
        self.clock = clock
        self.negative = NegativeCache(clock, lambda: settings.get("cache.negative_ttl_seconds"))
        self._rows = RowMemory(MEMORY_ROWS)
        self._single = SingleFlight()
        # Bodies of small files by digest: a warm hit is a dict lookup and one write.
        self.small: BoundedMemory[bytes] = BoundedMemory(SMALL_MEMORY_BYTES, len)
        self._hits = MemoryHits(SMALL_MEMORY_BYTES)
        self.outcomes = Outcomes("maven", access, metrics)
        self.groups = MavenGroups(self)

    # -- bookkeeping --------------------------------------------------------

    def repository(self, repo_id: str) -> MavenRepositoryConfig:
        """The repository's config; raises `UnknownRepository`."""
        repo = self.repositories.get(repo_id)
        if repo is None:
            raise UnknownRepository("repository not found", {"repositoryId": repo_id})
        return repo

    def invalidate(self, type_: str, repository: str, key: str) -> None:
        """Forget memory state for an entry the index no longer has (eviction, delete)."""
        if type_ == "maven":
            row = self._rows.pop((repository, key), None)
            if row is not None:
                self.small.discard(row.digest)

    async def _row(self, repo_id: str, path: str, mutable: bool | None = None) -> CachedRow | None:
        row = self._rows.get((repo_id, path))
        if row is None:
            entry = await self.index.get_entry("maven", repo_id, path)
            if entry is None:
                return None
            row = self._rows[(repo_id, path)] = CachedRow.from_entry(entry)
        if not self.storage.holds(row.digest):  # (with a bucket the row is the proof: nothing fetched here)
            log.warn("index lists {repo}/{path} but its file is gone; treating as a miss", repo=repo_id, path=path)
            self._rows.pop((repo_id, path), None)
            return None
        return row

    def _expired(self, path: str, row: CachedRow) -> bool:
        return row.mutable and self.clock.seconds() - row.fetched_at >= self.settings.get("maven.metadata_ttl_seconds")

    def _in_memory(self, repo_id: str, target: MavenPath, row: CachedRow, body: bytes) -> MavenFile:
        hit = self._hits.get(repo_id, target.path, row, body)
        if hit is None:
            source = self.storage.stored_source(row.digest, row.size)  # (opened by a Range's reader only)
            hit = self._stored(repo_id, target, row, "hit", body=body, source=source)
            self._hits.put(repo_id, target.path, row, hit)
        return hit

    def _stored(
        self,
        repo_id: str,
        target: MavenPath,
        row: CachedRow,
        status: CacheStatus,
        stale: bool = False,
        body: bytes | None = None,
        source: GrowingSource | None = None,
    ) -> MavenFile:
        return MavenFile(
            repository=repo_id,
            path=target.path,
            size=row.size,
            source=source if source is not None else self.storage.open_stored(row.digest, row.size),
            content_type=target.content_type,
            last_modified=row.last_modified,
            etag='"%s"' % row.digest.partition(":")[2],
            cache_status=status,
            stale=stale,
            body=body,
        )

    async def _source(
        self, row: CachedRow, range_header: bytes | None = None, head: bool = False
    ) -> GrowingSource | None:
        """The content of ``row`` to stream: the file, or with a bucket on a tier miss its object as it arrives
        (a Range's part of it: `Storage.open_streaming`), the tier filled beside it; None: it is nowhere.
        A HEAD's source is never read: nothing is fetched for it."""
        if head or self.storage.bucket is None:
            return self.storage.open_stored(row.digest, row.size)
        return await self.storage.open_streaming(row.digest, row.size, range_header)

    # -- files --------------------------------------------------------------

    async def get_file(
        self,
        repo_id: str,
        target: MavenPath | str,
        repo: MavenRepositoryConfig | None = None,
        range_header: bytes | None = None,
        head: bool = False,
    ) -> MavenFile:
        """A file to serve: stored, joined in flight, revalidated, stale, or a new download.

        ``target`` is the path parsed once (`grammar.maven_paths.MavenPath`; a
        plain path, already validated, is classified here); ``repo`` is the
        repository's config when the caller has looked it up already;
        ``range_header`` and ``head`` say what a hit will be read for (`_source`).  Raises
        `UnknownRepository` or `NotFound` (404: not upstream, or not cached
        and upstream unreachable), `UpstreamBadResponse` (502).
        """
        if isinstance(target, str):
            target = MavenPath.of(target)
        path = target.path
        if repo is None:
            repo = self.repository(repo_id)
        if repo.is_hosted:
            return await self._hosted_file(repo_id, target, range_header, head)
        if repo.is_group:
            return await self.groups.get_file(repo, target)
        key = ("maven", repo_id, path)
        row: CachedRow | None = self._rows.get((repo_id, path))
        known_missing = False
        if row is not None:
            hit = self._memory_hit(repo_id, target)
            if hit is not None:
                return hit
            row = await self._row(repo_id, path, target.mutable)
        else:
            if path.endswith(".sha1"):
                await self._sidecar_settled(repo_id, path[: -len(".sha1")])
            known_missing = self.negative.known_missing(key)
            if not known_missing:
                row = await self._row(repo_id, path, target.mutable)
        if row is not None and not self._expired(path, row):
            hit = await self._hit(repo_id, target, row, range_header, head)
            if hit is not None:
                return hit
            row = None  # (its content is nowhere: a miss)
        dl = self.downloads.get(key)
        if dl is not None:
            return await self._join(dl, repo_id, target, "coalesced", row)
        if row is not None:
            outcome, dl = await self._single.run(("revalidate",) + key, lambda: self._revalidate(repo_id, target, row))
            if outcome == "fresh":
                fresh = self._rows.get((repo_id, path), row)
                if (source := await self._source(fresh)) is not None:
                    self.outcomes.hit(fresh.id, repo_id)
                    return self._stored(repo_id, target, fresh, "revalidated", source=source)
                self._rows.pop((repo_id, path), None)  # (its content is nowhere: downloaded again)
                dl = self.downloads.get(key) or self._start(repo_id, target)
                return await self._join(dl, repo_id, target, "miss", None)
            if outcome == "stale":
                if (stale := await self._stale(repo_id, target, row)) is not None:
                    return stale
                raise NotFound("artifact not cached and upstream unavailable", {"repositoryId": repo_id, "path": path})
            return await self._join(dl, repo_id, target, "refreshed" if outcome == "changed" else "coalesced", row)
        if known_missing:
            raise NotFound("artifact not found", {"repositoryId": repo_id, "path": path})
        dl = self._start(repo_id, target)
        return await self._join(dl, repo_id, target, "miss", None)

    def memory_hit(self, repo_id: str, target: MavenPath) -> MavenFile | None:
        """The answer `get_file` would give at once for a warm small file of a proxy repository, or None.

        Synchronous, for the front's hot path (no Deferred, no coroutine):
        a file is returned, and the hit counted, only when `get_file` would
        return it without awaiting anything; None changes nothing.
        """
        repo = self.repositories.get(repo_id)
        if repo is None or repo.is_hosted or repo.is_group:
            return None
        return self._memory_hit(repo_id, target)

    def _memory_hit(self, repo_id: str, target: MavenPath) -> MavenFile | None:
        row = self._rows.get((repo_id, target.path))
        if row is None or self._expired(target.path, row):
            return None
        body = self.small.get(row.digest)
        if body is None:
            return None
        self.outcomes.hit(row.id, repo_id)
        return self._in_memory(repo_id, target, row, body)

    async def _sidecar_settled(self, repo_id: str, file_path: str) -> None:
        """Wait for the download of ``file_path`` to end, when one is running.

        A client asks for ``x.jar.sha1`` as soon as its ``x.jar`` body ends,
        which is before that download's commit has stored the ``.sha1`` it
        fetched: without waiting, that request would go upstream again.
        """
        running = self.downloads.inflight.get(("maven", repo_id, file_path))
        if running is None:
            return
        try:
            await running.committed.observe()
        except Exception:
            pass  # the file failed; the .sha1 request goes its own way

    async def _hit(
        self, repo_id: str, target: MavenPath, row: CachedRow, range_header: bytes | None = None, head: bool = False
    ) -> MavenFile | None:
        """A stored file's answer; None when its content is nowhere (the row is forgotten: the caller's miss)."""
        if row.size <= SMALL_FILE_BYTES:
            body = self.small.get(row.digest)
            if body is None:
                try:
                    body = await self.storage.read_bytes(row.digest)
                except OSError:
                    body = None
            if body is not None and len(body) == row.size:
                self.small.put(row.digest, body)
                self.outcomes.hit(row.id, repo_id)
                return self._in_memory(repo_id, target, row, body)
        source = await self._source(row, range_header, head)
        if source is None:
            log.warn("index lists {digest} but the bucket does not have it; treating as a miss", digest=row.digest)
            self._rows.pop((repo_id, target.path), None)
            return None
        self.outcomes.hit(row.id, repo_id)
        return self._stored(repo_id, target, row, "hit", source=source)

    # -- hosted repositories --------------------------------------------------

    async def _hosted_file(
        self, repo_id: str, target: MavenPath, range_header: bytes | None = None, head: bool = False
    ) -> MavenFile:
        """What was deployed at ``path``; a checksum nobody uploaded is computed from its file.

        A file that can be replaced (SNAPSHOT, maven-metadata.xml, anything
        under ``redeploy = "allow"``) is looked up in the index every time:
        another node sharing the index may have replaced it, and this node's
        memory of the row would serve the old one.
        """
        path = target.path
        if target.mutable or self.repositories[repo_id].redeploy == "allow":
            self._rows.pop((repo_id, path), None)
        row = await self._row(repo_id, path, target.mutable)
        hit = None if row is None else await self._hit(repo_id, target, row, range_header, head)
        if hit is not None:
            return hit
        base = target.checksum_base
        algorithm = target.checksum_algorithm
        if base is not None and algorithm is not None:
            base_row = await self._row(repo_id, base)
            if base_row is not None:
                hexdigest = await self._row_checksum(base_row, algorithm)
                return self.in_memory_file(repo_id, path, hexdigest.encode(), base_row.last_modified, "computed")
        raise NotFound("artifact not found", {"repositoryId": repo_id, "path": path})

    async def stored_checksum(self, repo_id: str, path: str, algorithm: str) -> str | None:
        """Hex ``algorithm`` digest of the file stored at ``path``, or None when there is none."""
        row = await self._row(repo_id, path)
        if row is None:
            return None
        return await self._row_checksum(row, algorithm)

    async def _row_checksum(self, row: CachedRow, algorithm: str) -> str:
        if algorithm == "sha256" and row.digest.startswith("sha256:"):
            return row.digest.partition(":")[2]
        if algorithm == "sha1" and row.sha1:
            return row.sha1
        if not await self.storage.ensure_local(row.digest, row.size):  # (the whole file is hashed: fetched first)
            raise NotFound("artifact not found", {"digest": row.digest})
        return await self.storage.io.run(hash_file, self.storage.blob_path(row.digest), algorithm)

    def in_memory_file(
        self, repo_id: str, path: str, body: bytes, last_modified: float, status: CacheStatus
    ) -> MavenFile:
        """A file made here (a computed checksum, a merged maven-metadata.xml), served from memory."""
        return MavenFile(
            repository=repo_id,
            path=path,
            size=len(body),
            source=None,
            content_type=content_type_for(path),
            last_modified=last_modified,
            etag='"%s"' % hashlib.sha256(body).hexdigest(),
            cache_status=status,
            body=body,
        )

    def remember(self, repo_id: str, path: str, entry: Entry, mutable: bool | None = None) -> None:
        """A commit or a deploy recorded ``entry``: the next GET sees it without SQL.

        ``mutable``: the path's `MavenPath.mutable` when the caller has it (None: classified here).
        """
        old = self._rows.get((repo_id, path))
        if old is not None and old.digest != entry.digest:
            self.small.discard(old.digest)
        self._rows[(repo_id, path)] = CachedRow.from_entry(entry, mutable)

    async def drop_if_orphan(self, digest: str) -> None:
        """Delete a stored file no entry references any more."""
        with self.storage.committing.watch() as seen:  # (deploys of the same bytes meanwhile: `storage.commits`)
            if not await self.index.digest_in_use(digest):
                self.small.discard(digest)
                await self.storage.delete_blob(digest, seen)

    async def whole_body(self, f: MavenFile, limit: int) -> bytes:
        """All of ``f`` in memory (waiting for a download in flight); `HarborError` when above ``limit``."""
        return await whole_body(self.storage.io, f, limit)

    async def _stale(self, repo_id: str, target: MavenPath, row: CachedRow) -> MavenFile | None:
        """The stored copy served stale; None when its content is nowhere (the row is forgotten)."""
        source = await self._source(row) if self.storage.holds(row.digest) else None
        if source is None:
            self._rows.pop((repo_id, target.path), None)
            return None
        self.metrics.stale_served.labels("maven", repo_id).inc()
        self.access.touch(row.id)
        return self._stored(repo_id, target, row, "stale", stale=True, source=source)

    async def _join(
        self, dl: Download, repo_id: str, target: MavenPath, status: CacheStatus, row: CachedRow | None
    ) -> MavenFile:
        path = target.path
        key = ("maven", repo_id, path)
        try:
            await dl.headers_ready.observe()
        except UpstreamNotFound:
            self.negative.remember(key)
            raise NotFound("artifact not found", {"repositoryId": repo_id, "path": path}) from None
        except UpstreamError as e:
            if row is not None and (stale := await self._stale(repo_id, target, row)) is not None:
                return stale
            if e.code is not None and 400 <= e.code < 500:
                raise UpstreamBadResponse(
                    "upstream refused the request", {"repositoryId": repo_id, "path": path, "reason": str(e)}
                ) from None
            raise NotFound(
                "artifact not cached and upstream unavailable",
                {"repositoryId": repo_id, "path": path, "reason": str(e)},
            ) from None
        except HarborError:
            raise  # e.g. InsufficientStorage: the disk cannot take it
        except Exception as e:
            raise UpstreamBadResponse(
                "upstream failed", {"repositoryId": repo_id, "path": path, "reason": f"{type(e).__name__}: {e}"}
            ) from None
        status = dl.cache_status(status)  # (another node downloaded it: "coalesced")
        if status == "miss":
            self.outcomes.miss(repo_id)
        last_modified = parse_http_date(dl.header("Last-Modified"))
        return MavenFile(
            repository=repo_id,
            path=path,
            size=dl.length,
            source=dl.temp,
            content_type=target.content_type,
            last_modified=last_modified if last_modified is not None else self.clock.seconds(),
            etag=None,
            cache_status=status,
            upstream="bucket" if dl.adopted_from == "bucket" else None,
        )

    async def _open(self, repo_id: str, target: MavenPath, headers: dict[bytes, bytes] | None = None) -> IResponse:
        """GET from upstream: the 200 response, or `NotModified` / `UpstreamNotFound` / `UpstreamError`."""
        path = target.path
        up = self.upstreams[repo_id]
        try:
            response = await up.request("GET", path, headers)
        except NotAFile:
            raise UpstreamNotFound(path) from None
        except UpstreamError as e:
            self.outcomes.upstream_error(repo_id, e.reason)
            raise
        if response.code == 200 and target.directory_listing(header(response, "Content-Type")):
            # A directory's HTML index is not the file: never stored, 404 like a missing file.
            await discard_body(response)
            raise UpstreamNotFound(path)
        if response.code == 200:
            return response
        await discard_body(response)
        if response.code == 304:
            raise NotModified(path)
        if response.code in (404, 410):
            raise UpstreamNotFound(path)
        self.outcomes.upstream_error(repo_id, f"http_{response.code}")
        raise UpstreamError(f"{repo_id}: {path} answered {response.code}", f"http_{response.code}", response.code)

    def _start(self, repo_id: str, target: MavenPath, response: IResponse | None = None) -> Download:
        """Begin the one download of ``target`` (with an already-open response, when revalidating)."""
        path = target.path
        dl = self.downloads.start(MavenDownload(self, repo_id, target, response))

        def _failed(failure: Failure) -> None:
            # Downloads counts the failure (upstream_errors, reason digest_mismatch/body/stalled).
            if failure.check(BlobCorrupt):
                log.warn(
                    "{repository}/{path} does not match upstream's .sha1; nothing stored", repository=repo_id, path=path
                )

        dl.committed.observe().addErrback(_failed)
        return dl

    async def _adopt(self, repo_id: str, target: MavenPath) -> Adopted | None:
        """The file as another node sharing the index and the store committed it (a miss only)."""
        path = target.path
        entry = await self.index.get_entry("maven", repo_id, path)
        if entry is None:
            return None
        stored = await self.storage.open_local(entry.digest, entry.size)
        if stored is None:
            return None
        self._rows[(repo_id, path)] = CachedRow.from_entry(entry, target.mutable)
        return Adopted(entry, stored)

    async def _commit(
        self, repo_id: str, target: MavenPath, dl: Download, published: tuple[str, bytes, float | None] | None
    ) -> Entry:
        """Record the verified file, and the ``.sha1`` upstream published for it, in one transaction.

        Both appear together: a client that has the file asks for its
        ``.sha1`` next, and finds it.
        """
        path = target.path
        temp = dl.temp
        # Committed only after the download wrote its file and `TempBlob.finish` set its digest and size.
        assert temp is not None and temp.digest is not None and temp.total is not None
        now = self.clock.seconds()
        writes = [
            EntryWrite(
                "proxy",
                "maven",
                repo_id,
                path,
                temp.digest,
                temp.total,
                target.content_type,
                temp.hashes.get("sha1"),
                repo_id,
                parse_http_date(dl.header("Last-Modified")),
            )
        ]
        if published is not None:
            sidecar = path + ".sha1"
            try:
                sidecar_digest = await self.storage.store_bytes(published[1])
            except Exception:
                log.failure("storing {repository}/{path} failed", repository=repo_id, path=sidecar)
            else:
                writes.append(
                    EntryWrite(
                        "proxy",
                        "maven",
                        repo_id,
                        sidecar,
                        sidecar_digest,
                        len(published[1]),
                        content_type_for(sidecar),
                        hashlib.sha1(published[1]).hexdigest(),
                        repo_id,
                        published[2],
                    )
                )
        rows, orphans = await self.index.put_entries(writes, now)
        for write, entry in zip(writes, rows, strict=True):
            self.remember(repo_id, write.key, entry, target.mutable if write.key == path else None)
            self.negative.forget(("maven", repo_id, write.key))
        for digest in orphans:
            self.small.discard(digest)
            await self.storage.delete_blob(digest)
        return rows[0]

    async def _revalidate(self, repo_id: str, target: MavenPath, row: CachedRow) -> tuple[str, Any]:
        """Ask upstream whether our copy still holds.

        Returns ("fresh", None) after a 304 (the TTL restarts), ("changed",
        download) when a new body is on its way, ("joined", download) when a
        download was already running, ("stale", None) when upstream could not
        answer.  Raises `NotFound` when upstream no longer has the file.
        """
        path = target.path
        headers = {}
        if row.upstream_modified is not None:
            headers[b"If-Modified-Since"] = format_http_date(row.upstream_modified)
        try:
            response = await self._open(repo_id, target, headers)
        except NotModified:
            now = self.clock.seconds()
            try:
                await self.index.mark_fetched(row.id, now)
            except Exception as e:
                if not is_disk_full(e):
                    raise
                log.warn("disk full: {path} revalidated, its new time kept in memory only", path=path)
            current = self._rows.get((repo_id, path))
            if current is not None:
                current.fetched_at = now
            return "fresh", None
        except UpstreamNotFound:
            log.info("{repository}/{path} is gone upstream; forgetting it", repository=repo_id, path=path)
            await self.delete(repo_id, path)
            self.negative.remember(("maven", repo_id, path))
            raise NotFound("artifact not found", {"repositoryId": repo_id, "path": path}) from None
        except UpstreamError:
            return "stale", None
        key = ("maven", repo_id, path)
        running = self.downloads.get(key)
        if running is not None:
            await discard_body(response)
            return "joined", running
        self.outcomes.miss(repo_id)
        return "changed", self._start(repo_id, target, response)
