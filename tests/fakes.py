"""The OCI harness: a whole harbor-cache built by `harbor_cache.testing.build_app`, driven through /v2.

Everything runs without sockets or threads: upstream and client talk through
treq's RequestTraversalAgent, SQL through InlinePool, file work through
InlineIO, time through a Clock (see `harbor_cache.testing`).
"""

from __future__ import annotations

import os

import bcrypt
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from harbor_cache.index import Index
from harbor_cache.settings.startup import UpstreamConfig
from harbor_cache.testing import OCI_MANIFEST, FakeRegistry, InlinePool, build_app, resolved, sha, site_client

__all__ = ["OCI_MANIFEST", "FakeRegistry", "Harness", "migrated_index", "sha", "site_client"]


def migrated_index(case) -> Index:
    """A fresh, migrated index on a sqlite file in the test's temp dir; closed at cleanup."""
    tmp = case.mktemp()
    os.makedirs(tmp)
    pool = InlinePool(os.path.join(tmp, "index.sqlite"))
    case.addCleanup(pool.close)
    index = Index(pool)
    index.pool = pool
    case.successResultOf(Deferred.fromCoroutine(index.migrate()))
    return index


class Harness:
    """A whole harbor-cache on fakes, with one upstream registry ``fake`` at http://upstream.test."""

    def __init__(
        self,
        tmpdir: str,
        upstream: FakeRegistry | None = None,
        username: str | None = None,
        password: str | None = None,
        url: str = "http://upstream.test",
    ):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.upstream = upstream or FakeRegistry()
        self.upstream_agent = RequestTraversalAgent(self.upstream)
        upstream_config = UpstreamConfig(name="fake", url=url, username=username, password=password)
        self.app = app = build_app(
            tmpdir,
            clock=self.clock,
            client=HTTPClient(self.upstream_agent),
            public_url="http://cache.test",
            upstreams=(upstream_config,),
        )
        self.metrics = app.metrics
        self.storage = app.storage
        self.pool = app.db_pool
        self.index = app.index
        self.settings = app.settings
        self.access = app.access
        self.downloads = app.downloads
        self.upstreams = app.upstreams
        self.oci = app.oci
        self.oci_front = app.oci_front
        self.root = app.root
        self.agent, self.client = site_client(self.root, self.metrics)

    def add_user(self, name: str, password: str, role: str) -> None:
        """A user with a cost-4 bcrypt hash (what the harness's InlineBcrypt checks)."""
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        resolved(Deferred.fromCoroutine(self.index.create_user(name, hashed, role, self.clock.seconds())))

    def flush(self) -> None:
        for _ in range(20):
            self.upstream_agent.flush()
            self.agent.flush()

    def request(self, method: str, path: str, headers: dict | None = None):
        """Send a request and pump both sides until it settles; returns the Deferred of the response."""
        from twisted.web.http_headers import Headers

        hdrs = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
        d = self.client.request(method, "http://cache.test" + path, headers=hdrs, unbuffered=True)
        self.flush()
        return d

    def body(self, response) -> bytes:
        import treq

        d = treq.content(response)
        self.flush()
        return d
