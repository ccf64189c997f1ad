"""The cache's view of Maven repositories: browse and info documents, and the repository list with statistics.

Read from the index only (never an upstream); a group answers with the union
(browse, info) or the sums (statistics) of its members, through `MavenGroups`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from harbor_cache.core.maven.files import CachedRow
from harbor_cache.core.maven.group import MavenGroups
from harbor_cache.core.seams import CacheIndex, MavenRepositoryStats
from harbor_cache.errors import PathNotFound
from harbor_cache.grammar.maven_paths import content_type_for, parent_path
from harbor_cache.grammar.timestamps import iso8601

_log = Logger()


def browse_after(entry: dict) -> list[str]:
    """Where a browse page stopped: ["d", directory name] or ["f", file path] (`MavenStore.maven_children`)."""
    return ["d", entry["name"]] if entry["type"] == "directory" else ["f", entry["path"]]


class MavenBrowse:
    """Browse, info and the repository list; `MavenCache` provides the state it reads."""

    repositories: dict[str, Any]
    index: CacheIndex
    groups: MavenGroups
    repository: Callable[[str], Any]
    #: runs the shaping of a big listing off the reactor (`StorageIO`-like ``run``; service: a thread pool)
    offload: Any = None
    settings: Any
    clock: Any

    async def browse(
        self, repo_id: str, path: str, after: tuple[str, str] | None = None, limit: int | None = None
    ) -> dict:
        """The seed's browse document for directory ``path`` ("" = root) of what is cached: one page.

        Subdirectories first, then files, each by name; at most ``limit``
        (default ``maven.browse_page_size``) children, read from the index by
        the directory alone (`maven_children`: its files and its immediate
        subdirectories, never the rows below).  When more follow, ``next`` is
        ``[stage, name]`` to pass back as ``after`` (the front makes it a cursor).
        Raises `UnknownRepository`; `PathNotFound` when ``path`` is a file or
        holds nothing cached.  A group lists the union of its members.
        """
        repo = self.repository(repo_id)
        if limit is None:
            limit = int(self.settings.get("maven.browse_page_size"))
        if repo.is_group:
            return await self.groups.browse(repo, path, after, limit)
        dirs, rows, more = await self.index.maven_children(repo_id, path, after, limit)
        if path and after is None and not dirs and not rows:
            if await self.index.get_entry("maven", repo_id, path) is not None:
                raise PathNotFound("path is a file, not a directory", {"repositoryId": repo_id, "path": path})
            raise PathNotFound("path not found", {"repositoryId": repo_id, "path": path})
        entries: list[dict[str, Any]] = [
            {
                "name": name,
                "type": "directory",
                "path": f"{path}/{name}" if path else name,
                "lastModified": iso8601(modified),
            }
            for name, modified in dirs
        ]
        for r in rows:
            modified = r.upstream_modified if r.upstream_modified is not None else r.created_at
            name = r.key.rpartition("/")[2]
            entries.append(
                {"name": name, "type": "file", "path": r.key, "size": r.size, "lastModified": iso8601(modified)}
            )
        doc: dict[str, Any] = {
            "repositoryId": repo_id,
            "currentPath": path,
            "parentPath": parent_path(path),
            "entries": entries,
        }
        if more and entries:
            doc["next"] = browse_after(entries[-1])
        return doc

    async def info(self, repo_id: str, path: str) -> dict:
        """The seed's info document for a cached file; raises `UnknownRepository`, `PathNotFound`."""
        repo = self.repository(repo_id)
        if repo.is_group:
            return await self.groups.info(repo, path)
        entry = await self.index.get_entry("maven", repo_id, path)
        if entry is None:
            raise PathNotFound("file not found", {"repositoryId": repo_id, "path": path})
        row = CachedRow.from_entry(entry)
        doc = {
            "repositoryId": repo_id,
            "path": path,
            "name": path.rsplit("/", 1)[-1],
            "type": "file",
            "size": row.size,
            "lastModified": iso8601(row.last_modified),
            "contentType": content_type_for(path),
        }
        if row.sha1:
            doc["sha1"] = row.sha1
        if row.digest.startswith("sha256:"):
            doc["sha256"] = row.digest.partition(":")[2]
        return doc

    async def _repository_stats(self) -> dict[str, MavenRepositoryStats]:
        """Per-repository statistics at most ``maven.repository_stats_ttl_seconds`` old.

        Counting them reads every Maven row (checksums are told apart by
        their suffix), so they are kept for the TTL: a request finding them
        older still answers with them and starts one recount in the
        background; only the first request (nothing kept yet) waits for one.
        """
        ttl = self.settings.get("maven.repository_stats_ttl_seconds")
        held = getattr(self, "_stats_held", None)
        now = self.clock.seconds()
        if held is None or ttl == 0:
            stats = await self.index.maven_repository_stats()
            self._stats_held = (now, stats)
            return stats
        at, stats = held
        if now - at >= ttl and not getattr(self, "_stats_counting", False):
            self._stats_counting = True

            async def recount() -> None:
                try:
                    self._stats_held = (self.clock.seconds(), await self.index.maven_repository_stats())
                except Exception:  # the next request tries again; the old figures stay
                    _log.failure("recounting Maven repository statistics")
                finally:
                    self._stats_counting = False

            defer.Deferred.fromCoroutine(recount())
        return stats

    async def repository_list(self, base_url: str = "") -> list[dict]:
        """Every configured repository with the seed's statistics of what is cached.

        Beyond the seed's fields: ``type`` (proxy, hosted, group) and, for a
        group, ``members``.  A hosted or group repository's ``url`` is its own
        address here, under ``base_url`` (it has no remote); a group's counts
        are its members' sums.
        """
        stats = await self._repository_stats()
        docs: dict[str, dict] = {}
        for repo in self.repositories.values():
            s = stats.get(repo.id)
            docs[repo.id] = {
                "id": repo.id,
                "url": repo.url if repo.is_proxy else f"{base_url}/artifacts/{repo.id}/",
                "artifactCount": s.artifact_count if s else 0,
                "totalSize": s.total_size if s else 0,
                "lastUpdated": iso8601(s.last_updated if s else None),
                "isPrivate": bool(repo.private),
                "type": repo.type,
            }
        for repo in self.repositories.values():
            if repo.is_group:
                docs[repo.id].update(self.groups.statistics(repo, docs), members=list(repo.members))
        return list(docs.values())


def _listing(repo_id: str, path: str, rows: list[Any]) -> dict:
    """The browse document of directory ``path`` from every row below it (a pure function: run off the reactor)."""
    start = len(path) + 1 if path else 0
    directories: dict[str, float] = {}
    files: list[dict] = []
    for r in rows:
        rest = r.key[start:]
        name, sep, _ = rest.partition("/")
        modified = r.upstream_modified if r.upstream_modified is not None else r.created_at
        if sep:
            directories[name] = max(directories.get(name, modified), modified)
        else:
            files.append(
                {"name": name, "type": "file", "path": r.key, "size": r.size, "lastModified": iso8601(modified)}
            )
    entries = [
        {
            "name": name,
            "type": "directory",
            "path": f"{path}/{name}" if path else name,
            "lastModified": iso8601(modified),
        }
        for name, modified in sorted(directories.items())
    ]
    entries += sorted(files, key=lambda e: e["name"] or "")
    return {"repositoryId": repo_id, "currentPath": path, "parentPath": parent_path(path), "entries": entries}
