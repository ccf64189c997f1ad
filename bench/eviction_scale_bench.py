"""Issue 30 point 3: totals, eviction and clear at 100k and 1M entries, each figure against its target.

Fills an index with `bench/index_gen.py`'s realistic rows (OCI and Maven,
10% hosted, times over 90 days; blob rows get their own digest, as in the
service, where the generator shares one), then on the real reactor with the
real adbapi pool, storage I/O pool and `Evictor`, as the service runs them:

1. ``stats``: `Evictor.stats` (what /api/v1/cache/stats and the gauges read), median of 5;
2. ``nothing``: an eviction pass with nothing to evict (retention 10 years, max_size above the content);
3. ``evict 10%``: a pass with ``cache.max_size`` at 90% of the evictable bytes (lru);
4. ``clear``: `Evictor.clear_proxy` (``DELETE /api/v1/cache``) of every proxy entry left.

Meanwhile an index ``ping`` (what /health asks the index) every 50 ms records
the worst wait.  There are no files under blobs/ (eviction ignores missing
ones): the figures are the index's cost.

    python bench/eviction_scale_bench.py --rows 100000 1000000
    python bench/eviction_scale_bench.py --rows 100000 --pg postgresql://postgres@127.0.0.1:5432/postgres
    python bench/eviction_scale_bench.py --rows 100000 --pg throwaway   # a cluster of its own, as the tests do
    python bench/eviction_scale_bench.py --rows 1000000 --keep /tmp/idx   # reuse /tmp/idx/1000000.sqlite

Targets (issue 30): stats < 0.2 s, nothing < 1 s, 10% < 20 s, clear < 60 s, /health ping < 100 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

import bench.index_gen as index_gen  # noqa: E402
from harbor_cache.core.flight.access import AccessRecorder  # noqa: E402
from harbor_cache.core.operations.eviction import Evictor  # noqa: E402
from harbor_cache.index import Index, open_pool  # noqa: E402
from harbor_cache.index.bulk_delete import SQLITE_GUARDED_TRIGGERS  # noqa: E402
from harbor_cache.index.engine import open_ping_pool, open_sqlite_read_pool  # noqa: E402
from harbor_cache.index.search_schema import dialect_of_statement  # noqa: E402
from harbor_cache.index.totals_schema import TOTALS_MIGRATION  # noqa: E402
from harbor_cache.settings.runtime import RuntimeSettings  # noqa: E402
from harbor_cache.storage import Storage, ThreadIO  # noqa: E402

TARGETS = {"stats": 0.2, "nothing": 1.0, "evict 10%": 20.0, "clear": 60.0}
HEALTH_TARGET = 0.1
_generator_rows = index_gen.rows


def _cpu() -> float:
    """This process's CPU seconds so far (user + system, all threads: the sqlite work runs in the pool's)."""
    times = os.times()
    return times.user + times.system


def rows_with_blob_digests(n: int, seed: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """index_gen's rows, each blob with its own digest (its key), so bytes add up as in a real cache."""
    for what, values in _generator_rows(n, seed):
        if what == "entry" and values[1] == "blob":
            values = (*values[:4], values[3], *values[5:])
        yield what, values


def refresh_triggers(sqlite: str) -> None:
    """A kept sqlite file gets the totals triggers of the code being measured (they may have changed since).

    With the bulk-delete migration applied (a ``bulk_delete`` table), the
    triggers it guards are replaced by their guarded form again; a file
    without it gets that migration from `Index.migrate`.
    """
    conn = sqlite3.connect(sqlite)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'totals_%'"):
            conn.execute(f"DROP TRIGGER {name}")
        for statement in TOTALS_MIGRATION:
            if dialect_of_statement(statement) == "sqlite" and "CREATE TRIGGER" in statement:
                conn.execute(statement.split("\n", 1)[1])
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'bulk_delete'").fetchone():
            for statement in SQLITE_GUARDED_TRIGGERS:
                conn.execute(f"DROP TRIGGER IF EXISTS {statement.split()[2]}")
                conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def fill(n: int, sqlite: str | None, pg: str | None) -> float:
    index_gen.rows = rows_with_blob_digests  # type: ignore[assignment]
    index, pool = index_gen.open_index(sqlite, pg)
    if sqlite:
        # 512 MB of page cache while filling: random digests land all over the B-trees (and the search
        # table's), and with sqlite's default 2 MB each row is a trip through the OS; the service's own
        # connection is not changed by this.
        pool.conn.execute("PRAGMA cache_size = -524288")
    try:
        return index_gen.generate(index, pool, n, seed=29)
    finally:
        pool.close()


class HealthProbe:
    """An index ping every 50 ms; the worst time one took to answer."""

    def __init__(self, reactor: Any, index: Index) -> None:
        self.index = index
        self.worst = 0.0
        self._busy = False
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor

    def _tick(self) -> None:
        if self._busy:
            return  # the last one has not answered: it is still counting
        self._busy = True
        started = time.monotonic()

        def done(_: Any) -> None:
            self.worst = max(self.worst, time.monotonic() - started)
            self._busy = False

        defer.Deferred.fromCoroutine(self.index.ping()).addBoth(done)

    def start(self) -> None:
        self.worst = 0.0
        self._loop.start(0.05, now=True)

    def stop(self) -> None:
        self._loop.stop()


async def measure(
    reactor: Any, url: str | None, sqlite: str, data: str, clear_batch: int, clear_rebuild_min: int = 20000
) -> list[tuple[str, float, float, str]]:
    io_pool = ThreadPool(minthreads=1, maxthreads=4, name="bench-io")
    io_pool.start()
    db_pool = open_pool(url, sqlite)
    # as the service opens them: sqlite readers beside the writer, /health's ping on a connection of its own
    read_pool = None if url else open_sqlite_read_pool(sqlite, 4)
    ping_pool = open_ping_pool(url, sqlite)
    results: list[tuple[str, float, float, str]] = []
    try:
        index = Index(db_pool, read_pool, ping_pool)
        await index.migrate()
        storage = Storage(data, ThreadIO(reactor, io_pool))
        settings = RuntimeSettings(index, reactor)
        await settings.load()
        access = AccessRecorder(index, reactor)
        await access.load()

        class NoDownloads:
            inflight: dict = {}

        evictor = Evictor(
            index=index,
            storage=storage,
            downloads=NoDownloads(),
            settings=settings,
            access=access,
            clock=reactor,
            clear_batch_size=clear_batch,
        )
        probe = HealthProbe(reactor, index)
        rebuild = index.clear_proxy_rebuild

        async def timed_rebuild(min_rows: int) -> int | None:
            """The clear's one transaction (sqlite, most rows proxied), timed on its own."""
            started, cpu = time.monotonic(), _cpu()
            out = await rebuild(min_rows)
            if out is not None:
                print(
                    f"  (clear: its one transaction {time.monotonic() - started:.1f} s, "
                    f"{_cpu() - cpu:.1f} s CPU; then the caches and files of the deleted rows)",
                    flush=True,
                )
            return out

        index.clear_proxy_rebuild = timed_rebuild  # type: ignore[method-assign]

        async def timed(name: str, work: Callable[[], Awaitable[Any]], note: Callable[[Any], str]) -> None:
            probe.start()
            started, cpu = time.monotonic(), _cpu()
            out = await work()
            seconds, cpu = time.monotonic() - started, _cpu() - cpu
            probe.stop()
            results.append((name, seconds, probe.worst, note(out)))
            print(
                f"  {name:10} {seconds:8.3f} s (target < {TARGETS[name]:g} s: "
                f"{'ok' if seconds < TARGETS[name] else 'MISSED'})  worst ping {probe.worst * 1000:7.1f} ms "
                f"({'ok' if probe.worst < HEALTH_TARGET else 'MISSED'})  {note(out)}; "
                f"{cpu:.1f} s CPU (process), load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

        async def stats_median() -> dict:
            times = []
            for _ in range(5):
                started = time.monotonic()
                body = await evictor.stats()
                times.append(time.monotonic() - started)
            return {"body": body, "median": statistics.median(times)}

        probe.start()
        warm = await stats_median()
        probe.stop()
        results.append(("stats", warm["median"], probe.worst, f"entry_count={warm['body']['entry_count']}"))
        print(
            f"  stats      {warm['median']:8.3f} s (target < {TARGETS['stats']:g} s: "
            f"{'ok' if warm['median'] < TARGETS['stats'] else 'MISSED'})  entries {warm['body']['entry_count']:,}, "
            f"{warm['body']['total_size_human']}",
            flush=True,
        )
        evictable = await index.evictable_size()
        await settings.update(
            [
                ("cache.retention_days", "3650"),
                ("cache.max_size", str(evictable + 1)),
                ("cache.eviction_policy", "lru"),
                ("cache.clear_rebuild_min_entries", str(clear_rebuild_min)),
            ]
        )
        await timed("nothing", evictor.run, lambda n: f"removed {n}")
        await settings.update([("cache.max_size", str(evictable * 9 // 10))])
        await timed("evict 10%", evictor.run, lambda n: f"removed {n:,} entries, {evictable // 10:,} bytes wanted")
        await timed("clear", evictor.clear_proxy, lambda n: f"removed {n:,} entries")
        left = await index.cache_totals()
        print(f"  left: {left.entries:,} entries ({left.proxy} proxy)", flush=True)
    finally:
        for pool in (db_pool, read_pool, ping_pool):
            if pool is not None:
                pool.close()
        io_pool.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument(
        "--pg",
        help="an empty PostgreSQL database URL (one size only), or 'throwaway': a new database on the tests' "
        "throwaway cluster (tests/pg_support.py: initdb on 127.0.0.1, fsync off, removed at exit)",
    )
    parser.add_argument("--clear-batch", type=int, default=2000, help="Evictor.clear_batch_size (default 2000)")
    parser.add_argument(
        "--clear-rebuild-min",
        type=int,
        default=20000,
        help="cache.clear_rebuild_min_entries (default 20000; 0: the clear in batches, as before round 2)",
    )
    parser.add_argument("--keep", help="a directory to keep generated sqlite files in, and reuse them from")
    args = parser.parse_args(argv)
    if args.pg == "throwaway":
        from tests import pg_support

        pg_support.admin("CREATE DATABASE evict_scale")
        args.pg = pg_support._with(pg_support.server_url(), path="/evict_scale")
    work = tempfile.mkdtemp(prefix="harbor-evict-scale-")

    async def all_sizes(reactor: Any) -> None:
        for n in args.rows:
            data = os.path.join(work, f"data-{n}")
            os.makedirs(data)
            sqlite = os.path.join(data, "index.sqlite")
            engine = "postgresql" if args.pg else "sqlite"
            kept = os.path.join(args.keep, f"{n}.sqlite") if args.keep and not args.pg else None
            if kept and os.path.exists(kept):
                shutil.copyfile(kept, sqlite)
                refresh_triggers(sqlite)
                print(f"{n:,} rows ({engine}): copied from {kept}", flush=True)
            else:  # blocking, before anything is measured
                seconds = fill(n, None if args.pg else sqlite, args.pg)
                print(f"{n:,} rows ({engine}): generated in {seconds:.0f} s", flush=True)
                if kept:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copyfile(sqlite, kept)
            await measure(reactor, args.pg, sqlite, data, args.clear_batch, args.clear_rebuild_min)
            shutil.rmtree(data, ignore_errors=True)

    try:
        task.react(lambda reactor: defer.Deferred.fromCoroutine(all_sizes(reactor)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
