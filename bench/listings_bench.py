"""Listings at scale (issue 30): entry pages at any depth, catalog at any ``last``, images, tags, browse.

    python bench/listings_bench.py --rows 100000                 # sqlite in a temp dir
    python bench/listings_bench.py --rows 100000 --pg URL         # PostgreSQL (an empty database or schema)
    python bench/listings_bench.py --rows 100000 --pg-temp        # a throwaway PostgreSQL (tests/pg_support.py)

Fills an index with bench/index_gen.py's rows, then times each listing query
through the index as the API calls it (median of --runs, milliseconds), each
beside the query it replaces where that still exists, and prints the size of
the JSON page (a response's memory, bounded by ``limit``).  Target: every
listing under 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import index_gen  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

TARGET_MS = 200.0


def now(coro: Any) -> Any:
    out: list[Any] = []
    d = Deferred.fromCoroutine(coro)
    d.addBoth(out.append)
    result = out[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def timed(runs: int, make: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = now(make())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def size_of(result: Any) -> int:
    def plain(x: Any) -> Any:
        if hasattr(x, "__dataclass_fields__"):
            return {f: getattr(x, f) for f in x.__dataclass_fields__}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        return x

    return len(json.dumps(plain(result)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", help="a PostgreSQL URL (an empty database or schema); default a sqlite file")
    parser.add_argument("--pg-temp", action="store_true", help="a throwaway PostgreSQL cluster (tests/pg_support.py)")
    parser.add_argument("--old", action="store_true", help="also time the queries these replace")
    parser.add_argument("--reuse", help="a sqlite file an earlier run filled (kept in /tmp/listings-bench-*): no fill")
    args = parser.parse_args()
    if args.pg_temp:
        from tests import pg_support

        pg_support.admin("CREATE DATABASE listings_bench")
        args.pg = pg_support._with(pg_support.server_url(), path="/listings_bench")
    path = args.reuse or (None if args.pg else os.path.join(tempfile.mkdtemp(prefix="listings-bench-"), "index.sqlite"))
    index, pool = index_gen.open_index(path, args.pg)
    seconds = 0.0 if args.reuse else index_gen.generate(index, pool, args.rows, 29)
    if index.dialect == "sqlite":
        pool.conn.execute("ANALYZE")
    else:
        pool.conn.cursor().execute("ANALYZE")
        pool.conn.commit()
    print(f"{args.rows:,} rows ({index.dialect}) generated in {seconds:.0f} s; median of {args.runs} runs")
    cur = pool.conn.cursor()
    q = (lambda s: s.replace("?", "%s")) if index.dialect == "postgresql" else (lambda s: s)

    def row_at(order: str, depth: float) -> tuple[Any, int]:
        """(sort value, id) of the row at ``depth`` (0..1) of an order: a deep page's cursor (setup, not timed)."""
        cur.execute(q("SELECT COUNT(*) FROM entries"))
        n = cur.fetchone()[0]
        column = index.ENTRY_SORTS[order]
        cur.execute(
            q(f"SELECT {column}, id FROM entries ORDER BY {column} DESC, id DESC LIMIT 1 OFFSET ?"), (int(n * depth),)
        )
        return tuple(cur.fetchone())  # type: ignore[return-value]

    lines: list[tuple[str, float, int]] = []
    cur.execute(q("SELECT COUNT(*) FROM entries"))
    entry_count = cur.fetchone()[0]

    def measure(label: str, make: Any) -> None:
        ms, result = timed(args.runs, make)
        lines.append((label, ms, size_of(result)))

    for sort in ("last_access", "size", "created", "hits", "repository"):
        after = row_at(sort, 0.99)
        measure(
            f"entries page 50, sort={sort} desc, cursor at 99%",
            lambda s=sort, a=after: index.cache_entries_after(sort=s, descending=True, after=a, limit=51),
        )
    after = row_at("last_access", 0.5)
    measure(
        "entries page 50, front=maven, cursor at 50%",
        lambda: index.cache_entries_after(sort="last_access", descending=True, after=after, limit=51, front="maven"),
    )
    size_after = row_at("size", 0.5)
    measure(
        "entries page 50, kind=hosted sort=size, cursor at 50%",
        lambda: index.cache_entries_after(sort="size", descending=True, after=size_after, limit=51, kind="hosted"),
    )
    measure(
        f"entries page 50, repository={index_gen.BIG_REPO}",
        lambda: index.cache_entries_after(
            sort="last_access", descending=True, after=None, limit=51, repository=index_gen.BIG_REPO
        ),
    )
    measure("entries count (capped at 100000)", lambda: index.count_entries_capped(100_000))
    measure("entries count front=maven (capped)", lambda: index.count_entries_capped(100_000, front="maven"))
    if args.old:
        measure(
            "OLD entries page 50 by OFFSET at 99% with COUNT",
            lambda: index.cache_entries_page(
                offset=entry_count * 99 // 100, limit=50, sort="last_access", descending=True, count_cap=1 << 40
            ),
        )
    measure("_catalog n=100, last=''", lambda: index.list_repositories_page("", 101))
    measure("_catalog n=100, last='security/'", lambda: index.list_repositories_page("security/", 101))
    measure("_catalog n=100, last='zz' (the end)", lambda: index.list_repositories_page("zz", 101))

    async def images_page(last: str) -> Any:
        names = await index.list_repositories_page(last, 101)
        return await index.image_repositories_page(names[:100])

    measure("images page 100 (names + counts)", lambda: images_page(""))
    measure("images page 100 incl. the 10k-tag repository", lambda: images_page("library/"))
    measure("tags page 100 of the 10k-tag repository", lambda: index.image_tags_page(index_gen.BIG_REPO, "", 101))
    measure("tags page 100, deep (after 1.5.)", lambda: index.image_tags_page(index_gen.BIG_REPO, "1.5.", 101))
    measure("browse central root (page 5000)", lambda: index.maven_children("central", "", None, 5000))
    measure("browse central com/acme (page 5000)", lambda: index.maven_children("central", "com/acme", None, 5000))
    measure(
        "browse the 5k-file directory (page 5000)",
        lambda: index.maven_children("central", index_gen.BIG_DIR, None, 5000),
    )
    measure(
        "browse the 5k-file directory, page 100 at the end",
        lambda: index.maven_children(
            "central", index_gen.BIG_DIR, ("f", index_gen.BIG_DIR + "/nightly-1.0-20260500"), 100
        ),
    )
    measure("/repositories statistics recount (held for the TTL)", lambda: index.maven_repository_stats())
    if args.old:
        measure("OLD _catalog (UNION, sort)", lambda: old_catalog(index, cur, q))
        measure("OLD /api/v1/images (whole list)", lambda: index.image_repositories())
        measure("OLD browse central root (every row below)", lambda: index.maven_entries_under("central", ""))
    width = max(len(label) for label, _, _ in lines)
    for label, ms, size in lines:
        verdict = "" if label.startswith("OLD") or "statistics" in label else ("ok" if ms < TARGET_MS else "OVER")
        print(f"{label:<{width}}  {ms:9.1f} ms  {size:>10,} B  {verdict}")


async def old_catalog(index: Any, cur: Any, q: Any) -> list[str]:
    cur.execute(
        q(
            """SELECT repository FROM (SELECT repository FROM tags
                   UNION SELECT repository FROM entries WHERE type = 'manifest') AS names
               WHERE repository > ? ORDER BY repository LIMIT 101"""
        ),
        ("",),
    )
    return [r[0] for r in cur.fetchall()]


if __name__ == "__main__":
    main()
