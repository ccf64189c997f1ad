"""The hosted registry: what clients push is kept here as the only copy.

Blob uploads are sessions (`core.hosted.uploads.HostedUploads`, which this
class extends).
Manifests pushed here are checked (size, JSON, media type, digest, every
referenced blob and child manifest present) and recorded as **hosted**:
eviction never removes them, and the blobs and children they reference are
made hosted too.  A pushed tag is served before any upstream lookup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.logger import Logger

from harbor_cache.core.hosted.immutable import ImmutableTags
from harbor_cache.core.hosted.uploads import HostedUploads, RequestBodySource
from harbor_cache.errors import (
    BlobUnknown,
    Conflict,
    Denied,
    DigestInvalid,
    ErrorCode,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    NotHosted,
    TooLarge,
)
from harbor_cache.grammar.digests import digest_bytes, parse_digest
from harbor_cache.grammar.manifest_checks import (
    ManifestRefused,
    artifact_type,
    check_pushable,
    descriptor_sizes,
    subject_digest,
)
from harbor_cache.grammar.mediatypes import (
    InvalidManifest,
    manifest_references,
)
from harbor_cache.index.hosted import ReferenceGone

log = Logger()

T = TypeVar("T")
#: index rows read per round when the catalog is filtered to what a caller may pull
_CATALOG_BATCH = 500


@dataclass
class PushedManifest:
    digest: str
    media_type: str
    subject: str | None


class HostedRegistry(HostedUploads):
    """Hosted content beyond uploads: mounts, manifests, deletes, tag and repository lists, referrers."""

    #: immutable-tag rules (set by the service); None: every tag may move
    immutable: ImmutableTags | None = None

    def ensure_writable(self, name: str) -> None:
        """403 DENIED for a name a read-only proxy namespace serves (see `OciCache.ensure_writable`)."""
        self.cache.ensure_writable(name)

    async def mount(self, name: str, digest: str) -> bool:
        """Whether a blob can be mounted (we hold it); a mounted blob is claimed by ``name``."""
        size = await self.cache.committed_blob_size(digest)
        if size is None:
            return False
        if self.quotas is not None:
            try:
                await self.quotas.check_blob(name, size, digest)
            except Denied:
                return False  # (the client uploads instead, and is told why that is refused)
        # False when the garbage collector removed the blob meanwhile: the client uploads it instead.
        return bool(await self.index.claim_blob(name, digest, self.clock.seconds()))

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
        with self.storage.committing.watch() as seen:  # (pushes of the same bytes meanwhile: `storage.commits`)
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
                await self.storage.delete_blob(d, seen)

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
        media_type, document = _invalid(check_pushable, body, content_type)
        if tag is None:
            parsed = parse_digest(reference)
            if str(digest_bytes(body, parsed.algorithm)) != reference:
                raise DigestInvalid("manifest does not match the digest", {"digest": reference})
            key = reference
        else:
            key = str(digest_bytes(body, "sha256"))
        if tag is not None and self.immutable is not None:
            await self.immutable.check_push(name, tag, key)
        try:
            blobs, children = manifest_references(body)
        except InvalidManifest as e:
            raise ManifestInvalid("manifest not valid", str(e)) from None
        declared = _invalid(descriptor_sizes, document)
        needed: list[int] = []
        sizes: dict[str, int] = {}
        for digest in blobs:
            stored_size = await self.cache.committed_blob_size(digest)
            if stored_size is None:
                raise ManifestBlobUnknown("blob unknown to registry", {"digest": digest})
            sizes[digest] = stored_size
            _check_size(digest, declared, stored_size)
            entry = await self.index.get_entry("blob", "", digest)
            if entry is not None and entry.kind != "hosted":
                needed.append(entry.id)
        for digest in children:
            entry = await self.index.get_entry("manifest", name, digest)
            # (a presence check: with a bucket the row is the proof, the child manifest is not fetched for it)
            if entry is None or not self.storage.holds(entry.digest):
                raise ManifestBlobUnknown("manifest unknown to registry", {"digest": digest})
            _check_size(digest, declared, entry.size)
            if entry.kind != "hosted":
                needed.append(entry.id)
        if self.quotas is not None:
            await self.quotas.check_manifest(name, key, len(body), tag, sizes)  # (403 DENIED: nothing written yet)
        if needed:
            await self.index.mark_hosted(needed)
        subject = _invalid(subject_digest, document)
        referrer = None
        if subject is not None:
            referrer = {
                "subject": subject,
                "artifact_type": artifact_type(document),
                "annotations": json.dumps(document["annotations"])
                if isinstance(document.get("annotations"), dict)
                else None,
            }
        with self.storage.commit() as commit:  # (the body's file held from its rename to its row: `storage.commits`)
            stored = await self.storage.store_bytes(body, key if key.startswith("sha256:") else None, commit)
            try:
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
                    children=children,
                )
            except ReferenceGone as e:  # garbage collected since the checks above: never a manifest without it
                self.cache.invalidate("blob", "", e.digest)
                raise ManifestBlobUnknown("blob unknown to registry", {"digest": e.digest}) from None
        self.cache.manifest_pushed(name, key, body, media_type, tag)
        self.metrics.pushes.labels("manifest").inc()
        self.metrics.push_bytes.inc(len(body))
        log.info("pushed manifest {digest} to {name}{tag}", digest=key, name=name, tag=f":{tag}" if tag else "")
        return PushedManifest(key, media_type, subject)

    async def delete_manifest(self, name: str, reference: str, is_tag: bool) -> None:
        """DELETE by digest removes a hosted manifest and its tags; by tag only the (hosted) tag."""
        if self.immutable is not None:
            if is_tag:
                await self.immutable.check_delete_tag(name, reference)
            else:
                await self.immutable.check_delete_manifest(name, reference)
        if is_tag:
            if await self.index.delete_hosted_tag(name, reference) is None:
                if await self.index.get_tag(name, reference) is not None:
                    raise NotHosted("cached tags are removed through the management API", {"tag": reference})
                raise ManifestUnknown("manifest unknown", {"name": name, "reference": reference})
            self.cache.forget_tag(name, reference)
            return
        with self.storage.committing.watch() as seen:  # (pushes of the same bytes meanwhile: `storage.commits`)
            kind, orphans = await self.index.delete_hosted_entry("manifest", name, reference)
            if kind is None:
                raise ManifestUnknown("manifest unknown", {"name": name, "reference": reference})
            if kind != "hosted":
                raise NotHosted("cached manifests are removed through the management API", {"digest": reference})
            self.cache.invalidate("manifest", name, reference)
            for d in orphans:
                await self.storage.delete_blob(d, seen)

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

    async def list_repositories(
        self, n: int | None, last: str | None, visible: Callable[[str], bool] | None = None
    ) -> tuple[list[str], bool]:
        """(a page of repository names after ``last``, more to come); only those ``visible`` allows when given.

        With a filter, pages of the index are read until ``n`` visible names
        (and one more, to know there are more) are found or the names run out.
        """
        if n == 0:
            return [], False
        if visible is None:
            names = await self.index.list_repositories_page(last, None if n is None else n + 1)
            more = n is not None and len(names) > n
            return names[:n] if n is not None else names, more
        batch = None if n is None else max(n + 1, _CATALOG_BATCH)
        found: list[str] = []
        cursor = last
        while True:
            page = await self.index.list_repositories_page(cursor, batch)
            found.extend(name for name in page if visible(name))
            if n is not None and len(found) > n:
                return found[:n], True
            if batch is None or len(page) < batch:
                return found, False
            cursor = page[-1]

    async def referrers(self, name: str, subject: str, artifact_type: str | None) -> tuple[dict[str, Any], bool]:
        """(the referrers of ``subject`` as an OCI image index, stale); the index is empty when there are none.

        For a proxied name the upstream's referrers (`ProxyReferrers`) follow
        those pushed here; ``stale`` says the upstream could not answer and an
        older answer, or none, stands in for it.
        """
        rows = await self.index.list_referrers(name, subject, artifact_type)
        manifests = []
        for row in rows:
            descriptor: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
            if row.artifact_type:
                descriptor["artifactType"] = row.artifact_type
            if row.annotations:
                descriptor["annotations"] = json.loads(row.annotations)
            manifests.append(descriptor)
        stale = False
        if self.cache.route(name).proxied:
            upstream, stale = await self.cache.proxied_referrers(name, subject, artifact_type)
            seen = {d["digest"] for d in manifests}
            manifests.extend(d for d in upstream if d["digest"] not in seen)
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        return index, stale


def _check_size(digest: str, declared: dict[str, int], stored: int) -> None:
    """A descriptor must state the size of what is stored under its digest (400 MANIFEST_INVALID)."""
    size = declared.get(digest)
    if size is not None and size != stored:
        raise ManifestInvalid(
            "descriptor size differs from the stored content", {"digest": digest, "size": size, "stored": stored}
        )


def _invalid(check: Callable[..., T], *args: Any) -> T:
    """Run a `grammar.manifest_checks` check; its refusal is 400 MANIFEST_INVALID with the same message and detail."""
    try:
        return check(*args)
    except ManifestRefused as e:
        raise ManifestInvalid(e.message, e.detail) from None
