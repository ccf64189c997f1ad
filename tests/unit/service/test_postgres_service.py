"""The service on a PostgreSQL index: it starts, and a database outage makes /health degraded, not a crash.

The real service (real reactor, the threaded adbapi pool) on the tests'
throwaway PostgreSQL cluster, reached through a loopback TCP relay the test
can cut and restore: cutting it is what a node sees when the database host
goes away.
"""

from __future__ import annotations

import json
import os

import treq
from twisted.internet import defer, reactor
from twisted.protocols import portforward
from twisted.trial.unittest import TestCase

from harbor_cache.auth import passwords
from harbor_cache.daemon import make_service
from harbor_cache.settings.startup import Config
from tests import pg_support


class Relay:
    """127.0.0.1:port -> the PostgreSQL server; `cut` drops every connection and stops listening."""

    def __init__(self, host: str, port: int):
        self.factory = portforward.ProxyFactory(host, port)
        self.connections: list = []
        relay = self

        class Tracked(portforward.ProxyServer):
            def connectionMade(self):
                relay.connections.append(self)
                super().connectionMade()

        self.factory.protocol = Tracked
        self.port = None
        self.number = 0

    def open(self):
        self.port = reactor.listenTCP(self.number, self.factory, interface="127.0.0.1")
        self.number = self.port.getHost().port

    def cut(self):
        d = defer.maybeDeferred(self.port.stopListening)
        for c in self.connections:
            c.transport.abortConnection()
            if c.peer is not None:
                c.peer.transport.abortConnection()
        self.connections.clear()
        return d


class PostgresServiceTests(TestCase):
    timeout = 60

    def setUp(self):
        self.patch(passwords, "BCRYPT_ROUNDS", 4)
        url = pg_support.fresh_database_url(self)
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.relay = Relay(parts.hostname, parts.port)
        self.relay.open()
        self.addCleanup(lambda: self.relay.port.connected and self.relay.cut())
        relayed = parts._replace(netloc=f"postgres@127.0.0.1:{self.relay.number}").geturl()
        self.config = Config(
            listen="tcp:0:interface=127.0.0.1",
            data_dir=os.path.abspath(self.mktemp()),
            upstreams=(),
            maven_repositories=(),
            index_url=relayed,
            index_pool_size=2,
        )

    async def health(self, port):
        response = await treq.get(f"http://127.0.0.1:{port}/health", persistent=False)
        return response.code, json.loads(await response.content())

    @defer.inlineCallbacks
    def test_outage_is_degraded_then_healthy_again(self):
        top = make_service(self.config, reactor)
        top.startService()
        self.addCleanup(lambda: top.running and top.stopService())
        state = [s for s in top if hasattr(s, "ready")][0]
        yield state.ready
        self.assertEqual(top.harbor.index.dialect, "postgresql")
        self.assertFalse(os.path.exists(os.path.join(self.config.data_dir, "index.sqlite")))
        port = state.getServiceNamed("web")._waitingForPort.result.getHost().port
        code, body = yield defer.Deferred.fromCoroutine(self.health(port))
        self.assertEqual((code, body["status"]), (200, "healthy"))

        yield self.relay.cut()
        code, body = yield defer.Deferred.fromCoroutine(self.health(port))
        self.assertEqual((code, body["status"], body["problems"]), (503, "degraded", ["index"]))

        self.relay.open()  # same port: the database is back
        code, body = yield defer.Deferred.fromCoroutine(self.health(port))
        self.assertEqual((code, body["status"]), (200, "healthy"))
        users = yield defer.Deferred.fromCoroutine(top.harbor.index.count_users())
        self.assertEqual(users, 1)
        self.flushLoggedErrors()
        yield top.stopService()
