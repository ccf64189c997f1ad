"""Proxied blobs: served from disk when committed, else one download per digest that every client joins."""

from __future__ import annotations

from twisted.logger import Logger

from harbor_cache.core.flight.access import hit_source
from harbor_cache.core.flight.downloads import Adopted, Download, Opened
from harbor_cache.core.oci.proxy import BlobHandle, ProxyCore, map_upstream_failure
from harbor_cache.core.seams import CacheStatus
from harbor_cache.errors import (
    BlobUnknown,
    HarborError,
)
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.index.rows import Entry
from harbor_cache.upstream.body import discard_body
from harbor_cache.upstream.http import UpstreamError, UpstreamNotFound, header

log = Logger()


class ProxyBlobs(ProxyCore):
    # -- blobs ---------------------------------------------------------------

    async def _blob_row(self, digest: str) -> tuple[int, int, str] | None:
        row = self._blob_rows.get(digest)
        if row is None:
            entry = await self.index.get_entry("blob", "", digest)
            if entry is None:
                return None
            row = self._blob_rows[digest] = (entry.id, entry.size, hit_source(entry))
        return row

    async def committed_blob_size(self, digest: str) -> int | None:
        """Size of a committed blob we hold, or None, without fetching it from the bucket (HEAD, mounts,
        a pushed manifest's blobs): the row's size when the storage holds it (`Storage.holds`)."""
        row = await self._blob_row(digest)
        if row is None:
            return None
        if not self.storage.holds(digest):
            log.warn("index lists {digest} but its file is gone; treating as a miss", digest=digest)
            self._blob_rows.pop(digest, None)
            return None
        return row[1]

    async def redirect_blob(self, digest: str) -> str | None:
        """With ``[storage] redirect``: a presigned URL of the committed blob's object (counted as a hit),
        else None (redirects off, or not committed: a cold download in flight is streamed as always)."""
        if self.storage.redirect_expiry is None:
            return None
        row = await self._blob_row(digest)
        if row is None:
            return None
        url = await self.storage.redirect_url(digest)
        if url is not None:
            self.outcomes.hit(row[0], row[2])
        return url

    async def get_blob(self, name: str, digest: str, range_header: bytes | None = None) -> BlobHandle:
        """A source to stream the blob from: stored, joined in flight, or a new download.

        ``range_header``: the client's Range, so that a part of committed content missing from the local
        tier is read from the bucket as that part (`Storage.open_streaming`).

        Raises BlobUnknown (404 upstream), UpstreamUnavailable (503) or
        UpstreamBadResponse (502).
        """
        row = await self._blob_row(digest)
        if row is not None:
            # A tier miss streams from the bucket while it fills the tier (`Storage.open_streaming`).
            stored = await self.storage.open_streaming(digest, row[1], range_header)
            if stored is not None:
                self.outcomes.hit(row[0], row[2])
                return BlobHandle(digest, row[1], stored, "hit")
            log.warn("index lists {digest} but its file is gone; treating as a miss", digest=digest)
            self._blob_rows.pop(digest, None)
        key = ("blob", digest)
        dl = self.downloads.get(key)
        status: CacheStatus = "coalesced"
        if dl is None:
            if self.negative.known_missing(("blob", name, digest)):
                raise BlobUnknown("blob unknown to registry", {"digest": digest})
            dl = self.downloads.start(BlobDownload(self, name, digest))
            status = "miss"
        try:
            await dl.headers_ready.observe()
        except UpstreamNotFound:
            self.negative.remember(("blob", name, digest))
            raise BlobUnknown("blob unknown to registry", {"digest": digest}) from None
        except HarborError:
            raise  # e.g. InsufficientStorage: the disk cannot take it
        except Exception as e:
            raise map_upstream_failure(e, "blob") from None
        status = dl.cache_status(status)  # (another node downloaded it: "coalesced", from "bucket")
        if status == "miss":
            self.outcomes.miss(dl.source)
        assert dl.temp is not None  # the headers are in: the file exists
        return BlobHandle(digest, dl.length, dl.temp, status, dl.served_from)

    async def _commit_blob(self, digest: str, size: int, source: str) -> Entry:
        entry = await self.index.put_entry(
            kind="proxy",
            type_="blob",
            repository="",
            key=digest,
            digest=digest,
            size=size,
            now=self.clock.seconds(),
            upstream=source,
        )
        self._blob_rows[digest] = (entry.id, entry.size, hit_source(entry))
        return entry

    async def _adopt_blob(self, digest: str) -> Adopted | None:
        """The blob as committed by another node sharing the index and the store, or None."""
        entry = await self.index.get_entry("blob", "", digest)
        if entry is None:
            return None
        stored = await self.storage.open_local(digest, entry.size)
        if stored is None:
            return None
        self._blob_rows[digest] = (entry.id, entry.size, hit_source(entry))
        return Adopted(entry, stored)

    async def head_blob(self, name: str, digest: str) -> tuple[int | None, str]:
        """(size, cache status) without downloading a body: stored, in flight, or an upstream HEAD.

        A blob still being downloaded does not exist yet: pushing clients
        (skopeo, docker) HEAD a blob to decide whether to upload it, and the
        manifest PUT that follows needs it committed.  So the HEAD waits for
        the download's commit; if the download fails it asks the upstream.
        Content in the bucket is answered from its row, never fetched.
        """
        size = await self.committed_blob_size(digest)
        if size is not None:
            entry_id, _, source = self._blob_rows[digest]
            self.outcomes.hit(entry_id, source)
            return size, "hit"
        dl = self.downloads.inflight.get(("blob", digest))
        if dl is not None:
            try:
                await dl.committed.observe()
            except Exception:
                pass  # the download failed; answer as if it had never run
            else:
                size = await self.committed_blob_size(digest)
                if size is not None:
                    return size, "coalesced"
        if self.negative.known_missing(("blob", name, digest)):
            raise BlobUnknown("blob unknown to registry", {"digest": digest})
        try:
            up, response = await self._first_answer(name, "HEAD", "blobs", digest)
        except UpstreamNotFound:
            self.negative.remember(("blob", name, digest))
            raise BlobUnknown("blob unknown to registry", {"digest": digest}) from None
        except UpstreamError as e:
            raise map_upstream_failure(e, "blob") from None
        await discard_body(response)
        # Twisted reports length 0 for HEAD; the size is in the header.
        value = header(response, "Content-Length")
        return parse_decimal(value), "upstream"


class BlobDownload:
    """The `DownloadJob` of one proxied blob: keyed by digest alone, verified by it."""

    front = "oci"
    extra_hashes: tuple[str, ...] = ()
    adoptable = True

    def __init__(self, cache: ProxyBlobs, name: str, digest: str):
        self.cache = cache
        self.name = name
        self.digest = digest
        self.key = ("blob", digest)
        # Until one answers: the first upstream serving the name (`open` names the one that answered).
        upstreams = cache.route(name).upstreams
        self.source = upstreams[0].name if upstreams else "none"

    async def open(self) -> Opened:
        up, response = await self.cache._first_answer(self.name, "GET", "blobs", self.digest)
        return Opened(response, up.name)

    async def expected_digest(self) -> str:
        return self.digest

    async def commit(self, download: Download) -> Entry:
        assert download.temp is not None and download.temp.total is not None  # verified: its length is known
        entry = await self.cache._commit_blob(self.digest, download.temp.total, download.source)
        # The clients that read the body while it downloaded (the first and every joiner) read this
        # entry too: without this a blob three clients pulled at once shows 0 hits and LFU evicts it first.
        self.cache.outcomes.served(entry.id, download.joined + 1)
        return entry

    async def adopt(self) -> Adopted | None:
        return await self.cache._adopt_blob(self.digest)
