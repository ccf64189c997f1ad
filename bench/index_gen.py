"""Fill an index with N realistic rows, through the project's own migrations (for bench/search_bench.py).

    python bench/index_gen.py --rows 1000000 --sqlite /tmp/search.sqlite
    python bench/index_gen.py --rows 1000000 --pg postgresql://postgres@127.0.0.1:5432/postgres

The schema comes from `Index.migrate` (so the search triggers fire on every
row, as in production); the rows are then written with plain INSERTs in
batches, one transaction per batch.  Shape, for N rows (entries + tags):

* OCI: half the rows, over N/20 repositories ("<team>/<app>-<i>"): 40% blobs,
  30% manifests, 30% tags ("1.2.3", "1.2.3-alpine", "sha-<hex>", "latest"...);
  one repository ("library/busybox-mirror") holds 10,000 tags;
* Maven: the other half, files over N/10 version directories
  ("com/<org>/<module>/<artifact>/<version>/<artifact>-<version>.jar", its
  .pom and their .sha1), one directory with 5,000 files (a snapshot pile);
* 10% of everything hosted (pushed or deployed), the rest proxied;
* times spread over 90 days.

Deterministic for a given --seed.  Known names for the queries are in `PROBES`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.defer import Deferred  # noqa: E402

from harbor_cache.index import Index  # noqa: E402
from harbor_cache.index.listings_schema import DIRS_BACKFILL, PARENT_BACKFILL  # noqa: E402
from harbor_cache.testing import InlinePool  # noqa: E402

TEAMS = ["platform", "payments", "search", "data", "frontend", "infra", "ml", "mobile", "security", "growth"]
APPS = ["api", "web", "worker", "gateway", "indexer", "scheduler", "proxy", "auth", "billing", "notifier"]
ORGS = ["acme", "example", "initech", "globex", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne"]
MODULES = ["core", "util", "client", "server", "model", "commons", "io", "json", "http", "test"]
T0 = 1_700_000_000.0
BIG_REPO = "library/busybox-mirror"
BIG_DIR = "com/acme/platform/nightly/1.0-SNAPSHOT"

# What bench/search_bench.py looks for (these exist at any N >= 10,000).
PROBES = {
    "prefix": "payments/gateway-1",
    "substring": "alpine",
    "short prefix": "pa",
    "tag in the 10k repo": "busybox-mirror:1.1.5",
    "digest prefix": "sha256:",  # completed from the index by the bench
    "g:/a:/v:": "g:com.acme.core a:core-client v:1.*",
    "a: only": "a:commons-json",
    "maven free text": "com.globex.http",
    "no match": "zzqxv-nothing",
}


def hexdigest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def rows(n: int, seed: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """("entry", values) and ("tag", values) rows, N in all."""
    rnd = random.Random(seed)
    oci = n // 2
    repos = max(1, n // 20)
    big_tags = min(10_000, oci * 3 // 10 // 2)
    made = 0

    def when() -> float:
        return T0 + rnd.random() * 90 * 86400

    def kind() -> str:
        return "hosted" if rnd.random() < 0.1 else "proxy"

    # the big repository's tags (and one manifest each ten tags)
    for i in range(big_tags):
        digest = "sha256:" + hexdigest("big", i // 10)
        if i % 10 == 0:
            at = when()
            yield "entry", (kind(), "manifest", BIG_REPO, digest, digest, 1500, at)
            made += 1
        yield "tag", (BIG_REPO, f"1.{i // 1000}.{i // 10 % 100}-{i % 10}", digest, kind(), when())
        made += 1
    i = 0
    while made < oci:
        repo = f"{TEAMS[i % len(TEAMS)]}/{APPS[i // len(TEAMS) % len(APPS)]}-{i // 100}"
        for m in range(3):
            digest = "sha256:" + hexdigest(repo, m)
            at = when()
            k = kind()
            yield "entry", (k, "manifest", repo, digest, digest, 1000 + m, at)
            yield "entry", (k, "blob", "", "sha256:" + hexdigest(repo, m, "layer"), "-", 5_000_000, at)
            yield "entry", (k, "blob", "", "sha256:" + hexdigest(repo, m, "config"), "-", 2_000, at)
            variant = rnd.choice(["", "-alpine", "-slim", "-debian"])
            version = f"{rnd.randint(1, 9)}.{rnd.randint(0, 30)}.{rnd.randint(0, 9)}{variant}"
            tag = version if m < 2 else rnd.choice(["latest", "stable", "sha-" + digest[7:15]])
            yield "tag", (repo, tag, digest, k, at)
            made += 4
        i += 1
        if i > repos * 4:
            i = 0  # wrap: more rows than repositories hold
    # Maven: N/10 version directories, one holding 5,000 files
    dirs = max(1, n // 10)
    snapshot_files = min(5_000, (n - made) // 2)
    for s in range(snapshot_files):
        key = f"{BIG_DIR}/nightly-1.0-{20260101 + s // 10}.{s % 10}.jar"
        yield "entry", (kind(), "maven", "central", key, "sha256:" + hexdigest(key), 40_000, when())
        made += 1
    d = 0
    while made < n:
        org, module = ORGS[d % len(ORGS)], MODULES[d // len(ORGS) % len(MODULES)]
        artifact = f"{module}-{MODULES[d // 100 % len(MODULES)]}"
        version = f"{d // 1000 % 5 + 1}.{d % 7}.{d % 3}"
        base = f"com/{org}/{module}/{artifact}/{version}/{artifact}-{version}"
        repository = "releases" if rnd.random() < 0.1 else "central"
        k = "hosted" if repository == "releases" else "proxy"
        at = when()
        for suffix in (".jar", ".jar.sha1", ".pom", ".pom.sha1", "-sources.jar"):
            if made >= n:
                break
            key = base + suffix
            yield "entry", (k, "maven", repository, key, "sha256:" + hexdigest(key), 10_000, at)
            made += 1
        d = (d + 1) % dirs


ENTRY_SQL = """INSERT INTO entries (kind, type, repository, key, digest, size, created_at, fetched_at, last_access,
                   access_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (type, repository, key) DO NOTHING"""
TAG_SQL = """INSERT INTO tags (repository, tag, digest, kind, fetched_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (repository, tag) DO NOTHING"""


def open_index(sqlite: str | None, pg: str | None) -> tuple[Index, InlinePool]:
    pool = InlinePool.postgres(pg) if pg else InlinePool(sqlite)
    index = Index(pool)  # type: ignore[arg-type]
    d = Deferred.fromCoroutine(index.migrate())
    errors: list[Any] = []
    d.addErrback(errors.append)
    if errors:
        errors[0].raiseException()
    return index, pool


def generate(index: Index, pool: InlinePool, n: int, seed: int, batch: int = 20_000) -> float:
    """Write N rows; returns the seconds it took."""
    conn = pool.conn
    if index.dialect == "sqlite":
        conn.execute("PRAGMA synchronous=OFF")  # a throwaway bench file: no fsync per batch
    fmt = index.dialect == "postgresql"
    entry_sql = ENTRY_SQL.replace("?", "%s") if fmt else ENTRY_SQL
    tag_sql = TAG_SQL.replace("?", "%s") if fmt else TAG_SQL
    started = time.monotonic()
    entries: list[tuple[Any, ...]] = []
    tags: list[tuple[Any, ...]] = []
    done = 0

    def flush() -> None:
        cur = conn.cursor()
        if fmt:  # one multi-row INSERT per 1,000 rows (psycopg2's executemany is a round trip per row)
            from psycopg2.extras import execute_values

            values = "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0)"
            execute_values(
                cur, entry_sql.replace(values, "VALUES %s"), [(*e, e[-1], e[-1], 0) for e in entries], page_size=1000
            )
            execute_values(
                cur,
                tag_sql.replace("VALUES (%s, %s, %s, %s, %s, %s)", "VALUES %s"),
                [(*t, t[-1]) for t in tags],
                page_size=1000,
            )
        else:
            cur.executemany(entry_sql, [(*e, e[-1], e[-1]) for e in entries])
            cur.executemany(tag_sql, [(*t, t[-1]) for t in tags])
        conn.commit()
        entries.clear()
        tags.clear()

    for what, values in rows(n, seed):
        (entries if what == "entry" else tags).append(values)
        done += 1
        if done % batch == 0:
            flush()
            if done % 100_000 == 0:
                print(f"  {done:,} rows, {time.monotonic() - started:.0f} s", file=sys.stderr)
    flush()
    # The rows went in with plain INSERTs: give Maven rows their directory and fill maven_dirs, as the
    # write path and migration 21 do (index/listings_schema.py)
    cur = conn.cursor()
    cur.execute(PARENT_BACKFILL)
    cur.execute(DIRS_BACKFILL)
    conn.commit()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=29)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", help="a sqlite file (created)")
    where.add_argument("--pg", help="a PostgreSQL URL (an empty database or schema)")
    args = parser.parse_args()
    index, pool = open_index(args.sqlite, args.pg)
    seconds = generate(index, pool, args.rows, args.seed)
    print(f"{args.rows:,} rows in {seconds:.0f} s ({index.dialect})")


if __name__ == "__main__":
    main()
