"""Users who come from an identity provider (``source`` 'oidc', later 'ldap'): found by their subject there,
created at their first login, and their directory memberships of harbor-cache groups kept equal to the provider's
groups claim at every login."""

from __future__ import annotations

from collections.abc import Iterable

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_one
from harbor_cache.index.rows import User


class ExternalUsersStore(Store):
    """Provider accounts: lookup by (source, external_id), creation, memberships of that source."""

    async def get_user_by_external(self, source: str, external_id: str) -> User | None:
        def _txn(txn: Cursor) -> User | None:
            self._exec(
                txn,
                "SELECT * FROM users WHERE source = ? AND external_id = ? AND kind = 'user' ORDER BY id LIMIT 1",
                (source, external_id),
            )
            return fetch_one(txn, User)

        return await self._run("get_user_by_external", _txn)

    async def create_external_user(
        self, username: str, password_hash: str, role: str, source: str, external_id: str, now: float
    ) -> User | None:
        """The new row, or None when the username is taken (by any account, local or not)."""

        def _txn(txn: Cursor) -> User | None:
            self._exec(txn, "SELECT 1 FROM users WHERE username = ?", (username,))
            if txn.fetchone() is not None:
                return None
            self._exec(
                txn,
                "INSERT INTO users (username, password_hash, role, created_at, updated_at, kind, source, external_id)"
                " VALUES (?, ?, ?, ?, ?, 'user', ?, ?)",
                (username, password_hash, role, now, now, source, external_id),
            )
            self._exec(txn, "SELECT * FROM users WHERE username = ?", (username,))
            return fetch_one(txn, User)

        return await self._run("create_external_user", _txn)

    async def set_external_memberships(self, user_id: int, source: str, group_names: Iterable[str]) -> list[str]:
        """Make the user's memberships of ``source`` exactly the existing groups named; the names joined.

        Memberships of another source (added by an admin) are left alone; a
        name no harbor-cache group has is ignored.
        """
        names = sorted(set(group_names))

        def _txn(txn: Cursor) -> list[str]:
            wanted: dict[int, str] = {}
            for name in names:
                self._exec(txn, "SELECT id FROM groups WHERE name = ?", (name,))
                row = txn.fetchone()
                if row is not None:
                    wanted[int(row[0])] = name
            self._exec(txn, "SELECT group_id, source FROM group_members WHERE user_id = ?", (user_id,))
            present = {int(r[0]): r[1] for r in txn.fetchall()}
            for group_id, member_source in present.items():
                if member_source == source and group_id not in wanted:
                    self._exec(txn, "DELETE FROM group_members WHERE group_id = ? AND user_id = ?", (group_id, user_id))
            for group_id in wanted:
                if group_id not in present:
                    self._exec(
                        txn,
                        "INSERT INTO group_members (group_id, user_id, source) VALUES (?, ?, ?)",
                        (group_id, user_id, source),
                    )
            return sorted(wanted.values())

        return await self._run("set_external_memberships", _txn)
