"""Robot accounts: ``users`` rows of kind 'robot' (``robot$<name>``, role 'none'), and their last use."""

from __future__ import annotations

from typing import Any

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_one
from harbor_cache.index.rows import User
from harbor_cache.index.users import insert_account

#: the columns `update_robot` may change (anything else is a programming error)
ROBOT_COLUMNS = frozenset({"description", "grants", "disabled", "expires_at", "password_hash"})


class RobotsStore(Store):
    """Robots live in ``users`` so the one credentials check and the token stamps cover them unchanged."""

    async def create_robot(
        self,
        *,
        username: str,
        password_hash: str,
        description: str,
        grants: str,
        expires_at: float | None,
        created_by: str,
        now: float,
    ) -> User | None:
        """The new robot's row, or None when the username is taken (by a robot or anyone else)."""

        def _txn(txn: Cursor) -> User | None:
            return insert_account(
                self,
                txn,
                username,
                now=now,
                password_hash=password_hash,
                role="none",
                kind="robot",
                grants=grants,
                description=description,
                disabled=0,
                expires_at=expires_at,
                created_by=created_by,
            )

        return await self._run("create_robot", _txn)

    async def list_robots(self) -> list[User]:
        def _txn(txn: Cursor) -> list[User]:
            self._exec(txn, "SELECT * FROM users WHERE kind = 'robot' ORDER BY id")
            return fetch_all(txn, User)

        return await self._run("list_robots", _txn)

    async def get_robot(self, robot_id: int) -> User | None:
        def _txn(txn: Cursor) -> User | None:
            self._exec(txn, "SELECT * FROM users WHERE id = ? AND kind = 'robot'", (robot_id,))
            return fetch_one(txn, User)

        return await self._run("get_robot", _txn)

    async def update_robot(self, robot_id: int, changes: dict[str, Any], now: float) -> User | None:
        """Set ``changes`` (columns of `ROBOT_COLUMNS`) on one robot; its row after, or None when it is gone."""
        unknown = set(changes) - ROBOT_COLUMNS
        if unknown:
            raise ValueError(f"not a robot column: {sorted(unknown)}")
        names = sorted(changes)

        def _txn(txn: Cursor) -> User | None:
            sets = ", ".join(["updated_at = ?", *(f"{n} = ?" for n in names)])
            self._exec(
                txn,
                f"UPDATE users SET {sets} WHERE id = ? AND kind = 'robot'",
                (now, *(changes[n] for n in names), robot_id),
            )
            self._exec(txn, "SELECT * FROM users WHERE id = ? AND kind = 'robot'", (robot_id,))
            return fetch_one(txn, User)

        return await self._run("update_robot", _txn)

    async def delete_robot(self, robot_id: int) -> bool:
        """True when a robot was deleted (with its group memberships, should it have any)."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "DELETE FROM users WHERE id = ? AND kind = 'robot'", (robot_id,))
            gone = txn.rowcount > 0
            if gone:
                self._exec(txn, "DELETE FROM group_members WHERE user_id = ?", (robot_id,))
            return gone

        return await self._run("delete_robot", _txn)

    async def note_robot_use(self, robot_id: int, at: float, addr: str | None) -> None:
        """Record a robot's last use (time and client address); never moves the time backwards."""

        def _txn(txn: Cursor) -> None:
            self._exec(
                txn,
                "UPDATE users SET last_used_at = ?, last_used_addr = ? WHERE id = ? AND kind = 'robot' "
                "AND (last_used_at IS NULL OR last_used_at <= ?)",
                (at, addr, robot_id, at),
            )

        await self._run("note_robot_use", _txn)
