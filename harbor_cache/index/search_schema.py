"""The search table's schema: ``search_items``, its text index, the triggers that keep it in sync, the back-fill.

One row per searchable thing: an OCI repository (``image``), a tag, a
manifest, a Maven file (checksums, signatures and ``maven-metadata.xml``
left out).  Triggers on ``tags`` and ``entries`` write it inside the very
transaction that adds, changes or removes the source row, whichever store
(entries, tags, hosted, maven, eviction, gc, clear) does it, so the table can
never drift; an ``image`` row counts the tags and manifests that name its
repository (``refs``) and goes with the last of them.

``text`` is the lowercased searchable string (``repository``;
``repository:tag``; the manifest digest's hex; the Maven path with slashes
and with dots).  It is indexed by the engine's own text index: an FTS5
table with the trigram tokenizer on sqlite (needs sqlite >= 3.34), a GIN
``pg_trgm`` index on PostgreSQL (when the extension cannot be created the
migration goes on without it and `index.search` logs that searches scan).

Statements run on one engine only carry a ``-- only <dialect>`` first line
(`only`, read by `SchemaStore.migrate`).  No statement holds a ``%`` or a
question mark: psycopg2 would read them as placeholders.
"""

from __future__ import annotations


def only(dialect: str, statement: str) -> str:
    """A migration statement that runs on ``dialect`` ("sqlite" or "postgresql") only."""
    return f"-- only {dialect}\n{statement}"


def dialect_of_statement(statement: str) -> str | None:
    """The dialect an `only` statement is for; None for a statement of both engines."""
    if statement.startswith("-- only "):
        return statement.split("\n", 1)[0][len("-- only ") :].strip()
    return None


_TABLE = """CREATE TABLE search_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    repository TEXT NOT NULL,
    src TEXT NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    digest TEXT,
    size INTEGER,
    hosted INTEGER NOT NULL,
    refs INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (kind, repository, src)
)"""

_COLUMNS = "kind, repository, src, name, text, digest, size, hosted, refs, updated_at"

# -- sqlite ----------------------------------------------------------------------------

_SQ_MAVEN_WANTED = (
    "{r}.type = 'maven' AND {r}.key NOT GLOB '*.sha1' AND {r}.key NOT GLOB '*.sha256' "
    "AND {r}.key NOT GLOB '*.sha512' AND {r}.key NOT GLOB '*.md5' AND {r}.key NOT GLOB '*.asc' "
    "AND {r}.key NOT GLOB '*maven-metadata.xml*'"
)
_SQ_FILE = "substr({r}.key, length(rtrim({r}.key, replace({r}.key, '/', ''))) + 1)"
_SQ_MAVEN_TEXT = "lower({r}.key || ' ' || replace({r}.key, '/', '.'))"
_SQ_HEX = "lower(substr({r}.key, instr({r}.key, ':') + 1))"


def _sq_image_add(r: str, at: str) -> str:
    return f"""INSERT INTO search_items ({_COLUMNS})
        VALUES ('image', {r}.repository, '', {r}.repository, lower({r}.repository), NULL, NULL,
                {r}.kind = 'hosted', 1, {at})
        ON CONFLICT (kind, repository, src) DO UPDATE SET refs = search_items.refs + 1,
            hosted = MAX(search_items.hosted, excluded.hosted),
            updated_at = MAX(search_items.updated_at, excluded.updated_at);"""


def _sq_image_drop(r: str) -> str:
    return f"""UPDATE search_items SET refs = refs - 1 WHERE kind = 'image' AND repository = {r}.repository AND src = '';
        DELETE FROM search_items WHERE kind = 'image' AND repository = {r}.repository AND src = '' AND refs <= 0;"""


_SQLITE = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(text, content='search_items', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER search_fts_ins AFTER INSERT ON search_items BEGIN
        INSERT INTO search_fts (rowid, text) VALUES (NEW.id, NEW.text);
    END""",
    """CREATE TRIGGER search_fts_del AFTER DELETE ON search_items BEGIN
        INSERT INTO search_fts (search_fts, rowid, text) VALUES ('delete', OLD.id, OLD.text);
    END""",
    f"""CREATE TRIGGER search_tags_ins AFTER INSERT ON tags BEGIN
        INSERT INTO search_items ({_COLUMNS}) VALUES ('tag', NEW.repository, NEW.tag, NEW.tag,
            lower(NEW.repository || ':' || NEW.tag), NEW.digest, NULL, NEW.kind = 'hosted', 1, NEW.updated_at);
        {_sq_image_add("NEW", "NEW.updated_at")}
    END""",
    """CREATE TRIGGER search_tags_upd AFTER UPDATE OF digest, kind, updated_at ON tags BEGIN
        UPDATE search_items SET digest = NEW.digest, hosted = NEW.kind = 'hosted', updated_at = NEW.updated_at
        WHERE kind = 'tag' AND repository = NEW.repository AND src = NEW.tag;
    END""",
    f"""CREATE TRIGGER search_tags_del AFTER DELETE ON tags BEGIN
        DELETE FROM search_items WHERE kind = 'tag' AND repository = OLD.repository AND src = OLD.tag;
        {_sq_image_drop("OLD")}
    END""",
    f"""CREATE TRIGGER search_manifests_ins AFTER INSERT ON entries WHEN NEW.type = 'manifest' BEGIN
        INSERT INTO search_items ({_COLUMNS}) VALUES ('manifest', NEW.repository, NEW.key,
            {_SQ_HEX.format(r="NEW")}, {_SQ_HEX.format(r="NEW")}, NEW.digest, NEW.size, NEW.kind = 'hosted', 1, NEW.fetched_at);
        {_sq_image_add("NEW", "NEW.fetched_at")}
    END""",
    f"""CREATE TRIGGER search_maven_ins AFTER INSERT ON entries WHEN {_SQ_MAVEN_WANTED.format(r="NEW")} BEGIN
        INSERT INTO search_items ({_COLUMNS}) VALUES ('maven', NEW.repository, NEW.key, {_SQ_FILE.format(r="NEW")},
            {_SQ_MAVEN_TEXT.format(r="NEW")}, NEW.digest, NEW.size, NEW.kind = 'hosted', 1, NEW.fetched_at);
    END""",
    """CREATE TRIGGER search_entries_upd AFTER UPDATE OF digest, size, kind ON entries
        WHEN NEW.type IN ('manifest', 'maven') BEGIN
        UPDATE search_items SET digest = NEW.digest, size = NEW.size, hosted = NEW.kind = 'hosted',
            updated_at = NEW.fetched_at
        WHERE kind = NEW.type AND repository = NEW.repository AND src = NEW.key;
    END""",
    f"""CREATE TRIGGER search_manifests_del AFTER DELETE ON entries WHEN OLD.type = 'manifest' BEGIN
        DELETE FROM search_items WHERE kind = 'manifest' AND repository = OLD.repository AND src = OLD.key;
        {_sq_image_drop("OLD")}
    END""",
    """CREATE TRIGGER search_maven_del AFTER DELETE ON entries WHEN OLD.type = 'maven' BEGIN
        DELETE FROM search_items WHERE kind = 'maven' AND repository = OLD.repository AND src = OLD.key;
    END""",
]

# -- PostgreSQL -------------------------------------------------------------------------

_PG_MAVEN_WANTED = "{r}.type = 'maven' AND {r}.key !~ '([.](sha1|sha256|sha512|md5|asc)$|maven-metadata[.]xml)'"
_PG_FILE = "regexp_replace({r}.key, '^.*/', '')"
_PG_MAVEN_TEXT = "lower({r}.key || ' ' || replace({r}.key, '/', '.'))"
_PG_HEX = "lower(substr({r}.key, strpos({r}.key, ':') + 1))"

_PG_FUNCTIONS = f"""CREATE OR REPLACE FUNCTION search_image_add(repo TEXT, is_hosted INTEGER, at DOUBLE PRECISION)
RETURNS void LANGUAGE sql AS $f$
    INSERT INTO search_items ({_COLUMNS}) VALUES ('image', repo, '', repo, lower(repo), NULL, NULL, is_hosted, 1, at)
    ON CONFLICT (kind, repository, src) DO UPDATE SET refs = search_items.refs + 1,
        hosted = GREATEST(search_items.hosted, excluded.hosted),
        updated_at = GREATEST(search_items.updated_at, excluded.updated_at)
$f$"""

_PG_DROP = """CREATE OR REPLACE FUNCTION search_image_drop(repo TEXT) RETURNS void LANGUAGE sql AS $f$
    UPDATE search_items SET refs = refs - 1 WHERE kind = 'image' AND repository = repo AND src = '';
    DELETE FROM search_items WHERE kind = 'image' AND repository = repo AND src = '' AND refs <= 0
$f$"""

_PG_TAGS = """CREATE OR REPLACE FUNCTION search_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_items (kind, repository, src, name, text, digest, size, hosted, refs, updated_at)
        VALUES ('tag', NEW.repository, NEW.tag, NEW.tag, lower(NEW.repository || ':' || NEW.tag), NEW.digest,
                NULL, (NEW.kind = 'hosted')::int, 1, NEW.updated_at);
        PERFORM search_image_add(NEW.repository, (NEW.kind = 'hosted')::int, NEW.updated_at);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.digest IS DISTINCT FROM OLD.digest OR NEW.kind IS DISTINCT FROM OLD.kind
           OR NEW.updated_at IS DISTINCT FROM OLD.updated_at THEN
            UPDATE search_items SET digest = NEW.digest, hosted = (NEW.kind = 'hosted')::int,
                updated_at = NEW.updated_at
            WHERE kind = 'tag' AND repository = NEW.repository AND src = NEW.tag;
        END IF;
    ELSE
        DELETE FROM search_items WHERE kind = 'tag' AND repository = OLD.repository AND src = OLD.tag;
        PERFORM search_image_drop(OLD.repository);
    END IF;
    RETURN NULL;
END
$f$"""

_PG_ENTRIES = f"""CREATE OR REPLACE FUNCTION search_entries_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.type = 'manifest' THEN
            INSERT INTO search_items (kind, repository, src, name, text, digest, size, hosted, refs, updated_at)
            VALUES ('manifest', NEW.repository, NEW.key, {_PG_HEX.format(r="NEW")}, {_PG_HEX.format(r="NEW")}, NEW.digest, NEW.size,
                    (NEW.kind = 'hosted')::int, 1, NEW.fetched_at);
            PERFORM search_image_add(NEW.repository, (NEW.kind = 'hosted')::int, NEW.fetched_at);
        ELSIF {_PG_MAVEN_WANTED.format(r="NEW")} THEN
            INSERT INTO search_items (kind, repository, src, name, text, digest, size, hosted, refs, updated_at)
            VALUES ('maven', NEW.repository, NEW.key, {_PG_FILE.format(r="NEW")}, {_PG_MAVEN_TEXT.format(r="NEW")},
                    NEW.digest, NEW.size, (NEW.kind = 'hosted')::int, 1, NEW.fetched_at);
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.type IN ('manifest', 'maven') AND (NEW.digest IS DISTINCT FROM OLD.digest
           OR NEW.size IS DISTINCT FROM OLD.size OR NEW.kind IS DISTINCT FROM OLD.kind) THEN
            UPDATE search_items SET digest = NEW.digest, size = NEW.size, hosted = (NEW.kind = 'hosted')::int,
                updated_at = NEW.fetched_at
            WHERE kind = NEW.type AND repository = NEW.repository AND src = NEW.key;
        END IF;
    ELSIF OLD.type = 'manifest' THEN
        DELETE FROM search_items WHERE kind = 'manifest' AND repository = OLD.repository AND src = OLD.key;
        PERFORM search_image_drop(OLD.repository);
    ELSIF OLD.type = 'maven' THEN
        DELETE FROM search_items WHERE kind = 'maven' AND repository = OLD.repository AND src = OLD.key;
    END IF;
    RETURN NULL;
END
$f$"""

# pg_trgm lives in "public" when there is one (a schema per tenant, as the tests use, shares it);
# a server without contrib, or a role that may not create it, leaves the table without the index.
_PG_TRGM = """DO $f$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    ELSE
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available: search scans';
END
$f$"""

_PG_TRGM_INDEX = """DO $f$
DECLARE
    home TEXT;
BEGIN
    SELECT n.nspname INTO home FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF home IS NOT NULL THEN
        EXECUTE 'CREATE INDEX search_items_trgm ON search_items USING gin (text '
            || quote_ident(home) || '.gin_trgm_ops)';
    END IF;
END
$f$"""

_POSTGRES = [
    _PG_TRGM,
    _PG_TRGM_INDEX,
    _PG_FUNCTIONS,
    _PG_DROP,
    _PG_TAGS,
    _PG_ENTRIES,
    "CREATE TRIGGER search_tags AFTER INSERT OR UPDATE OR DELETE ON tags "
    "FOR EACH ROW EXECUTE FUNCTION search_tags_sync()",
    "CREATE TRIGGER search_entries AFTER INSERT OR UPDATE OR DELETE ON entries "
    "FOR EACH ROW EXECUTE FUNCTION search_entries_sync()",
]

# -- the back-fill (rows written before the triggers existed) ------------------------------


def _backfill(dialect: str) -> list[str]:
    hosted = "(CASE WHEN {r}.kind = 'hosted' THEN 1 ELSE 0 END)"
    hex_, file_, text, wanted = (
        (_SQ_HEX, _SQ_FILE, _SQ_MAVEN_TEXT, _SQ_MAVEN_WANTED)
        if dialect == "sqlite"
        else (_PG_HEX, _PG_FILE, _PG_MAVEN_TEXT, _PG_MAVEN_WANTED)
    )
    return [
        only(
            dialect,
            f"""INSERT INTO search_items ({_COLUMNS})
                SELECT 'tag', t.repository, t.tag, t.tag, lower(t.repository || ':' || t.tag), t.digest, NULL,
                       {hosted.format(r="t")}, 1, t.updated_at FROM tags AS t""",
        ),
        only(
            dialect,
            f"""INSERT INTO search_items ({_COLUMNS})
                SELECT 'manifest', e.repository, e.key, {hex_.format(r="e")}, {hex_.format(r="e")}, e.digest, e.size,
                       {hosted.format(r="e")}, 1, e.fetched_at FROM entries AS e WHERE e.type = 'manifest'""",
        ),
        only(
            dialect,
            f"""INSERT INTO search_items ({_COLUMNS})
                SELECT 'maven', e.repository, e.key, {file_.format(r="e")}, {text.format(r="e")}, e.digest, e.size,
                       {hosted.format(r="e")}, 1, e.fetched_at FROM entries AS e WHERE {wanted.format(r="e")}""",
        ),
        only(
            dialect,
            f"""INSERT INTO search_items ({_COLUMNS})
                SELECT 'image', repository, '', repository, lower(repository), NULL, NULL, MAX(hosted), COUNT(*),
                       MAX(updated_at)
                FROM search_items WHERE kind IN ('tag', 'manifest') GROUP BY repository""",
        ),
    ]


SEARCH_MIGRATION: list[str] = [
    _TABLE,
    # prefixes under 3 characters; on the text's head only (a PostgreSQL b-tree row holds at most ~2.7 kB,
    # a Maven path may have 2048 characters, and its text holds it twice)
    "CREATE INDEX search_items_head ON search_items (substr(text, 1, 200))",
    "CREATE INDEX search_items_recent ON search_items (updated_at, id)",
    *[only("sqlite", s) for s in _SQLITE[:3]],
    *_backfill("sqlite"),
    *[only("sqlite", s) for s in _SQLITE[3:]],
    *[only("postgresql", s) for s in _POSTGRES[:2]],
    *_backfill("postgresql"),
    *[only("postgresql", s) for s in _POSTGRES[2:]],
]

# The exact and prefix tiers of a search (index/search.py) look names up here, never through the text index.
# PostgreSQL: text_pattern_ops, so a LIKE 'prefix%' is a range on it whatever the database's collation.
SEARCH_NAME_INDEX: list[str] = [
    only("sqlite", "CREATE INDEX search_items_name ON search_items (lower(name))"),
    only("postgresql", "CREATE INDEX search_items_name ON search_items (lower(name) text_pattern_ops)"),
]
