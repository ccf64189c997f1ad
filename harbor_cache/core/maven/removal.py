"""Removing a Maven repository's own files from the cache: one file, a directory, or rows the core chose.

Kept apart from `core.maven.cache` (serving and downloading) the way
`core.maven.browse` is: `MavenCache` provides the state these read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from harbor_cache.core.flight.access import AccessRecorder
from harbor_cache.core.flight.memory import BoundedMemory
from harbor_cache.core.maven.files import CachedRow
from harbor_cache.core.seams import BlobStore, CacheIndex
from harbor_cache.errors import NotAllowed, NotFound
from harbor_cache.index.rows import Entry

log = Logger()


class MavenRemoval:
    """`delete` (the DELETE of ``/artifacts``) and `delete_rows` (also snapshot cleanup's); `MavenCache` provides the state."""

    index: CacheIndex
    storage: BlobStore
    access: AccessRecorder
    small: BoundedMemory[bytes]
    _rows: dict[tuple[str, str], CachedRow]
    repository: Callable[[str], Any]

    async def delete(self, repo_id: str, path: str) -> int:
        """Remove a file, or every file under a directory, from the cache (never upstream).

        Returns how many files went; raises `UnknownRepository`, or `NotFound`
        when nothing is cached there.  A blob file is deleted only when no
        other entry still uses it.  A group has nothing of its own to delete
        (405): delete through its members.
        """
        repo = self.repository(repo_id)
        if repo.is_group:
            raise NotAllowed(
                f"repository {repo_id} is a group; delete from one of its members",
                {"repositoryId": repo_id, "members": list(repo.members)},
            )
        entry = await self.index.get_entry("maven", repo_id, path)
        rows = [entry] if entry is not None else await self.index.maven_entries_under(repo_id, path)
        if not rows:
            raise NotFound("artifact not found", {"repositoryId": repo_id, "path": path})
        await self.delete_rows(repo_id, rows)
        log.info("deleted {count} files under {repository}/{path}", count=len(rows), repository=repo_id, path=path)
        return len(rows)

    async def delete_rows(self, repo_id: str, rows: list[Entry]) -> None:
        """Remove these entries of ``repo_id`` and every blob no other entry uses (`delete`, snapshot cleanup)."""
        ids = [r.id for r in rows]
        with self.storage.committing.watch() as seen:  # (deploys of the same bytes meanwhile: `storage.commits`)
            orphans = await self.index.delete_entries(ids)
            for r in rows:
                self._rows.pop((repo_id, r.key), None)
            self.access.forget(ids)
            for digest in orphans:
                self.small.discard(digest)
                await self.storage.delete_blob(digest, seen)
