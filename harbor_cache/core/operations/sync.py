"""Scheduled pre-fetch (sync rules): rules CRUD, runs on a schedule or on demand, and their history.

A run of an OCI rule asks the rule's upstream for each repository's tag list,
picks the tags (`sync_rules.select_tags`) and pulls each one through the
cache's NORMAL path: `OciCache.refresh_tag` (the tag single-flight, a HEAD
revalidation first, so an unchanged tag costs no manifest GET), then
``get_manifest_by_digest`` for the chosen platforms of an index and
``get_blob`` for config and layers, waiting for each download's commit.  A
client pulling the same image meanwhile joins the same downloads; on several
nodes the downloads take their leases as for any client.  A Maven rule gets
each ``maven-metadata.xml`` through `MavenCache.get_file`.

A run stops (status ``stopped``, the reason in ``error``) when the upstream's
``ratelimit-remaining`` falls to ``sync.ratelimit_min_remaining`` or the disk
is below its floor (``cache.min_free_bytes``): a pre-fetch must never spend
the pulls clients need, nor evict what they use.  One run per rule at a time
across nodes: the run holds the lease ``sync:<id>``.  Each run is a row in
``sync_runs``, updated as it goes (so a console on any node shows progress).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from harbor_cache.core.operations.sync_rules import SyncRule, parse_rule, rule_view, select_tags, wanted_platform
from harbor_cache.errors import BadRequest, Conflict, HarborError, NotFound
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.index.sync import SyncRuleRow, SyncRunRow
from harbor_cache.upstream.body import discard_body
from harbor_cache.upstream.http import UpstreamError
from harbor_cache.upstream.registry import read_limited

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.flight.leases import Lease, LeaseBook
    from harbor_cache.core.maven.cache import MavenCache
    from harbor_cache.core.oci.cache import OciCache
    from harbor_cache.core.oci.proxy import ManifestResult
    from harbor_cache.core.operations.audit import AuditLog
    from harbor_cache.core.operations.diskspace import DiskSpace
    from harbor_cache.index import Index
    from harbor_cache.metrics import Metrics
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.upstream.registry import RegistryUpstream

log = Logger()

MAX_RULES = 1000
MAX_TAG_LIST_BYTES = 16 << 20
MAX_METADATA_BYTES = 16 << 20
HISTORY_LIMIT = 100
DEAD_RUN_SECONDS = 3600.0
# How often the service looks for due rules (daemon.py).
SYNC_TICK_SECONDS = 15.0


class RunStopped(Exception):
    """A limit stopped the run (rate limit, disk floor): status ``stopped``, the message in ``error``."""


@dataclass
class Progress:
    """What a run fetched so far (counted only for content that came from upstream this time)."""

    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    tags_seen: int = 0


def run_view(row: SyncRunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule_id": row.rule_id,
        "node": row.node,
        "started_at": iso8601(row.started_at),
        "finished_at": iso8601(row.finished_at),
        "status": row.status,
        "manifests": row.manifests,
        "blobs": row.blobs,
        "bytes": row.bytes,
        "tags_seen": row.tags_seen,
        "error": row.error,
    }


def stored_rule(row: SyncRuleRow) -> SyncRule:
    return SyncRule.from_stored(row.kind, row.fields, row.interval_seconds, bool(row.enabled))


class SyncRules:
    """Sync rules (CRUD), runs (now or when due) and their history."""

    def __init__(
        self,
        *,
        index: Index,
        oci: OciCache,
        maven: MavenCache | None,
        space: DiskSpace | None,
        settings: RuntimeSettings,
        clock: IReactorTime,
        metrics: Metrics,
        node: str,
        audit: AuditLog | None = None,
        leases: LeaseBook | None = None,
    ) -> None:
        self.index = index
        self.oci = oci
        self.maven = maven
        self.space = space
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.node = node
        self.audit = audit
        self.leases = leases
        # rule id -> the run in progress on this node (its Deferred fires when it ends)
        self.active: dict[int, defer.Deferred] = {}

    # -- rules --------------------------------------------------------------------

    def _check_names(self, rule: SyncRule) -> None:
        """Unknown upstream or Maven repository, or a repository the upstream does not serve: 400."""
        if rule.kind == "maven":
            repos = getattr(self.maven, "repositories", {}) if self.maven is not None else {}
            repo = repos.get(rule.maven_repository)
            if repo is None or not repo.is_proxy:
                raise BadRequest(
                    f"maven_repository: {rule.maven_repository!r} is not a proxy Maven repository",
                    {"known": sorted(k for k, r in repos.items() if r.is_proxy)},
                )
            return
        upstream = self.oci.upstreams.by_name(rule.upstream)
        if upstream is None:
            raise BadRequest(
                f"upstream: no OCI upstream named {rule.upstream!r}",
                {"known": [u.name for u in self.oci.upstreams.upstreams]},
            )
        for repository in rule.repositories:
            if upstream not in self.oci.route(repository).upstreams:
                raise BadRequest(f"repositories: {repository!r} is not served by upstream {rule.upstream!r}")

    def _parse(self, body: dict[str, Any]) -> SyncRule:
        rule = parse_rule(body, self.settings.get("sync.min_interval_seconds"))
        self._check_names(rule)
        return rule

    async def _view(self, row: SyncRuleRow, last: SyncRunRow | None) -> dict[str, Any]:
        view = rule_view(row.id, stored_rule(row), iso8601(row.created_at) or "", iso8601(row.updated_at) or "")
        view["last_run"] = run_view(last) if last is not None else None
        return view

    async def _row(self, rule_id: int) -> SyncRuleRow:
        row = await self.index.get_sync_rule(rule_id)
        if row is None:
            raise NotFound("no sync rule with this id", {"id": rule_id})
        return row

    async def list_rules(self) -> list[dict[str, Any]]:
        last = await self.index.last_sync_runs()
        return [await self._view(r, last.get(r.id)) for r in await self.index.list_sync_rules()]

    async def get(self, rule_id: int) -> dict[str, Any]:
        row = await self._row(rule_id)
        runs = await self.index.list_sync_runs(rule_id, 1)
        return await self._view(row, runs[0] if runs else None)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        rule = self._parse(body)
        if len(await self.index.list_sync_rules()) >= MAX_RULES:
            raise BadRequest(f"at most {MAX_RULES} sync rules")
        row = await self.index.create_sync_rule(
            rule.kind, rule.spec(), rule.interval_seconds, rule.enabled, self.clock.seconds()
        )
        return await self._view(row, None)

    async def update(self, rule_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a rule (PUT: the body is the whole rule)."""
        rule = self._parse(body)
        row = await self.index.update_sync_rule(
            rule_id, rule.kind, rule.spec(), rule.interval_seconds, rule.enabled, self.clock.seconds()
        )
        if row is None:
            raise NotFound("no sync rule with this id", {"id": rule_id})
        return await self.get(rule_id)

    async def delete(self, rule_id: int) -> dict[str, Any]:
        """Remove a rule and its history; the rule as it was."""
        gone = await self.get(rule_id)
        await self.index.delete_sync_rule(rule_id)
        return gone

    async def runs(self, rule_id: int) -> list[dict[str, Any]]:
        await self._row(rule_id)
        return [run_view(r) for r in await self.index.list_sync_runs(rule_id, HISTORY_LIMIT)]

    # -- runs ---------------------------------------------------------------------

    async def start(self, rule_id: int) -> tuple[dict[str, Any], defer.Deferred]:
        """Begin a run of one rule now: its ``running`` row, and a Deferred firing with the finished row.

        Conflict (409) when a run of the rule is in progress here or on another node.
        """
        row = await self._row(rule_id)
        if rule_id in self.active:
            raise Conflict("a run of this sync rule is in progress", {"id": rule_id})
        lease: Lease | None = None
        if self.leases is not None:
            lease = await self.leases.try_hold(f"sync:{rule_id}")
            if lease is None:
                raise Conflict("a run of this sync rule is in progress on another node", {"id": rule_id})
        try:
            run = await self.index.start_sync_run(rule_id, self.node, self.clock.seconds())
        except BaseException:
            if lease is not None:
                await lease.release()
            raise
        d = defer.Deferred.fromCoroutine(self._execute(stored_rule(row), run, lease))
        self.active[rule_id] = d

        def _ended(result: Any) -> Any:
            self.active.pop(rule_id, None)
            return result

        d.addBoth(_ended)
        return run_view(run), d

    async def _execute(self, rule: SyncRule, run: SyncRunRow, lease: Lease | None) -> dict[str, Any]:
        progress = Progress()
        status, error = "succeeded", None

        async def save() -> None:
            await self._save(run.id, progress)

        try:
            if rule.kind == "maven":
                await self._run_maven(rule, progress, save)
            else:
                await self._run_oci(rule, progress, save)
        except RunStopped as e:
            status, error = "stopped", str(e)
        except Exception as e:
            status, error = "failed", _describe(e)
            log.warn("sync rule {id} failed: {error}", id=run.rule_id, error=error)
        finally:
            if lease is not None:
                await lease.release()
        now = self.clock.seconds()
        await self._save(run.id, progress, status, error, now)
        self.metrics.sync_runs.labels(status).inc()
        if progress.bytes:
            self.metrics.sync_bytes.labels(str(run.rule_id)).inc(progress.bytes)
        return run_view(
            SyncRunRow(
                run.id,
                run.rule_id,
                run.node,
                run.started_at,
                now,
                status,
                progress.manifests,
                progress.blobs,
                progress.bytes,
                progress.tags_seen,
                error,
            )
        )

    async def _save(
        self,
        run_id: int,
        p: Progress,
        status: str = "running",
        error: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        await self.index.update_sync_run(
            run_id,
            manifests=p.manifests,
            blobs=p.blobs,
            bytes_=p.bytes,
            tags_seen=p.tags_seen,
            status=status,
            error=error,
            finished_at=finished_at,
        )

    # -- limits -------------------------------------------------------------------

    def _check_limits(self, upstream: RegistryUpstream | None) -> None:
        if self.space is not None and self.space.low():
            raise RunStopped(
                f"the disk is below its floor (cache.min_free_bytes = {self.space.floor()}, "
                f"{self.space.free()} bytes free)"
            )
        threshold = self.settings.get("sync.ratelimit_min_remaining")
        remaining = getattr(upstream, "ratelimit_remaining", None)
        if upstream is not None and threshold > 0 and remaining is not None and remaining <= threshold:
            raise RunStopped(
                f"upstream {upstream.name} has {remaining:g} requests left in its rate limit "
                f"(sync.ratelimit_min_remaining = {threshold})"
            )

    # -- OCI ----------------------------------------------------------------------

    async def _run_oci(self, rule: SyncRule, progress: Progress, save: Callable[[], Any]) -> None:
        upstream = self.oci.upstreams.by_name(rule.upstream)
        if upstream is None:
            raise BadRequest(f"upstream {rule.upstream!r} no longer exists")
        for repository in rule.repositories:
            self._check_limits(upstream)
            available = await self._tags_upstream(upstream, repository)
            progress.tags_seen += len(available)
            for tag in select_tags(available, rule.tags, rule.newest):
                self._check_limits(upstream)
                result = await self.oci.refresh_tag(repository, tag)
                self._count_manifest(result, progress)
                await self._manifest_content(repository, result, rule.platforms, upstream, progress)
                await save()

    async def _tags_upstream(self, upstream: RegistryUpstream, repository: str) -> list[str]:
        """``GET /v2/<name>/tags/list`` of the rule's upstream (a 404 is an empty list)."""
        remote = self.oci.route(repository).remote
        response = await upstream.request("GET", remote, "tags", "list")
        if response.code == 404:
            await discard_body(response)
            return []
        if response.code != 200:
            await discard_body(response)
            raise UpstreamError(
                f"{upstream.name} answered {response.code} to the tag list of {repository}", "status", response.code
            )
        try:
            document = json.loads(await read_limited(response, MAX_TAG_LIST_BYTES))
            return [t for t in (document.get("tags") or []) if isinstance(t, str)]
        except (ValueError, AttributeError) as e:
            raise UpstreamError(f"{upstream.name} sent an unreadable tag list of {repository}: {e}", "body") from None

    @staticmethod
    def _count_manifest(result: ManifestResult, progress: Progress) -> None:
        if result.cache_status in ("miss", "refreshed"):
            progress.manifests += 1
            progress.bytes += len(result.body)

    async def _manifest_content(
        self,
        repository: str,
        result: ManifestResult,
        platforms: tuple[str, ...],
        upstream: RegistryUpstream,
        progress: Progress,
    ) -> None:
        """The platforms' manifests of an index, and the blobs of every image manifest."""
        try:
            document = json.loads(result.body)
        except ValueError:
            return
        if not isinstance(document, dict):
            return
        children = document.get("manifests")
        if isinstance(children, list):
            for descriptor in children:
                if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
                    continue
                if not wanted_platform(descriptor, platforms):
                    continue
                self._check_limits(upstream)
                child = await self.oci.get_manifest_by_digest(repository, descriptor["digest"])
                self._count_manifest(child, progress)
                await self._manifest_content(repository, child, (), upstream, progress)
            return
        descriptors = [document.get("config")] + list(document.get("layers") or [])
        for d in descriptors:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                self._check_limits(upstream)
                await self._blob(repository, d["digest"], progress)

    async def _blob(self, repository: str, digest: str, progress: Progress) -> None:
        """One blob through `get_blob`; a download (new or joined) is waited for until it is committed."""
        handle = await self.oci.get_blob(repository, digest)
        if handle.cache_status == "hit":
            return
        download = self.oci.downloads.get(("blob", digest))
        if download is not None:
            await download.committed.observe()
        progress.blobs += 1
        progress.bytes += handle.size or 0

    # -- Maven --------------------------------------------------------------------

    async def _run_maven(self, rule: SyncRule, progress: Progress, save: Callable[[], Any]) -> None:
        if self.maven is None:
            raise BadRequest("Maven is not configured")
        for coordinate in rule.artifacts:
            self._check_limits(None)
            group, artifact = coordinate.split(":", 1)
            path = f"{group.replace('.', '/')}/{artifact}/maven-metadata.xml"
            try:
                f = await self.maven.get_file(rule.maven_repository, path)
            except NotFound:
                continue
            body = await self.maven.whole_body(f, MAX_METADATA_BYTES)
            progress.tags_seen += 1
            if f.cache_status in ("miss", "refreshed"):
                progress.manifests += 1
                progress.bytes += len(body)
            await save()

    # -- schedule -----------------------------------------------------------------

    async def run_due(self) -> list[int]:
        """Start every enabled rule whose last run began at least ``interval_seconds`` ago (or never ran).

        Another node running a rule holds its lease: the rule is skipped here.
        The ids of the runs started.
        """
        now = self.clock.seconds()
        last = await self.index.last_sync_runs()
        started: list[int] = []
        for row in await self.index.list_sync_rules():
            if not row.enabled or row.id in self.active:
                continue
            previous = last.get(row.id)
            if previous is not None:
                # A "running" row older than an hour (and the interval) is a dead node's: the rule runs again.
                wait = (
                    max(row.interval_seconds, DEAD_RUN_SECONDS)
                    if previous.status == "running"
                    else row.interval_seconds
                )
                if now - previous.started_at < wait:
                    continue
            try:
                await self.start(row.id)
            except Conflict:
                continue
            started.append(row.id)
        return started

    def tick(self) -> defer.Deferred:
        """`run_due` for the service's timer: a failure is logged, never raised (it would stop the timer)."""
        d = defer.Deferred.fromCoroutine(self.run_due())
        d.addErrback(lambda f: log.failure("starting sync runs failed", f))
        return d


def _describe(error: BaseException) -> str:
    if isinstance(error, HarborError):
        detail = getattr(error, "detail", None)
        return f"{error}: {detail}" if detail else str(error)
    return f"{type(error).__name__}: {error}"
