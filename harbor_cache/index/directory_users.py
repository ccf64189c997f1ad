"""Users and group memberships that an LDAP directory vouches for (``users.source = 'ldap'``).

A directory user's row is written at each login the directory confirmed:
its DN (``external_id``), its role (decided by `core.identity.directory`
from ``[auth.ldap.group_roles]``) and an unusable password hash (no LDAP
password is stored).  Its memberships with ``source = 'ldap'`` are replaced
by the groups of that login; memberships an admin gave it (``source =
'local'``) are left alone.  A group named by ``group:<name>`` that does not
exist yet is created (``source = 'ldap'``, no role, no grants) so an admin
can give it grants later.
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_one, fetch_value
from harbor_cache.index.rows import User

DIRECTORY_SOURCE = "ldap"


class DirectoryUsersStore(Store):
    """The one write of a directory login."""

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
            group_ids = [self._directory_group(txn, name, now) for name in groups]
            self._exec(txn, "DELETE FROM group_members WHERE user_id = ? AND source = ?", (user.id, DIRECTORY_SOURCE))
            for group_id in group_ids:
                self._exec(
                    txn,
                    "INSERT INTO group_members (group_id, user_id, source) VALUES (?, ?, ?) "
                    "ON CONFLICT (group_id, user_id) DO NOTHING",
                    (group_id, user.id, DIRECTORY_SOURCE),
                )
            return user

        return await self._run("upsert_directory_user", _txn)

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
