"""Leases that let several nodes share one index: one node downloads a key, one node evicts.

A lease is a named row held by one node until ``expires_at``; the holder
renews it, anyone may take it over once it has expired (its node died).
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store


class LeasesStore(Store):
    """The ``leases`` table."""

    async def acquire_lease(self, name: str, node: str, now: float, ttl: float) -> bool:
        """Take ``name`` for ``node`` until now + ttl when free, expired or already ours; True if held."""

        def _txn(txn: Cursor) -> bool:
            self._exec(
                txn,
                """INSERT INTO leases (name, node, expires_at) VALUES (?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at
                   WHERE leases.expires_at < ? OR leases.node = excluded.node""",
                (name, node, now + ttl, now),
            )
            self._exec(txn, "SELECT node FROM leases WHERE name = ?", (name,))
            row = txn.fetchone()
            return row is not None and row[0] == node

        return await self._run("acquire_lease", _txn)

    async def renew_lease(self, name: str, node: str, now: float, ttl: float) -> bool:
        """Extend a lease this node holds; False when it is no longer ours."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "UPDATE leases SET expires_at = ? WHERE name = ? AND node = ?", (now + ttl, name, node))
            return txn.rowcount == 1

        return await self._run("renew_lease", _txn)

    async def release_lease(self, name: str, node: str) -> None:
        def _txn(txn: Cursor) -> None:
            self._exec(txn, "DELETE FROM leases WHERE name = ? AND node = ?", (name, node))

        await self._run("release_lease", _txn)
