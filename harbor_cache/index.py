"""The index: every SQL statement of harbor-cache, and the schema migrations.

Two engines run the same statements: sqlite (a file in the data directory,
the embedded default, one process) and PostgreSQL (``[index] url``, shared by
several nodes).  Each public method is ``async`` and runs one transaction
through the pool's ``runInteraction`` with an inner ``_txn`` function (commit
on return, rollback on raise).

SQL is written once, in the subset both engines share: ``?`` placeholders
(rewritten to ``%s`` for psycopg2), ``INSERT ... ON CONFLICT``, row-value
comparisons, no literal ``%``.  Every dialect difference stays in this module:

* DDL is translated for PostgreSQL by `_postgres_ddl` (``INTEGER`` is 64-bit,
  ``REAL`` is a double, ``TEXT`` compares bytewise like sqlite, the
  autoincrement key becomes an identity column) - write migrations in
  sqlite's spelling with these types only;
* a handful of functions differ by name (`Index.greatest`);
* NUMERIC results (PostgreSQL's ``SUM`` of integers) come back as ``int``.

Times are float epoch seconds.  Rows come back as plain dicts.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()

MIGRATIONS: list[list[str]] = [
    # 1: the first schema
    [
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('proxy', 'hosted')),
            type TEXT NOT NULL CHECK (type IN ('manifest', 'blob', 'maven')),
            repository TEXT NOT NULL,
            key TEXT NOT NULL,
            digest TEXT NOT NULL,
            size INTEGER NOT NULL,
            media_type TEXT,
            sha1 TEXT,
            upstream TEXT,
            upstream_modified REAL,
            created_at REAL NOT NULL,
            fetched_at REAL NOT NULL,
            last_access REAL NOT NULL,
            access_count INTEGER NOT NULL DEFAULT 0,
            UNIQUE (type, repository, key)
        )""",
        "CREATE INDEX entries_digest ON entries (digest)",
        "CREATE INDEX entries_kind_access ON entries (kind, last_access)",
        """CREATE TABLE tags (
            repository TEXT NOT NULL,
            tag TEXT NOT NULL,
            digest TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('proxy', 'hosted')),
            media_type TEXT,
            fetched_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (repository, tag)
        )""",
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE counters (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        )""",
    ],
    # 2: (reserved for the Maven front, which needed no schema of its own)
    [],
    # 3: hosted registry: manifests that name a subject (the referrers API)
    [
        """CREATE TABLE referrers (
            repository TEXT NOT NULL,
            digest TEXT NOT NULL,
            subject TEXT NOT NULL,
            media_type TEXT NOT NULL,
            artifact_type TEXT,
            size INTEGER NOT NULL,
            annotations TEXT,
            PRIMARY KEY (repository, digest)
        )""",
        "CREATE INDEX referrers_subject ON referrers (repository, subject)",
    ],
    # 4: eviction pages in lfu and fifo order without scanning and sorting every proxy row
    [
        "CREATE INDEX entries_kind_lfu ON entries (kind, access_count, last_access, id)",
        "CREATE INDEX entries_kind_fifo ON entries (kind, created_at, id)",
    ],
    # 5: OCI upstreams managed at run time (seeded from the config file once); the
    #    generation lets every node notice a change made on another one
    [
        """CREATE TABLE upstreams (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            registry TEXT,
            prefix TEXT,
            routes TEXT NOT NULL,
            priority INTEGER NOT NULL,
            allow_push INTEGER NOT NULL,
            library_prefix INTEGER NOT NULL,
            username TEXT,
            password TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE upstreams_meta (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            generation INTEGER NOT NULL,
            seeded_at REAL
        )""",
        "INSERT INTO upstreams_meta (id, generation, seeded_at) VALUES (1, 0, NULL)",
    ],
    # 6: which repository holds which hosted blob: an upload or mount claims it for the
    #    repository (manifest ''), a pushed manifest records every blob it needs; a blob
    #    DELETE removes one repository's claim and never a blob a manifest still needs
    [
        """CREATE TABLE blob_refs (
            repository TEXT NOT NULL,
            digest TEXT NOT NULL,
            manifest TEXT NOT NULL,
            PRIMARY KEY (repository, digest, manifest)
        )""",
        "CREATE INDEX blob_refs_digest ON blob_refs (digest)",
        "CREATE INDEX blob_refs_manifest ON blob_refs (repository, manifest)",
    ],
    # 7: several nodes on one index: leases (one node downloads a key, one node evicts)
    #    and upload sessions any node can continue
    [
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            node TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
        """CREATE TABLE upload_sessions (
            id TEXT PRIMARY KEY,
            repository TEXT NOT NULL,
            owner TEXT NOT NULL,
            size INTEGER NOT NULL,
            started_at REAL NOT NULL,
            touched_at REAL NOT NULL,
            writer TEXT,
            writer_until REAL
        )""",
        "CREATE INDEX upload_sessions_owner ON upload_sessions (owner)",
        "CREATE INDEX upload_sessions_touched ON upload_sessions (touched_at)",
    ],
    # 8: the audit log (issue 13): who did what and when, for the console
    [
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT,
            client TEXT
        )""",
        "CREATE INDEX audit_log_at ON audit_log (at, id)",
        "CREATE INDEX audit_log_action ON audit_log (action, at)",
    ],
    # 9: Maven rows that are directories (an upstream's HTML index stored under the directory's
    #    path, next to the files below it) are removed; the range keeps it on the unique index
    [
        """DELETE FROM entries WHERE type = 'maven' AND EXISTS (
               SELECT 1 FROM entries AS below
               WHERE below.type = 'maven' AND below.repository = entries.repository
                 AND below.key > entries.key || '/' AND below.key < entries.key || '0')""",
    ],
]


# The advisory lock key that serializes migrations across nodes (PostgreSQL).
MIGRATION_LOCK = 0x68617262  # "harb"


def _rows(txn) -> list[dict[str, Any]]:
    cols = [c[0] for c in txn.description]
    return [dict(zip(cols, r, strict=False)) for r in txn.fetchall()]


def _row(txn) -> dict[str, Any] | None:
    rows = _rows(txn)
    return rows[0] if rows else None


def _sqlite_connect_options(conn) -> None:
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
        cp_openfun=_sqlite_connect_options,
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


def _postgres_connect_options(conn) -> None:
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
    adbapi closes it and the next transaction opens a new one (`Index._run`
    retries a transaction that failed that way, once).
    """
    return adbapi.ConnectionPool(
        "psycopg2",
        url,
        cp_min=1,
        cp_max=size,
        cp_reconnect=True,
        cp_openfun=_postgres_connect_options,
        **POSTGRES_CONNECT_OPTIONS,
    )


def dialect_of_url(url: str | None) -> str:
    """"postgresql" for a postgresql:// (or postgres://) URL; anything else is the sqlite file."""
    return "postgresql" if url and url.split(":", 1)[0] in ("postgresql", "postgres") else "sqlite"


def open_pool(url: str | None, sqlite_path: str, size: int = 10) -> adbapi.ConnectionPool:
    """The pool ``[index] url`` names: PostgreSQL for a postgresql:// URL, else the sqlite file."""
    if url is not None and dialect_of_url(url) == "postgresql":
        return open_postgres_pool(url, size)
    return open_sqlite_pool(sqlite_path)


def dialect_of(pool) -> str:
    """"postgresql" or "sqlite", from the pool's DB-API module."""
    name = str(getattr(pool, "dbapiName", None) or getattr(getattr(pool, "dbapi", None), "__name__", "sqlite3"))
    return "postgresql" if name.startswith("psycopg") else "sqlite"


_TYPE_WORDS = re.compile(r"\b(INTEGER PRIMARY KEY AUTOINCREMENT|INTEGER|REAL|TEXT)\b")
_POSTGRES_TYPES = {
    "INTEGER PRIMARY KEY AUTOINCREMENT": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "INTEGER": "BIGINT",
    "REAL": "DOUBLE PRECISION",
    "TEXT": 'TEXT COLLATE "C"',
}


def _postgres_ddl(statement: str) -> str:
    """A migration statement in sqlite's spelling, for PostgreSQL (types only; see the module doc)."""
    head = statement.lstrip().upper()
    if not (head.startswith("CREATE TABLE") or head.startswith("ALTER TABLE")):
        return statement
    return _TYPE_WORDS.sub(lambda m: _POSTGRES_TYPES[m.group(1)], statement)


def _connection_lost(failure) -> bool:
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


class InlinePool:
    """A threadless stand-in for ConnectionPool: each interaction runs at once.

    For unit tests (SQL finishes inside the test's own call stack) and tools.
    ``InlinePool(path)`` opens a sqlite file; `InlinePool.postgres` a server.
    """

    def __init__(self, path: str | None = None, *, conn=None, dbapi=None):
        if conn is None:
            assert path is not None, "a path or a connection"
            conn = sqlite3.connect(path, check_same_thread=False)
            _sqlite_connect_options(conn)
            dbapi = sqlite3
        self.conn = conn
        self.dbapi = dbapi

    @classmethod
    def postgres(cls, url: str) -> InlinePool:
        import psycopg2

        conn = psycopg2.connect(url, **POSTGRES_CONNECT_OPTIONS)
        _postgres_connect_options(conn)
        return cls(conn=conn, dbapi=psycopg2)

    def runInteraction(self, fn: Callable, *args, **kw) -> defer.Deferred:
        cur = self.conn.cursor()
        try:
            result = fn(cur, *args, **kw)
        except BaseException:
            self.conn.rollback()
            return defer.fail()
        finally:
            cur.close()
        self.conn.commit()
        return defer.succeed(result)

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One entry to insert or replace (`Index.put_entries`)."""

    kind: str
    type_: str
    repository: str
    key: str
    digest: str
    size: int
    media_type: str | None = None
    sha1: str | None = None
    upstream: str | None = None
    upstream_modified: float | None = None


class Index:
    """Every query the rest of the program makes, by name."""

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
                if not _connection_lost(failure):
                    return failure
                log.warn("index: {desc} lost its database connection; retrying once", desc=desc)
                return self._pool.runInteraction(fn, *args)

            d.addErrback(retry)
        return d

    def _exec(self, txn, sql: str, args: Iterable = ()) -> None:
        txn.execute(self._q(sql), tuple(args))

    def _ddl(self, statement: str) -> str:
        return _postgres_ddl(statement) if self.dialect == "postgresql" else statement


    # -- schema ---------------------------------------------------------

    async def migrate(self) -> int:
        """Apply the numbered migrations not yet applied; returns the schema version."""

        def _txn(txn):
            if self.dialect == "postgresql":
                # Nodes starting together: one migrates, the others wait and then find nothing to do.
                self._exec(txn, "SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            self._exec(txn, self._ddl("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
            self._exec(txn, "SELECT MAX(version) FROM schema_version")
            current = txn.fetchone()[0] or 0
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                for statement in statements:
                    self._exec(txn, self._ddl(statement))
                self._exec(txn, "INSERT INTO schema_version (version) VALUES (?)", (number,))
                current = number
            return current

        return await self._run("migrate", _txn)

    async def ping(self) -> bool:
        def _txn(txn):
            self._exec(txn, "SELECT 1")
            return txn.fetchone()[0] == 1

        return await self._run("ping", _txn)

    # -- entries --------------------------------------------------------

    async def get_entry(self, type_: str, repository: str, key: str) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM entries WHERE type = ? AND repository = ? AND key = ?", (type_, repository, key))
            return _row(txn)

        return await self._run("get_entry", _txn)

    async def put_entry(
        self,
        *,
        kind: str,
        type_: str,
        repository: str,
        key: str,
        digest: str,
        size: int,
        now: float,
        media_type: str | None = None,
        sha1: str | None = None,
        upstream: str | None = None,
        upstream_modified: float | None = None,
    ) -> dict:
        """Insert or replace an entry; an existing hosted entry stays hosted."""
        write = EntryWrite(kind, type_, repository, key, digest, size, media_type, sha1, upstream, upstream_modified)
        return await self._run("put_entry", self._upsert_entry_txn, write, now)

    async def put_entries(self, writes: list[EntryWrite], now: float) -> tuple[list[dict], list[str]]:
        """Insert or replace several entries in one transaction (a Maven file and its ``.sha1``).

        Returns the rows as stored, in order, and the digests the writes
        replaced that no entry references any more (files the caller may delete).
        """

        def _txn(txn):
            replaced: set[str] = set()
            rows = []
            for write in writes:
                self._exec(txn, "SELECT digest FROM entries WHERE type = ? AND repository = ? AND key = ?",
                           (write.type_, write.repository, write.key))
                old = txn.fetchone()
                if old is not None and old[0] != write.digest:
                    replaced.add(old[0])
                rows.append(self._upsert_entry_txn(txn, write, now))
            orphans = []
            for digest in sorted(replaced):
                self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
                if txn.fetchone() is None:
                    orphans.append(digest)
            return rows, orphans

        return await self._run("put_entries", _txn)

    def _upsert_entry_txn(self, txn, write: EntryWrite, now: float) -> dict:
        self._exec(
            txn,
            """INSERT INTO entries (kind, type, repository, key, digest, size, media_type, sha1, upstream,
                   upstream_modified, created_at, fetched_at, last_access, access_count)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
               ON CONFLICT (type, repository, key) DO UPDATE SET
                   kind = CASE WHEN entries.kind = 'hosted' OR excluded.kind = 'hosted'
                               THEN 'hosted' ELSE 'proxy' END,
                   digest = excluded.digest, size = excluded.size, media_type = excluded.media_type,
                   sha1 = excluded.sha1, upstream = excluded.upstream,
                   upstream_modified = excluded.upstream_modified,
                   fetched_at = excluded.fetched_at""",
            (write.kind, write.type_, write.repository, write.key, write.digest, write.size, write.media_type,
             write.sha1, write.upstream, write.upstream_modified, now, now, now),
        )
        self._exec(txn, "SELECT * FROM entries WHERE type = ? AND repository = ? AND key = ?",
                   (write.type_, write.repository, write.key))
        row = _row(txn)
        assert row is not None
        return row

    async def mark_fetched(self, entry_id: int, now: float) -> None:
        """Record a successful revalidation (TTL restarts)."""

        def _txn(txn):
            self._exec(txn, "UPDATE entries SET fetched_at = ? WHERE id = ?", (now, entry_id))

        await self._run("mark_fetched", _txn)

    async def record_access(self, touches: dict[int, tuple[float, int]], counters: dict[str, int]) -> None:
        """Flush a batch of last-access times / hit counts and counter deltas in one transaction."""

        def _txn(txn):
            for entry_id, (when, count) in touches.items():
                self._exec(
                    txn,
                    f"UPDATE entries SET last_access = {self.greatest}(last_access, ?), access_count = access_count + ? WHERE id = ?",
                    (when, count, entry_id),
                )
            for name, delta in counters.items():
                self._exec(
                    txn,
                    """INSERT INTO counters (name, value) VALUES (?, ?)
                       ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value""",
                    (name, delta),
                )

        await self._run("record_access", _txn)

    async def get_counters(self) -> dict[str, int]:
        def _txn(txn):
            self._exec(txn, "SELECT name, value FROM counters")
            return {r["name"]: r["value"] for r in _rows(txn)}

        return await self._run("get_counters", _txn)

    async def digest_in_use(self, digest: str) -> bool:
        def _txn(txn):
            self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
            return txn.fetchone() is not None

        return await self._run("digest_in_use", _txn)

    async def delete_entries(self, ids: list[int]) -> list[str]:
        """Delete entries by id; returns the digests no longer referenced by any entry."""

        def _txn(txn):
            digests: set[str] = set()
            for entry_id in ids:
                self._exec(txn, "SELECT digest FROM entries WHERE id = ?", (entry_id,))
                r = txn.fetchone()
                if r is None:
                    continue
                digests.add(r[0])
                self._exec(txn, "DELETE FROM entries WHERE id = ?", (entry_id,))
            orphans = []
            for d in sorted(digests):
                self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (d,))
                if txn.fetchone() is None:
                    orphans.append(d)
            return orphans

        return await self._run("delete_entries", _txn)

    # -- tags -----------------------------------------------------------

    async def get_tag(self, repository: str, tag: str) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM tags WHERE repository = ? AND tag = ?", (repository, tag))
            return _row(txn)

        return await self._run("get_tag", _txn)

    async def put_tag(
        self, repository: str, tag: str, digest: str, kind: str, media_type: str | None, now: float
    ) -> None:
        """Point a tag at a digest; a hosted tag is never overwritten by a proxy one."""

        def _txn(txn):
            self._exec(
                txn,
                """INSERT INTO tags (repository, tag, digest, kind, media_type, fetched_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (repository, tag) DO UPDATE SET
                       digest = excluded.digest, kind = excluded.kind, media_type = excluded.media_type,
                       fetched_at = excluded.fetched_at, updated_at = excluded.updated_at
                   WHERE tags.kind = 'proxy' OR excluded.kind = 'hosted'""",
                (repository, tag, digest, kind, media_type, now, now),
            )

        await self._run("put_tag", _txn)

    async def mark_tag_fetched(self, repository: str, tag: str, now: float) -> None:
        def _txn(txn):
            self._exec(txn, "UPDATE tags SET fetched_at = ? WHERE repository = ? AND tag = ?", (now, repository, tag))

        await self._run("mark_tag_fetched", _txn)

    async def list_tags(self, repository: str) -> list[str]:
        def _txn(txn):
            self._exec(txn, "SELECT tag FROM tags WHERE repository = ? ORDER BY tag", (repository,))
            return [r[0] for r in txn.fetchall()]

        return await self._run("list_tags", _txn)

    async def delete_tags(self, repository: str, digest: str) -> int:
        def _txn(txn):
            self._exec(txn, "DELETE FROM tags WHERE repository = ? AND digest = ?", (repository, digest))
            return txn.rowcount

        return await self._run("delete_tags", _txn)

    # -- users ----------------------------------------------------------

    async def count_users(self) -> int:
        def _txn(txn):
            self._exec(txn, "SELECT COUNT(*) FROM users")
            return txn.fetchone()[0]

        return await self._run("count_users", _txn)

    async def create_user(self, username: str, password_hash: str, role: str, now: float) -> dict | None:
        """Returns the new user, or None when the username is taken."""

        def _txn(txn):
            self._exec(txn, "SELECT 1 FROM users WHERE username = ?", (username,))
            if txn.fetchone() is not None:
                return None
            self._exec(
                txn,
                "INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (username, password_hash, role, now, now),
            )
            self._exec(txn, "SELECT * FROM users WHERE username = ?", (username,))
            return _row(txn)

        return await self._run("create_user", _txn)

    async def get_user(self, user_id: int) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM users WHERE id = ?", (user_id,))
            return _row(txn)

        return await self._run("get_user", _txn)

    async def get_user_by_name(self, username: str) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM users WHERE username = ?", (username,))
            return _row(txn)

        return await self._run("get_user_by_name", _txn)

    async def list_users(self) -> list[dict]:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM users ORDER BY id")
            return _rows(txn)

        return await self._run("list_users", _txn)

    # -- runtime settings -------------------------------------------------

    async def get_settings(self) -> list[dict]:
        def _txn(txn):
            self._exec(txn, "SELECT key, value, updated_at FROM settings ORDER BY key")
            return _rows(txn)

        return await self._run("get_settings", _txn)

    async def put_settings(self, entries: list[tuple[str, str]], now: float) -> int:
        """Store every entry in one transaction (all or nothing)."""

        def _txn(txn):
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
        def _txn(txn):
            self._exec(txn, "DELETE FROM settings WHERE key = ?", (key,))
            return txn.rowcount > 0

        return await self._run("delete_setting", _txn)

    # == management API, users and eviction (issue 5) ==========================

    async def count_admins(self) -> int:
        def _txn(txn):
            self._exec(txn, "SELECT COUNT(*) FROM users WHERE role = 'admin'")
            return txn.fetchone()[0]

        return await self._run("count_admins", _txn)

    async def update_user(
        self, user_id: int, role: str | None, password_hash: str | None, now: float
    ) -> tuple[str, dict | None]:
        """Change role and/or password in one transaction.

        Returns ("ok", row), ("missing", None), or ("last_admin", row) when
        the change would leave no admin (nothing is changed then).
        """

        def _txn(txn):
            self._exec(txn, "SELECT * FROM users WHERE id = ?", (user_id,))
            row = _row(txn)
            if row is None:
                return "missing", None
            if row["role"] == "admin" and role is not None and role != "admin":
                self._exec(txn, "SELECT COUNT(*) FROM users WHERE role = 'admin'")
                if txn.fetchone()[0] <= 1:
                    return "last_admin", row
            sets, args = ["updated_at = ?"], [now]
            if role is not None:
                sets.append("role = ?")
                args.append(role)
            if password_hash is not None:
                sets.append("password_hash = ?")
                args.append(password_hash)
            self._exec(txn, f"UPDATE users SET {', '.join(sets)} WHERE id = ?", (*args, user_id))
            self._exec(txn, "SELECT * FROM users WHERE id = ?", (user_id,))
            return "ok", _row(txn)

        return await self._run("update_user", _txn)

    async def delete_user(self, user_id: int) -> str:
        """Returns "ok", "missing", or "last_admin" (the only admin is never deleted)."""

        def _txn(txn):
            self._exec(txn, "SELECT role FROM users WHERE id = ?", (user_id,))
            r = txn.fetchone()
            if r is None:
                return "missing"
            if r[0] == "admin":
                self._exec(txn, "SELECT COUNT(*) FROM users WHERE role = 'admin'")
                if txn.fetchone()[0] <= 1:
                    return "last_admin"
            self._exec(txn, "DELETE FROM users WHERE id = ?", (user_id,))
            return "ok"

        return await self._run("delete_user", _txn)

    # Keyset columns per eviction order; the last column is always the unique id,
    # so paging with "(cols) > (last row's cols)" never repeats or skips a row.
    EVICTION_ORDERS = {
        "lru": ("last_access", "id"),
        "lfu": ("access_count", "last_access", "id"),
        "fifo": ("created_at", "id"),
        "id": ("id",),
    }

    async def proxy_entries_page(
        self, order: str, after: tuple | None, limit: int, accessed_before: float | None = None
    ) -> list[dict]:
        """One page of proxy entries in eviction order (see EVICTION_ORDERS).

        ``after`` is the order columns of the previous page's last row (None
        for the first page); ``accessed_before`` keeps only entries whose last
        access is older (retention).  Hosted entries are never returned.
        """
        cols = self.EVICTION_ORDERS[order]

        def _txn(txn):
            where, args = ["kind = 'proxy'"], []
            if accessed_before is not None:
                where.append("last_access < ?")
                args.append(accessed_before)
            if after is not None:
                where.append(f"({', '.join(cols)}) > ({', '.join('?' * len(cols))})")
                args.extend(after)
            self._exec(
                txn,
                f"""SELECT id, type, repository, key, digest, size, created_at, last_access, access_count
                    FROM entries WHERE {' AND '.join(where)} ORDER BY {', '.join(cols)} LIMIT ?""",
                (*args, limit),
            )
            return _rows(txn)

        return await self._run("proxy_entries_page", _txn)

    async def delete_proxy_entries(self, ids: list[int]) -> tuple[list[dict], list[tuple[str, int]]]:
        """Delete the given entries that are still proxy entries, in one transaction.

        Returns (deleted rows: id, type, repository, key, digest, size;
        [(digest, size)] of digests no entry references any more).  An entry
        that became hosted since it was picked is left alone.  Set-based (a
        few statements per call, whatever its length) so a batch of hundreds
        of rows costs milliseconds; keep ``ids`` under a few thousand.
        """

        def _txn(txn):
            if not ids:
                return [], []
            marks = ", ".join("?" * len(ids))
            self._exec(
                txn,
                f"""SELECT id, type, repository, key, digest, size FROM entries
                    WHERE kind = 'proxy' AND id IN ({marks})""",
                ids,
            )
            deleted = _rows(txn)
            if not deleted:
                return [], []
            gone = [row["id"] for row in deleted]
            self._exec(txn, f"DELETE FROM entries WHERE kind = 'proxy' AND id IN ({', '.join('?' * len(gone))})", gone)
            sizes: dict[str, int] = {}
            for row in deleted:
                sizes[row["digest"]] = max(sizes.get(row["digest"], 0), row["size"])
            still = self._referenced_txn(txn, list(sizes))
            return deleted, [(d, sizes[d]) for d in sorted(sizes) if d not in still]

        return await self._run("delete_proxy_entries", _txn)

    def _referenced_txn(self, txn, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(digests), 500):
            chunk = digests[start:start + 500]
            self._exec(txn, f"SELECT DISTINCT digest FROM entries WHERE digest IN ({', '.join('?' * len(chunk))})",
                       chunk)
            found.update(r[0] for r in txn.fetchall())
        return found

    async def digests_referenced(self, digests: list[str]) -> set[str]:
        """The subset of digests that some entry still references."""

        def _txn(txn):
            return self._referenced_txn(txn, list(digests))

        return await self._run("digests_referenced", _txn)

    async def evictable_size(self) -> int:
        """Bytes on disk that eviction could free: digests referenced only by proxy entries."""

        def _txn(txn):
            self._exec(
                txn,
                """SELECT COALESCE(SUM(size), 0) FROM (
                       SELECT MAX(size) AS size FROM entries GROUP BY digest
                       HAVING SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) = 0) AS only_proxy""",
            )
            return int(txn.fetchone()[0])

        return await self._run("evictable_size", _txn)

    async def cache_totals(self) -> dict[str, int]:
        """Entry counts by type and the bytes on disk (each digest counted once)."""

        def _txn(txn):
            self._exec(
                txn,
                """SELECT COUNT(*),
                          COALESCE(SUM(CASE WHEN type = 'manifest' THEN 1 ELSE 0 END), 0),
                          COALESCE(SUM(CASE WHEN type = 'blob' THEN 1 ELSE 0 END), 0),
                          COALESCE(SUM(CASE WHEN type = 'maven' THEN 1 ELSE 0 END), 0),
                          COALESCE(SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END), 0)
                   FROM entries""",
            )
            entries, manifests, blobs, maven, proxy = txn.fetchone()
            self._exec(
                txn,
                "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM entries GROUP BY digest) AS d",
            )
            total = txn.fetchone()[0]
            return {
                "entries": int(entries), "manifests": int(manifests), "blobs": int(blobs),
                "maven": int(maven), "proxy": int(proxy), "total_size": int(total),
            }

        return await self._run("cache_totals", _txn)


    # == Maven front (issue 6) =================================================

    async def maven_entries_under(self, repository: str, prefix: str) -> list[dict]:
        """Maven entries of ``repository`` whose key is under directory ``prefix`` ("" = all), by key.

        A key range (``prefix/`` up to ``prefix0``, "0" being the byte after
        "/") so the (type, repository, key) index answers it.
        """

        def _txn(txn):
            sql = ("SELECT id, key, digest, size, media_type, sha1, upstream_modified, created_at, fetched_at "
                   "FROM entries WHERE type = 'maven' AND repository = ?")
            args: list = [repository]
            if prefix:
                sql += " AND key >= ? AND key < ?"
                args += [prefix + "/", prefix + "0"]
            self._exec(txn, sql + " ORDER BY key", args)
            return _rows(txn)

        return await self._run("maven_entries_under", _txn)

    async def maven_repository_stats(self) -> dict[str, dict]:
        """Per Maven repository: files (checksums excluded), their bytes, and the last write time."""

        # Checksum suffixes go in as parameters (a literal % would clash with a "format" driver).
        suffixes = ["%.sha1", "%.sha256", "%.sha512", "%.md5"]
        is_checksum = " OR ".join(["key LIKE ?"] * len(suffixes))

        def _txn(txn):
            self._exec(
                txn,
                f"""SELECT repository,
                       SUM(CASE WHEN {is_checksum} THEN 0 ELSE 1 END) AS artifact_count,
                       SUM(CASE WHEN {is_checksum} THEN 0 ELSE size END) AS total_size,
                       MAX(fetched_at) AS last_updated
                   FROM entries WHERE type = 'maven' GROUP BY repository""",
                suffixes + suffixes,
            )
            return {r["repository"]: r for r in _rows(txn)}

        return await self._run("maven_repository_stats", _txn)


    async def put_hosted_maven_file(
        self, *, repository: str, key: str, digest: str, size: int, media_type: str | None,
        sha1: str | None, now: float, overwrite: bool,
    ) -> tuple[str, dict | None, str | None]:
        """Deploy one file into a hosted Maven repository, in one transaction.

        Returns ``(outcome, entry, previous digest)``: outcome "created",
        "replaced", or "exists" when a file is there and ``overwrite`` is
        false (nothing written; entry None).  The check and the write are one
        transaction, so two racing deploys of a release cannot both win.
        """

        def _txn(txn):
            self._exec(txn, "SELECT id, digest FROM entries WHERE type = 'maven' AND repository = ? AND key = ?",
                       (repository, key))
            r = txn.fetchone()
            if r is not None and not overwrite:
                return "exists", None, r[1]
            if r is not None:
                self._exec(
                    txn,
                    """UPDATE entries SET kind = 'hosted', digest = ?, size = ?, media_type = ?, sha1 = ?,
                           upstream = NULL, upstream_modified = ?, fetched_at = ? WHERE id = ?""",
                    (digest, size, media_type, sha1, now, now, r[0]),
                )
            else:
                self._exec(
                    txn,
                    """INSERT INTO entries (kind, type, repository, key, digest, size, media_type, sha1, upstream,
                           upstream_modified, created_at, fetched_at, last_access, access_count)
                       VALUES ('hosted', 'maven', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 0)""",
                    (repository, key, digest, size, media_type, sha1, now, now, now, now),
                )
            self._exec(txn, "SELECT * FROM entries WHERE type = 'maven' AND repository = ? AND key = ?",
                       (repository, key))
            return ("replaced" if r is not None else "created"), _row(txn), (r[1] if r is not None else None)

        return await self._run("put_hosted_maven_file", _txn)

    # == hosted registry: uploads, tags, catalog (issue 7) =====================

    async def list_tags_page(self, repository: str, last: str | None, limit: int | None) -> list[str]:
        """Tags of a repository in byte order, after ``last``; at most ``limit`` (None: all)."""

        def _txn(txn):
            sql = "SELECT tag FROM tags WHERE repository = ? AND tag > ? ORDER BY tag"
            args: list = [repository, last or ""]
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            self._exec(txn, sql, args)
            return [r[0] for r in txn.fetchall()]

        return await self._run("list_tags_page", _txn)

    async def repository_known(self, repository: str) -> bool:
        """Whether any tag or manifest is recorded under this repository name."""

        def _txn(txn):
            self._exec(txn, "SELECT 1 FROM tags WHERE repository = ? LIMIT 1", (repository,))
            if txn.fetchone() is not None:
                return True
            self._exec(txn, "SELECT 1 FROM entries WHERE type = 'manifest' AND repository = ? LIMIT 1", (repository,))
            return txn.fetchone() is not None

        return await self._run("repository_known", _txn)

    async def list_repositories_page(self, last: str | None, limit: int | None) -> list[str]:
        """Repository names with a tag or a manifest, in byte order, after ``last``."""

        def _txn(txn):
            sql = """SELECT repository FROM (
                         SELECT repository FROM tags
                         UNION SELECT repository FROM entries WHERE type = 'manifest'
                     ) AS names WHERE repository > ? ORDER BY repository"""
            args: list = [last or ""]
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            self._exec(txn, sql, args)
            return [r[0] for r in txn.fetchall()]

        return await self._run("list_repositories_page", _txn)

    async def mark_hosted(self, ids: list[int]) -> None:
        """Make entries hosted (a pushed manifest now needs them): eviction skips them from now on."""

        def _txn(txn):
            for entry_id in ids:
                self._exec(txn, "UPDATE entries SET kind = 'hosted' WHERE id = ?", (entry_id,))

        await self._run("mark_hosted", _txn)

    async def claim_blob(self, repository: str, digest: str) -> None:
        """Record that ``repository`` holds a blob (pushed or mounted into it)."""

        def _txn(txn):
            self._exec(txn, """INSERT INTO blob_refs (repository, digest, manifest) VALUES (?, ?, '')
                               ON CONFLICT (repository, digest, manifest) DO NOTHING""", (repository, digest))

        await self._run("claim_blob", _txn)

    async def hosted_manifests_without_refs(self) -> list[dict]:
        """Hosted manifests with no ``blob_refs`` rows: pushed before claims were recorded (or blob-less)."""

        def _txn(txn):
            self._exec(txn, """SELECT repository, key, digest FROM entries AS m
                               WHERE m.type = 'manifest' AND m.kind = 'hosted' AND NOT EXISTS (
                                   SELECT 1 FROM blob_refs AS r
                                   WHERE r.repository = m.repository AND r.manifest = m.key)
                               ORDER BY m.id""")
            return _rows(txn)

        return await self._run("hosted_manifests_without_refs", _txn)

    async def add_blob_refs(self, repository: str, manifest: str, blobs: list[str]) -> None:
        """Record that a hosted manifest needs these blobs (kept idempotent)."""

        def _txn(txn):
            for blob in blobs:
                self._exec(txn, """INSERT INTO blob_refs (repository, digest, manifest) VALUES (?, ?, ?)
                                   ON CONFLICT (repository, digest, manifest) DO NOTHING""",
                           (repository, blob, manifest))

        await self._run("add_blob_refs", _txn)

    async def release_blob(self, repository: str, digest: str) -> tuple[str, Any]:
        """A blob DELETE through ``repository``, decided and done in one transaction.

        Returns one of:
        ``("unknown", None)`` the repository holds no such blob (nothing changes);
        ``("in_use", manifest)`` a hosted manifest of the repository needs it (nothing changes);
        ``("released", orphans)`` the repository's claim is gone; when no repository claims or
        needs the blob any more its hosted entry is deleted too, and ``orphans`` lists the file
        digests nothing references;
        ``("proxy", None)`` a cached blob nobody pushed (removed through the management API).
        A blob pushed before claims were recorded (no rows at all) is released as if this
        repository were its only holder.
        """

        def _txn(txn):
            self._exec(txn, "SELECT repository, manifest FROM blob_refs WHERE digest = ?", (digest,))
            rows = txn.fetchall()
            mine = [m for r, m in rows if r == repository]
            if rows and not mine:
                return "unknown", None
            using = sorted(m for m in mine if m)
            if using:
                return "in_use", using[0]
            self._exec(txn, "DELETE FROM blob_refs WHERE repository = ? AND digest = ? AND manifest = ''",
                       (repository, digest))
            if len(rows) > len(mine):
                return "released", []
            self._exec(txn, "SELECT id, kind FROM entries WHERE type = 'blob' AND repository = '' AND key = ?",
                       (digest,))
            r = txn.fetchone()
            if r is None:
                return ("released", []) if rows else ("unknown", None)
            if r[1] != "hosted":
                return ("released", []) if rows else ("proxy", None)
            self._exec(txn, "DELETE FROM entries WHERE id = ?", (r[0],))
            self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
            return "released", ([] if txn.fetchone() is not None else [digest])

        return await self._run("release_blob", _txn)

    async def put_hosted_manifest(
        self, *, repository: str, key: str, digest: str, size: int, media_type: str, now: float,
        tag: str | None, referrer: dict | None, blobs: list[str] = (),  # type: ignore[assignment]
    ) -> dict:
        """Record a pushed manifest: its hosted entry, its tag, its referrer row and the blobs it
        needs (``blob_refs``), in one transaction."""

        def _txn(txn):
            self._exec(txn, "DELETE FROM blob_refs WHERE repository = ? AND manifest = ?", (repository, key))
            for blob in blobs:
                self._exec(txn, """INSERT INTO blob_refs (repository, digest, manifest) VALUES (?, ?, ?)
                                   ON CONFLICT (repository, digest, manifest) DO NOTHING""",
                           (repository, blob, key))
            self._exec(
                txn,
                """INSERT INTO entries (kind, type, repository, key, digest, size, media_type, created_at,
                       fetched_at, last_access, access_count)
                   VALUES ('hosted', 'manifest', ?, ?, ?, ?, ?, ?, ?, ?, 0)
                   ON CONFLICT (type, repository, key) DO UPDATE SET
                       kind = 'hosted', digest = excluded.digest, size = excluded.size,
                       media_type = excluded.media_type, upstream = NULL, fetched_at = excluded.fetched_at""",
                (repository, key, digest, size, media_type, now, now, now),
            )
            if tag is not None:
                self._exec(
                    txn,
                    """INSERT INTO tags (repository, tag, digest, kind, media_type, fetched_at, updated_at)
                       VALUES (?, ?, ?, 'hosted', ?, ?, ?)
                       ON CONFLICT (repository, tag) DO UPDATE SET
                           digest = excluded.digest, kind = 'hosted', media_type = excluded.media_type,
                           fetched_at = excluded.fetched_at, updated_at = excluded.updated_at""",
                    (repository, tag, key, media_type, now, now),
                )
            if referrer is not None:
                self._exec(
                    txn,
                    """INSERT INTO referrers (repository, digest, subject, media_type, artifact_type, size, annotations)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (repository, digest) DO UPDATE SET
                           subject = excluded.subject, media_type = excluded.media_type,
                           artifact_type = excluded.artifact_type, size = excluded.size,
                           annotations = excluded.annotations""",
                    (repository, key, referrer["subject"], media_type, referrer.get("artifact_type"), size,
                     referrer.get("annotations")),
                )
            self._exec(txn, "SELECT * FROM entries WHERE type = 'manifest' AND repository = ? AND key = ?",
                       (repository, key))
            return _row(txn)

        return await self._run("put_hosted_manifest", _txn)

    async def delete_hosted_tag(self, repository: str, tag: str) -> str | None:
        """Remove a hosted tag; returns the digest it pointed at, None when there was no hosted tag."""

        def _txn(txn):
            self._exec(txn, "SELECT digest FROM tags WHERE repository = ? AND tag = ? AND kind = 'hosted'",
                       (repository, tag))
            r = txn.fetchone()
            if r is None:
                return None
            self._exec(txn, "DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag))
            return r[0]

        return await self._run("delete_hosted_tag", _txn)

    async def delete_hosted_entry(self, type_: str, repository: str, key: str) -> tuple[str | None, list[str]]:
        """Delete one hosted entry (and, for a manifest, its tags and referrer row).

        Returns ``(kind, orphans)``: kind is None when there is no such entry
        and "proxy" when there is one that is not hosted (nothing deleted);
        orphans are the file digests no entry references any more.
        """

        def _txn(txn):
            self._exec(txn, "SELECT id, kind, digest FROM entries WHERE type = ? AND repository = ? AND key = ?",
                       (type_, repository, key))
            r = txn.fetchone()
            if r is None:
                return None, []
            entry_id, kind, digest = r
            if kind != "hosted":
                return kind, []
            self._exec(txn, "DELETE FROM entries WHERE id = ?", (entry_id,))
            if type_ == "manifest":
                self._exec(txn, "DELETE FROM blob_refs WHERE repository = ? AND manifest = ?", (repository, key))
                self._exec(txn, "DELETE FROM tags WHERE repository = ? AND digest = ?", (repository, key))
                self._exec(txn, "DELETE FROM referrers WHERE repository = ? AND digest = ?", (repository, key))
            self._exec(txn, "SELECT 1 FROM entries WHERE digest = ? LIMIT 1", (digest,))
            return kind, ([] if txn.fetchone() is not None else [digest])

        return await self._run("delete_hosted_entry", _txn)

    async def list_referrers(self, repository: str, subject: str, artifact_type: str | None) -> list[dict]:
        """Manifests in a repository whose ``subject`` is this digest, optionally of one artifact type."""

        def _txn(txn):
            sql = "SELECT * FROM referrers WHERE repository = ? AND subject = ?"
            args: list = [repository, subject]
            if artifact_type is not None:
                sql += " AND artifact_type = ?"
                args.append(artifact_type)
            self._exec(txn, sql + " ORDER BY digest", args)
            return _rows(txn)

        return await self._run("list_referrers", _txn)


    # == OCI upstreams at run time (issue 14) ===================================
    # Rows hold routes as a JSON list and booleans as 0/1 (portable to PostgreSQL).
    # Every change bumps upstreams_meta.generation in the same transaction.

    UPSTREAM_FIELDS = ("name", "url", "registry", "prefix", "routes", "priority", "allow_push", "library_prefix",
                       "username", "password")

    def _bump_upstreams_txn(self, txn) -> None:
        self._exec(txn, "UPDATE upstreams_meta SET generation = generation + 1 WHERE id = 1")

    async def upstreams_generation(self) -> int:
        """A number that changes whenever any upstream row does (cheap enough to poll)."""

        def _txn(txn):
            self._exec(txn, "SELECT generation FROM upstreams_meta WHERE id = 1")
            return int(txn.fetchone()[0])

        return await self._run("upstreams_generation", _txn)

    async def list_upstreams(self) -> tuple[int, list[dict]]:
        """(generation, every upstream row by id), read in one transaction."""

        def _txn(txn):
            self._exec(txn, "SELECT generation FROM upstreams_meta WHERE id = 1")
            generation = int(txn.fetchone()[0])
            self._exec(txn, "SELECT * FROM upstreams ORDER BY id")
            return generation, _rows(txn)

        return await self._run("list_upstreams", _txn)

    async def seed_upstreams(self, rows: list[dict], now: float) -> bool:
        """Insert the config file's upstreams unless that was done before (on any node); True if done now."""

        def _txn(txn):
            self._exec(txn, "UPDATE upstreams_meta SET seeded_at = ? WHERE id = 1 AND seeded_at IS NULL", (now,))
            if txn.rowcount != 1:
                return False
            for row in rows:
                self._insert_upstream_txn(txn, row, now)
            self._bump_upstreams_txn(txn)
            return True

        return await self._run("seed_upstreams", _txn)

    def _insert_upstream_txn(self, txn, row: dict, now: float) -> None:
        cols = self.UPSTREAM_FIELDS
        self._exec(
            txn,
            f"""INSERT INTO upstreams ({', '.join(cols)}, created_at, updated_at)
                VALUES ({', '.join('?' * (len(cols) + 2))})""",
            [row[c] for c in cols] + [now, now],
        )

    async def create_upstream(self, row: dict, now: float) -> dict | None:
        """Insert an upstream; None when the name is taken."""

        def _txn(txn):
            self._exec(txn, "SELECT 1 FROM upstreams WHERE name = ?", (row["name"],))
            if txn.fetchone() is not None:
                return None
            self._insert_upstream_txn(txn, row, now)
            self._bump_upstreams_txn(txn)
            self._exec(txn, "SELECT * FROM upstreams WHERE name = ?", (row["name"],))
            return _row(txn)

        return await self._run("create_upstream", _txn)

    async def update_upstream(self, upstream_id: int, row: dict, now: float) -> dict | str:
        """Replace an upstream's fields; "missing" or "name_taken" when that cannot be done."""

        def _txn(txn):
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
            return _row(txn)

        return await self._run("update_upstream", _txn)

    async def delete_upstream(self, upstream_id: int) -> bool:
        def _txn(txn):
            self._exec(txn, "DELETE FROM upstreams WHERE id = ?", (upstream_id,))
            if txn.rowcount != 1:
                return False
            self._bump_upstreams_txn(txn)
            return True

        return await self._run("delete_upstream", _txn)


    # == several nodes: leases (issue 15) =========================================
    # A lease is a named row held by one node until ``expires_at``; the holder
    # renews it, anyone may take it over once it has expired (its node died).

    async def acquire_lease(self, name: str, node: str, now: float, ttl: float) -> bool:
        """Take ``name`` for ``node`` until now + ttl when free, expired or already ours; True if held."""

        def _txn(txn):
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

        def _txn(txn):
            self._exec(txn, "UPDATE leases SET expires_at = ? WHERE name = ? AND node = ?", (now + ttl, name, node))
            return txn.rowcount == 1

        return await self._run("renew_lease", _txn)

    async def release_lease(self, name: str, node: str) -> None:
        def _txn(txn):
            self._exec(txn, "DELETE FROM leases WHERE name = ? AND node = ?", (name, node))

        await self._run("release_lease", _txn)

    async def get_lease(self, name: str) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT name, node, expires_at FROM leases WHERE name = ?", (name,))
            return _row(txn)

        return await self._run("get_lease", _txn)

    # == console (issue 13): cache entries, images, audit log ===================

    #: sort keys of GET /api/v1/cache/entries -> column (id breaks ties)
    ENTRY_SORTS = {"size": "size", "last_access": "last_access", "hits": "access_count",
                   "created": "created_at", "repository": "repository"}

    @staticmethod
    def _contains(text: str) -> str:
        """A LIKE pattern (with ESCAPE '!') matching any value that contains ``text`` literally."""
        escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return "%" + escaped + "%"

    @staticmethod
    def _entry_filters(front: str | None, kind: str | None, repository: str | None,
                       text: str | None) -> tuple[list[str], list]:
        where, args = [], []
        if front == "oci":
            where.append("type IN ('manifest', 'blob')")
        elif front == "maven":
            where.append("type = 'maven'")
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if repository is not None:
            where.append("repository = ?")
            args.append(repository)
        if text:
            # LIKE with an escape character: the same on sqlite and PostgreSQL, wildcards taken literally
            where.append("(lower(repository) LIKE ? ESCAPE '!' OR lower(key) LIKE ? ESCAPE '!')")
            args += [Index._contains(text)] * 2
        return where, args

    async def cache_entries_page(self, *, offset: int, limit: int, sort: str, descending: bool,
                                 front: str | None = None, kind: str | None = None,
                                 repository: str | None = None, text: str | None = None) -> tuple[int, list[dict]]:
        """(matching count, one page of entries) for the console's cache table."""
        column = self.ENTRY_SORTS[sort]
        direction = "DESC" if descending else "ASC"
        where, args = self._entry_filters(front, kind, repository, text)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def _txn(txn):
            self._exec(txn, "SELECT COUNT(*) FROM entries" + clause, args)
            total = int(txn.fetchone()[0])
            self._exec(
                txn,
                f"""SELECT id, kind, type, repository, key, digest, size, media_type, upstream, created_at,
                           fetched_at, last_access, access_count FROM entries{clause}
                    ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?""",
                (*args, limit, offset),
            )
            return total, _rows(txn)

        return await self._run("cache_entries_page", _txn)

    async def get_entry_by_id(self, entry_id: int) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM entries WHERE id = ?", (entry_id,))
            return _row(txn)

        return await self._run("get_entry_by_id", _txn)

    async def image_repositories(self) -> list[dict]:
        """Every OCI repository with a tag or a manifest: name, hosted/cached tag and manifest counts, last update."""

        def _txn(txn):
            self._exec(
                txn,
                """SELECT repository,
                          SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) AS hosted_tags,
                          SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END) AS cached_tags,
                          MAX(updated_at) AS updated_at
                   FROM tags GROUP BY repository""",
            )
            tags = {r["repository"]: r for r in _rows(txn)}
            self._exec(
                txn,
                """SELECT repository,
                          SUM(CASE WHEN kind = 'hosted' THEN 1 ELSE 0 END) AS hosted_manifests,
                          SUM(CASE WHEN kind = 'proxy' THEN 1 ELSE 0 END) AS cached_manifests,
                          MAX(fetched_at) AS fetched_at
                   FROM entries WHERE type = 'manifest' GROUP BY repository""",
            )
            manifests = {r["repository"]: r for r in _rows(txn)}
            out = []
            for name in sorted(set(tags) | set(manifests)):
                t, m = tags.get(name, {}), manifests.get(name, {})
                out.append({
                    "name": name,
                    "hosted_tags": int(t.get("hosted_tags") or 0),
                    "cached_tags": int(t.get("cached_tags") or 0),
                    "hosted_manifests": int(m.get("hosted_manifests") or 0),
                    "cached_manifests": int(m.get("cached_manifests") or 0),
                    "updated_at": max(x for x in (t.get("updated_at"), m.get("fetched_at"), 0) if x is not None),
                })
            return out

        return await self._run("image_repositories", _txn)

    async def image_tags(self, repository: str) -> list[dict]:
        """Tags of one repository with what they point at, by tag."""

        def _txn(txn):
            self._exec(
                txn,
                """SELECT t.tag, t.digest, t.kind, t.media_type, t.updated_at, e.size
                   FROM tags t LEFT JOIN entries e
                        ON e.type = 'manifest' AND e.repository = t.repository AND e.key = t.digest
                   WHERE t.repository = ? ORDER BY t.tag""",
                (repository,),
            )
            return _rows(txn)

        return await self._run("image_tags", _txn)

    async def add_audit(self, *, at: float, actor: str | None, action: str, target: str | None,
                        detail: str | None, client: str | None) -> None:
        def _txn(txn):
            self._exec(txn, "INSERT INTO audit_log (at, actor, action, target, detail, client) VALUES (?, ?, ?, ?, ?, ?)",
                       (at, actor, action, target, detail, client))

        await self._run("add_audit", _txn)

    async def audit_page(self, *, offset: int, limit: int, action: str | None = None, actor: str | None = None,
                         text: str | None = None, since: float | None = None) -> tuple[int, list[dict]]:
        """(matching count, one page of audit records, newest first)."""
        where, args = [], []
        if action is not None:
            # "user" matches user.create, user.update, ...; "login" matches login only.
            where.append("(action = ? OR substr(action, 1, ?) = ?)")
            args += [action, len(action) + 1, action + "."]
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if text:
            where.append("(lower(coalesce(target, '')) LIKE ? ESCAPE '!' "
                         "OR lower(coalesce(detail, '')) LIKE ? ESCAPE '!')")
            args += [self._contains(text)] * 2
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def _txn(txn):
            self._exec(txn, "SELECT COUNT(*) FROM audit_log" + clause, args)
            total = int(txn.fetchone()[0])
            self._exec(txn, "SELECT * FROM audit_log" + clause + " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
                       (*args, limit, offset))
            return total, _rows(txn)

        return await self._run("audit_page", _txn)

    async def prune_audit(self, before: float) -> int:
        """Drop audit records older than ``before``; how many went."""

        def _txn(txn):
            self._exec(txn, "DELETE FROM audit_log WHERE at < ?", (before,))
            return txn.rowcount

        return await self._run("prune_audit", _txn)

    # == upload sessions, shared by every node (issue 15; caps: issue 10 point 14) =========
    # ``size`` is what the session file holds; ``writer`` is the node appending to it right
    # now (until ``writer_until``), so two requests never write one session at once.

    async def create_upload(self, session_id: str, repository: str, owner: str, now: float,
                            per_owner: int, overall: int) -> str:
        """Record a new session: "ok", or "owner_cap" / "overall_cap" when a cap is reached (nothing recorded).

        The counts and the insert share one transaction; nodes racing on the
        last free slot may overshoot a cap by at most one session each.
        """

        def _txn(txn):
            self._exec(txn, "SELECT COUNT(*) FROM upload_sessions")
            if txn.fetchone()[0] >= overall:
                return "overall_cap"
            self._exec(txn, "SELECT COUNT(*) FROM upload_sessions WHERE owner = ?", (owner,))
            if txn.fetchone()[0] >= per_owner:
                return "owner_cap"
            self._exec(
                txn,
                """INSERT INTO upload_sessions (id, repository, owner, size, started_at, touched_at)
                   VALUES (?, ?, ?, 0, ?, ?)""",
                (session_id, repository, owner, now, now),
            )
            return "ok"

        return await self._run("create_upload", _txn)

    async def get_upload(self, session_id: str) -> dict | None:
        def _txn(txn):
            self._exec(txn, "SELECT * FROM upload_sessions WHERE id = ?", (session_id,))
            return _row(txn)

        return await self._run("get_upload", _txn)

    async def claim_upload_write(self, session_id: str, node: str, size: int, now: float, hold: float) -> bool:
        """Make ``node`` the session's only writer when nobody writes and it still holds ``size`` bytes."""

        def _txn(txn):
            self._exec(
                txn,
                """UPDATE upload_sessions SET writer = ?, writer_until = ?, touched_at = ?
                   WHERE id = ? AND size = ? AND (writer IS NULL OR writer_until < ?)""",
                (node, now + hold, now, session_id, size, now),
            )
            return txn.rowcount == 1

        return await self._run("claim_upload_write", _txn)

    async def end_upload_write(self, session_id: str, node: str, size: int, now: float) -> None:
        """The writer is done: record the session's new size and let the next request in."""

        def _txn(txn):
            self._exec(
                txn,
                """UPDATE upload_sessions SET size = ?, touched_at = ?, writer = NULL, writer_until = NULL
                   WHERE id = ? AND writer = ?""",
                (size, now, session_id, node),
            )

        await self._run("end_upload_write", _txn)

    async def delete_upload(self, session_id: str) -> bool:
        def _txn(txn):
            self._exec(txn, "DELETE FROM upload_sessions WHERE id = ?", (session_id,))
            return txn.rowcount == 1

        return await self._run("delete_upload", _txn)

    async def stale_uploads(self, idle_before: float, now: float) -> list[str]:
        """Sessions untouched since ``idle_before`` and not being written: removed, their ids returned."""

        def _txn(txn):
            self._exec(
                txn,
                """SELECT id FROM upload_sessions
                   WHERE touched_at < ? AND (writer IS NULL OR writer_until < ?) ORDER BY id""",
                (idle_before, now),
            )
            ids = [r[0] for r in txn.fetchall()]
            for session_id in ids:
                self._exec(txn, "DELETE FROM upload_sessions WHERE id = ?", (session_id,))
            return ids

        return await self._run("stale_uploads", _txn)

    async def count_uploads(self) -> int:
        def _txn(txn):
            self._exec(txn, "SELECT COUNT(*) FROM upload_sessions")
            return txn.fetchone()[0]

        return await self._run("count_uploads", _txn)
