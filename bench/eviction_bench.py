"""Eviction benchmark: one pass over N index rows, and how long it stalls the reactor.

Builds a sqlite index with N proxy entries (default 100,000; 1 MiB each by
the index, with a real empty file per digest under blobs/), sets
``cache.max_size`` to 1 byte so the pass must walk and delete every row and
unlink every file, and runs `Evictor.run` on the real reactor with the real
adbapi pool and storage thread pool, as the service does.  A LoopingCall
heartbeat every 5 ms records how late each tick fires; the longest lateness
is the longest stall the pass caused (target: under 100 ms).

    python bench/eviction_bench.py                 # lru, lfu, fifo, retention, 100k rows
    python bench/eviction_bench.py --rows 20000 --policy lru --batch 500

Results go to stdout as one line per run (and are recorded by hand in
bench/RESULTS.md under "## Eviction").
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

from harbor_cache.core.flight.access import AccessRecorder  # noqa: E402
from harbor_cache.core.operations.eviction import DAY, Evictor  # noqa: E402
from harbor_cache.index import Index, open_sqlite_pool  # noqa: E402
from harbor_cache.settings.runtime import RuntimeSettings  # noqa: E402
from harbor_cache.storage import Storage, ThreadIO  # noqa: E402

HEARTBEAT = 0.005
MIB = 1 << 20


class Heartbeat:
    """Ticks every HEARTBEAT seconds; remembers how late each tick was."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.lates: list[float] = []
        self._last = None
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor

    def _tick(self):
        now = time.monotonic()
        if self._last is not None:
            self.lates.append(max(0.0, now - self._last - HEARTBEAT))
        self._last = now

    def start(self):
        self._loop.start(HEARTBEAT, now=True)

    def stop(self):
        self._loop.stop()

    def summary(self) -> dict:
        lates = sorted(self.lates) or [0.0]
        return {
            "max_stall_ms": lates[-1] * 1000,
            "p99_stall_ms": lates[int(len(lates) * 0.99) - 1] * 1000,
            "ticks": len(self.lates),
        }


def build(root: str, rows: int, now: float, seed: int = 1) -> None:
    """N proxy entries with varied times and counts, plus an empty file per digest."""
    os.makedirs(root, exist_ok=True)
    db = os.path.join(root, "index.sqlite")
    rng = random.Random(seed)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    # migrations through the real Index (inline pool)
    from harbor_cache.testing import InlinePool

    pool = InlinePool(db)
    index = Index(pool)
    d = defer.ensureDeferred(index.migrate())
    assert d.called
    pool.close()
    conn = sqlite3.connect(db)
    blob_dir = os.path.join(root, "blobs", "sha256")
    values = []
    for i in range(rows):
        hexd = "%064x" % (i + 1)
        digest = "sha256:" + hexd
        created = now - rng.uniform(0, 60 * DAY)
        last = created + rng.uniform(0, now - created)
        kind = "proxy"
        type_ = "blob" if i % 10 else "manifest"
        repo = "" if type_ == "blob" else "library/r%d" % (i % 500)
        values.append((kind, type_, repo, digest, digest, MIB, created, created, last, rng.randint(0, 50)))
        sub = os.path.join(blob_dir, hexd[:2])
        os.makedirs(sub, exist_ok=True)
        open(os.path.join(sub, hexd), "wb").close()
    conn.executemany(
        """INSERT INTO entries (kind, type, repository, key, digest, size, created_at, fetched_at, last_access,
                                access_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        values,
    )
    conn.commit()
    conn.close()


async def one_pass(reactor, root: str, policy: str, batch: int, retention: bool) -> dict:
    io_pool = ThreadPool(minthreads=1, maxthreads=4, name="bench-io")
    io_pool.start()
    db_pool = open_sqlite_pool(os.path.join(root, "index.sqlite"))
    try:
        index = Index(db_pool)
        storage = Storage(root, ThreadIO(reactor, io_pool))
        settings = RuntimeSettings(index, reactor)
        await settings.load()
        access = AccessRecorder(index, reactor)
        await access.load()
        if retention:
            # Retention only: entries unused for 30 days go; no size pressure.
            await settings.update([("cache.retention_days", "30"), ("cache.max_size", str(1 << 60))])
        else:
            await settings.update(
                [("cache.retention_days", "0"), ("cache.max_size", "1"), ("cache.eviction_policy", policy)]
            )

        class NoDownloads:
            inflight: dict = {}

        evictor = Evictor(
            index=index,
            storage=storage,
            downloads=NoDownloads(),
            settings=settings,
            access=access,
            clock=reactor,
            batch_size=batch,
        )
        rows_before = (await index.cache_totals()).entries
        beat = Heartbeat(reactor)
        beat.start()
        started = time.monotonic()
        removed = await evictor.run()
        elapsed = time.monotonic() - started
        beat.stop()
        files_left = sum(len(files) for _, _, files in os.walk(os.path.join(root, "blobs")))
        rows_after = (await index.cache_totals()).entries
        return {
            "policy": "retention" if retention else policy,
            "rows": rows_before,
            "removed": removed,
            "rows_left": rows_after,
            "files_left": files_left,
            "seconds": elapsed,
            "rows_per_s": removed / elapsed if elapsed else 0.0,
            **beat.summary(),
        }
    finally:
        db_pool.close()
        io_pool.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--policy", default="all", choices=["all", "lru", "lfu", "fifo", "retention"])
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args(argv)
    runs = ["lru", "lfu", "fifo", "retention"] if args.policy == "all" else [args.policy]
    work = tempfile.mkdtemp(prefix="harbor-evict-bench-")
    template = os.path.join(work, "template")
    now = time.time()
    t = time.monotonic()
    build(template, args.rows, now)
    print(f"built {args.rows} rows + files in {time.monotonic() - t:.1f}s ({template})", flush=True)
    results = []

    async def run_all(reactor):
        for name in runs:
            root = os.path.join(work, name)
            shutil.copytree(template, root)
            result = await one_pass(reactor, root, name, args.batch, retention=(name == "retention"))
            results.append(result)
            print(
                "{policy:9} rows={rows} removed={removed} left={rows_left}/{files_left} "
                "pass={seconds:.2f}s ({rows_per_s:.0f} rows/s) max_stall={max_stall_ms:.1f}ms "
                "p99_stall={p99_stall_ms:.1f}ms ticks={ticks}".format(**result),
                flush=True,
            )
            shutil.rmtree(root, ignore_errors=True)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run_all(reactor)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
