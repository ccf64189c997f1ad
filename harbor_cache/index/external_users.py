"""Accounts an identity provider vouches for: LDAP (``source = 'ldap'``) and OpenID Connect (``'oidc'``).

Both kinds are ``users`` rows with ``source != 'local'`` and ``kind = 'user'``,
holding the provider's name for them in ``external_id`` (an LDAP DN, an
OIDC subject).  The provider is the source of truth for their memberships of
harbor-cache groups: at each login it confirms, the memberships of that
source are replaced by the groups of that login (`_replace_memberships`);
memberships an admin gave (``source = 'local'``) are left alone.

The two logins differ only where their providers do:

- LDAP (`upsert_directory_user`): found by username (a DN may move), written
  at every confirmed login (DN, role mapped from ``[auth.ldap.group_roles]``,
  an unusable password hash: no LDAP password is stored); a group named by
  ``group:<name>`` that does not exist yet is created (``source = 'ldap'``,
  no role, no grants) so an admin can give it grants later;
- OIDC (`get_user_by_external`, `create_external_user`,
  `set_external_memberships`): found by (source, subject), created at the
  first login; a groups-claim name no harbor-cache group has is ignored
  (an OP's groups claim may list many unrelated groups).
"""

from __future__ import annotations

from collections.abc import Iterable

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_one, fetch_value
from harbor_cache.index.rows import User
from harbor_cache.index.users import insert_account

DIRECTORY_SOURCE = "ldap"


class ExternalUsersStore(Store):
    """Provider accounts: lookup, creation or the login's write, memberships of that source."""

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
            return insert_account(
                self,
                txn,
                username,
                now=now,
                password_hash=password_hash,
                role=role,
                kind="user",
                source=source,
                external_id=external_id,
            )

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
            self._replace_memberships(txn, user_id, source, wanted)
            return sorted(wanted.values())

        return await self._run("set_external_memberships", _txn)

    async def upsert_directory_user(
        self,
        username: str,
        dn: str,
        role: str,
        password_marker: str,
        groups: tuple[str, ...],
        now: float,
    ) -> User | None:
        """The LDAP user's row after this login, or None when a local user (or a robot) has the name."""

        def _txn(txn: Cursor) -> User | None:
            self._exec(txn, f"SELECT * FROM users WHERE username = ?{self.for_update}", (username,))
            row = fetch_one(txn, User)
            if row is not None and (row.source != DIRECTORY_SOURCE or row.kind != "user"):
                return None
            if row is None:
                self._exec(
                    txn,
                    "INSERT INTO users (username, password_hash, role, created_at, updated_at, kind, source, "
                    "external_id) VALUES (?, ?, ?, ?, ?, 'user', ?, ?) ON CONFLICT (username) DO NOTHING",
                    (username, password_marker, role, now, now, DIRECTORY_SOURCE, dn),
                )
            elif (row.role, row.external_id, row.password_hash) != (role, dn, password_marker):
                self._exec(
                    txn,
                    "UPDATE users SET role = ?, external_id = ?, password_hash = ?, updated_at = ? WHERE id = ?",
                    (role, dn, password_marker, now, row.id),
                )
            self._exec(txn, "SELECT * FROM users WHERE username = ?", (username,))
            user = fetch_one(txn, User)
            if user is None or user.source != DIRECTORY_SOURCE:
                return None  # (a local user created under this name at the same moment)
            wanted = {self._directory_group(txn, name, now): name for name in groups}
            self._replace_memberships(txn, user.id, DIRECTORY_SOURCE, wanted)
            return user

        return await self._run("upsert_directory_user", _txn)

    def _replace_memberships(self, txn: Cursor, user_id: int, source: str, wanted: dict[int, str]) -> None:
        """The user's memberships of ``source`` become exactly the group ids ``wanted``; others stay."""
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

    def _directory_group(self, txn: Cursor, name: str, now: float) -> int:
        """The id of the group ``name``, created (source 'ldap', no role, no grants) when missing."""
        self._exec(
            txn,
            "INSERT INTO groups (name, description, grants, source, created_at, updated_at) "
            "VALUES (?, ?, '[]', ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, "created by an LDAP login", DIRECTORY_SOURCE, now, now),
        )
        self._exec(txn, "SELECT id FROM groups WHERE name = ?", (name,))
        return fetch_value(txn)
