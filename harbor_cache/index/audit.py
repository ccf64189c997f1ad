"""The audit log: who did what and when, for the console."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, contains_pattern, fetch_all, fetch_value
from harbor_cache.index.rows import AuditRecord


class AuditStore(Store):
    """The ``audit_log`` table: append, page through newest first, prune."""

    async def add_audit(
        self, *, at: float, actor: str | None, action: str, target: str | None, detail: str | None, client: str | None
    ) -> None:
        def _txn(txn: Cursor) -> None:
            self._exec(
                txn,
                "INSERT INTO audit_log (at, actor, action, target, detail, client) VALUES (?, ?, ?, ?, ?, ?)",
                (at, actor, action, target, detail, client),
            )

        await self._run("add_audit", _txn)

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
    ) -> tuple[int, list[AuditRecord]]:
        """(matching count, one page of audit records, newest first).

        ``since`` is inclusive, ``until`` exclusive; ``exclude`` drops one exact
        action (the console hides routine ``login`` records with it).
        ``actor_kind``: "robot" keeps records whose actor is named ``robot$...``
        (only robots can be: the prefix is reserved), "user" those of any other
        named actor (records without an actor, such as upstream blocks, are neither).
        """
        where: list[str] = []
        args: list[object] = []
        if action is not None:
            # "user" matches user.create, user.update, ...; "login" matches login only.
            where.append("(action = ? OR substr(action, 1, ?) = ?)")
            args += [action, len(action) + 1, action + "."]
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if text:
            where.append(
                "(lower(coalesce(target, '')) LIKE ? ESCAPE '!' OR lower(coalesce(detail, '')) LIKE ? ESCAPE '!')"
            )
            args += [contains_pattern(text)] * 2
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if until is not None:
            where.append("at < ?")
            args.append(until)
        if exclude is not None:
            where.append("action <> ?")
            args.append(exclude)
        if actor_kind == "robot":
            where.append("substr(actor, 1, 6) = ?")
            args.append("robot$")
        elif actor_kind == "user":
            where.append("(actor IS NOT NULL AND substr(actor, 1, 6) <> ?)")
            args.append("robot$")
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def _txn(txn: Cursor) -> tuple[int, list[AuditRecord]]:
            self._exec(txn, "SELECT COUNT(*) FROM audit_log" + clause, args)
            total = int(fetch_value(txn))
            self._exec(
                txn,
                "SELECT * FROM audit_log" + clause + " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            )
            return total, fetch_all(txn, AuditRecord)

        return await self._read("audit_page", _txn)

    async def prune_audit(self, before: float) -> int:
        """Drop audit records older than ``before``; how many went."""

        def _txn(txn: Cursor) -> int:
            self._exec(txn, "DELETE FROM audit_log WHERE at < ?", (before,))
            return txn.rowcount

        return await self._run("prune_audit", _txn)
