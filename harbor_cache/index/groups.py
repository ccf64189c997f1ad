"""Groups of users (tables ``groups`` and ``group_members``): their grants and roles apply to every member."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all
from harbor_cache.index.rows import Group


class GroupsStore(Store):
    """Groups and who is in them."""

    async def groups_of_user(self, user_id: int) -> list[Group]:
        """The groups the user is a member of (local and directory memberships alike), by name."""

        def _txn(txn: Cursor) -> list[Group]:
            self._exec(
                txn,
                "SELECT g.* FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name",
                (user_id,),
            )
            return fetch_all(txn, Group)

        return await self._run("groups_of_user", _txn)
