"""The Maven harness: a whole harbor-cache built by `harbor_cache.testing.build_app`, driven through its Maven front.

No sockets or threads: upstream and client talk through treq's
RequestTraversalAgent, SQL through InlinePool, file work through InlineIO,
time through a Clock, bcrypt inline at cost 4 (see `harbor_cache.testing`).
"""

from __future__ import annotations

import bcrypt
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from harbor_cache.settings.startup import MavenRepositoryConfig
from harbor_cache.testing import (
    UPSTREAM_MODIFIED,
    FakeMavenRepo,
    FlakyHTTP,
    InlineBcrypt,
    InlineBody,
    build_app,
    rsa_key,
    site_client,
)

__all__ = ["START", "UPSTREAM_MODIFIED", "FakeMavenRepo", "MavenHarness", "rsa_key"]

START = 1_700_000_000.0


class MavenHarness:
    """The Maven core and front over fakes; repositories ``central`` (public) and ``secret`` (private)."""

    def __init__(self, tmpdir: str, upstream: FakeMavenRepo | None = None, extra_repositories=()):
        self.clock = Clock()
        self.clock.advance(START)
        self.upstream = upstream or FakeMavenRepo()
        self.upstream_agent = RequestTraversalAgent(self.upstream)
        self.http = FlakyHTTP(HTTPClient(self.upstream_agent))
        self.repositories = (
            MavenRepositoryConfig(id="central", url="http://upstream.test/"),
            MavenRepositoryConfig(
                id="secret", url="http://upstream.test/", private=True, username="up-user", password="up-pass"
            ),
        ) + tuple(extra_repositories)
        self.passwords = InlineBcrypt()  # records every password check
        self.app = app = build_app(
            tmpdir,
            clock=self.clock,
            client=self.http,
            passwords=self.passwords,
            public_url="http://cache.test",
            maven_repositories=self.repositories,
        )
        self.metrics = app.metrics
        self.storage = app.storage
        self.pool = app.db_pool
        self.index = app.index
        self.settings = app.settings
        self.access = app.access
        self.downloads = app.downloads
        self.upstreams = app.maven.upstreams
        self.cache = app.maven
        self.tokens = app.artifact_tokens
        self.audit = app.audit
        self.front = app.maven_front
        self.root = app.root
        self.agent, self.client = site_client(self.root, self.metrics)

    # -- driving --------------------------------------------------------------

    def flush(self) -> None:
        for _ in range(20):
            self.upstream_agent.flush()
            self.agent.flush()

    def run(self, coro) -> defer.Deferred:
        d = defer.Deferred.fromCoroutine(coro)
        self.flush()
        return d

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
        hdrs = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
        producer = InlineBody(body) if body is not None else None
        d = self.client.request(method, "http://cache.test" + path, headers=hdrs, data=producer, unbuffered=True)
        self.flush()
        return d

    def body(self, response) -> defer.Deferred:
        import treq

        d = treq.content(response)
        self.flush()
        return d

    # -- users ------------------------------------------------------------------

    def add_user(self, name: str, password: str, role: str) -> None:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        defer.Deferred.fromCoroutine(self.index.create_user(name, hashed, role, START))
