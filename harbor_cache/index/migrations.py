"""The schema: numbered migrations, applied in order, each once, on either engine.

A migration is a list of statements in sqlite's spelling (see
`harbor_cache.index.engine` for the types PostgreSQL gets instead).  Append
new migrations at the end; never edit or renumber an applied one, since
``schema_version`` records numbers.
"""

from __future__ import annotations

from harbor_cache.index.bulk_delete import BULK_DELETE_MIGRATION
from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_value
from harbor_cache.index.listings_schema import LISTINGS_MIGRATION
from harbor_cache.index.search_schema import SEARCH_MIGRATION, SEARCH_NAME_INDEX, dialect_of_statement
from harbor_cache.index.totals_schema import TOTALS_MIGRATION

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
    # 8: the audit log: who did what and when, for the console
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
    # 10: configuration as code: 'config' rows are the config file's [[upstreams]], applied at
    #     every start (and read-only in the API); 'api' rows (every older one) are the API's
    [
        "ALTER TABLE upstreams ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'api'",
    ],
    # 11: one live process per node name: each process holds its name with a random instance
    #     id and refreshes the heartbeat; a second live process with the same name refuses to start
    [
        """CREATE TABLE nodes (
            name TEXT PRIMARY KEY,
            instance TEXT NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        )""",
    ],
    # 12: hosted-content policies: tag retention rules (keep_tags a JSON list) and immutable-tag rules
    [
        """CREATE TABLE retention_rules (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            repositories TEXT NOT NULL,
            keep_last INTEGER,
            keep_days INTEGER,
            keep_tags TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE immutable_rules (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            repositories TEXT NOT NULL,
            tags TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
    ],
    # 13: online garbage collection of hosted content: claims carry their time (an upload or
    #     mount protects a blob for gc.grace_seconds), an index records its child manifests,
    #     and the last collections are kept for GET /api/v1/gc
    [
        "ALTER TABLE blob_refs ADD COLUMN claimed_at REAL",
        """CREATE TABLE manifest_children (
            repository TEXT NOT NULL,
            manifest TEXT NOT NULL,
            child TEXT NOT NULL,
            PRIMARY KEY (repository, manifest, child)
        )""",
        "CREATE INDEX manifest_children_child ON manifest_children (repository, child)",
        """CREATE TABLE gc_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            node TEXT NOT NULL,
            reason TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            manifests INTEGER NOT NULL,
            blobs INTEGER NOT NULL,
            freed_bytes INTEGER NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX gc_runs_finished ON gc_runs (finished_at)",
    ],
    # 14: quotas on hosted content: a repository glob ("team-a/*") or one hosted Maven repository
    #     ("maven:<id>"); usage is computed from the index (blob_refs, entries, tags) when asked
    [
        """CREATE TABLE quotas (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            repositories TEXT NOT NULL UNIQUE,
            max_bytes INTEGER NOT NULL,
            max_tags INTEGER,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ],
    # 15: sync rules (scheduled pre-fetch): the rule's fields as JSON in ``spec``; one row per run in sync_runs
    [
        """CREATE TABLE sync_rules (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            spec TEXT NOT NULL,
            interval_seconds INTEGER NOT NULL,
            enabled INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rule_id INTEGER NOT NULL,
            node TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL,
            manifests INTEGER NOT NULL,
            blobs INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            tags_seen INTEGER NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX sync_runs_rule ON sync_runs (rule_id, started_at)",
    ],
    # 16: traffic history for the dashboard's charts: counters in time buckets (seconds: 60 or 3600),
    #     added to by every node's periodic flush (core/operations/history.py)
    [
        """CREATE TABLE stats_buckets (
            granularity INTEGER NOT NULL,
            bucket_start INTEGER NOT NULL,
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            value INTEGER NOT NULL,
            PRIMARY KEY (granularity, bucket_start, kind, label)
        )""",
    ],
    # 17: which image a proxied blob belongs to (the console names blob rows): one row per blob and
    #     repository, written when a proxied image manifest is stored; hosted blobs have blob_refs
    [
        """CREATE TABLE blob_images (
            digest TEXT NOT NULL,
            repository TEXT NOT NULL,
            PRIMARY KEY (digest, repository)
        )""",
    ],
    # 18: search: one row per repository, tag, manifest and Maven file, kept by triggers, with the
    #     engine's trigram index over its text (index/search_schema.py; back-fills existing rows)
    SEARCH_MIGRATION,
    # 19: search ranks by name in bounded, index-ordered steps: an index on the lowercased name
    SEARCH_NAME_INDEX,
    # 20: identity for an organisation: robots are ``users`` rows of kind 'robot' (``robot$<name>``);
    #     ``source`` says where a user comes from (local, ldap, oidc) and ``external_id`` names it
    #     there (a DN, an OIDC subject); ``grants`` is a JSON list of `auth.permissions.Grant`;
    #     groups hold grants (and optionally a role) for their members
    [
        "ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user'",
        "ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local'",
        "ALTER TABLE users ADD COLUMN external_id TEXT",
        "ALTER TABLE users ADD COLUMN grants TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE users ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN expires_at REAL",
        "ALTER TABLE users ADD COLUMN last_used_at REAL",
        "ALTER TABLE users ADD COLUMN last_used_addr TEXT",
        "ALTER TABLE users ADD COLUMN created_by TEXT",
        """CREATE TABLE groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            role TEXT,
            grants TEXT NOT NULL DEFAULT '[]',
            source TEXT NOT NULL DEFAULT 'local',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE group_members (
            group_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            source TEXT NOT NULL DEFAULT 'local',
            PRIMARY KEY (group_id, user_id)
        )""",
        "CREATE INDEX group_members_user ON group_members (user_id)",
    ],
    # 21: maintained totals (issue 30): per-digest reference counts and sizes, entry counts per (type, kind)
    #     and the byte totals, kept by triggers on entries so that the cache statistics and every eviction
    #     pass read seven rows instead of a GROUP BY digest over every entry (index/totals_schema.py says
    #     why triggers rather than the write transactions); back-fills them from the existing rows
    TOTALS_MIGRATION,
    # 22 (issue 30, listings): keyset paging of the console's entry table with an index behind each
    #     sort key (id breaks ties; repository= with the default sort has its own); Maven browse in
    #     proportion to a directory's children: ``parent`` (a file's directory) with an index by
    #     (repository, parent, key), and ``maven_dirs`` (each directory once, under its parent, with
    #     the newest write below it), kept on every Maven write (index/listings.py); both back-filled
    LISTINGS_MIGRATION,
    # 23: set-based batch deletion (issue 30): eviction and clear adjust the totals and the search table once
    #     per batch and skip the per-row triggers, guarded by the bulk_delete row (sqlite) or the
    #     transaction-local harbor_cache.bulk_delete setting (PostgreSQL) (index/bulk_delete.py)
    BULK_DELETE_MIGRATION,
]


# The advisory lock key that serializes migrations across nodes (PostgreSQL).
MIGRATION_LOCK = 0x68617262  # "harb"


class SchemaStore(Store):
    """Brings the database up to the newest schema, and says whether it answers at all."""

    async def migrate(self) -> int:
        """Apply the numbered migrations not yet applied; returns the schema version."""

        def _txn(txn: Cursor) -> int:
            if self.dialect == "postgresql":
                # Nodes starting together: one migrates, the others wait and then find nothing to do.
                self._exec(txn, "SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            self._exec(txn, self._ddl("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
            self._exec(txn, "SELECT MAX(version) FROM schema_version")
            current = fetch_value(txn) or 0
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                for statement in statements:
                    if dialect_of_statement(statement) not in (None, self.dialect):
                        continue  # written for the other engine (index/search_schema.py `only`)
                    self._exec(
                        txn, self._ddl(statement.split("\n", 1)[1] if statement.startswith("-- only ") else statement)
                    )
                self._exec(txn, "INSERT INTO schema_version (version) VALUES (?)", (number,))
                current = number
            if self.dialect == "sqlite":
                self._analyze_txn(txn)
            return current

        return await self._run("migrate", _txn)

    async def analyze(self, full: bool = True) -> None:
        """Refresh the planner's statistics: at start (`migrate`), after large deletes, each eviction pass.

        sqlite never gathers them by itself, and without them it reads
        ``kind = 'proxy'`` as selective: it pages a clear through
        ``entries_kind_access`` and sorts every proxy row per page.
        ``analysis_limit`` samples each index (10,000 rows), so an ANALYZE
        costs tens of milliseconds at a million rows; ``full=False`` is ``PRAGMA optimize``,
        which analyzes only the tables whose size changed much since (cheap
        enough for every eviction pass).  PostgreSQL's autovacuum keeps its
        statistics, but lags behind a clear of the whole cache; ANALYZE of
        the two tables is cheap there too (``full=False`` leaves it to autovacuum).
        """

        def _txn(txn: Cursor) -> None:
            if self.dialect == "sqlite":
                self._analyze_txn(txn, full)
            elif full:
                self._exec(txn, "ANALYZE entries")
                self._exec(txn, "ANALYZE digest_refs")

        await self._run("analyze", _txn)

    def _analyze_txn(self, txn: Cursor, full: bool = True) -> None:
        self._exec(txn, "PRAGMA analysis_limit = 10000")
        self._exec(txn, "ANALYZE" if full else "PRAGMA optimize")

    async def ping(self) -> bool:
        """One trivial query: True when the database answers (``/health``)."""

        def _txn(txn: Cursor) -> bool:
            self._exec(txn, "SELECT 1")
            return fetch_value(txn) == 1

        if not self.availability.up:
            # After an outage: the shared pools' connections are dead too.  Pinging through them while the
            # database is away drops those (as /health did when it shared them), so the first requests after
            # it comes back open fresh connections instead of failing on the dead ones.
            for pool in {id(p): p for p in (self._pool, self._read_pool) if p is not self.ping_pool}.values():
                try:
                    await self._run("ping", _txn, pool=pool)
                except Exception:
                    pass
        return await self._run("ping", _txn, pool=self.ping_pool)
