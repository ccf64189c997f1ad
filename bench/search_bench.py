"""Search at scale: p50/p95 of GET /api/v1/search's query (`Search.run`) at N index rows, on sqlite and PostgreSQL.

    python bench/search_bench.py --sqlite /tmp/search.sqlite            # builds 1M rows unless already there
    python bench/search_bench.py --pg                                    # a throwaway cluster (tests/pg_support)
    python bench/search_bench.py --pg-url postgresql://... --rows 1000000 --repeat 50

Rows are written by bench/index_gen.py (through the migrations, so the
search triggers keep ``search_items``).  Each query of `index_gen.PROBES` is
run ``--repeat`` times for its first page (limit 20) as an admin (the query
the route runs, cursor and shaping included, on an inline connection); one
line per query with p50 and p95 against the 50 ms target.  Recorded by hand in
bench/RESULTS.md ("Issue 29: search") with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.defer import Deferred  # noqa: E402

from bench.index_gen import PROBES, generate, open_index  # noqa: E402
from harbor_cache.core.operations.search import Search  # noqa: E402

TARGET_MS = 50.0


def now_result(coro: Any) -> Any:
    """The result of a coroutine over an inline pool (it finishes inside the call)."""
    out: list[Any] = []
    Deferred.fromCoroutine(coro).addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", help="a sqlite file (built when it holds no rows)")
    where.add_argument("--pg-url", help="a PostgreSQL URL (built when it holds no rows)")
    where.add_argument("--pg", action="store_true", help="start a throwaway cluster (tests/pg_support.py)")
    args = parser.parse_args()
    url = args.pg_url
    if args.pg:
        from tests import pg_support

        url = pg_support.server_url()
    index, pool = open_index(args.sqlite, url)
    cur = pool.conn.cursor()
    cur.execute("SELECT (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM tags)")
    have = cur.fetchone()[0]
    pool.conn.commit()
    if have == 0:
        print(f"building {args.rows:,} rows ...", file=sys.stderr)
        print(f"built in {generate(index, pool, args.rows, 29):.0f} s", file=sys.stderr)
        have = args.rows
    if index.dialect == "postgresql":
        cur.execute("ANALYZE")
        pool.conn.commit()
    cur.execute("SELECT COUNT(*) FROM search_items")
    items = cur.fetchone()[0]
    pool.conn.commit()
    backend = now_result(index.search_backend())
    print(f"{index.dialect} ({backend}): {have:,} rows, {items:,} search items, load {os.getloadavg()[0]:.2f}")
    search = Search(index)
    probes = dict(PROBES)
    cur.execute("SELECT key FROM entries WHERE type = 'manifest' ORDER BY id LIMIT 1 OFFSET 1000")
    probes["digest prefix"] = cur.fetchone()[0][:19]
    pool.conn.commit()
    print(f"{'query':<22} {'q':<38} {'hits':>5} {'p50 ms':>8} {'p95 ms':>8}  target {TARGET_MS:.0f} ms")
    for name, q in probes.items():
        times = []
        hits = 0
        for _ in range(args.repeat):
            started = time.perf_counter()
            page = now_result(search.run(q, is_admin=True, limit=20))
            times.append((time.perf_counter() - started) * 1000)
            hits = len(page["results"])
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        verdict = "ok" if p95 <= TARGET_MS else "OVER"
        print(f"{name:<22} {q:<38} {hits:>5} {p50:>8.1f} {p95:>8.1f}  {verdict}")


if __name__ == "__main__":
    main()
