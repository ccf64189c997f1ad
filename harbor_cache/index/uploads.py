"""Upload sessions of the hosted registry, shared by every node; their numbers are capped.

``size`` is what the session file holds; ``writer`` is the node appending to
it right now (until ``writer_until``), so two requests never write one
session at once.
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_one, fetch_value
from harbor_cache.index.rows import Upload


class UploadsStore(Store):
    """The ``upload_sessions`` table."""

    async def create_upload(
        self, session_id: str, repository: str, owner: str, now: float, per_owner: int, overall: int
    ) -> str:
        """Record a new session: "ok", or "owner_cap" / "overall_cap" when a cap is reached (nothing recorded).

        The counts and the insert share one transaction; nodes racing on the
        last free slot may overshoot a cap by at most one session each.
        """

        def _txn(txn: Cursor) -> str:
            self._exec(txn, "SELECT COUNT(*) FROM upload_sessions")
            if fetch_value(txn) >= overall:
                return "overall_cap"
            self._exec(txn, "SELECT COUNT(*) FROM upload_sessions WHERE owner = ?", (owner,))
            if fetch_value(txn) >= per_owner:
                return "owner_cap"
            self._exec(
                txn,
                """INSERT INTO upload_sessions (id, repository, owner, size, started_at, touched_at)
                   VALUES (?, ?, ?, 0, ?, ?)""",
                (session_id, repository, owner, now, now),
            )
            return "ok"

        return await self._run("create_upload", _txn)

    async def get_upload(self, session_id: str) -> Upload | None:
        def _txn(txn: Cursor) -> Upload | None:
            self._exec(txn, "SELECT * FROM upload_sessions WHERE id = ?", (session_id,))
            return fetch_one(txn, Upload)

        return await self._run("get_upload", _txn)

    async def claim_upload_write(self, session_id: str, node: str, size: int, now: float, hold: float) -> bool:
        """Make ``node`` the session's only writer when nobody writes and it still holds ``size`` bytes."""

        def _txn(txn: Cursor) -> bool:
            self._exec(
                txn,
                """UPDATE upload_sessions SET writer = ?, writer_until = ?, touched_at = ?
                   WHERE id = ? AND size = ? AND (writer IS NULL OR writer_until < ?)""",
                (node, now + hold, now, session_id, size, now),
            )
            return txn.rowcount == 1

        return await self._run("claim_upload_write", _txn)

    async def end_upload_write(self, session_id: str, node: str, size: int, now: float) -> None:
        """The writer is done: record the session's new size and let the next request in."""

        def _txn(txn: Cursor) -> None:
            self._exec(
                txn,
                """UPDATE upload_sessions SET size = ?, touched_at = ?, writer = NULL, writer_until = NULL
                   WHERE id = ? AND writer = ?""",
                (size, now, session_id, node),
            )

        await self._run("end_upload_write", _txn)

    async def delete_upload(self, session_id: str) -> bool:
        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "DELETE FROM upload_sessions WHERE id = ?", (session_id,))
            return txn.rowcount == 1

        return await self._run("delete_upload", _txn)

    async def stale_uploads(self, idle_before: float, now: float) -> list[str]:
        """Sessions untouched since ``idle_before`` and not being written: removed, their ids returned."""

        def _txn(txn: Cursor) -> list[str]:
            self._exec(
                txn,
                """SELECT id FROM upload_sessions
                   WHERE touched_at < ? AND (writer IS NULL OR writer_until < ?) ORDER BY id""",
                (idle_before, now),
            )
            ids = [r[0] for r in txn.fetchall()]
            for session_id in ids:
                self._exec(txn, "DELETE FROM upload_sessions WHERE id = ?", (session_id,))
            return ids

        return await self._run("stale_uploads", _txn)
