"""Node names held by live processes: one row per name, refreshed by its holder (table ``nodes``).

Two processes under one ``node_name`` would share ``tmp/<node>/`` (each
start cleans the other's downloads in progress) and every lease (a lease
held by "the same node" is taken again), so both would download the same
blob.  `harbor_cache.core.operations.nodes` holds a name with a random instance id and
refreshes ``heartbeat_at``; a name not refreshed for the lease time is free.
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_written
from harbor_cache.index.rows import NodeClaim


class NodesStore(Store):
    """The ``nodes`` table."""

    async def claim_node(self, name: str, instance: str, now: float, stale_before: float) -> NodeClaim:
        """Take ``name`` for ``instance`` when free, ours, or not refreshed since ``stale_before``.

        Returns the row as it is afterwards: ours when ``instance`` matches,
        else the live holder's (the caller refuses to start, or waits).
        """

        def _txn(txn: Cursor) -> NodeClaim:
            self._exec(
                txn,
                """INSERT INTO nodes (name, instance, started_at, heartbeat_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET instance = excluded.instance,
                       started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
                   WHERE nodes.heartbeat_at < ? OR nodes.instance = excluded.instance""",
                (name, instance, now, now, stale_before),
            )
            self._exec(txn, "SELECT name, instance, started_at, heartbeat_at FROM nodes WHERE name = ?", (name,))
            return fetch_written(txn, NodeClaim)

        return await self._run("claim_node", _txn)

    async def node_heartbeat(self, name: str, instance: str, now: float) -> bool:
        """Refresh the heartbeat of a name ``instance`` holds; False when another process holds it now."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND instance = ?", (now, name, instance))
            return txn.rowcount == 1

        return await self._run("node_heartbeat", _txn)

    async def release_node(self, name: str, instance: str) -> None:
        """Give the name up (a clean stop): the next process under it starts at once."""

        def _txn(txn: Cursor) -> None:
            self._exec(txn, "DELETE FROM nodes WHERE name = ? AND instance = ?", (name, instance))

        await self._run("release_node", _txn)
