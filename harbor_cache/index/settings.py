"""Runtime settings: key/value pairs changed through the management API, shared by every node."""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all
from harbor_cache.index.rows import Setting


class SettingsStore(Store):
    """The ``settings`` table."""

    async def get_settings(self) -> list[Setting]:
        def _txn(txn: Cursor) -> list[Setting]:
            self._exec(txn, "SELECT key, value, updated_at FROM settings ORDER BY key")
            return fetch_all(txn, Setting)

        return await self._run("get_settings", _txn)

    async def put_settings(self, entries: list[tuple[str, str]], now: float) -> int:
        """Store every entry in one transaction (all or nothing)."""

        def _txn(txn: Cursor) -> int:
            for key, value in entries:
                self._exec(
                    txn,
                    """INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
                    (key, value, now),
                )
            return len(entries)

        return await self._run("put_settings", _txn)

    async def delete_setting(self, key: str) -> bool:
        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "DELETE FROM settings WHERE key = ?", (key,))
            return txn.rowcount > 0

        return await self._run("delete_setting", _txn)
