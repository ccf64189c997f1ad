"""Deploying into hosted Maven repositories (``mvn deploy``, gradle publish): PUT, checks, commit.

A PUT body is a streamed route (`http.request_body`): everything the path and
the headers decide is checked before a byte of it is read - the repository,
who deploys, a release already there under ``redeploy = "deny"`` (409), the
free space (507 when the file would end below ``cache.min_free_bytes``).
Only then is the body pulled from the socket into a `TempBlob` (hashed as it
grows: sha256, sha1), which ``finish`` renames into the content store, and
then one index transaction makes the file visible.  A refused or failed
deploy leaves nothing behind: the temp file goes, and a stored blob that no
entry references is deleted again (also when another node won a race for the
same release path: the loser gets 409).

Rules, checked before the index row is written:

- A checksum file (``.sha1``, ``.md5``, ``.sha256``, ``.sha512``) must hold
  the right digest of the deployed file it names, which must already be
  there (clients upload a file first, then its checksums); otherwise 400.
- A release file that already exists is refused with 409 when the
  repository's ``redeploy`` policy is "deny" (the default).  Anything under a
  ``-SNAPSHOT`` directory and every ``maven-metadata.xml`` (and checksums of
  those) may always be replaced: that is how SNAPSHOT builds and version
  lists move on.  A checksum identical to the one stored is accepted (a
  client retrying is not redeploying).
- A ``maven-metadata.xml`` beyond the ``maven.metadata_*`` limits (bytes,
  versions, length of a version) is refused with 400: a group would refuse
  to merge it anyway (docs/security.md).
- A SNAPSHOT into a ``version_policy = "release"`` repository, or a release
  into a ``"snapshot"`` one, is refused with 400 before the body is read
  (`grammar.maven_snapshots.policy_refusal`; artifact-level metadata is
  always taken).

After a SNAPSHOT version's ``maven-metadata.xml`` is stored, the repository's
``snapshot_keep`` / ``snapshot_max_idle_days`` are applied
(`core.maven.snapshot_cleanup`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from twisted.logger import Logger

from harbor_cache.core.maven.group import metadata_limits
from harbor_cache.core.maven.snapshot_cleanup import SnapshotCleaner, triggers_cleanup
from harbor_cache.core.operations.diskspace import DiskSpace, disk_full_error
from harbor_cache.core.operations.quotas import QuotaBook
from harbor_cache.errors import (
    BadRequest,
    DeployNotAllowed,
    DeployRefused,
    DigestInvalid,
    HarborError,
    TooLarge,
    VersionPolicyRefused,
)
from harbor_cache.grammar.maven_checksums import parse_checksum
from harbor_cache.grammar.maven_metadata import MetadataTooLarge, check_limits
from harbor_cache.grammar.maven_paths import METADATA_NAME, MavenPath
from harbor_cache.grammar.maven_snapshots import policy_refusal
from harbor_cache.storage import BlobCorrupt, SourceFailed
from harbor_cache.storage.writer import drained

if TYPE_CHECKING:
    from harbor_cache.core.hosted.uploads import RequestBodySource
    from harbor_cache.core.maven.cache import MavenCache
    from harbor_cache.core.operations.audit import AuditLog
    from harbor_cache.settings.startup import MavenRepositoryConfig

log = Logger()

COPY_CHUNK = 1 << 20
# A checksum file is one hex digest, maybe followed by a file name.
MAX_CHECKSUM_BYTES = 1024


class MavenDeployer:
    """PUT into hosted repositories; shares the cache core's index, storage and memory of rows."""

    def __init__(self, cache: MavenCache, audit: AuditLog | None = None) -> None:
        self.cache = cache
        self.index = cache.index
        self.storage = cache.storage
        self.clock = cache.clock
        self.metrics = cache.metrics
        # A `core.operations.diskspace.DiskSpace` (set by the service): a deploy that would end below the floor is 507 unread.
        self.space: DiskSpace | None = None
        # Old SNAPSHOT builds go after a SNAPSHOT version's metadata is deployed (snapshot_keep, ...).
        self.cleaner = SnapshotCleaner(cache, audit)
        # A `core.operations.quotas.QuotaBook` (set by the service): a deploy beyond a quota is 403, unread when it can be.
        self.quotas: QuotaBook | None = None

    def hosted(self, repo_id: str) -> MavenRepositoryConfig:
        """The hosted repository's config; `UnknownRepository`, or `DeployNotAllowed` for proxy/group."""
        repo = self.cache.repository(repo_id)
        if not repo.is_hosted:
            raise DeployNotAllowed(
                f"repository {repo_id} is a {repo.type} repository; deploy to a hosted one",
                {"repositoryId": repo_id, "type": repo.type},
            )
        return repo

    async def deploy(self, repo_id: str, target: MavenPath | str, body: RequestBodySource, user: str) -> bool:
        """Store the request ``body`` at ``path``; True when it is new, False when it replaced a file.

        ``body`` is a request body source (`request_body.StreamedBody`, or
        `BufferedBody` over a file): its bytes go from the socket straight into
        the temp file, hashed as they arrive.  A checksum file is read whole
        (at most MAX_CHECKSUM_BYTES).

        Raises `DeployNotAllowed`, `DeployRefused` (redeploy), `DigestInvalid`
        (a checksum that does not match), `BadRequest`.
        """
        if isinstance(target, str):
            target = MavenPath.of(target)
        path = target.path
        repo = self.hosted(repo_id)
        refusal = policy_refusal(repo.version_policy, repo_id, target)
        if refusal is not None:  # (decided by the path: before a byte of the body is read)
            raise VersionPolicyRefused(
                refusal, {"repositoryId": repo_id, "path": path, "versionPolicy": repo.version_policy}
            )
        algorithm = target.checksum_algorithm
        overwrite = repo.redeploy == "allow" or target.mutable
        if not overwrite and algorithm is None and await self.index.get_entry("maven", repo_id, path) is not None:
            raise self._refused(repo, path)  # before the body is read (a checksum may be a retry: read it)
        if self.space is not None:
            self.space.check_upload_room(body.length)
        if self.quotas is not None and body.length is not None:
            await self.quotas.check_maven(repo_id, path, body.length, actor=user)
        checksum_body = None
        if algorithm is not None:
            checksum_body = await self._check_checksum(repo_id, target, body, algorithm)
        elif target.name == METADATA_NAME:
            checksum_body = await self._check_metadata(repo_id, path, body)
        temp = self.storage.new_temp(body.length, extra_hashes=("sha1",))
        # The file's digest is held from before its rename (in `TempBlob.finish`) until its row is written: no
        # eviction, clear, collection or orphan sweep unlinks it in between (`storage.commits`).
        with self.storage.commit() as commit:
            try:
                if checksum_body is not None:
                    if checksum_body and temp.write(checksum_body):
                        await drained(temp)
                elif body.length != 0:
                    await body.stream_to(temp)
                if temp.failure is not None:
                    raise SourceFailed(str(temp.failure))
                if self.quotas is not None and body.length is None:  # (chunked: its size is known only now)
                    await self.quotas.check_maven(repo_id, path, temp.available, actor=user)
                digest = await temp.finish(commit=commit)
            except BlobCorrupt as e:  # (no expected digest is given, but be exact)
                raise DigestInvalid("upload did not match its digest", {"reason": str(e)}) from None
            except SourceFailed as e:
                temp.abort(e)
                full = disk_full_error(e)
                if full is not None:
                    raise full from None
                raise HarborError("upload could not be stored", {"reason": str(e)}) from None
            except BaseException as e:
                temp.abort(e if isinstance(e, Exception) else SourceFailed("cancelled"))
                raise
            length = temp.total
            assert length is not None, "finish() has counted the bytes"
            try:
                outcome, entry, previous = await self.index.put_hosted_maven_file(
                    repository=repo_id,
                    key=path,
                    digest=digest,
                    size=length,
                    media_type=target.content_type,
                    sha1=temp.hashes.get("sha1"),
                    now=self.clock.seconds(),
                    overwrite=overwrite,
                )
            except BaseException:
                commit.release()  # (no row: the file is ours to drop, and no longer held)
                try:
                    await self.cache.drop_if_orphan(digest)
                except Exception:
                    log.failure("removing {digest} after a failed deploy", digest=digest)
                raise
        if entry is None:  # outcome "exists": nothing was written
            if previous == digest and algorithm is not None:
                return False  # the same checksum again: a retry, not a redeploy
            await self.cache.drop_if_orphan(digest)
            raise self._refused(repo, path)
        self.cache.remember(repo_id, path, entry, target.mutable)
        if previous is not None and previous != digest:
            await self.cache.drop_if_orphan(previous)
        self.metrics.push_bytes.inc(length)
        log.info(
            "{user} deployed {repository}/{path} ({bytes} bytes)",
            user=user,
            repository=repo_id,
            path=path,
            bytes=length,
        )
        if checksum_body is not None and algorithm is None and triggers_cleanup(repo, target):
            try:
                await self.cleaner.after_metadata(repo, target, checksum_body, user)
            except Exception:  # (the deploy itself succeeded: a failed cleanup is retried by the next one)
                log.failure("snapshot cleanup after {repository}/{path}", repository=repo_id, path=path)
        return outcome == "created"

    async def _check_metadata(self, repo_id: str, path: str, source: RequestBodySource) -> bytes:
        """Refuse a maven-metadata.xml beyond the limits a group merges within; returns it (read whole)."""
        limits = metadata_limits(self.cache.settings)
        detail = {"repositoryId": repo_id, "path": path}
        too_large = f"a maven-metadata.xml is at most {limits.max_bytes} bytes (maven.metadata_max_bytes)"
        if source.length is not None and source.length > limits.max_bytes:
            raise BadRequest(too_large, detail)
        try:
            body = await source.read_all(limits.max_bytes)
        except TooLarge:
            raise BadRequest(too_large, detail) from None
        try:
            await self.storage.io.run(check_limits, body, limits)
        except MetadataTooLarge as e:
            raise BadRequest(f"{path} is beyond the metadata limits: {e}", {**detail, "reason": str(e)}) from None
        return body

    @staticmethod
    def _refused(repo: MavenRepositoryConfig, path: str) -> DeployRefused:
        return DeployRefused(
            f"{path} is already deployed in {repo.id} and the repository does not allow redeploying releases",
            {"repositoryId": repo.id, "path": path, "redeploy": repo.redeploy},
        )

    async def _check_checksum(
        self, repo_id: str, target: MavenPath, source: RequestBodySource, algorithm: str
    ) -> bytes:
        """Refuse a checksum file that is malformed or does not match the deployed file it names; returns it."""
        path = target.path
        if source.length is not None and source.length > MAX_CHECKSUM_BYTES:
            raise BadRequest(f"a checksum file is at most {MAX_CHECKSUM_BYTES} bytes", {"path": path})
        try:
            body = await source.read_all(MAX_CHECKSUM_BYTES)
        except TooLarge:
            raise BadRequest(f"a checksum file is at most {MAX_CHECKSUM_BYTES} bytes", {"path": path}) from None
        claimed = parse_checksum(body, algorithm)
        if claimed is None:
            raise BadRequest(f"{path} does not hold a {algorithm} digest", {"repositoryId": repo_id, "path": path})
        base = target.checksum_base
        assert base is not None  # (a checksum file names its file)
        actual = await self.cache.stored_checksum(repo_id, base, algorithm)
        if actual is None:
            raise DigestInvalid(
                f"{base} is not deployed: upload it before its checksum", {"repositoryId": repo_id, "path": path}
            )
        if actual != claimed:
            raise DigestInvalid(
                f"{algorithm} of {base} is {actual}, not {claimed}",
                {"repositoryId": repo_id, "path": path, "expected": claimed, "actual": actual},
            )
        return body


def hash_file(path: str, algorithm: str) -> str:
    """Hex digest of a stored file (run on the I/O pool)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(COPY_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
