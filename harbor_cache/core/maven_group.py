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
are merged (`grammar.maven_metadata.merge_metadata`), so a version deployed to a
hosted member and the versions of Central appear in one list.  Its
checksums are computed for the merged file, never taken from a member.

Browse of a group lists the union of what its members hold (the first
member's entry wins for a name both hold); info answers for the first member
holding the file and names it in ``member``.
"""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from harbor_cache.errors import HarborError, NotFound, UpstreamBadResponse
from harbor_cache.grammar.maven_metadata import MAX_METADATA_BYTES, MetadataInvalid, merge_metadata
from harbor_cache.grammar.maven_paths import METADATA_NAME, checksum_base, is_metadata, parent_path

log = Logger()

_ALGORITHMS = {".sha1": "sha1", ".md5": "md5", ".sha256": "sha256", ".sha512": "sha512"}


class MavenGroups:
    """Answers for group repositories on top of the cache core's per-repository answers."""

    def __init__(self, cache):
        self.cache = cache

    async def get_file(self, group, path: str):
        if is_metadata(path):
            return await self._metadata_file(group, path)
        failures: list[str] = []
        for member in group.members:
            try:
                f = await self.cache.get_file(member, path)
            except NotFound:
                continue
            except HarborError as e:
                failures.append(f"{member}: {e.message}")
                continue
            return f
        self._not_found(group, path, failures)

    @staticmethod
    def _not_found(group, path: str, failures: list[str]):
        detail = {"repositoryId": group.id, "path": path, "members": list(group.members)}
        if failures:
            raise UpstreamBadResponse(
                "no member of the group has the file and some could not answer", {**detail, "failures": failures}
            )
        raise NotFound("artifact not found", detail)

    async def _member_copy(self, member: str, path: str):
        """(body, last modified) of a member's file; None when it has none; a failure text when it failed."""
        try:
            f = await self.cache.get_file(member, path)
            body = await self.cache.whole_body(f, MAX_METADATA_BYTES)
        except NotFound:
            return None
        except HarborError as e:
            return f"{member}: {e.message}"
        return body, f.last_modified

    async def _metadata_file(self, group, path: str):
        base = checksum_base(path)
        metadata_path = base if base is not None else path
        if not metadata_path.endswith(METADATA_NAME):
            # A checksum of a checksum, e.g. maven-metadata.xml.sha1.md5: not something a client asks.
            raise NotFound("artifact not found", {"repositoryId": group.id, "path": path})
        copies = await gatherResults(
            [Deferred.fromCoroutine(self._member_copy(m, metadata_path)) for m in group.members]
        )
        found = [c for c in copies if isinstance(c, tuple)]
        failures = [c for c in copies if isinstance(c, str)]
        if not found:
            self._not_found(group, path, failures)
        if failures:
            log.warn("merging {group}/{path} without {failures}", group=group.id, path=metadata_path, failures=failures)
        try:
            merged = merge_metadata([body for body, _ in found]) if len(found) > 1 else found[0][0]
        except MetadataInvalid as e:
            raise UpstreamBadResponse(
                "a member's maven-metadata.xml cannot be merged",
                {"repositoryId": group.id, "path": metadata_path, "reason": str(e)},
            ) from None
        last_modified = max(modified for _, modified in found)
        body = merged
        if base is not None:
            algorithm = _ALGORITHMS[path[len(base) :]]
            body = hashlib.new(algorithm, merged).hexdigest().encode()
        return self.cache.in_memory_file(group.id, path, body, last_modified, "merged")

    # -- browse, info, statistics ---------------------------------------------

    async def browse(self, group, path: str) -> dict:
        """The union of the members' browse documents for ``path``."""
        entries: dict[str, dict] = {}
        last_error = None
        for member in group.members:
            try:
                doc = await self.cache.browse(member, path)
            except HarborError as e:  # PathNotFound: this member holds nothing there
                last_error = e
                continue
            for entry in doc["entries"]:
                held = entries.get(entry["name"])
                if held is None:
                    entries[entry["name"]] = dict(entry)
                elif held["type"] == "directory" and entry["type"] == "directory":
                    held["lastModified"] = max(held["lastModified"] or "", entry["lastModified"] or "") or None
        if path and not entries and last_error is not None:
            raise last_error.__class__(last_error.message, {"repositoryId": group.id, "path": path})
        ordered = sorted((e for e in entries.values() if e["type"] == "directory"), key=lambda e: e["name"])
        ordered += sorted((e for e in entries.values() if e["type"] != "directory"), key=lambda e: e["name"])
        return {"repositoryId": group.id, "currentPath": path, "parentPath": parent_path(path), "entries": ordered}

    async def info(self, group, path: str) -> dict:
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
    def statistics(group, per_repository: dict[str, dict]) -> dict:
        """A group's counts: the sums over its members (a file two members hold counts twice)."""
        docs = [per_repository[m] for m in group.members if m in per_repository]
        updated = [d["lastUpdated"] for d in docs if d["lastUpdated"]]
        return {
            "artifactCount": sum(d["artifactCount"] for d in docs),
            "totalSize": sum(d["totalSize"] for d in docs),
            "lastUpdated": max(updated) if updated else None,
        }
