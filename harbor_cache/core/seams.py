"""What the core needs from the layers below it, and what the fronts may ask of it, as Protocols.

The core decides; storage, the index and the upstreams do the I/O.  These
are the calls the caches make on them, so a reader sees the whole contract
in one place and a test can hand in any object that keeps it (the real
classes are `storage.Storage`, `index.Index` and `upstream.maven.MavenUpstream`; mypy checks them against these where
`service.HarborApp` wires them).  Clocks are `twisted.internet.interfaces.IReactorTime`.

The fronts import nothing of `harbor_cache.index` (tests/unit/test_layers.py).  What
they need of it comes through here:

* **Rows.**  The frozen dataclasses of `index.rows` are what the core hands
  out (a `User` from `core.identity.users`, an `Entry` from a cache), so they are
  re-exported below and a front names them as the core's records.  They stay
  defined in `index/rows.py`, next to the columns they mirror field by field,
  the way Synapse keeps a store's row classes beside the store and lets its
  handlers pass them up: one definition, no copy to keep in step, and a new
  column is one edit in index/.
* **Read-only console queries** (`ConsoleQueries`).  The console's tables are
  plain reads with nothing to decide, so a core service around them would only
  forward; instead the front is given the `Index` typed as this Protocol
  (`service.HarborApp` wires it, mypy checks that `Index` keeps it), which
  keeps the SQL in index/ and the front blind to the `Index` class and to
  every other query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from twisted.web.iweb import IResponse

from harbor_cache.index import EntryWrite
from harbor_cache.index.rows import AuditRecord, Entry, ImageRepository, ImageTag, MavenRepositoryStats, Tag, User

__all__ = [
    # the rows the core hands the fronts (defined in index/rows.py)
    "AuditRecord",
    "Entry",
    "ImageRepository",
    "ImageTag",
    "MavenRepositoryStats",
    "Tag",
    "User",
    # the Protocols
    "BlobStore",
    "CacheIndex",
    "CacheStatus",
    "ConsoleQueries",
    "MavenRemote",
]
from harbor_cache.storage.commits import Commit, CommitHolds, Watch
from harbor_cache.storage.io import StorageIO
from harbor_cache.storage.reader import GrowingSource, StoredSource
from harbor_cache.storage.writer import TempBlob

#: What a response was served from, as the access log and ``X-Cache`` say it:
#: stored (hit), fetched now (miss), joined a fetch in flight (coalesced),
#: confirmed upstream (revalidated), fetched again because it changed (refreshed),
#: served although upstream could not confirm it (stale), made here from
#: stored content (computed: a checksum; merged: a group's metadata).
CacheStatus = Literal["hit", "miss", "coalesced", "revalidated", "refreshed", "stale", "computed", "merged"]


class BlobStore(Protocol):
    """Content-addressed files: `storage.Storage`."""

    io: StorageIO
    #: ``[storage] redirect``: how long a blob GET's presigned URL lives (None: redirects off)
    redirect_expiry: int | None
    #: the object store behind the files (`storage.bucket.Bucket`), None on the filesystem backend
    bucket: Any
    #: digests hosted writes hold between "file in place" and "row written" (`storage.commits`)
    committing: CommitHolds

    def blob_path(self, digest: str) -> str: ...

    def new_temp(
        self, total: int | None = None, extra_hashes: tuple[str, ...] = (), *, write_behind: bool = True
    ) -> TempBlob: ...

    def stat_blob(self, digest: str) -> int | None: ...

    def open_stored(self, digest: str, size: int | None = None) -> StoredSource: ...

    def stored_source(self, digest: str, size: int) -> StoredSource: ...

    async def ensure_local(self, digest: str, size: int | None = None) -> bool: ...

    async def open_local(self, digest: str, size: int | None = None) -> StoredSource | None: ...

    async def open_streaming(
        self, digest: str, size: int | None = None, range_header: bytes | None = None
    ) -> GrowingSource | None: ...

    def holds(self, digest: str) -> bool: ...

    async def redirect_url(self, digest: str) -> str | None: ...

    def check_writable(self) -> None: ...

    def commit(self) -> Commit: ...

    async def store_bytes(
        self, data: bytes, expected_digest: str | None = None, commit: Commit | None = None
    ) -> str: ...

    async def read_bytes(self, digest: str) -> bytes: ...

    async def delete_blob(self, digest: str, watch: Watch | None = None) -> bool: ...


class CacheIndex(Protocol):
    """The index queries the pull caches make: `index.Index`."""

    async def get_entry(self, type_: str, repository: str, key: str) -> Entry | None: ...

    async def add_blob_images(self, repository: str, digests: list[str]) -> None: ...

    async def put_entry(
        self,
        *,
        kind: str,
        type_: str,
        repository: str,
        key: str,
        digest: str,
        size: int,
        now: float,
        media_type: str | None = None,
        sha1: str | None = None,
        upstream: str | None = None,
        upstream_modified: float | None = None,
    ) -> Entry: ...

    async def put_entries(self, writes: list[EntryWrite], now: float) -> tuple[list[Entry], list[str]]: ...

    async def mark_fetched(self, entry_id: int, now: float) -> None: ...

    async def digest_in_use(self, digest: str) -> bool: ...

    async def delete_entries(self, ids: list[int]) -> list[str]: ...

    async def get_tag(self, repository: str, tag: str) -> Tag | None: ...

    async def put_tag(
        self, repository: str, tag: str, digest: str, kind: str, media_type: str | None, now: float
    ) -> None: ...

    async def mark_tag_fetched(self, repository: str, tag: str, now: float) -> None: ...

    async def list_tags_page(self, repository: str, last: str | None, limit: int | None) -> list[str]: ...

    async def repository_known(self, repository: str) -> bool: ...

    async def maven_entries_under(self, repository: str, prefix: str) -> list[Entry]: ...

    async def maven_children(
        self, repository: str, path: str, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[tuple[str, float]], list[Entry], bool]: ...

    async def put_hosted_maven_file(
        self,
        *,
        repository: str,
        key: str,
        digest: str,
        size: int,
        media_type: str | None,
        sha1: str | None,
        now: float,
        overwrite: bool,
    ) -> tuple[str, Entry | None, str | None]: ...

    async def maven_repository_stats(self) -> dict[str, MavenRepositoryStats]: ...


class MavenRemote(Protocol):
    """One proxied Maven repository: `upstream.maven.MavenUpstream`."""

    async def request(self, method: str, path: str, headers: dict[bytes, bytes] | None = None) -> IResponse: ...

    async def fetch_small(self, path: str, limit: int = ...) -> tuple[bytes, str | None] | None: ...


class ConsoleQueries(Protocol):
    """The reads behind the console's tables (`api.console.ConsoleApi`): `index.Index`, given to the front as this."""

    @property
    def ENTRY_SORTS(self) -> Mapping[str, str]:  # noqa: N802 (the index's name for it)
        """The sort keys `cache_entries_page` accepts."""
        ...

    async def cache_entries_page(
        self,
        *,
        offset: int,
        limit: int,
        sort: str,
        descending: bool,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
        count_cap: int = ...,
    ) -> tuple[int, list[Entry]]: ...

    async def cache_entries_after(
        self,
        *,
        sort: str,
        descending: bool,
        after: tuple[Any, int] | None,
        limit: int,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
    ) -> list[Entry]: ...

    async def count_entries_capped(
        self,
        cap: int,
        *,
        front: str | None = None,
        kind: str | None = None,
        repository: str | None = None,
        text: str | None = None,
    ) -> tuple[int, bool]: ...

    async def list_repositories_page(self, last: str | None, limit: int | None) -> list[str]: ...

    async def image_repositories_page(self, names: list[str]) -> list[ImageRepository]: ...

    async def image_tags_page(self, repository: str, last: str, limit: int) -> list[ImageTag]: ...

    async def get_entry_by_id(self, entry_id: int) -> Entry | None: ...

    async def audit_page(
        self,
        *,
        offset: int,
        limit: int,
        action: str | None = None,
        actor: str | None = None,
        text: str | None = None,
        since: float | None = None,
        until: float | None = None,
        exclude: str | None = None,
        actor_kind: str | None = None,
    ) -> tuple[int, list[AuditRecord]]: ...

    async def image_repositories(self) -> list[ImageRepository]: ...

    async def image_tags(self, repository: str) -> list[ImageTag]: ...

    async def repository_known(self, repository: str) -> bool: ...

    async def repository_contents(self, repositories: list[str]) -> dict[str, tuple[set[str], set[str]]]: ...

    async def blob_owners(self, digests: list[str]) -> dict[str, list[str]]: ...
