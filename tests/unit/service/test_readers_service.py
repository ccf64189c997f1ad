"""/health answers while a slow console query holds its connection, on both engines.

The real service (real reactor, the threaded pools `HarborApp` opens) on a
temp sqlite file and on the tests' PostgreSQL cluster with ``pool_size = 1``
(the worst case: one connection for everything but the ping).  The console
query ``GET /api/v1/cache/entries`` is held inside its transaction by a
`threading.Event` (no sleeps); ``GET /health`` must answer 200 meanwhile.
Before sqlite readers and the ping's own connection it queued behind the
console query and timed out here.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from harbor_cache.auth import passwords
from harbor_cache.daemon import make_service
from harbor_cache.index import console
from harbor_cache.settings.startup import Config
from tests import pg_support

ADMIN_PASSWORD = "readers-admin-pw"


class HealthBesideSlowQueryMixin:
    timeout = 60

    def config(self) -> Config:
        raise NotImplementedError

    def setUp(self):
        self.patch(passwords, "BCRYPT_ROUNDS", 4)
        os.environ["HARBOR_CACHE_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        self.addCleanup(os.environ.pop, "HARBOR_CACHE_ADMIN_PASSWORD", None)

    def hold_console_queries(self: Any) -> tuple[threading.Event, threading.Event]:
        """Every console entries page holds its transaction (on its pool thread) until ``release`` is set."""
        started, release = threading.Event(), threading.Event()
        self.addCleanup(release.set)
        real = console.fetch_all

        def held_fetch_all(txn: Any, cls: type) -> Any:
            rows: Any = real(txn, cls)
            started.set()
            release.wait(30)
            return rows

        self.patch(console, "fetch_all", held_fetch_all)
        return started, release

    async def start(self: Any) -> int:
        top = make_service(self.config(), reactor)
        top.startService()
        self.addCleanup(lambda: top.running and top.stopService())
        state = [s for s in top if hasattr(s, "ready")][0]
        await state.ready
        self.top = top
        return state.getServiceNamed("web")._waitingForPort.result.getHost().port

    async def test_health_answers_while_a_console_query_is_held(self):
        port = await self.start()
        base = f"http://127.0.0.1:{port}"
        login = await treq.post(
            base + "/api/v1/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            persistent=False,
        )
        token = json.loads(await login.content())["token"]
        started, release = self.hold_console_queries()
        slow = treq.get(base + "/api/v1/cache/entries", headers={"Authorization": f"Bearer {token}"}, persistent=False)
        answered: list = []
        slow.addBoth(lambda r: answered.append(r) or r)
        await deferToThread(started.wait, 30)
        self.assertTrue(started.is_set(), "the console query never reached its transaction")

        health = await treq.get(base + "/health", persistent=False, timeout=5)
        self.assertEqual((health.code, json.loads(await health.content())["status"]), (200, "healthy"))
        self.assertEqual(answered, [], "the console query was not held")

        release.set()
        response = await slow
        self.assertEqual(response.code, 200)
        await response.content()
        await self.top.stopService()


class SqliteHealthTests(HealthBesideSlowQueryMixin, TestCase):
    def config(self) -> Config:
        return Config(
            listen="tcp:0:interface=127.0.0.1",
            data_dir=os.path.abspath(self.mktemp()),
            upstreams=(),
            maven_repositories=(),
            index_sqlite_readers=1,  # the console query takes the only reader: the ping has its own connection
        )


class PostgresHealthTests(HealthBesideSlowQueryMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.url = pg_support.fresh_database_url(self)

    def config(self) -> Config:
        return Config(
            listen="tcp:0:interface=127.0.0.1",
            data_dir=os.path.abspath(self.mktemp()),
            upstreams=(),
            maven_repositories=(),
            index_url=self.url,
            index_pool_size=1,
        )
