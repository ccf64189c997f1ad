"""Group repositories: several proxy and hosted repositories behind one URL.

``GET /artifacts/{group}/{path}`` asks the members in their configured order
and serves the first one that has the file, each member through its own
rules (a proxy member caches and revalidates as usual, a hosted member serves
what was deployed).  A member that answers "not found" is skipped (a proxy
whose upstream is unreachable says so too, as it does on its own); a member
that fails otherwise (its upstream refused, 502) is skipped as well, and when
no member has the file the answer is 502 if one of them failed (the file may
exist there), else 404.

``maven-metadata.xml`` is different: every member is asked and the copies
are merged (`grammar.maven_metadata.merge_within_limits`), so a version deployed
to a hosted member and the versions of Central appear in one list.  Its
checksums are computed for the merged file, never taken from a member.  A
member's copy beyond the ``maven.metadata_*`` limits is left out with a log
line (a hostile upstream must not cost every client of the group); the merge
runs on the I/O pool, and its result is kept in memory, named by the members'
ETags, until a member's copy changes.

Browse of a group lists the union of what its members hold (the first
member's entry wins for a name both hold); info answers for the first member
holding the file and names it in ``member``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, NoReturn

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from harbor_cache.core.flight.memory import BoundedMemory
from harbor_cache.errors import HarborError, NotFound, UpstreamBadResponse
from harbor_cache.grammar.maven_metadata import MetadataInvalid, MetadataLimits, merge_within_limits
from harbor_cache.grammar.maven_paths import METADATA_NAME, MavenPath, checksum_base, parent_path

if TYPE_CHECKING:
    from harbor_cache.core.maven.cache import MavenCache
    from harbor_cache.core.maven.files import MavenFile
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.settings.startup import MavenRepositoryConfig

log = Logger()

_ALGORITHMS = {".sha1": "sha1", ".md5": "md5", ".sha256": "sha256", ".sha512": "sha512"}
# Merged maven-metadata.xml documents kept (least recently used go first).
MERGED_MEMORY_BYTES = 8 << 20


def metadata_limits(settings: RuntimeSettings) -> MetadataLimits:
    """The ``maven.metadata_*`` runtime settings as the grammar's limits (read per request: they may change)."""
    return MetadataLimits(
        max_bytes=settings.get("maven.metadata_max_bytes"),
        max_versions=settings.get("maven.metadata_max_versions"),
        max_version_length=settings.get("maven.metadata_max_version_length"),
    )


class MavenGroups:
    """Answers for group repositories on top of the cache core's per-repository answers."""

    def __init__(self, cache: MavenCache) -> None:
        self.cache = cache
        # "group\0path\0member ETags" -> the merged body (None: every copy was beyond the limits).
        self._merged: BoundedMemory[tuple[bytes | None]] = BoundedMemory(
            MERGED_MEMORY_BYTES, lambda held: len(held[0] or b"") + 256
        )

    async def get_file(self, group: MavenRepositoryConfig, target: MavenPath) -> MavenFile:
        """A member's file (the first that has it, by order), or maven-metadata.xml merged from all of them."""
        path = target.path
        if target.metadata:
            return await self._metadata_file(group, path)
        failures: list[str] = []
        for member in group.members:
            try:
                f = await self.cache.get_file(member, target)
            except NotFound:
                continue
            except HarborError as e:
                failures.append(f"{member}: {e.message}")
                continue
            return f
        self._not_found(group, path, failures)

    @staticmethod
    def _not_found(group: MavenRepositoryConfig, path: str, failures: list[str]) -> NoReturn:
        detail = {"repositoryId": group.id, "path": path, "members": list(group.members)}
        if failures:
            raise UpstreamBadResponse(
                "no member of the group has the file and some could not answer", {**detail, "failures": failures}
            )
        raise NotFound("artifact not found", detail)

    async def _member_file(self, member: str, path: str) -> MavenFile | str | None:
        """A member's file; None when it has none; a failure text when it failed."""
        try:
            return await self.cache.get_file(member, path)
        except NotFound:
            return None
        except HarborError as e:
            return f"{member}: {e.message}"

    async def _member_body(self, member: str, f: MavenFile, limit: int) -> bytes | str:
        """The whole body of a member's file; a failure text when it cannot be had within ``limit``."""
        try:
            return await self.cache.whole_body(f, limit)
        except HarborError as e:
            return f"{member}: {e.message}"

    async def _metadata_file(self, group: MavenRepositoryConfig, path: str) -> MavenFile:
        base = checksum_base(path)
        metadata_path = base if base is not None else path
        if not metadata_path.endswith(METADATA_NAME):
            # A checksum of a checksum, e.g. maven-metadata.xml.sha1.md5: not something a client asks.
            raise NotFound("artifact not found", {"repositoryId": group.id, "path": path})
        files = await gatherResults(
            [Deferred.fromCoroutine(self._member_file(m, metadata_path)) for m in group.members]
        )
        found = [(m, f) for m, f in zip(group.members, files, strict=True) if f is not None and not isinstance(f, str)]
        failures = [f for f in files if isinstance(f, str)]
        if not found:
            self._not_found(group, path, failures)
        merged = await self._merged_body(group, metadata_path, found, failures)
        if merged is None:
            raise UpstreamBadResponse(
                "no member's maven-metadata.xml is within the limits (or could be read)",
                {"repositoryId": group.id, "path": metadata_path, "members": [m for m, _ in found]},
            )
        last_modified = max(f.last_modified for _, f in found)
        body = merged
        if base is not None:
            algorithm = _ALGORITHMS[path[len(base) :]]
            body = hashlib.new(algorithm, merged).hexdigest().encode()
        return self.cache.in_memory_file(group.id, path, body, last_modified, "merged")

    async def _merged_body(
        self, group: MavenRepositoryConfig, metadata_path: str, found: list[tuple[str, MavenFile]], failures: list[str]
    ) -> bytes | None:
        """The merge of the ``found`` (member, file) copies: from memory while no member's ETag changed."""
        limits = metadata_limits(self.cache.settings)
        etags = [f.etag for _, f in found]
        key = None
        if all(etags):  # (a download in flight has no ETag yet)
            named = (f"{m}={e}" for (m, _), e in zip(found, etags, strict=True))
            key = "\0".join([group.id, metadata_path, repr(limits), *named])
            held = self._merged.get(key)
            if held is not None:
                return held[0]
        bodies = await gatherResults(
            [Deferred.fromCoroutine(self._member_body(m, f, limits.max_bytes)) for m, f in found]
        )
        members = [m for (m, _), b in zip(found, bodies, strict=True) if isinstance(b, bytes)]
        failures = failures + [b for b in bodies if isinstance(b, str)]
        copies = [b for b in bodies if isinstance(b, bytes)]
        if failures:
            log.warn("merging {group}/{path} without {failures}", group=group.id, path=metadata_path, failures=failures)
        if not copies:
            return None
        if len(copies) == 1:
            return copies[0]  # nothing to merge: served as the member serves it
        try:
            # Parsing and merging megabytes is CPU work: off the reactor's thread, as file work is.
            merged, refused = await self.cache.storage.io.run(merge_within_limits, copies, limits)
        except MetadataInvalid as e:
            raise UpstreamBadResponse(
                "a member's maven-metadata.xml cannot be merged",
                {"repositoryId": group.id, "path": metadata_path, "reason": str(e)},
            ) from None
        for i, why in refused:
            log.warn(
                "merging {group}/{path} without {member}'s copy: {why}",
                group=group.id,
                path=metadata_path,
                member=members[i],
                why=why,
            )
        if key is not None and not failures:
            self._merged.put(key, (merged,))
        return merged

    # -- browse, info, statistics ---------------------------------------------

    async def browse(
        self, group: MavenRepositoryConfig, path: str, after: tuple[str, str] | None = None, limit: int = 5000
    ) -> dict:
        """The union of the members' browse pages for ``path``: each member's page after ``after``, merged, cut at ``limit``.

        Each member lists its children in the same order (directories, then
        files, by name), so the union's first ``limit`` after ``after`` are
        among the members' first ``limit`` each.
        """
        from harbor_cache.core.maven.browse import browse_after

        entries: dict[str, dict] = {}
        last_error = None
        more = False
        for member in group.members:
            try:
                doc = await self.cache.browse(member, path, after, limit)
            except HarborError as e:  # PathNotFound: this member holds nothing there
                last_error = e
                continue
            more = more or "next" in doc
            for entry in doc["entries"]:
                held = entries.get(entry["name"])
                if held is None:
                    entries[entry["name"]] = dict(entry)
                elif held["type"] == "directory" and entry["type"] == "directory":
                    held["lastModified"] = max(held["lastModified"] or "", entry["lastModified"] or "") or None
        if path and not entries and last_error is not None and after is None:
            raise last_error.__class__(last_error.message, {"repositoryId": group.id, "path": path})
        ordered = sorted((e for e in entries.values() if e["type"] == "directory"), key=lambda e: e["name"])
        ordered += sorted((e for e in entries.values() if e["type"] != "directory"), key=lambda e: e["name"])
        more = more or len(ordered) > limit
        ordered = ordered[:limit]
        out: dict[str, Any] = {
            "repositoryId": group.id,
            "currentPath": path,
            "parentPath": parent_path(path),
            "entries": ordered,
        }
        if more and ordered:
            out["next"] = browse_after(ordered[-1])
        return out

    async def info(self, group: MavenRepositoryConfig, path: str) -> dict:
        """The info document of the first member holding ``path``, with ``member`` naming it."""
        last_error = None
        for member in group.members:
            try:
                doc = await self.cache.info(member, path)
            except HarborError as e:
                last_error = e
                continue
            return {**doc, "repositoryId": group.id, "member": member}
        assert last_error is not None, "a group has at least one member (checked at start)"
        raise last_error.__class__(last_error.message, {"repositoryId": group.id, "path": path})

    @staticmethod
    def statistics(group: MavenRepositoryConfig, per_repository: dict[str, dict]) -> dict:
        """A group's counts: the sums over its members (a file two members hold counts twice)."""
        docs = [per_repository[m] for m in group.members if m in per_repository]
        updated = [d["lastUpdated"] for d in docs if d["lastUpdated"]]
        return {
            "artifactCount": sum(d["artifactCount"] for d in docs),
            "totalSize": sum(d["totalSize"] for d in docs),
            "lastUpdated": max(updated) if updated else None,
        }
