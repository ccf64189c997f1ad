"""Reads beside the writer: a lookup, a listing or the ping never queues behind a held transaction.

The real threaded adbapi pools the service opens (sqlite: one writer,
``query_only`` readers and the ping's connection; PostgreSQL: its pool and
the ping's connection).  A transaction is held open on its thread by a
`threading.Event` (no sleeps): the other call must answer while it is held;
before readers it queued behind it and timed out here.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase, TestCase

from harbor_cache.errors import IndexUnavailable
from harbor_cache.index import Index, engine, open_postgres_pool, open_sqlite_pool
from harbor_cache.index.engine import open_ping_pool, open_sqlite_read_pool
from tests import pg_support
from tests.unit.index.test_index_outage import SwitchPool

# A call that does not answer within this while the other transaction is held has queued behind it.
ANSWER_WITHIN = 5.0


class Held:
    """A transaction function that does ``work`` and then holds its transaction open until `release`."""

    def __init__(self, case: TestCase, work: Any = None):
        self.work = work
        self.started = threading.Event()
        self.released = threading.Event()
        case.addCleanup(self.released.set)  # a failed test must not leave a pool thread waiting

    def __call__(self, txn: Any) -> Any:
        result = self.work(txn) if self.work is not None else None
        self.started.set()
        self.released.wait(30)
        return result

    async def hold(self, start: Any) -> defer.Deferred:
        """Start the transaction with ``start(fn)``; returns once it is open and held (its Deferred)."""
        d = start(self)
        await deferToThread(self.started.wait, 30)
        assert self.started.is_set(), "the held transaction never started"
        return d

    def release(self) -> None:
        self.released.set()


def within(d: defer.Deferred) -> defer.Deferred:
    return d.addTimeout(ANSWER_WITHIN, reactor)


class ReadersTestsMixin:
    """What both engines promise; a subclass opens `writer`, `ping_pool` and `index` (with its read connections)."""

    index: Index
    writer: Any
    ping_pool: Any

    def put(self, key: str) -> Any:
        return defer.Deferred.fromCoroutine(
            self.index.put_entry(kind="proxy", type_="blob", repository="r", key=key, digest=key, size=1, now=1.0)
        )

    def slow_read(self, fn: Any) -> defer.Deferred:
        """A console query that takes long: a transaction marked read-only."""
        return self.index._read("slow listing", fn)

    def get(self, key: str) -> defer.Deferred:
        return within(defer.Deferred.fromCoroutine(self.index.get_entry("blob", "r", key)))

    async def test_a_read_proceeds_while_a_write_transaction_is_held(self):
        """get_entry answers while the writer holds an uncommitted insert, and does not see it; then it does."""
        insert = (
            "INSERT INTO entries (kind, type, repository, key, digest, size, created_at, fetched_at, "
            "last_access, access_count) VALUES ('proxy', 'blob', 'r', 'held', 'held', 1, 1, 1, 1, 0)"
        )
        held = Held(self, lambda txn: txn.execute(insert))
        done = await held.hold(self.writer.runInteraction)
        self.assertIsNone(await self.get("held"))  # answered beside the writer; uncommitted, so unseen
        self.assertTrue(await within(defer.Deferred.fromCoroutine(self.index.ping())))
        held.release()
        await done
        self.assertEqual((await self.get("held")).key, "held")  # committed: the other connection sees it

    async def test_a_write_is_seen_by_the_next_read(self):
        """Write on the writer, then read on a reader: the committed row is there."""
        for n in range(20):
            await self.put(f"k{n}")
            self.assertEqual((await self.get(f"k{n}")).key, f"k{n}")

    async def test_a_read_proceeds_while_another_read_is_held(self):
        """A slow listing holds a read connection (through `Store._read`); a lookup on a hit still answers."""
        await self.put("k")
        held = Held(self, lambda txn: txn.execute("SELECT COUNT(*) FROM entries"))
        done = await held.hold(self.slow_read)
        self.assertEqual((await self.get("k")).key, "k")
        held.release()
        await done

    async def test_the_ping_answers_while_every_connection_is_held(self):
        """/health's ping has a connection of its own: every reader and the writer busy, it still answers."""
        holds = [Held(self) for _ in range(self.read_connections)]
        done = [await h.hold(self.slow_read) for h in holds]
        writing = Held(self)
        done.append(await writing.hold(self.writer.runInteraction))
        self.assertTrue(await within(defer.Deferred.fromCoroutine(self.index.ping())))
        for h in [*holds, writing]:
            h.release()
        await defer.gatherResults(done)


class SqliteReadersTests(ReadersTestsMixin, TestCase):
    read_connections = 2

    def setUp(self):
        path = os.path.join(os.path.abspath(self.mktemp()), "index.sqlite")
        os.makedirs(os.path.dirname(path))
        self.writer = open_sqlite_pool(path)
        readers = open_sqlite_read_pool(path, self.read_connections)
        self.ping_pool = open_ping_pool(None, path)
        for pool in (self.writer, readers, self.ping_pool):
            self.addCleanup(pool.close)
        self.index = Index(self.writer, readers, self.ping_pool)
        return defer.Deferred.fromCoroutine(self.index.migrate())

    async def test_a_read_connection_refuses_to_write(self):
        """``query_only``: a transaction marked read-only that writes fails instead of racing the writer."""

        def write(txn):
            txn.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")

        with self.assertRaises(sqlite3.OperationalError):
            await self.index._read("write", write)


class PostgresReadersTests(ReadersTestsMixin, TestCase):
    """PostgreSQL: reads share the pool (several connections); the ping has its own connection."""

    read_connections = 2

    def setUp(self):
        url = pg_support.fresh_schema_url(self)
        # One pool as the service opens it: reads and writes share it.
        self.writer = open_postgres_pool(url, self.read_connections + 1)
        self.ping_pool = open_ping_pool(url, "unused")
        for pool in (self.writer, self.ping_pool):
            self.addCleanup(pool.close)
        self.index = Index(self.writer, None, self.ping_pool)
        return defer.Deferred.fromCoroutine(self.index.migrate())


class PingAfterAnOutageTests(SynchronousTestCase):
    """While the database is away, the ping also goes through the shared pool, dropping its dead connections."""

    def test_the_shared_pool_is_pinged_only_while_the_database_is_away(self):
        shared, ping = SwitchPool(), SwitchPool()
        index = Index(shared, None, ping)
        self.patch(engine, "log", Logger(observer=lambda e: None))

        def health():
            return defer.Deferred.fromCoroutine(index.ping())

        self.assertTrue(self.successResultOf(health()))
        self.assertEqual((shared.calls, ping.calls), (0, 1))  # up: the ping's own connection only
        shared.down = ping.down = True
        self.failureResultOf(health(), IndexUnavailable)
        before = shared.calls
        self.failureResultOf(health(), IndexUnavailable)
        self.assertEqual(shared.calls - before, 2)  # away: the shared pool too (a try and its retry)
        shared.down = ping.down = False
        self.assertTrue(self.successResultOf(health()))
        calls = shared.calls
        self.assertTrue(self.successResultOf(health()))
        self.assertEqual(shared.calls, calls)  # back: the ping's connection only again
