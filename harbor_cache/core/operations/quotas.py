"""Quotas on hosted content: what they are, what they count, and which pushes they refuse.

A quota covers either the hosted repositories whose name matches a glob
(``team-a/*``, matched like upstream routes: ``fnmatch``, case-sensitive, ``*``
also crosses ``/``) or one hosted Maven repository (``maven:<id>``).  It
limits bytes (``max_bytes``) and, for repositories, hosted tags
(``max_tags``, optional).

What counts (computed from the index at each check, never stored, so it
cannot drift; see `index.quotas` for the indexed queries):

- repositories: every blob some matching repository claims (pushed or
  mounted into it) or needs (named by one of its manifests), each digest
  ONCE per quota however many matching repositories share it, plus every
  hosted manifest (also once per digest); tags are the hosted tags of the
  matching repositories;
- Maven: the bytes of every file deployed into the repository (checksum and
  metadata files included).

A push is refused with 403 DENIED naming the quota, its limit and the usage:
from its declared length before the body is read (blob PATCH/PUT/POST with
a Content-Length, Maven PUT), otherwise at the commit (blob commit, manifest
PUT, the end of a chunked deploy), before anything is made visible.  A blob
already counted by the quota adds nothing (pushing it again, or into a
sibling repository, is never refused).  Checks are not transactions: pushes
racing each other may together overshoot a limit by what they carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol

from twisted.logger import Logger

from harbor_cache.errors import BadRequest, Conflict, Denied, NotFound
from harbor_cache.index.quotas import QuotaRow

log = Logger()

MAVEN_PREFIX = "maven:"
# Repository-name characters plus the glob's * and ?; no [sets] (a name never needs one).
GLOB = re.compile(r"[a-z0-9._/*?-]{1,255}")
MAX_LIMIT = (1 << 63) - 1


class MavenRepository(Protocol):
    """What a quota needs of a Maven repository's config (`settings.startup.MavenRepositoryConfig`)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...


class Audit(Protocol):
    async def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        request: Any = None,
    ) -> None: ...


@dataclass
class Usage:
    """What a quota counts now; ``digests`` and ``tags`` say what a push would not add again."""

    used_bytes: int = 0
    used_tags: int = 0
    digests: set[str] = field(default_factory=set)
    tags: set[tuple[str, str]] = field(default_factory=set)


def literal_prefix(glob: str) -> str:
    """The part of a glob before its first wildcard: the name range the index is asked for."""
    cut = min((i for i in (glob.find("*"), glob.find("?")) if i >= 0), default=len(glob))
    return glob[:cut]


def maven_id(repositories: str) -> str | None:
    """The repository id of a ``maven:<id>`` quota, None for a glob."""
    return repositories[len(MAVEN_PREFIX) :] if repositories.startswith(MAVEN_PREFIX) else None


def describe(quota: QuotaRow) -> str:
    return f"quota {quota.repositories} (id {quota.id})"


class QuotaBook:
    """Quota CRUD with validation, usage, and the checks hosted pushes and deploys call."""

    def __init__(
        self, index: Any, clock: Any, maven_repositories: Iterable[MavenRepository] = (), audit: Audit | None = None
    ) -> None:
        self.index = index
        self.clock = clock
        self.maven = {r.id: r for r in maven_repositories}
        self.audit = audit
        self._published: set[str] = set()  # quota labels on the gauges

    # -- CRUD -------------------------------------------------------------------

    def _validated(self, body: dict[str, Any]) -> tuple[str, int, int | None]:
        repositories = body.get("repositories")
        if not isinstance(repositories, str) or not repositories:
            raise BadRequest('"repositories" must be a repository glob ("team-a/*") or "maven:<repository id>"')
        repo_id = maven_id(repositories)
        if repo_id is not None:
            repo = self.maven.get(repo_id)
            if repo is None:
                raise BadRequest(f"unknown Maven repository id {repo_id!r}", {"repositories": repositories[:300]})
            if repo.type != "hosted":
                raise BadRequest(
                    f"Maven repository {repo_id} is a {repo.type} repository: quotas apply to hosted ones",
                    {"repositories": repositories},
                )
        elif not GLOB.fullmatch(repositories) or "//" in repositories or repositories.startswith("/"):
            raise BadRequest(
                "bad repository glob: use lowercase repository-name characters (a-z 0-9 . _ - /) with * and ?",
                {"repositories": repositories[:300]},
            )
        max_bytes = _positive(body, "max_bytes", required=True)
        assert max_bytes is not None
        max_tags = _positive(body, "max_tags", required=False)
        if repo_id is not None and max_tags is not None:
            raise BadRequest("max_tags applies to container repositories, not to a Maven repository")
        return repositories, max_bytes, max_tags

    async def listing(self) -> list[tuple[QuotaRow, Usage]]:
        """Every quota with its usage now, by id."""
        return [(q, await self.usage(q)) for q in await self.index.list_quotas()]

    async def get(self, quota_id: int) -> tuple[QuotaRow, Usage]:
        quota = await self.index.get_quota(quota_id)
        if quota is None:
            raise NotFound("quota not found", {"id": quota_id})
        return quota, await self.usage(quota)

    async def create(self, body: dict[str, Any]) -> QuotaRow:
        repositories, max_bytes, max_tags = self._validated(body)
        row = await self.index.create_quota(repositories, max_bytes, max_tags, self.clock.seconds())
        if row is None:
            raise Conflict("a quota for these repositories exists", {"repositories": repositories})
        return row

    async def update(self, quota_id: int, body: dict[str, Any]) -> QuotaRow:
        repositories, max_bytes, max_tags = self._validated(body)
        row = await self.index.update_quota(quota_id, repositories, max_bytes, max_tags, self.clock.seconds())
        if row == "missing":
            raise NotFound("quota not found", {"id": quota_id})
        if row == "taken":
            raise Conflict("a quota for these repositories exists", {"repositories": repositories})
        assert isinstance(row, QuotaRow)
        return row

    async def delete(self, quota_id: int) -> QuotaRow:
        quota = await self.index.get_quota(quota_id)
        if quota is None or not await self.index.delete_quota(quota_id):
            raise NotFound("quota not found", {"id": quota_id})
        return quota

    # -- usage ------------------------------------------------------------------

    async def usage(self, quota: QuotaRow) -> Usage:
        repo_id = maven_id(quota.repositories)
        if repo_id is not None:
            size, _files = await self.index.maven_hosted_usage(repo_id)
            return Usage(used_bytes=size)
        glob = quota.repositories
        hosted = await self.index.hosted_in_range(literal_prefix(glob))
        usage = Usage()
        for repository, digest, size in [*hosted.blobs, *hosted.manifests]:
            if digest not in usage.digests and fnmatchcase(repository, glob):
                usage.digests.add(digest)
                usage.used_bytes += size
        usage.tags = {(r, t) for r, t in hosted.tags if fnmatchcase(r, glob)}
        usage.used_tags = len(usage.tags)
        return usage

    async def _covering(self, name: str) -> list[QuotaRow]:
        return [
            q
            for q in await self.index.list_quotas()
            if maven_id(q.repositories) is None and fnmatchcase(name, q.repositories)
        ]

    async def publish(self, metrics: Any) -> None:
        """Set the ``harbor_cache_quota_*`` gauges (with the other gauges); a deleted quota's labels go."""
        seen = set()
        for quota, usage in await self.listing():
            label = quota.repositories
            seen.add(label)
            metrics.quota_used_bytes.labels(label).set(usage.used_bytes)
            metrics.quota_limit_bytes.labels(label).set(quota.max_bytes)
            if maven_id(label) is None:
                metrics.quota_used_tags.labels(label).set(usage.used_tags)
        for label in self._published - seen:
            for gauge in (metrics.quota_used_bytes, metrics.quota_limit_bytes, metrics.quota_used_tags):
                try:
                    gauge.remove(label)
                except KeyError:
                    pass
        self._published = seen

    # -- checks -----------------------------------------------------------------

    async def check_blob(
        self, name: str, adding: int | None, digest: str | None = None, actor: str | None = None
    ) -> None:
        """Refuse (403 DENIED) ``adding`` more bytes in repository ``name`` beyond a quota covering it.

        ``adding`` None (a chunked body of unknown length) refuses only where
        the quota is already full; a ``digest`` the quota already counts adds nothing.
        """
        for quota in await self._covering(name):
            usage = await self.usage(quota)
            if digest is not None and digest in usage.digests:
                continue
            if usage.used_bytes + (adding or 0) > quota.max_bytes or (
                adding is None and usage.used_bytes >= quota.max_bytes
            ):
                await self._refuse(quota, usage, name, adding, actor)

    async def check_manifest(
        self,
        name: str,
        digest: str,
        size: int,
        tag: str | None,
        blobs: dict[str, int] | None = None,
        actor: str | None = None,
    ) -> None:
        """Refuse a manifest beyond a quota covering ``name``: its bytes and those of the ``blobs`` it names
        (digest: size) that the quota does not count yet (stored, but held by no matching repository), and
        its tag when new."""
        for quota in await self._covering(name):
            usage = await self.usage(quota)
            adding = sum(s for d, s in (blobs or {}).items() if d not in usage.digests)
            if digest not in usage.digests:
                adding += size
            if adding and usage.used_bytes + adding > quota.max_bytes:
                await self._refuse(quota, usage, name, adding, actor)
            if (
                tag is not None
                and quota.max_tags is not None
                and (name, tag) not in usage.tags
                and usage.used_tags + 1 > quota.max_tags
            ):
                await self._refuse(quota, usage, name, None, actor, tags=True)

    async def check_maven(self, repo_id: str, path: str, adding: int | None, actor: str | None = None) -> None:
        """Refuse a deploy of ``adding`` bytes at ``path`` beyond the repository's quota (a replaced file's
        bytes are freed by it)."""
        for quota in await self.index.list_quotas():
            if maven_id(quota.repositories) != repo_id:
                continue
            usage = await self.usage(quota)
            replaced = await self.index.maven_file_size(repo_id, path) or 0
            if usage.used_bytes - replaced + (adding or 0) > quota.max_bytes:
                await self._refuse(quota, usage, f"{repo_id}/{path}", adding, actor)

    async def _refuse(
        self, quota: QuotaRow, usage: Usage, target: str, adding: int | None, actor: str | None, tags: bool = False
    ) -> None:
        if tags:
            message = (
                f"quota {quota.repositories} exceeded: it allows {quota.max_tags} tags and {usage.used_tags} are used"
            )
        else:
            more = f"this push adds {adding}" if adding is not None else "it is full"
            message = (
                f"quota {quota.repositories} exceeded: it allows {quota.max_bytes} bytes, "
                f"{usage.used_bytes} are used and {more}"
            )
        detail: dict[str, Any] = {
            "quota": quota.id,
            "repositories": quota.repositories,
            "max_bytes": quota.max_bytes,
            "used_bytes": usage.used_bytes,
        }
        if adding is not None:
            detail["push_bytes"] = adding
        if quota.max_tags is not None:
            detail.update(max_tags=quota.max_tags, used_tags=usage.used_tags)
        log.info("refused a push to {target}: {message}", target=target, message=message)
        if self.audit is not None:
            await self.audit.record("quota.refused", actor=actor or None, target=target, detail=detail)
        raise Denied(message, detail)


def _positive(body: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIMIT:
        raise BadRequest(f'"{name}" must be a positive integer', {name: value if isinstance(value, int) else None})
    return value
