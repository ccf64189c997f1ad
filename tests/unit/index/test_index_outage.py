"""The index's database going away: one `IndexUnavailable` (503) per refused transaction, one log line each way.

A stand-in pool with psycopg2 as its DB-API fails or answers on demand; the
quiet adbapi pool is checked on a real (threadless) sqlite connection that
dies mid-transaction.  The whole service through a real outage is
`tests.unit.service.test_postgres_service` and `tests.integration.test_index_outage_it`.
"""

from __future__ import annotations

import sqlite3

import psycopg2
from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.errors import ErrorCode, IndexUnavailable
from harbor_cache.http.errors import status_of
from harbor_cache.index import Index, engine


class SwitchPool:
    """runInteraction fails as a dead PostgreSQL server makes it fail while ``down``, else answers 1."""

    dbapi = psycopg2
    dbapiName = "psycopg2"

    def __init__(self):
        self.down = False
        self.calls = 0

    def runInteraction(self, fn, *args):
        self.calls += 1
        if self.down:
            return defer.fail(
                psycopg2.OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
            )
        return defer.succeed(True)


class AvailabilityTests(SynchronousTestCase):
    def setUp(self):
        self.pool = SwitchPool()
        self.index = Index(self.pool)
        self.events: list[dict] = []
        self.patch(engine, "log", Logger(observer=self.events.append))

    def ping(self):
        return defer.Deferred.fromCoroutine(self.index.ping())

    def test_an_outage_is_index_unavailable_and_two_log_lines(self):
        self.successResultOf(self.ping())
        self.pool.down = True
        for _ in range(20):
            failure = self.failureResultOf(self.ping(), IndexUnavailable)
        error = failure.value
        self.assertEqual((error.code, status_of(error)), (ErrorCode.INDEX_UNAVAILABLE, 503))
        self.assertEqual(error.headers, {"Retry-After": "5"})
        self.assertEqual(self.pool.calls, 1 + 20 * 2)  # each transaction is still retried once
        self.pool.down = False
        for _ in range(5):
            self.assertTrue(self.successResultOf(self.ping()))
        levels = [(e["log_level"], e["log_format"].split(" (")[0]) for e in self.events]
        self.assertEqual(
            levels,
            [
                (LogLevel.warn, "index: {desc} lost its database connection; retrying once"),
                (LogLevel.error, "index: the database does not answer"),
                (LogLevel.info, "index: the database answers again after {seconds:.1f} s"),
            ],
        )
        self.assertIn("Connection refused", self.events[1]["reason"])
        self.assertEqual(self.events[2]["failed"], 20)
        self.assertTrue(self.index.availability.up)

    def test_other_database_errors_stay_what_they_are(self):
        self.pool.runInteraction = lambda fn, *a: defer.fail(psycopg2.IntegrityError("duplicate key"))
        self.failureResultOf(self.ping(), psycopg2.IntegrityError)
        self.assertTrue(self.index.availability.up)
        self.assertEqual(self.events, [])

    def test_a_database_starting_up_counts_as_away(self):
        self.pool.runInteraction = lambda fn, *a: defer.fail(
            psycopg2.OperationalError("FATAL:  the database system is starting up")
        )
        self.failureResultOf(self.ping(), IndexUnavailable)


class QuietPoolTests(SynchronousTestCase):
    """adbapi logs "Rollback failed" tracebacks (as test errors here) for a dead connection; ours does not."""

    def make_pool(self, cls):
        pool = cls("sqlite3", ":memory:", check_same_thread=False, cp_reconnect=True, cp_noisy=False)
        self.addCleanup(lambda: [c.close() for c in list(pool.connections.values())])
        return pool

    def die(self, txn):
        txn._connection._connection.close()  # the server went away under the connection
        txn.execute("SELECT 1")

    def test_a_dead_connection_fails_its_transaction_without_tracebacks(self):
        pool = self.make_pool(engine.QuietConnectionPool)
        with self.assertRaises(sqlite3.ProgrammingError):
            pool._runInteraction(self.die)
        self.assertEqual(pool.connections, {})  # dropped: the next transaction opens a new one
        self.assertEqual(pool._runInteraction(lambda txn: txn.execute("SELECT 2") and txn.fetchone()[0]), 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_adbapi_itself_logs_them(self):
        """What the quiet pool replaces (so the test above can fail)."""
        pool = self.make_pool(adbapi.ConnectionPool)
        with self.assertRaises(sqlite3.ProgrammingError):
            pool._runInteraction(self.die)
        self.assertEqual(len(self.flushLoggedErrors()), 2)
