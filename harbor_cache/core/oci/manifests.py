"""Proxied manifests by digest: fetched whole, verified against their digest, stored and kept in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from harbor_cache.core.flight.access import hit_source
from harbor_cache.core.oci.proxy import ManifestResult, ProxyCore, map_upstream_failure
from harbor_cache.core.operations.diskspace import is_disk_full
from harbor_cache.errors import ManifestUnknown
from harbor_cache.grammar.digests import InvalidDigest, digest_bytes, parse_digest
from harbor_cache.grammar.mediatypes import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_BYTES,
    OCI_MANIFEST,
    InvalidManifest,
    detect_manifest_media_type,
    manifest_references,
)
from harbor_cache.upstream.http import UpstreamError, UpstreamNotFound
from harbor_cache.upstream.registry import read_limited

if TYPE_CHECKING:
    from twisted.web.iweb import IResponse

log = Logger()


class ProxyManifests(ProxyCore):
    # -- manifests ------------------------------------------------------------

    async def _cached_manifest(self, name: str, digest: str) -> ManifestResult | None:
        row = self._manifest_rows.get((name, digest))
        if row is None:
            entry = await self.index.get_entry("manifest", name, digest)
            if entry is None:
                return None
            # A manifest row always has its media type; a missing one is served as the spec's default.
            row = (entry.id, entry.media_type or OCI_MANIFEST, entry.digest, hit_source(entry))
            self._manifest_rows[(name, digest)] = row
        item = self.manifests.get(digest)
        if item is None:
            try:
                body = await self.storage.read_bytes(row[2])
            except FileNotFoundError:
                log.warn("index lists manifest {digest} but its file is gone", digest=digest)
                self._manifest_rows.pop((name, digest), None)
                return None
            self.manifests.put(digest, (body, row[1]))
            item = (body, row[1])
        self.outcomes.hit(row[0], row[3])
        return ManifestResult(item[0], digest, item[1], "hit", source=row[3])

    async def _store_manifest(self, name: str, body: bytes, digest: str, media_type: str, source: str) -> None:
        """Keep a fetched manifest; when the disk is full it is served without being kept."""
        try:
            await self._store_manifest_files(name, body, digest, media_type, source)
        except Exception as e:
            if not is_disk_full(e):
                raise
            log.warn("disk full: manifest {digest} of {name} served without being cached", digest=digest, name=name)

    async def _store_manifest_files(self, name: str, body: bytes, digest: str, media_type: str, source: str) -> None:
        with self.storage.commit() as commit:  # (held from the body's rename to its row: `storage.commits`)
            stored = await self.storage.store_bytes(body, digest if digest.startswith("sha256:") else None, commit)
            entry = await self.index.put_entry(
                kind="proxy",
                type_="manifest",
                repository=name,
                key=digest,
                digest=stored,
                size=len(body),
                now=self.clock.seconds(),
                media_type=media_type,
                upstream=source,
            )
        self._manifest_rows[(name, digest)] = (entry.id, media_type, stored, hit_source(entry))
        self.manifests.put(digest, (body, media_type))
        self.outcomes.served(entry.id, 1)  # the client that caused the fetch read it too (as for blobs)
        await self._record_blob_images(name, body)

    async def _record_blob_images(self, name: str, body: bytes) -> None:
        """Remember which blobs this image uses, so the console can name a blob row after its image.

        Written once per stored manifest (not per pull); an unreadable body records nothing.
        """
        try:
            blobs, _children = manifest_references(body)
        except InvalidManifest:
            return
        await self.index.add_blob_images(name, blobs)

    async def stored_manifest(self, digest: str, name: str | None = None) -> bytes | None:
        """A manifest we hold, from memory, disk or the bucket, without asking upstream or counting a hit
        (None: not here).  Not on this node's disk, it is filled from the bucket when ``name`` has its row
        (the row's size says it is a manifest, not a layer a descriptor names)."""
        try:
            digest = str(parse_digest(digest))
        except InvalidDigest:
            return None
        item = self.manifests.get(digest)
        if item is not None:
            return item[0]
        stored, size = digest, self.storage.stat_blob(digest)
        if size is None and name is not None and self.storage.bucket is not None:
            entry = await self.index.get_entry("manifest", name, digest)
            if entry is not None:
                stored, size = entry.digest, entry.size  # (read_bytes fills the tier from the bucket)
        if size is None or size > MAX_MANIFEST_BYTES:  # a descriptor may name a layer: never read one whole
            return None
        try:
            return await self.storage.read_bytes(stored)
        except FileNotFoundError:
            return None

    async def _fetch_manifest(self, name: str, reference: str) -> tuple[bytes, str, str, str]:
        """GET from the first upstream that has it: (body, digest, media type, upstream name).

        Raises UpstreamNotFound, or UpstreamError (bad content carries a
        reason in BAD_CONTENT_REASONS).
        """
        up, response = await self._first_answer(name, "GET", "manifests", reference, accept=MANIFEST_ACCEPT)
        try:
            body = await read_limited(response)
        except UpstreamError as e:
            self.outcomes.upstream_error(up.name, e.reason)
            raise
        except Exception as e:
            self.outcomes.upstream_error(up.name, "body")
            raise UpstreamError(f"{up.name}: manifest body failed: {e}", "body") from None
        content_type = (response.headers.getRawHeaders(b"Content-Type") or [b""])[0].decode("latin-1")
        content_type = content_type.split(";")[0].strip() or None
        try:
            media_type = detect_manifest_media_type(body, content_type)
        except InvalidManifest as e:
            self.outcomes.upstream_error(up.name, "invalid_manifest")
            raise UpstreamError(f"{up.name} sent an invalid manifest: {e}", "invalid_manifest", 502) from None
        digest = self._verified_manifest_digest(body, reference, response, up.name)
        if digest is None:
            raise UpstreamError(f"{up.name} sent a manifest that does not match its digest", "digest_mismatch", 502)
        self.outcomes.miss(up.name)
        return body, digest, media_type, up.name

    async def _fetch_existing_manifest(self, name: str, reference: str) -> tuple[bytes, str, str, str]:
        """`_fetch_manifest`, with upstream's 404 remembered in the negative cache and raised as `ManifestUnknown`."""
        try:
            return await self._fetch_manifest(name, reference)
        except UpstreamNotFound:
            self.negative.remember(("manifest", name, reference))
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": reference}) from None

    def _verified_manifest_digest(self, body: bytes, reference: str, response: IResponse, source: str) -> str | None:
        """The digest of a fetched manifest, or None when it contradicts what was asked or announced."""
        claimed = None
        if ":" in reference:
            claimed = reference
        else:
            header = response.headers.getRawHeaders(b"Docker-Content-Digest")
            if header:
                claimed = header[0].decode("latin-1").strip()
        if claimed is None:
            return str(digest_bytes(body, "sha256"))
        try:
            parsed = parse_digest(claimed)
        except InvalidDigest:
            if ":" in reference:
                return None
            return str(digest_bytes(body, "sha256"))
        if str(digest_bytes(body, parsed.algorithm)) != str(parsed):
            log.warn("manifest from {source} does not match {digest}", source=source, digest=claimed)
            self.outcomes.upstream_error(source, "digest_mismatch")
            return None
        return str(parsed)

    async def get_manifest_by_digest(self, name: str, digest: str) -> ManifestResult:
        cached = await self._cached_manifest(name, digest)
        if cached is not None:
            return cached
        if self.negative.known_missing(("manifest", name, digest)):
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": digest})

        async def work() -> ManifestResult:
            try:
                body, got, media_type, source = await self._fetch_existing_manifest(name, digest)
            except UpstreamError as e:
                raise map_upstream_failure(e, "manifest") from None
            await self._store_manifest(name, body, got, media_type, source)
            return ManifestResult(body, got, media_type, "miss", upstream=source)

        return await self._single.run(("manifest", name, digest), work)
