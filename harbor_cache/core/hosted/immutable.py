"""Immutable tags: once pushed, a tag matching a rule keeps naming the same manifest.

A rule is a pair of globs (`grammar.policy_globs`): repositories and tags.
Pushing a *different* manifest to an existing hosted tag that matches a rule,
deleting such a tag, or deleting a manifest by digest that such a tag names
is refused with 403 DENIED naming the rule; pushing the same digest again is
allowed (clients re-push whole images).  Rules are read from the index on
each decision (a handful of rows), so a rule made on one node holds on all
of them at once.  Only hosted tags are judged: cached upstream tags follow
their upstream.
"""

from __future__ import annotations

from typing import Any

from harbor_cache.errors import BadRequest, Denied, NotFound
from harbor_cache.grammar.policy_globs import BadPattern, check_pattern, matches
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.index.policies import ImmutableRuleRow

MAX_RULES = 1000


class TagImmutable(Denied):
    """A change to a tag an immutable-tag rule protects (403 DENIED); the front audits it."""


def immutable_view(row: ImmutableRuleRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "repositories": row.repositories,
        "tags": row.tags,
        "created_at": iso8601(row.created_at),
    }


class ImmutableTags:
    """The immutable-tag rules and the refusals they make."""

    def __init__(self, index: Any, clock: Any) -> None:
        self.index = index
        self.clock = clock

    async def list(self) -> list[dict[str, Any]]:
        return [immutable_view(r) for r in await self.index.list_immutable_rules()]

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new rule from ``{"repositories", "tags"}`` (both globs, both required); 400 otherwise."""
        try:
            repositories = check_pattern(body.get("repositories"), "repositories", tag=False)
            tags = check_pattern(body.get("tags"), "tags", tag=True)
        except BadPattern as e:
            raise BadRequest(str(e)) from None
        if len(await self.index.list_immutable_rules()) >= MAX_RULES:
            raise BadRequest(f"at most {MAX_RULES} immutable-tag rules")
        row = await self.index.create_immutable_rule(repositories, tags, self.clock.seconds())
        return immutable_view(row)

    async def delete(self, rule_id: int) -> dict[str, Any]:
        """Remove a rule; its view (for the audit record). 404 NOT_FOUND when there is none."""
        row = await self.index.delete_immutable_rule(rule_id)
        if row is None:
            raise NotFound("no immutable-tag rule with this id", {"id": rule_id})
        return immutable_view(row)

    async def rule_for(self, repository: str, tag: str) -> ImmutableRuleRow | None:
        """The first rule (by id) that makes ``repository:tag`` immutable, if any."""
        for rule in await self.index.list_immutable_rules():
            if matches(repository, rule.repositories) and matches(tag, rule.tags):
                return rule
        return None

    async def check_push(self, repository: str, tag: str, digest: str) -> None:
        """Refuse moving an existing hosted tag a rule protects to another manifest."""
        existing = await self.index.get_tag(repository, tag)
        if existing is None or existing.kind != "hosted" or existing.digest == digest:
            return
        rule = await self.rule_for(repository, tag)
        if rule is not None:
            raise _refusal(rule, repository, tag, "cannot be moved to another manifest", existing.digest)

    async def check_delete_tag(self, repository: str, tag: str) -> None:
        """Refuse deleting a hosted tag a rule protects."""
        existing = await self.index.get_tag(repository, tag)
        if existing is None or existing.kind != "hosted":
            return
        rule = await self.rule_for(repository, tag)
        if rule is not None:
            raise _refusal(rule, repository, tag, "cannot be deleted", existing.digest)

    async def check_delete_manifest(self, repository: str, digest: str) -> None:
        """Refuse deleting a manifest by digest while a protected tag names it."""
        for tag in await self.index.hosted_tags_of(repository, digest):
            rule = await self.rule_for(repository, tag)
            if rule is not None:
                raise _refusal(rule, repository, tag, "names this manifest, which cannot be deleted", digest)

    async def protected(self, repository: str, tag: str) -> bool:
        """Whether a rule protects this tag (retention keeps such tags)."""
        return await self.rule_for(repository, tag) is not None


def _refusal(rule: ImmutableRuleRow, repository: str, tag: str, what: str, digest: str) -> TagImmutable:
    return TagImmutable(
        f"tag {repository}:{tag} is immutable (rule {rule.id}: repositories {rule.repositories!r}, "
        f"tags {rule.tags!r}): it {what}",
        {"rule": rule.id, "repositories": rule.repositories, "tags": rule.tags, "tag": tag, "digest": digest},
    )
