"""Tag retention: rules that say which pushed tags to keep; the rest are deleted, by hand or on a schedule.

A rule covers the hosted repositories its ``repositories`` glob matches and
keeps, in each, the ``keep_last`` most recently pushed tags, the tags pushed
in the last ``keep_days`` days, and the tags matching any of ``keep_tags``;
a tag survives if ANY clause keeps it.  When several rules cover one
repository, a tag goes only if none of them keeps it (a second rule can never
make the first delete more).  Tags an immutable-tag rule protects are always
kept, since deleting them is refused anyway.

A run deletes tags exactly as ``DELETE /v2/<name>/manifests/<tag>`` does (the
manifest stays; untagged manifests are garbage collection's business), and
a dry run lists what a run would delete without deleting.  The schedule
(`run_if_due`, ticked every minute by the service) runs every rule once each
``retention.interval_seconds`` (0 = never on its own).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from harbor_cache.errors import BadRequest, NotFound
from harbor_cache.grammar.policy_globs import BadPattern, check_pattern, matches
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.index.policies import HostedTag, RetentionRuleRow

log = Logger()

DAY = 86400.0
MAX_RULES = 1000
MAX_KEEP_TAGS = 100
MAX_KEEP = 1_000_000


def retention_view(row: RetentionRuleRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "repositories": row.repositories,
        "keep_last": row.keep_last,
        "keep_days": row.keep_days,
        "keep_tags": row.keep_tag_patterns,
        "created_at": iso8601(row.created_at),
        "updated_at": iso8601(row.updated_at),
    }


@dataclass(frozen=True)
class RuleFields:
    repositories: str
    keep_last: int | None
    keep_days: int | None
    keep_tags: list[str]


def parse_rule(body: dict[str, Any]) -> RuleFields:
    """A rule's fields from a request body; BadRequest saying which field is wrong.

    ``repositories`` is required; ``keep_last``, ``keep_days`` and ``keep_tags``
    are each optional (null or left out = that clause keeps nothing) but at
    least one must be given, so a rule can never mean "delete everything".
    """
    try:
        repositories = check_pattern(body.get("repositories"), "repositories", tag=False)
        raw_tags = body.get("keep_tags")
        if raw_tags is None:
            keep_tags: list[str] = []
        elif isinstance(raw_tags, list) and len(raw_tags) <= MAX_KEEP_TAGS:
            keep_tags = [check_pattern(t, "keep_tags", tag=True) for t in raw_tags]
        else:
            raise BadPattern(f"keep_tags: expected a list of at most {MAX_KEEP_TAGS} tag globs")
    except BadPattern as e:
        raise BadRequest(str(e)) from None
    keep_last = _count(body.get("keep_last"), "keep_last")
    keep_days = _count(body.get("keep_days"), "keep_days")
    if keep_last is None and keep_days is None and not keep_tags:
        raise BadRequest("a rule needs at least one of keep_last, keep_days, keep_tags")
    return RuleFields(repositories, keep_last, keep_days, keep_tags)


def _count(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEEP:
        raise BadRequest(f"{field}: expected an integer from 0 to {MAX_KEEP}, or null")
    return value


def kept_by(rule: RetentionRuleRow, tags: list[HostedTag], now: float) -> set[str]:
    """The tags (of one repository, newest push first) that ``rule`` keeps."""
    kept: set[str] = set()
    if rule.keep_last:
        kept.update(t.tag for t in tags[: rule.keep_last])
    if rule.keep_days is not None:
        since = now - rule.keep_days * DAY
        kept.update(t.tag for t in tags if t.pushed_at >= since)
    patterns = rule.keep_tag_patterns
    kept.update(t.tag for t in tags if any(matches(t.tag, p) for p in patterns))
    return kept


def doomed(rules: list[RetentionRuleRow], tags: list[HostedTag], now: float) -> list[HostedTag]:
    """The tags the rules delete: in a repository some rule covers, kept by none of the rules covering it."""
    by_repository: dict[str, list[HostedTag]] = defaultdict(list)
    for t in tags:
        by_repository[t.repository].append(t)
    out: list[HostedTag] = []
    for repository, repo_tags in sorted(by_repository.items()):
        repo_tags.sort(key=lambda t: (-t.pushed_at, t.tag))
        covering = [r for r in rules if matches(repository, r.repositories)]
        if not covering:
            continue
        kept: set[str] = set()
        for rule in covering:
            kept |= kept_by(rule, repo_tags, now)
        out.extend(t for t in repo_tags if t.tag not in kept)
    return out


class Retention:
    """Retention rules (CRUD), runs and dry runs, and the schedule."""

    def __init__(
        self, index: Any, hosted: Any, settings: Any, clock: Any, audit: Any = None, leases: Any = None
    ) -> None:
        self.index = index
        self.leases = leases  # several nodes: only the holder of the "retention" lease runs the schedule
        self.hosted = hosted  # core.hosted.registry.HostedRegistry: deletes tags as the /v2/ DELETE does
        self.settings = settings
        self.clock = clock
        self.audit = audit
        self.last_run: float | None = None
        self.running = False

    # -- rules --------------------------------------------------------------------

    async def list(self) -> list[dict[str, Any]]:
        return [retention_view(r) for r in await self.index.list_retention_rules()]

    async def get(self, rule_id: int) -> dict[str, Any]:
        return retention_view(await self._row(rule_id))

    async def _row(self, rule_id: int) -> RetentionRuleRow:
        row = await self.index.get_retention_rule(rule_id)
        if row is None:
            raise NotFound("no retention rule with this id", {"id": rule_id})
        return row

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        f = parse_rule(body)
        if len(await self.index.list_retention_rules()) >= MAX_RULES:
            raise BadRequest(f"at most {MAX_RULES} retention rules")
        row = await self.index.create_retention_rule(
            f.repositories, f.keep_last, f.keep_days, f.keep_tags, self.clock.seconds()
        )
        return retention_view(row)

    async def update(self, rule_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a rule (PUT: the body is the whole rule)."""
        f = parse_rule(body)
        row = await self.index.update_retention_rule(
            rule_id, f.repositories, f.keep_last, f.keep_days, f.keep_tags, self.clock.seconds()
        )
        if row is None:
            raise NotFound("no retention rule with this id", {"id": rule_id})
        return retention_view(row)

    async def delete(self, rule_id: int) -> None:
        if not await self.index.delete_retention_rule(rule_id):
            raise NotFound("no retention rule with this id", {"id": rule_id})

    # -- runs ---------------------------------------------------------------------

    async def run(self, rule_id: int | None, dry_run: bool, actor: str | None = None) -> dict[str, Any]:
        """Apply one rule (``rule_id``) or all; a dry run only lists. Returns what went (or would go)."""
        rules = [await self._row(rule_id)] if rule_id is not None else await self.index.list_retention_rules()
        now = self.clock.seconds()
        candidates = doomed(rules, await self.index.list_hosted_tags(), now) if rules else []
        immutable = getattr(self.hosted, "immutable", None)
        if immutable is not None:
            candidates = [t for t in candidates if not await immutable.protected(t.repository, t.tag)]
        deleted = 0
        if not dry_run:
            for t in candidates:
                if await self.index.delete_hosted_tag(t.repository, t.tag) is not None:
                    self.hosted.cache.forget_tag(t.repository, t.tag)
                    deleted += 1
        result = {
            "dry_run": dry_run,
            "rules": [r.id for r in rules],
            "tags": [
                {"repository": t.repository, "tag": t.tag, "digest": t.digest, "pushed_at": iso8601(t.pushed_at)}
                for t in candidates
            ],
            "deleted": deleted,
        }
        if not dry_run and (rules or actor is not None) and self.audit is not None:
            await self.audit.record(
                "retention.run",
                actor=actor,
                target=f"rule {rule_id}" if rule_id is not None else "all rules",
                detail={
                    "rules": result["rules"],
                    "deleted": deleted,
                    "tags": [f"{t.repository}:{t.tag}" for t in candidates][:100],
                },
            )
        if deleted:
            log.info("retention deleted {count} tags", count=deleted)
        return result

    async def run_if_due(self) -> bool:
        """The schedule's tick: run every rule when ``retention.interval_seconds`` passed since the last run."""
        interval = self.settings.get("retention.interval_seconds")
        now = self.clock.seconds()
        if interval <= 0 or self.running:
            return False
        if self.last_run is None:
            self.last_run = now  # the first run comes one interval after the start
            return False
        if now - self.last_run < interval:
            return False
        self.running = True
        lease = None
        try:
            self.last_run = now
            if self.leases is not None:
                lease = await self.leases.try_hold("retention")
                if lease is None:
                    return False
            await self.run(None, dry_run=False)
        finally:
            self.running = False
            if lease is not None:
                await lease.release()
        return True

    def tick(self) -> defer.Deferred:
        """`run_if_due` for the service's timer: a failure is logged, never raised (it would stop the timer)."""
        d = defer.Deferred.fromCoroutine(self.run_if_due())
        d.addErrback(lambda f: log.failure("tag retention run failed", f))
        return d
