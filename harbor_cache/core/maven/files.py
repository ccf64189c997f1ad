"""What a Maven file is to the cache: the row kept in memory for the hit path, and the file to serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred

from harbor_cache.core.flight.memory import BoundedMemory
from harbor_cache.core.seams import CacheStatus
from harbor_cache.errors import UpstreamBadResponse
from harbor_cache.grammar.http_dates import format_http_date
from harbor_cache.grammar.maven_paths import is_mutable
from harbor_cache.index.rows import Entry
from harbor_cache.storage import GrowingSource
from harbor_cache.storage.io import StorageIO


@dataclass
class CachedRow:
    """What the hit path needs of an index row, kept in memory."""

    id: int
    digest: str
    size: int
    sha1: str | None
    upstream_modified: float | None
    created_at: float
    fetched_at: float
    mutable: bool = False

    @classmethod
    def from_entry(cls, entry: Entry, mutable: bool | None = None) -> CachedRow:
        """The row of ``entry``; ``mutable`` as its `MavenPath` says, when the caller has one (None: classified here)."""
        return cls(
            entry.id,
            entry.digest,
            entry.size,
            entry.sha1,
            entry.upstream_modified,
            entry.created_at,
            entry.fetched_at,
            is_mutable(entry.key) if mutable is None else mutable,
        )

    @property
    def last_modified(self) -> float:
        return self.upstream_modified if self.upstream_modified is not None else self.created_at


@dataclass
class MavenFile:
    """A file to serve: a (possibly growing) source and the headers that describe it."""

    repository: str
    path: str
    size: int | None
    source: GrowingSource | None  # None for a file made here and held in ``body``
    content_type: str
    last_modified: float
    etag: str | None
    cache_status: CacheStatus
    stale: bool = False
    body: bytes | None = None  # the whole content, when it is small and in memory
    upstream: str | None = None  # the access log's upstream field: "bucket" when another node's download was adopted
    # The front's encoded response headers for this file, built on first use (`maven.front`).  Every field
    # above is fixed once the file is made, and a memory hit's MavenFile is made anew whenever its row or its
    # body changes (`MavenCache._in_memory`), so these never describe another version of the file.
    wire: Any = field(default=None, repr=False, compare=False)

    @property
    def http_last_modified(self) -> bytes:
        """Last-Modified as an HTTP date (computed once: in-memory hits reuse their MavenFile)."""
        value = self.__dict__.get("_http_lm")
        if value is None:
            value = self.__dict__["_http_lm"] = format_http_date(self.last_modified)
        return value


def _read_head(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


async def whole_body(io: StorageIO, f: MavenFile, limit: int) -> bytes:
    """All of ``f`` in memory (waiting for a download in flight); `HarborError` when above ``limit``."""
    if f.body is not None:
        return f.body
    if f.size is not None and f.size > limit:
        raise UpstreamBadResponse(f"{f.path} is larger than {limit} bytes", {"path": f.path})
    source = f.source
    assert source is not None  # no body in memory, so a source holds the content
    while not source.verified:
        if source.failure is not None:
            raise UpstreamBadResponse(
                "upstream failed", {"repositoryId": f.repository, "path": f.path, "reason": str(source.failure)}
            )
        changed: Deferred = Deferred()

        def wake(d: Deferred = changed) -> None:
            if not d.called:
                d.callback(None)

        source.wait(wake)
        await changed
    body = await io.run(_read_head, source.path, limit + 1)
    if len(body) > limit:
        raise UpstreamBadResponse(f"{f.path} is larger than {limit} bytes", {"path": f.path})
    return body


class RowMemory(dict[tuple[str, str], CachedRow]):
    """(repository, path) -> `CachedRow`, at most ``limit`` of them, the oldest inserted going first.

    A cache of index rows for the hit path: a row that goes is looked up in
    the index again at its next request, so the bound only costs a query,
    while without it the process would keep a row for every file it ever
    served.
    """

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: tuple[str, str], value: CachedRow) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            del self[next(iter(self))]


class MemoryHits:
    """The answers of in-memory hits by repository and path, built once (their headers too: `MavenFile.wire`).

    Weighed by their bodies and bounded like the bodies themselves
    (least recently used first), so that what hits keep does not grow with
    the number of files ever served; an answer is only reused for the same
    row and the same body object, so a replaced row or body builds a new one.
    """

    def __init__(self, limit: int):
        self._hits: BoundedMemory[tuple[CachedRow, MavenFile]] = BoundedMemory(
            limit, lambda hit: len(hit[1].body or b"") + 512
        )

    def get(self, repo_id: str, path: str, row: CachedRow, body: bytes) -> MavenFile | None:
        hit = self._hits.get(f"{repo_id}/{path}")
        if hit is None or hit[0] is not row or hit[1].body is not body:
            return None
        return hit[1]

    def put(self, repo_id: str, path: str, row: CachedRow, answer: MavenFile) -> None:
        key = f"{repo_id}/{path}"
        self._hits.discard(key)
        self._hits.put(key, (row, answer))
