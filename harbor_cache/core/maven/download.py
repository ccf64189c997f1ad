"""The download job of one proxied Maven file, verified against upstream's ``.sha1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from harbor_cache.core.flight.downloads import Adopted, Download, Opened
from harbor_cache.core.flight.observable import Observable
from harbor_cache.grammar.http_dates import parse_http_date
from harbor_cache.grammar.maven_paths import MavenPath
from harbor_cache.index.rows import Entry
from harbor_cache.upstream.http import UpstreamError
from harbor_cache.upstream.maven import parse_sha1

if TYPE_CHECKING:
    from twisted.web.iweb import IResponse

    from harbor_cache.core.maven.cache import MavenCache

log = Logger()


class MavenDownload:
    """The `DownloadJob` of one proxied Maven file.

    Upstream's ``<path>.sha1`` is asked for while the body streams; its
    answer verifies the body and is then stored beside the file.  A
    revalidation hands in the response it already opened (and is never
    adopted: this node holds the file already).
    """

    front = "maven"
    extra_hashes = ("sha1",)

    def __init__(self, cache: MavenCache, repo_id: str, target: MavenPath, response: IResponse | None = None) -> None:
        self.cache = cache
        self.repo_id = repo_id
        self.target = target
        self.path = path = target.path
        self.key = ("maven", repo_id, path)
        self.source = repo_id
        self.response = response
        self.adoptable = response is None
        self._sha1: Observable | None = None  # upstream's answer for <path>.sha1, once asked
        self.published: tuple[str, bytes, float | None] | None = None

    async def open(self) -> Opened:
        response = self.response if self.response is not None else await self.cache._open(self.repo_id, self.target)
        if not self.target.is_checksum:
            answer = self._sha1 = Observable()
            Deferred.fromCoroutine(self._published_sha1()).addCallbacks(answer.fire, answer.fail)
        return Opened(response, self.repo_id)

    async def expected_digest(self) -> str | None:
        if self._sha1 is not None:
            self.published = await self._sha1.observe()
        return None if self.published is None else "sha1:" + self.published[0]

    async def commit(self, download: Download) -> Entry:
        return await self.cache._commit(self.repo_id, self.target, download, self.published)

    async def adopt(self) -> Adopted | None:
        return await self.cache._adopt(self.repo_id, self.target)

    async def _published_sha1(self) -> tuple[str, bytes, float | None] | None:
        """(hex, file body, Last-Modified) of upstream's ``<path>.sha1``; None when it has none or cannot be asked."""
        repo_id, path = self.repo_id, self.path
        try:
            found = await self.cache.upstreams[repo_id].fetch_small(path + ".sha1")
        except UpstreamError as e:
            self.cache.outcomes.upstream_error(repo_id, "checksum_" + e.reason)
            if e.reason == "too_large":
                # A checksum file is a few dozen bytes: a huge one is an upstream (or a man in the
                # middle) misbehaving, and the file is not stored unchecked on its word.
                log.warn(
                    "{repository}/{path}.sha1 is over the limit; not storing the file", repository=repo_id, path=path
                )
                raise
            log.warn("no checksum for {repository}/{path}: {error}", repository=repo_id, path=path, error=e)
            return None
        except Exception as e:
            log.warn("no checksum for {repository}/{path}: {error}", repository=repo_id, path=path, error=e)
            return None
        if found is None:
            return None
        hexsha = parse_sha1(found[0])
        if hexsha is None:
            log.warn("{repository}/{path}.sha1 holds no SHA-1; not checking", repository=repo_id, path=path)
            return None
        return hexsha, found[0], parse_http_date(found[1])
