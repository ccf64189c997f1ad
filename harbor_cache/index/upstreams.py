"""OCI upstreams managed at run time: the config file's (``managed_by`` 'config') and the API's.

Rows hold routes as a JSON list and booleans as 0/1 (portable to
PostgreSQL).  Every change bumps ``upstreams_meta.generation`` in the same
transaction, so every node notices a change made on another one.
"""

from __future__ import annotations

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_one, fetch_value, fetch_written
from harbor_cache.index.rows import Upstream


class UpstreamsStore(Store):
    """The ``upstreams`` table and its generation counter."""

    UPSTREAM_FIELDS = (
        "name",
        "url",
        "registry",
        "prefix",
        "routes",
        "priority",
        "allow_push",
        "library_prefix",
        "username",
        "password",
    )

    def _bump_upstreams_txn(self, txn: Cursor) -> None:
        self._exec(txn, "UPDATE upstreams_meta SET generation = generation + 1 WHERE id = 1")

    async def upstreams_generation(self) -> int:
        """A number that changes whenever any upstream row does (cheap enough to poll)."""

        def _txn(txn: Cursor) -> int:
            self._exec(txn, "SELECT generation FROM upstreams_meta WHERE id = 1")
            return int(fetch_value(txn))

        return await self._run("upstreams_generation", _txn)

    async def list_upstreams(self) -> tuple[int, list[Upstream]]:
        """(generation, every upstream row by id), read in one transaction."""

        def _txn(txn: Cursor) -> tuple[int, list[Upstream]]:
            self._exec(txn, "SELECT generation FROM upstreams_meta WHERE id = 1")
            generation = int(fetch_value(txn))
            self._exec(txn, "SELECT * FROM upstreams ORDER BY id")
            return generation, fetch_all(txn, Upstream)

        return await self._run("list_upstreams", _txn)

    async def seed_upstreams(self, rows: list[dict], now: float) -> bool:
        """Insert the config file's upstreams unless that was done before (on any node); True if done now."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "UPDATE upstreams_meta SET seeded_at = ? WHERE id = 1 AND seeded_at IS NULL", (now,))
            if txn.rowcount != 1:
                return False
            for row in rows:
                self._insert_upstream_txn(txn, row, now)
            self._bump_upstreams_txn(txn)
            return True

        return await self._run("seed_upstreams", _txn)

    async def apply_declared_upstreams(self, rows: list[dict], now: float) -> list[tuple[str, str, list[str]]]:
        """Make the config file's upstreams (``rows``) the 'config' rows, in one transaction.

        A declared name is created, or updated (an 'api' row of that name is
        taken over: the file declares it); a 'config' row the file no longer
        declares is removed; 'api' rows of other names are left alone.  Returns
        what changed, as (name, "created" | "updated" | "removed", changed
        field names), and bumps the generation only when something did.  Also
        marks the index seeded, so the embedded default never lands later.
        """

        def _txn(txn: Cursor) -> list[tuple[str, str, list[str]]]:
            # Always writes the meta row: its lock makes nodes starting together apply one after the
            # other (PostgreSQL), so the second finds the first's rows instead of a duplicate name.
            self._exec(txn, "UPDATE upstreams_meta SET seeded_at = COALESCE(seeded_at, ?) WHERE id = 1", (now,))
            self._exec(txn, "SELECT * FROM upstreams ORDER BY id")
            existing = {r.name: r for r in fetch_all(txn, Upstream)}
            declared = {row["name"]: row for row in rows}
            changes: list[tuple[str, str, list[str]]] = []
            for name, current in existing.items():
                if current.managed_by == "config" and name not in declared:
                    self._exec(txn, "DELETE FROM upstreams WHERE id = ?", (current.id,))
                    changes.append((name, "removed", []))
            cols = self.UPSTREAM_FIELDS
            for name, row in declared.items():
                old = existing.get(name)
                if old is None:
                    self._insert_upstream_txn(txn, row, now, managed_by="config")
                    changes.append((name, "created", []))
                    continue
                fields = [c for c in cols if getattr(old, c) != row[c]]
                if old.managed_by != "config":
                    fields.append("managed_by")
                if not fields:
                    continue
                self._exec(
                    txn,
                    f"""UPDATE upstreams SET {", ".join(c + " = ?" for c in cols)}, managed_by = 'config',
                        updated_at = ? WHERE id = ?""",
                    [row[c] for c in cols] + [now, old.id],
                )
                changes.append((name, "updated", fields))
            if changes:
                self._bump_upstreams_txn(txn)
            return changes

        return await self._run("apply_declared_upstreams", _txn)

    def _insert_upstream_txn(self, txn: Cursor, row: dict, now: float, managed_by: str = "api") -> None:
        cols = self.UPSTREAM_FIELDS
        self._exec(
            txn,
            f"""INSERT INTO upstreams ({", ".join(cols)}, managed_by, created_at, updated_at)
                VALUES ({", ".join("?" * (len(cols) + 3))})""",
            [row[c] for c in cols] + [managed_by, now, now],
        )

    async def create_upstream(self, row: dict, now: float) -> Upstream | None:
        """Insert an upstream; None when the name is taken."""

        def _txn(txn: Cursor) -> Upstream | None:
            self._exec(txn, "SELECT 1 FROM upstreams WHERE name = ?", (row["name"],))
            if txn.fetchone() is not None:
                return None
            self._insert_upstream_txn(txn, row, now)
            self._bump_upstreams_txn(txn)
            self._exec(txn, "SELECT * FROM upstreams WHERE name = ?", (row["name"],))
            return fetch_one(txn, Upstream)

        return await self._run("create_upstream", _txn)

    async def update_upstream(self, upstream_id: int, row: dict, now: float) -> Upstream | str:
        """Replace an upstream's fields; "missing" or "name_taken" when that cannot be done."""

        def _txn(txn: Cursor) -> Upstream | str:
            self._exec(txn, "SELECT 1 FROM upstreams WHERE id = ?", (upstream_id,))
            if txn.fetchone() is None:
                return "missing"
            self._exec(txn, "SELECT 1 FROM upstreams WHERE name = ? AND id <> ?", (row["name"], upstream_id))
            if txn.fetchone() is not None:
                return "name_taken"
            cols = self.UPSTREAM_FIELDS
            self._exec(
                txn,
                f"UPDATE upstreams SET {', '.join(c + ' = ?' for c in cols)}, updated_at = ? WHERE id = ?",
                [row[c] for c in cols] + [now, upstream_id],
            )
            self._bump_upstreams_txn(txn)
            self._exec(txn, "SELECT * FROM upstreams WHERE id = ?", (upstream_id,))
            return fetch_written(txn, Upstream)

        return await self._run("update_upstream", _txn)

    async def delete_upstream(self, upstream_id: int) -> bool:
        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "DELETE FROM upstreams WHERE id = ?", (upstream_id,))
            if txn.rowcount != 1:
                return False
            self._bump_upstreams_txn(txn)
            return True

        return await self._run("delete_upstream", _txn)
