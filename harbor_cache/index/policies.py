"""Hosted-content policies: tag retention rules and immutable-tag rules, and the hosted tags they judge.

Both rule tables are small (an operator writes each row), so the core reads
them whole on every decision instead of caching them: a rule added on one
node applies on every node at the next push, with nothing to invalidate.
``keep_tags`` is stored as a JSON list (portable to PostgreSQL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harbor_cache.index.engine import Store, fetch_all, fetch_one


@dataclass(frozen=True)
class RetentionRuleRow:
    id: int
    repositories: str
    keep_last: int | None
    keep_days: int | None
    keep_tags: str
    created_at: float
    updated_at: float

    @property
    def keep_tag_patterns(self) -> list[str]:
        return list(json.loads(self.keep_tags))


@dataclass(frozen=True)
class ImmutableRuleRow:
    id: int
    repositories: str
    tags: str
    created_at: float


@dataclass(frozen=True)
class HostedTag:
    """A pushed tag; ``pushed_at`` is when it was last pushed (``tags.updated_at``)."""

    repository: str
    tag: str
    digest: str
    pushed_at: float


class PoliciesStore(Store):
    """The ``retention_rules`` and ``immutable_rules`` tables, and hosted tags as retention sees them."""

    async def list_retention_rules(self) -> list[RetentionRuleRow]:
        def _txn(txn: Any) -> list[RetentionRuleRow]:
            self._exec(txn, "SELECT * FROM retention_rules ORDER BY id")
            return fetch_all(txn, RetentionRuleRow)

        return await self._run("list_retention_rules", _txn)

    async def get_retention_rule(self, rule_id: int) -> RetentionRuleRow | None:
        def _txn(txn: Any) -> RetentionRuleRow | None:
            self._exec(txn, "SELECT * FROM retention_rules WHERE id = ?", (rule_id,))
            return fetch_one(txn, RetentionRuleRow)

        return await self._run("get_retention_rule", _txn)

    async def create_retention_rule(
        self, repositories: str, keep_last: int | None, keep_days: int | None, keep_tags: list[str], now: float
    ) -> RetentionRuleRow:
        def _txn(txn: Any) -> RetentionRuleRow:
            self._exec(
                txn,
                """INSERT INTO retention_rules (repositories, keep_last, keep_days, keep_tags, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?) RETURNING *""",
                (repositories, keep_last, keep_days, json.dumps(keep_tags), now, now),
            )
            row = fetch_one(txn, RetentionRuleRow)
            assert row is not None
            return row

        return await self._run("create_retention_rule", _txn)

    async def update_retention_rule(
        self,
        rule_id: int,
        repositories: str,
        keep_last: int | None,
        keep_days: int | None,
        keep_tags: list[str],
        now: float,
    ) -> RetentionRuleRow | None:
        """Replace a rule's fields; None when there is no such rule."""

        def _txn(txn: Any) -> RetentionRuleRow | None:
            self._exec(
                txn,
                """UPDATE retention_rules SET repositories = ?, keep_last = ?, keep_days = ?, keep_tags = ?,
                   updated_at = ? WHERE id = ?""",
                (repositories, keep_last, keep_days, json.dumps(keep_tags), now, rule_id),
            )
            if txn.rowcount != 1:
                return None
            self._exec(txn, "SELECT * FROM retention_rules WHERE id = ?", (rule_id,))
            return fetch_one(txn, RetentionRuleRow)

        return await self._run("update_retention_rule", _txn)

    async def delete_retention_rule(self, rule_id: int) -> bool:
        def _txn(txn: Any) -> bool:
            self._exec(txn, "DELETE FROM retention_rules WHERE id = ?", (rule_id,))
            return bool(txn.rowcount == 1)

        return await self._run("delete_retention_rule", _txn)

    async def list_immutable_rules(self) -> list[ImmutableRuleRow]:
        def _txn(txn: Any) -> list[ImmutableRuleRow]:
            self._exec(txn, "SELECT * FROM immutable_rules ORDER BY id")
            return fetch_all(txn, ImmutableRuleRow)

        return await self._run("list_immutable_rules", _txn)

    async def create_immutable_rule(self, repositories: str, tags: str, now: float) -> ImmutableRuleRow:
        def _txn(txn: Any) -> ImmutableRuleRow:
            self._exec(
                txn,
                "INSERT INTO immutable_rules (repositories, tags, created_at) VALUES (?, ?, ?) RETURNING *",
                (repositories, tags, now),
            )
            row = fetch_one(txn, ImmutableRuleRow)
            assert row is not None
            return row

        return await self._run("create_immutable_rule", _txn)

    async def delete_immutable_rule(self, rule_id: int) -> ImmutableRuleRow | None:
        """Remove a rule; the removed row, None when there was none."""

        def _txn(txn: Any) -> ImmutableRuleRow | None:
            self._exec(txn, "SELECT * FROM immutable_rules WHERE id = ?", (rule_id,))
            row = fetch_one(txn, ImmutableRuleRow)
            if row is not None:
                self._exec(txn, "DELETE FROM immutable_rules WHERE id = ?", (rule_id,))
            return row

        return await self._run("delete_immutable_rule", _txn)

    async def list_hosted_tags(self) -> list[HostedTag]:
        """Every pushed tag (cached upstream tags are not hosted content), newest push first per repository."""

        def _txn(txn: Any) -> list[HostedTag]:
            self._exec(
                txn,
                """SELECT repository, tag, digest, updated_at AS pushed_at FROM tags WHERE kind = 'hosted'
                   ORDER BY repository, updated_at DESC, tag""",
            )
            return fetch_all(txn, HostedTag)

        return await self._run("list_hosted_tags", _txn)

    async def hosted_tags_of(self, repository: str, digest: str) -> list[str]:
        """The pushed tags of ``repository`` that point at ``digest``."""

        def _txn(txn: Any) -> list[str]:
            self._exec(
                txn,
                "SELECT tag FROM tags WHERE repository = ? AND digest = ? AND kind = 'hosted' ORDER BY tag",
                (repository, digest),
            )
            return [r[0] for r in txn.fetchall()]

        return await self._run("hosted_tags_of", _txn)
