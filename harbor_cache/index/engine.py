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
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.errors import IndexUnavailable
from harbor_cache.index.cursor import Cursor, Row

log = Logger()


R = TypeVar("R")

# (row class, column names) -> the column index of each field in field order, or None when
# the columns are the fields in order; a handful of entries, one per query shape.
_PLANS: dict[tuple[type, tuple[str, ...]], tuple[int, ...] | None] = {}


def _plan(cls: type, description: Sequence[Sequence[Any]] | None) -> tuple[int, ...] | None:
    names = tuple(c[0] for c in description or ())
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


def fetch_all(txn: Cursor, cls: type[R]) -> list[R]:
    """The cursor's remaining rows as ``cls`` (a dataclass of `harbor_cache.index.rows`), by column name.

    Columns ``cls`` does not name are skipped: a newer node may have added
    one to a table that this node reads with ``SELECT *``.  How columns map
    to fields is worked out once per query shape (rows are built on hot paths).
    """
    plan = _plan(cls, txn.description)
    if plan is None:
        return [cls(*r) for r in txn.fetchall()]
    return [cls(*[r[i] for i in plan]) for r in txn.fetchall()]


def fetch_one(txn: Cursor, cls: type[R]) -> R | None:
    """The cursor's first row as ``cls``, or None when the query found nothing."""
    rows = fetch_all(txn, cls)
    return rows[0] if rows else None


def fetch_written(txn: Cursor, cls: type[R]) -> R:
    """The row the transaction has just written and selected again, as ``cls`` (see `fetch_one`).

    The write and the read share the transaction, so the row is there; its
    absence is a broken query and raises rather than passing a None on.
    """
    row = fetch_one(txn, cls)
    if row is None:
        raise LookupError(f"the {cls.__name__} just written is not there")
    return row


def fetch_row(txn: Cursor) -> Row:
    """The one row a query always returns (an aggregate: ``COUNT``, ``SUM``, ``MAX``).

    A missing row here is a broken query, not an empty table, so it raises
    rather than handing the caller a None to index into.
    """
    row = txn.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row


def fetch_value(txn: Cursor) -> Any:
    """The first column of the one row a query always returns (see `fetch_row`)."""
    return fetch_row(txn)[0]


def fetch_dicts(txn: Cursor) -> list[dict[str, Any]]:
    """The cursor's remaining rows as dicts keyed by column name (for aggregates shaped in Python)."""
    cols = [c[0] for c in txn.description or ()]
    return [dict(zip(cols, r, strict=False)) for r in txn.fetchall()]


def contains_pattern(text: str) -> str:
    """A LIKE pattern (with ESCAPE '!') matching any value that contains ``text`` literally."""
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return "%" + escaped + "%"


# -- pools ----------------------------------------------------------------


def sqlite_connect_options(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")


# The writer's page cache by default (KiB; sqlite's default is 2 MB; `[index] sqlite_writer_cache_mib`).  Deletions and inserts land on random pages of the
# digest, search (FTS5 trigram) and totals B-trees; with a small cache each is a read through the OS: a batch of
# eviction or clear costs 30% more CPU per row at 100k entries with 2 MB than with 64 MB, and 28% more at 800k
# with 64 MB than with 256 MB (bench/RESULTS.md, "Issue 30: set-based eviction and clear").  An upper bound:
# pages are allocated as they are touched, so a small index never uses more than its size.  Readers keep
# sqlite's default.
SQLITE_WRITER_CACHE_KIB = 262144


def sqlite_writer_options(conn: sqlite3.Connection, cache_kib: int = SQLITE_WRITER_CACHE_KIB) -> None:
    """`sqlite_connect_options` and the writer's larger page cache (``cache_kib``)."""
    sqlite_connect_options(conn)
    conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")


def open_sqlite_pool(path: str, writer_cache_kib: int = SQLITE_WRITER_CACHE_KIB) -> adbapi.ConnectionPool:
    """One connection, so there is exactly one writer; WAL so a crash never tears a page."""
    return adbapi.ConnectionPool(
        "sqlite3",
        path,
        check_same_thread=False,
        cp_min=1,
        cp_max=1,
        cp_openfun=lambda conn: sqlite_writer_options(conn, writer_cache_kib),
    )


def sqlite_reader_options(conn: sqlite3.Connection) -> None:
    """The writer's options, and ``query_only``: a transaction marked read-only that writes fails loudly."""
    sqlite_connect_options(conn)
    conn.execute("PRAGMA query_only=ON")


def open_sqlite_read_pool(path: str, size: int) -> adbapi.ConnectionPool:
    """``size`` read-only connections beside the one writer (`open_sqlite_pool`).

    WAL lets readers run while the writer writes: each statement sees what
    was committed when it began, so a read issued after a write's Deferred
    fired sees that write.  Hits, ``/health`` and the console's listings run
    here (`Store._read`), so none of them queues behind a slow console query
    or a long write transaction on the writer.
    """
    return adbapi.ConnectionPool(
        "sqlite3",
        path,
        check_same_thread=False,
        cp_min=1,
        cp_max=size,
        cp_openfun=sqlite_reader_options,
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


def postgres_connect_options(conn: Any) -> None:
    """NUMERIC (what SUM of integers gives) as int or float, like sqlite; UTC timestamps."""
    import psycopg2.extensions

    def cast(value: str | None, cur: object) -> int | float | None:
        if value is None:
            return None
        return int(value) if value.lstrip("-").isdigit() else float(value)

    numeric = psycopg2.extensions.new_type(psycopg2.extensions.DECIMAL.values, "HARBOR_NUMERIC", cast)
    psycopg2.extensions.register_type(numeric, conn)


class QuietConnection(adbapi.Connection):
    """adbapi's `Connection` without its traceback per failed rollback.

    With ``cp_reconnect`` adbapi logs "Rollback failed" with a traceback
    twice for each transaction that fails on a dead connection (once here,
    once in ``_runInteraction`` for the `ConnectionLost` raised here): a
    hundred critical tracebacks for a few seconds of database outage.  This
    one drops the dead connection the same way and lets the transaction's own
    error through, which `Store._run` turns into one log line per outage.
    """

    def rollback(self) -> None:
        # None after an earlier failed rollback; then the first call fails and lands below, as for a dead one.
        connection: Any = self._connection
        try:
            connection.rollback()
            cursor = connection.cursor()
            cursor.execute(self._pool.good_sql)
            cursor.close()
            connection.commit()
        except Exception:
            self._pool.disconnect(self._connection)
            self._connection = None
            # The next transaction on this thread opens a new connection (ConnectionPool.connect).

    def reconnect(self) -> None:
        if self._connection is not None:
            try:
                self._pool.disconnect(self._connection)
            except Exception:  # "wrong connection for thread": already dropped by rollback
                pass
        self._connection = self._pool.connect()


class QuietTransaction(adbapi.Transaction):
    """adbapi's `Transaction` without its traceback when a cursor cannot be made on a dead connection."""

    def reopen(self) -> None:
        if self._cursor is not None:
            self.close()
        try:
            self._cursor = self._connection.cursor()
            return
        except Exception:
            pass
        self.reconnect()
        self._cursor = self._connection.cursor()


class QuietConnectionPool(adbapi.ConnectionPool):
    """The PostgreSQL pool: adbapi's, with `QuietConnection` and `QuietTransaction`."""

    connectionFactory = QuietConnection
    transactionFactory = QuietTransaction


def open_postgres_pool(url: str, size: int = 10) -> adbapi.ConnectionPool:
    """A pool of up to ``size`` connections; a connection found dead is dropped and reopened.

    ``cp_reconnect``: when a transaction fails because the connection is gone,
    the connection is closed and the next transaction opens a new one (`Store._run`
    retries a transaction that failed that way, once).
    """
    return QuietConnectionPool(
        "psycopg2",
        url,
        cp_min=1,
        cp_max=size,
        cp_reconnect=True,
        cp_openfun=postgres_connect_options,
        **POSTGRES_CONNECT_OPTIONS,
    )


def open_ping_pool(url: str | None, sqlite_path: str) -> adbapi.ConnectionPool:
    """One connection of its own for ``/health``'s ping (`Store.ping_pool`), on either engine.

    However many slow console queries hold the other connections (PostgreSQL's
    ``pool_size``, sqlite's readers), the ping never waits for one of them: a
    probe with a 1 s timeout fails only when the database itself does not answer.
    """
    if url is not None and dialect_of_url(url) == "postgresql":
        return open_postgres_pool(url, 1)
    return adbapi.ConnectionPool(
        "sqlite3", sqlite_path, check_same_thread=False, cp_min=1, cp_max=1, cp_openfun=sqlite_reader_options
    )


def dialect_of_url(url: str | None) -> str:
    """ "postgresql" for a postgresql:// (or postgres://) URL; anything else is the sqlite file."""
    return "postgresql" if url and url.split(":", 1)[0] in ("postgresql", "postgres") else "sqlite"


def open_pool(
    url: str | None, sqlite_path: str, size: int = 10, writer_cache_kib: int = SQLITE_WRITER_CACHE_KIB
) -> adbapi.ConnectionPool:
    """The pool ``[index] url`` names: PostgreSQL for a postgresql:// URL, else the sqlite file."""
    if url is not None and dialect_of_url(url) == "postgresql":
        return open_postgres_pool(url, size)
    return open_sqlite_pool(sqlite_path, writer_cache_kib)


class TransactionPool(Protocol):
    """What a store needs of its pool: adbapi's ``ConnectionPool``, or the tests' threadless `InlinePool`."""

    def runInteraction(self, fn: Callable[..., Any], /, *args: Any, **kw: Any) -> defer.Deferred[Any]: ...


def dialect_of(pool: TransactionPool) -> str:
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


def connection_lost(failure: Failure) -> bool:
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
        return any(s in text for s in _CONNECTION_WORDS)
    return False


# Words of a psycopg2 OperationalError that mean the server is gone, refused, or not accepting yet.
_CONNECTION_WORDS = (
    "closed",
    "terminat",
    "connection",
    "server",
    "could not connect",
    "timeout expired",
    "starting up",
    "shutting down",
    "not yet accepting",
)


class IndexAvailability:
    """Whether the index's database answers, as the last transactions found it.

    Its job is the log: one error line when the database goes away (however
    many requests and timers fail meanwhile, each of them gets
    `IndexUnavailable`) and one line when it is back, with how long it was
    away, instead of a traceback per failed transaction.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.up = True
        self._now = now
        self._since = 0.0
        self.failed = 0  # transactions refused while away (for the "back" line)

    def went_away(self, error: BaseException | None) -> None:
        self.failed += 1
        if not self.up:
            return
        self.up = False
        self._since = self._now()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.error(
            "index: the database does not answer ({reason}); requests that need it get 503 "
            "INDEX_UNAVAILABLE until it is back",
            reason=reason,
        )

    def came_back(self) -> None:
        if self.up:
            return
        self.up = True
        log.info(
            "index: the database answers again after {seconds:.1f} s ({failed} transactions refused meanwhile)",
            seconds=self._now() - self._since,
            failed=self.failed,
        )
        self.failed = 0


# -- the base of every store ----------------------------------------------


class Store:
    """One pool, its dialect, and how a store runs a transaction on it.

    Each public method of a store is ``async`` and runs one transaction
    through the pool's ``runInteraction`` with an inner ``_txn`` function
    (commit on return, rollback on raise).  The stores share this state, so
    `harbor_cache.index.Index` composes them by inheritance, one pool for all.
    """

    def __init__(
        self, pool: TransactionPool, read_pool: TransactionPool | None = None, ping_pool: TransactionPool | None = None
    ) -> None:
        self._pool = pool
        # Transactions marked read-only (`_read`) run on read_pool when there is one (sqlite's readers);
        # the ping on ping_pool (a connection of its own).  Without them, everything runs on the one pool.
        self._read_pool = read_pool if read_pool is not None else pool
        self.ping_pool = ping_pool if ping_pool is not None else self._read_pool
        self.dialect = dialect_of(pool)
        self.availability = IndexAvailability()
        dbapi = getattr(pool, "dbapi", sqlite3)
        self._format = getattr(dbapi, "paramstyle", "qmark") in ("format", "pyformat")
        # GREATEST(a, b) in PostgreSQL is sqlite's two-argument MAX(a, b).
        self.greatest = "GREATEST" if self.dialect == "postgresql" else "MAX"
        # Row locks for claims that must not race the garbage collector (`index.gc`): PostgreSQL
        # takes them; sqlite has one writer connection, so its writing transactions never interleave anyway.
        self.for_update = " FOR UPDATE" if self.dialect == "postgresql" else ""
        self.for_share = " FOR SHARE" if self.dialect == "postgresql" else ""

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._format else sql

    def _read(self, desc: str, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """`_run` for a transaction that only reads: on the read pool, beside the writer.

        On sqlite that is a pool of ``query_only`` connections (a write there
        fails), so a lookup on a hit, ``/health`` or a console listing never
        waits for the single writer nor for a slow query ahead of it.
        """
        return self._run(desc, fn, *args, pool=self._read_pool)

    def _run(
        self, desc: str, fn: Callable[..., Any], *args: Any, pool: TransactionPool | None = None
    ) -> defer.Deferred[Any]:
        """Run one transaction; one broken by a lost database connection is run again once.

        A transaction that fails that way was rolled back by the server, so
        running it again does not apply it twice (except in the rare case of a
        connection lost during the commit itself, where a counter increment
        may count twice). ``desc`` names it in logs.  When the retry fails
        too, the database is away: the caller gets `IndexUnavailable` (503
        ``INDEX_UNAVAILABLE``) and `availability` logs the outage once.
        """
        target = self._pool if pool is None else pool
        d = target.runInteraction(fn, *args)
        if self.dialect == "postgresql":
            availability = self.availability

            def retry(failure: Failure) -> Any:
                if not connection_lost(failure):
                    return failure
                if availability.up:
                    log.warn("index: {desc} lost its database connection; retrying once", desc=desc)
                return target.runInteraction(fn, *args)

            def answered(result: Any) -> Any:
                availability.came_back()
                return result

            def away(failure: Failure) -> Failure:
                if not connection_lost(failure):
                    return failure
                availability.went_away(failure.value)
                raise IndexUnavailable(
                    "the cache's index database is unavailable; try again later", headers={"Retry-After": "5"}
                )

            d.addErrback(retry)
            d.addCallbacks(answered, away)
        return d

    def _exec(self, txn: Cursor, sql: str, args: Iterable = ()) -> None:
        txn.execute(self._q(sql), tuple(args))

    def _ddl(self, statement: str) -> str:
        return postgres_ddl(statement) if self.dialect == "postgresql" else statement
