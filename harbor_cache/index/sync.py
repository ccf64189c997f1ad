"""Sync rules (scheduled pre-fetch) and their run history: the ``sync_rules`` and ``sync_runs`` tables.

A rule's fields live as one JSON document in ``spec`` (an OCI rule and a
Maven rule have different fields; the core validates them), with the two
fields the schedule reads on every tick as columns.  A run row is written
when the run starts and updated as it goes, so every node's console shows a
running run's progress, and the last run's ``started_at`` is the schedule
(any node can tell whether a rule is due).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_one

MAX_RUNS_KEPT = 100  # history rows kept per rule; older ones go when a run starts


@dataclass(frozen=True)
class SyncRuleRow:
    id: int
    kind: str  # "oci" or "maven"
    spec: str
    interval_seconds: int
    enabled: int
    created_at: float
    updated_at: float

    @property
    def fields(self) -> dict[str, Any]:
        value = json.loads(self.spec)
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SyncRunRow:
    id: int
    rule_id: int
    node: str
    started_at: float
    finished_at: float | None
    status: str  # running, succeeded, stopped, failed
    manifests: int
    blobs: int
    bytes: int
    tags_seen: int
    error: str | None


class SyncStore(Store):
    """Rules CRUD, run rows (start, progress, finish) and the history."""

    async def list_sync_rules(self) -> list[SyncRuleRow]:
        def _txn(txn: Cursor) -> list[SyncRuleRow]:
            self._exec(txn, "SELECT * FROM sync_rules ORDER BY id")
            return fetch_all(txn, SyncRuleRow)

        return await self._run("list_sync_rules", _txn)

    async def get_sync_rule(self, rule_id: int) -> SyncRuleRow | None:
        def _txn(txn: Cursor) -> SyncRuleRow | None:
            self._exec(txn, "SELECT * FROM sync_rules WHERE id = ?", (rule_id,))
            return fetch_one(txn, SyncRuleRow)

        return await self._run("get_sync_rule", _txn)

    async def create_sync_rule(
        self, kind: str, spec: dict[str, Any], interval_seconds: int, enabled: bool, now: float
    ) -> SyncRuleRow:
        def _txn(txn: Cursor) -> SyncRuleRow:
            self._exec(
                txn,
                """INSERT INTO sync_rules (kind, spec, interval_seconds, enabled, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?) RETURNING *""",
                (kind, json.dumps(spec), interval_seconds, int(enabled), now, now),
            )
            row = fetch_one(txn, SyncRuleRow)
            assert row is not None
            return row

        return await self._run("create_sync_rule", _txn)

    async def update_sync_rule(
        self, rule_id: int, kind: str, spec: dict[str, Any], interval_seconds: int, enabled: bool, now: float
    ) -> SyncRuleRow | None:
        """Replace a rule's fields; None when there is no such rule."""

        def _txn(txn: Cursor) -> SyncRuleRow | None:
            self._exec(
                txn,
                """UPDATE sync_rules SET kind = ?, spec = ?, interval_seconds = ?, enabled = ?, updated_at = ?
                   WHERE id = ?""",
                (kind, json.dumps(spec), interval_seconds, int(enabled), now, rule_id),
            )
            if txn.rowcount != 1:
                return None
            self._exec(txn, "SELECT * FROM sync_rules WHERE id = ?", (rule_id,))
            return fetch_one(txn, SyncRuleRow)

        return await self._run("update_sync_rule", _txn)

    async def delete_sync_rule(self, rule_id: int) -> bool:
        """Remove a rule and its history."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "DELETE FROM sync_rules WHERE id = ?", (rule_id,))
            gone = txn.rowcount == 1
            self._exec(txn, "DELETE FROM sync_runs WHERE rule_id = ?", (rule_id,))
            return gone

        return await self._run("delete_sync_rule", _txn)

    async def start_sync_run(self, rule_id: int, node: str, now: float) -> SyncRunRow:
        """A ``running`` row for a new run; the rule's oldest rows beyond `MAX_RUNS_KEPT` go."""

        def _txn(txn: Cursor) -> SyncRunRow:
            self._exec(
                txn,
                """INSERT INTO sync_runs (rule_id, node, started_at, finished_at, status, manifests, blobs, bytes,
                   tags_seen, error) VALUES (?, ?, ?, NULL, 'running', 0, 0, 0, 0, NULL) RETURNING *""",
                (rule_id, node, now),
            )
            row = fetch_one(txn, SyncRunRow)
            assert row is not None
            self._exec(
                txn,
                """DELETE FROM sync_runs WHERE rule_id = ? AND id NOT IN
                   (SELECT id FROM sync_runs WHERE rule_id = ? ORDER BY id DESC LIMIT ?)""",
                (rule_id, rule_id, MAX_RUNS_KEPT),
            )
            return row

        return await self._run("start_sync_run", _txn)

    async def update_sync_run(
        self,
        run_id: int,
        *,
        manifests: int,
        blobs: int,
        bytes_: int,
        tags_seen: int,
        status: str = "running",
        error: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Progress (or, with ``finished_at``, the end) of a run."""

        def _txn(txn: Cursor) -> None:
            self._exec(
                txn,
                """UPDATE sync_runs SET manifests = ?, blobs = ?, bytes = ?, tags_seen = ?, status = ?, error = ?,
                   finished_at = ? WHERE id = ?""",
                (manifests, blobs, bytes_, tags_seen, status, error, finished_at, run_id),
            )

        await self._run("update_sync_run", _txn)

    async def list_sync_runs(self, rule_id: int, limit: int) -> list[SyncRunRow]:
        """A rule's runs, newest first."""

        def _txn(txn: Cursor) -> list[SyncRunRow]:
            self._exec(txn, "SELECT * FROM sync_runs WHERE rule_id = ? ORDER BY id DESC LIMIT ?", (rule_id, limit))
            return fetch_all(txn, SyncRunRow)

        return await self._run("list_sync_runs", _txn)

    async def last_sync_runs(self) -> dict[int, SyncRunRow]:
        """The newest run of every rule that has one (the schedule and the rule list read it)."""

        def _txn(txn: Cursor) -> dict[int, SyncRunRow]:
            self._exec(
                txn,
                """SELECT * FROM sync_runs WHERE id IN (SELECT MAX(id) FROM sync_runs GROUP BY rule_id)""",
            )
            return {r.rule_id: r for r in fetch_all(txn, SyncRunRow)}

        return await self._run("last_sync_runs", _txn)
