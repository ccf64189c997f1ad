"""SNAPSHOT cleanup in hosted Maven repositories: old timestamped builds and idle SNAPSHOT versions go.

Each ``mvn deploy`` of a SNAPSHOT adds a timestamped build (jar, pom,
sources, their checksums) that nothing ever removes: a nightly build fills a
disk in months.  A hosted repository entry may set (config file, per
repository; 0 or absent keeps everything, as before):

- ``snapshot_keep = N``: the N newest builds of each SNAPSHOT version stay;
- ``snapshot_max_idle_days = D``: a SNAPSHOT version of the artifact that
  nobody downloaded (nor deployed to) for D days is removed whole.

It runs right after a SNAPSHOT version's ``maven-metadata.xml`` is deployed
(the last file of a build but its checksums): cheap, one index listing of
that version (and, for the idle rule, of its artifact).  The rules are
`grammar.maven_snapshots`' (pure): a build the just-deployed metadata lists
is never removed, so the metadata the client sent - and the checksums of it
it sends next - stay exactly true, and what mvn resolves from it is there.
What went is logged and audited (``maven.snapshot_cleanup``).  A failure
here is logged and never fails the deploy that triggered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from harbor_cache.grammar.maven_metadata import MetadataInvalid
from harbor_cache.grammar.maven_paths import METADATA_NAME, SNAPSHOT_SUFFIX, MavenPath, split_path
from harbor_cache.grammar.maven_snapshots import builds_in, builds_to_remove, idle_versions, listed_builds
from harbor_cache.index.rows import Entry

log = Logger()

AUDIT_ACTION = "maven.snapshot_cleanup"
# At most this many removed file paths are named in one audit record (the count is always exact).
AUDIT_MAX_FILES = 200


@dataclass
class CleanupResult:
    """What one cleanup removed from a repository."""

    repository: str
    version_dir: str
    builds: list[str] = field(default_factory=list)  # "2.0-SNAPSHOT 20240101.120000-3", oldest first
    idle_versions: list[str] = field(default_factory=list)  # version directories removed whole
    files: list[str] = field(default_factory=list)

    def audit_detail(self) -> dict[str, Any]:
        return {
            "builds": self.builds,
            "idleVersions": self.idle_versions,
            "fileCount": len(self.files),
            "files": self.files[:AUDIT_MAX_FILES],
        }


def triggers_cleanup(repo: Any, target: MavenPath) -> bool:
    """Whether a deploy to ``target`` of hosted ``repo`` runs the cleanup: a SNAPSHOT version's metadata."""
    if repo.snapshot_keep <= 0 and repo.snapshot_max_idle_days <= 0:
        return False
    version = target.version
    return target.name == METADATA_NAME and version is not None and version.endswith(SNAPSHOT_SUFFIX)


class SnapshotCleaner:
    """Removes old SNAPSHOT builds and idle SNAPSHOT versions through the cache core (index, blobs, memory)."""

    def __init__(self, cache: Any, audit: Any = None) -> None:
        self.cache = cache
        self.index = cache.index
        self.clock = cache.clock
        self.audit = audit

    async def after_metadata(self, repo: Any, target: MavenPath, metadata: bytes, user: str | None) -> CleanupResult:
        """Clean the version of ``target`` (a SNAPSHOT version's maven-metadata.xml, just deployed as ``metadata``)."""
        segments = split_path(target.path)
        version_dir = "/".join(segments[:-1])
        artifact_dir = "/".join(segments[:-2])
        artifact, version = segments[-3], segments[-2]
        result = CleanupResult(repository=repo.id, version_dir=version_dir)
        doomed: list[Entry] = []
        if repo.snapshot_keep > 0:
            doomed += await self._old_builds(repo, version_dir, artifact, version, metadata, result)
        if repo.snapshot_max_idle_days > 0:
            doomed += await self._idle_versions(repo, artifact_dir, version, result)
        if not doomed:
            return result
        await self.cache.delete_rows(repo.id, doomed)
        result.files = [r.key for r in doomed]
        log.info(
            "snapshot cleanup in {repository}/{path}: {count} files of builds {builds}, idle versions {idle}",
            repository=repo.id,
            path=version_dir,
            count=len(doomed),
            builds=result.builds,
            idle=result.idle_versions,
        )
        if self.audit is not None:
            await self.audit.record(
                AUDIT_ACTION, actor=user, target=f"{repo.id}/{version_dir}", detail=result.audit_detail()
            )
        return result

    async def _old_builds(
        self, repo: Any, version_dir: str, artifact: str, version: str, metadata: bytes, result: CleanupResult
    ) -> list[Entry]:
        try:
            listed = await self.cache.storage.io.run(listed_builds, metadata)
        except MetadataInvalid as e:
            log.warn(
                "no snapshot cleanup of {repository}/{path}: {reason}", repository=repo.id, path=version_dir, reason=e
            )
            return []
        rows = await self.index.maven_entries_under(repo.id, version_dir)
        by_name = {r.key[len(version_dir) + 1 :]: r for r in rows}
        builds = builds_in((name for name in by_name if "/" not in name), artifact, version)
        removed = builds_to_remove(builds, repo.snapshot_keep, listed)
        result.builds = [f"{version} {b.stem}" for b in removed]
        return [by_name[name] for b in removed for name in builds[b]]

    async def _idle_versions(self, repo: Any, artifact_dir: str, current: str, result: CleanupResult) -> list[Entry]:
        """Every file of the artifact's other SNAPSHOT versions nobody downloaded or deployed to for D days."""
        rows = await self.index.maven_entries_under(repo.id, artifact_dir)
        by_version: dict[str, list[Entry]] = {}
        for r in rows:
            rest = split_path(r.key[len(artifact_dir) + 1 :])
            if len(rest) >= 2 and rest[0].endswith(SNAPSHOT_SUFFIX) and rest[0] != current:
                by_version.setdefault(rest[0], []).append(r)
        last_used = {v: max(max(r.last_access, r.created_at, r.fetched_at) for r in rs) for v, rs in by_version.items()}
        idle = idle_versions(last_used, self.clock.seconds(), repo.snapshot_max_idle_days)
        result.idle_versions = [f"{artifact_dir}/{v}" for v in idle]
        return [r for v in idle for r in by_version[v]]
