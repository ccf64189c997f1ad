"""Users of the management API and the registry: name, password hash, role, own grants.

Robots are rows of kind "robot" in the same table; the listing and the
last-admin rules here count people only (kind "user").
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_one, fetch_value
from harbor_cache.index.rows import User

# the admins the last-admin rules count: people, never robots (whose role is "none" anyway)
_ADMINS = "SELECT COUNT(*) FROM users WHERE role = 'admin' AND kind = 'user'"


def insert_account(store: Store, txn: Cursor, username: str, *, now: float, **columns: object) -> User | None:
    """Insert a ``users`` row (a person, a robot, a directory's user) in ``txn``; None when the name is taken.

    The one INSERT of the table: ``columns`` are the row's other columns by name
    (the names are this package's, never a caller's input).
    """
    store._exec(txn, "SELECT 1 FROM users WHERE username = ?", (username,))
    if txn.fetchone() is not None:
        return None
    names = ["username", "created_at", "updated_at", *columns]
    store._exec(
        txn,
        f"INSERT INTO users ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        (username, now, now, *columns.values()),
    )
    store._exec(txn, "SELECT * FROM users WHERE username = ?", (username,))
    return fetch_one(txn, User)


class UsersStore(Store):
    """Users; the last admin can be neither demoted nor deleted."""

    async def count_users(self) -> int:
        def _txn(txn: Cursor) -> int:
            self._exec(txn, "SELECT COUNT(*) FROM users")
            return fetch_value(txn)

        return await self._run("count_users", _txn)

    async def create_user(
        self, username: str, password_hash: str, role: str, now: float, *, grants: str = "[]"
    ) -> User | None:
        """Returns the new user, or None when the username is taken (``grants``: `auth.permissions.dump_grants`)."""

        def _txn(txn: Cursor) -> User | None:
            return insert_account(self, txn, username, password_hash=password_hash, role=role, grants=grants, now=now)

        return await self._run("create_user", _txn)

    async def get_user(self, user_id: int) -> User | None:
        def _txn(txn: Cursor) -> User | None:
            self._exec(txn, "SELECT * FROM users WHERE id = ?", (user_id,))
            return fetch_one(txn, User)

        return await self._read("get_user", _txn)

    async def get_user_by_name(self, username: str) -> User | None:
        def _txn(txn: Cursor) -> User | None:
            self._exec(txn, "SELECT * FROM users WHERE username = ?", (username,))
            return fetch_one(txn, User)

        return await self._read("get_user_by_name", _txn)

    async def list_users(self, kind: str | None = None) -> list[User]:
        """Every user by id; only those of ``kind`` ("user", "robot") when given."""

        def _txn(txn: Cursor) -> list[User]:
            if kind is None:
                self._exec(txn, "SELECT * FROM users ORDER BY id")
            else:
                self._exec(txn, "SELECT * FROM users WHERE kind = ? ORDER BY id", (kind,))
            return fetch_all(txn, User)

        return await self._read("list_users", _txn)

    async def update_user(
        self, user_id: int, role: str | None, password_hash: str | None, now: float, *, grants: str | None = None
    ) -> tuple[str, User | None]:
        """Change role, password and/or grants (stored form) in one transaction.

        Returns ("ok", row), ("missing", None), or ("last_admin", row) when
        the change would leave no admin (nothing is changed then).
        """

        def _txn(txn: Cursor) -> tuple[str, User | None]:
            self._exec(txn, "SELECT * FROM users WHERE id = ?", (user_id,))
            row = fetch_one(txn, User)
            if row is None:
                return "missing", None
            if row.role == "admin" and role is not None and role != "admin":
                self._exec(txn, _ADMINS)
                if fetch_value(txn) <= 1:
                    return "last_admin", row
            sets, args = ["updated_at = ?"], list[object]([now])
            if role is not None:
                sets.append("role = ?")
                args.append(role)
            if password_hash is not None:
                sets.append("password_hash = ?")
                args.append(password_hash)
            if grants is not None:
                sets.append("grants = ?")
                args.append(grants)
            self._exec(txn, f"UPDATE users SET {', '.join(sets)} WHERE id = ?", (*args, user_id))
            self._exec(txn, "SELECT * FROM users WHERE id = ?", (user_id,))
            return "ok", fetch_one(txn, User)

        return await self._run("update_user", _txn)

    async def delete_user(self, user_id: int) -> str:
        """Returns "ok", "missing", or "last_admin" (the only admin is never deleted)."""

        def _txn(txn: Cursor) -> str:
            self._exec(txn, "SELECT role FROM users WHERE id = ?", (user_id,))
            r = txn.fetchone()
            if r is None:
                return "missing"
            if r[0] == "admin":
                self._exec(txn, _ADMINS)
                if fetch_value(txn) <= 1:
                    return "last_admin"
            self._exec(txn, "DELETE FROM users WHERE id = ?", (user_id,))
            # no foreign keys in the schema: a deleted user leaves no memberships behind
            self._exec(txn, "DELETE FROM group_members WHERE user_id = ?", (user_id,))
            return "ok"

        return await self._run("delete_user", _txn)

    async def set_user_grants(self, user_id: int, grants_json: str) -> bool:
        """Store a user's grants (JSON, `auth.permissions.dump_grants`); False when there is no such user."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "UPDATE users SET grants = ? WHERE id = ?", (grants_json, user_id))
            return bool(txn.rowcount)

        return await self._run("set_user_grants", _txn)
