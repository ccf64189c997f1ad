"""Database engines: connection pools, the two SQL dialects, and the `Store` base of every store.

Two engines run the same statements: sqlite (a file in the data directory,
the embedded default, one process) and PostgreSQL (``[index] url``, shared by
several nodes).  SQL is written once, in the subset both engines share:
``?`` placeholders (rewritten to ``%s`` for psycopg2), ``INSERT ... ON
CONFLICT``, row-value comparisons, no literal ``%``.  Every dialect difference
stays in this module:

* DDL is translated for PostgreSQL by `postgres_ddl` (``INTEGER`` is 64-bit,
  ``REAL`` is a double, ``TEXT`` compares bytewise like sqlite, the
  autoincrement key becomes an identity column) - write migrations in
  sqlite's spelling with these types only;
* a handful of functions differ by name (`Store.greatest`);
* NUMERIC results (PostgreSQL's ``SUM`` of integers) come back as ``int``.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


R = TypeVar("R")

# (row class, column names) -> the column index of each field in field order, or None when
# the columns are the fields in order; a handful of entries, one per query shape.
_PLANS: dict[tuple[type, tuple[str, ...]], tuple[int, ...] | None] = {}


def _plan(cls: type, description) -> tuple[int, ...] | None:
    names = tuple(c[0] for c in description)
    key = (cls, names)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    fields = tuple(f.name for f in dataclasses.fields(cls))
    position = {name: i for i, name in enumerate(names)}
    missing = [f for f in fields if f not in position]
    if missing:
        raise ValueError(f"{cls.__name__} needs columns {missing} that the query does not return")
    plan = None if names == fields else tuple(position[f] for f in fields)
    _PLANS[key] = plan
    return plan


def fetch_all(txn, cls: type[R]) -> list[R]:
    """The cursor's remaining rows as ``cls`` (a dataclass of `harbor_cache.index.rows`), by column name.

    Columns ``cls`` does not name are skipped: a newer node may have added
    one to a table that this node reads with ``SELECT *``.  How columns map
    to fields is worked out once per query shape (rows are built on hot paths).
    """
    plan = _plan(cls, txn.description)
    if plan is None:
        return [cls(*r) for r in txn.fetchall()]
    return [cls(*[r[i] for i in plan]) for r in txn.fetchall()]


def fetch_one(txn, cls: type[R]) -> R | None:
    """The cursor's first row as ``cls``, or None when the query found nothing."""
    rows = fetch_all(txn, cls)
    return rows[0] if rows else None


def fetch_dicts(txn) -> list[dict[str, Any]]:
    """The cursor's remaining rows as dicts keyed by column name (for aggregates shaped in Python)."""
    cols = [c[0] for c in txn.description]
    return [dict(zip(cols, r, strict=False)) for r in txn.fetchall()]


def contains_pattern(text: str) -> str:
    """A LIKE pattern (with ESCAPE '!') matching any value that contains ``text`` literally."""
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return "%" + escaped + "%"


# -- pools ----------------------------------------------------------------


def sqlite_connect_options(conn) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")


def open_sqlite_pool(path: str) -> adbapi.ConnectionPool:
    """One connection, so there is exactly one writer; WAL so a crash never tears a page."""
    return adbapi.ConnectionPool(
        "sqlite3",
        path,
        check_same_thread=False,
        cp_min=1,
        cp_max=1,
        cp_openfun=sqlite_connect_options,
    )


# psycopg2 connection options: give up connecting after a few seconds (a
# request must not hang on a dead server: /health says degraded instead) and
# notice a silently dropped TCP connection within about a minute.
POSTGRES_CONNECT_OPTIONS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "application_name": "harbor-cache",
}


def postgres_connect_options(conn) -> None:
    """NUMERIC (what SUM of integers gives) as int or float, like sqlite; UTC timestamps."""
    import psycopg2.extensions

    def cast(value, cur):
        if value is None:
            return None
        return int(value) if value.lstrip("-").isdigit() else float(value)

    numeric = psycopg2.extensions.new_type(psycopg2.extensions.DECIMAL.values, "HARBOR_NUMERIC", cast)
    psycopg2.extensions.register_type(numeric, conn)


def open_postgres_pool(url: str, size: int = 10) -> adbapi.ConnectionPool:
    """A pool of up to ``size`` connections; a connection found dead is dropped and reopened.

    ``cp_reconnect``: when a transaction fails because the connection is gone,
    adbapi closes it and the next transaction opens a new one (`Store._run`
    retries a transaction that failed that way, once).
    """
    return adbapi.ConnectionPool(
        "psycopg2",
        url,
        cp_min=1,
        cp_max=size,
        cp_reconnect=True,
        cp_openfun=postgres_connect_options,
        **POSTGRES_CONNECT_OPTIONS,
    )


def dialect_of_url(url: str | None) -> str:
    """ "postgresql" for a postgresql:// (or postgres://) URL; anything else is the sqlite file."""
    return "postgresql" if url and url.split(":", 1)[0] in ("postgresql", "postgres") else "sqlite"


def open_pool(url: str | None, sqlite_path: str, size: int = 10) -> adbapi.ConnectionPool:
    """The pool ``[index] url`` names: PostgreSQL for a postgresql:// URL, else the sqlite file."""
    if url is not None and dialect_of_url(url) == "postgresql":
        return open_postgres_pool(url, size)
    return open_sqlite_pool(sqlite_path)


def dialect_of(pool) -> str:
    """ "postgresql" or "sqlite", from the pool's DB-API module."""
    name = str(getattr(pool, "dbapiName", None) or getattr(getattr(pool, "dbapi", None), "__name__", "sqlite3"))
    return "postgresql" if name.startswith("psycopg") else "sqlite"


# -- dialects -------------------------------------------------------------

_TYPE_WORDS = re.compile(r"\b(INTEGER PRIMARY KEY AUTOINCREMENT|INTEGER|REAL|TEXT)\b")
_POSTGRES_TYPES = {
    "INTEGER PRIMARY KEY AUTOINCREMENT": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "INTEGER": "BIGINT",
    "REAL": "DOUBLE PRECISION",
    "TEXT": 'TEXT COLLATE "C"',
}


def postgres_ddl(statement: str) -> str:
    """A migration statement in sqlite's spelling, for PostgreSQL (types only; see the module doc)."""
    head = statement.lstrip().upper()
    if not (head.startswith("CREATE TABLE") or head.startswith("ALTER TABLE")):
        return statement
    return _TYPE_WORDS.sub(lambda m: _POSTGRES_TYPES[m.group(1)], statement)


def connection_lost(failure) -> bool:
    """Whether a transaction failed because the database connection broke (worth one retry)."""
    if failure.check(adbapi.ConnectionLost):
        return True
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - sqlite-only install
        return False
    if failure.check(psycopg2.InterfaceError):
        return True
    # OperationalError also covers lock timeouts and the like; only a closed connection counts.
    if failure.check(psycopg2.OperationalError):
        text = str(failure.value).lower()
        return any(s in text for s in ("closed", "terminat", "connection", "server"))
    return False


# -- the base of every store ----------------------------------------------


class Store:
    """One pool, its dialect, and how a store runs a transaction on it.

    Each public method of a store is ``async`` and runs one transaction
    through the pool's ``runInteraction`` with an inner ``_txn`` function
    (commit on return, rollback on raise).  The stores share this state, so
    `harbor_cache.index.Index` composes them by inheritance, one pool for all.
    """

    def __init__(self, pool):
        self._pool = pool
        self.dialect = dialect_of(pool)
        dbapi = getattr(pool, "dbapi", sqlite3)
        self._format = getattr(dbapi, "paramstyle", "qmark") in ("format", "pyformat")
        # GREATEST(a, b) in PostgreSQL is sqlite's two-argument MAX(a, b).
        self.greatest = "GREATEST" if self.dialect == "postgresql" else "MAX"

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._format else sql

    def _run(self, desc: str, fn: Callable, *args) -> defer.Deferred:
        """Run one transaction; one broken by a lost database connection is run again once.

        A transaction that fails that way was rolled back by the server, so
        running it again does not apply it twice (except in the rare case of a
        connection lost during the commit itself, where a counter increment
        may count twice). ``desc`` names it in logs.
        """
        d = self._pool.runInteraction(fn, *args)
        if self.dialect == "postgresql":

            def retry(failure):
                if not connection_lost(failure):
                    return failure
                log.warn("index: {desc} lost its database connection; retrying once", desc=desc)
                return self._pool.runInteraction(fn, *args)

            d.addErrback(retry)
        return d

    def _exec(self, txn, sql: str, args: Iterable = ()) -> None:
        txn.execute(self._q(sql), tuple(args))

    def _ddl(self, statement: str) -> str:
        return postgres_ddl(statement) if self.dialect == "postgresql" else statement
