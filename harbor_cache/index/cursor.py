"""The DB-API cursor a store's transaction function receives, as a Protocol.

adbapi's ``runInteraction`` hands each ``_txn`` function a
`twisted.enterprise.adbapi.Transaction`, which forwards to the sqlite3 or
psycopg2 cursor underneath.  Neither is typed in a way mypy can follow
through the pool, so this names the part of the cursor the stores use - and
only that part, so a store that starts to lean on anything else (a
driver-specific attribute that the other engine lacks) fails type checking
instead of failing on the other engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

#: One result row: the column values in the query's column order.
Row = tuple[Any, ...]


class Cursor(Protocol):
    """The cursor of one transaction (sqlite3's or psycopg2's, through adbapi's `Transaction`)."""

    @property
    def description(self) -> Sequence[Sequence[Any]] | None:
        """One sequence per result column, its name first; None after a statement without results."""
        ...

    @property
    def rowcount(self) -> int:
        """The rows the last UPDATE/DELETE/INSERT touched."""
        ...

    def execute(self, sql: str, args: Sequence[Any] = ...) -> object: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...
