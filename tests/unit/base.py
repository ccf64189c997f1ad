"""`HarborTestCase`: the one test base for a whole harbor-cache on fakes (cf. Synapse's HomeserverTestCase).

Everything runs without sockets or threads: the app is the production
`HarborApp` built by `harbor_cache.testing.build_app` (SQL through InlinePool,
file work through InlineIO, time through a Clock); the fake upstream and the
client talk through treq's RequestTraversalAgent, the client to the real
resource tree served by our own HarborSite.  A test class says what it needs
through hooks (`make_upstream`, `make_config`, `make_passwords`,
`make_token_keys`, `public_url`, `start_time`) and then reaches into
``self.app`` for the collaborators.  `setUp` builds one app; `start_app`
builds another (fresh directory, other config) or another node on the same
directory and index.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Coroutine
from typing import Any

import bcrypt
import treq
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web import resource
from twisted.web.http_headers import Headers

from harbor_cache.index import Index
from harbor_cache.service import HarborApp, TokenKeys
from harbor_cache.settings.startup import MavenRepositoryConfig, UpstreamConfig
from harbor_cache.testing import (
    FakeMavenRepo,
    FakeRegistry,
    FlakyHTTP,
    InlineBcrypt,
    InlineBody,
    InlinePool,
    build_app,
    site_client,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
USERS = {"admin": ("admin-pw", "admin"), "writer": ("writer-pw", "read-write"), "reader": ("reader-pw", "read-only")}


def sha256(data: bytes) -> str:
    """The OCI digest (``sha256:<hex>``) of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(user: str, password: str | None = None) -> dict[bytes, list[bytes]]:
    """Basic credentials of one of `USERS` (or any user with ``password``)."""
    password = USERS[user][0] if password is None else password
    return {b"Authorization": [b"Basic " + base64.b64encode(f"{user}:{password}".encode())]}


def header(response: Any, name: str) -> str | None:
    """The first value of a response header, or None."""
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def error_code(body: bytes) -> str:
    """The code of the first error of an OCI error body."""
    return str(json.loads(body)["errors"][0]["code"])


class HarborTestCase(unittest.TestCase):
    """A whole harbor-cache on fakes, driven through its real resource tree.

    ``self.app`` (the current `HarborApp`), ``self.clock``, ``self.upstream``
    (what `make_upstream` made, served at ``upstream_url``), ``self.http``
    (the upstreams' client, from `make_http`),
    ``self.passwords`` and ``self.directory`` are set by `setUp`.
    """

    public_url = "http://cache.test"
    upstream_url = "http://upstream.test"
    start_time: float = 1_000_000

    # -- hooks ------------------------------------------------------------------

    def make_upstream(self) -> Any:
        """The fake upstream server (a twisted.web resource) or None: every upstream answers 404."""
        return None

    def make_config(self) -> dict[str, Any]:
        """`Config` fields for `build_app` (``upstreams``, ``maven_repositories``, limits...)."""
        return {}

    def make_http(self, client: HTTPClient) -> Any:
        """The upstreams' HTTP client around ``client`` (which reaches `make_upstream`'s server)."""
        return client

    def make_passwords(self) -> Any:
        """The password hasher (`InlineBcrypt`, recording checks, or `PlainPasswords`)."""
        return InlineBcrypt()

    def make_token_keys(self) -> TokenKeys | None:
        """Token keys (None: `fixed_keys`)."""
        return None

    # -- building ---------------------------------------------------------------

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(self.start_time)
        self.upstream = self.make_upstream()
        self.upstream_agent = RequestTraversalAgent(
            self.upstream if self.upstream is not None else resource.NoResource()
        )
        self.http = self.make_http(HTTPClient(self.upstream_agent))
        self.passwords = self.make_passwords()
        self._sites: list[tuple[HarborApp, RequestTraversalAgent, HTTPClient]] = []
        self.extra_agents: list[RequestTraversalAgent] = []  # more fake upstreams a test serves, flushed too
        self.directory = self.mktemp()
        self.app = self.start_app(directory=self.directory)

    def start_app(
        self, directory: str | None = None, *, migrate: bool = True, current: bool = True, **config: Any
    ) -> HarborApp:
        """A new app from the hooks, ``config`` overriding `make_config`; in a fresh directory unless told.

        Another node on the current one's index and data directory: ``directory=self.directory,
        node_name="b", migrate=False, current=False``.  ``current`` makes it ``self.app``.
        """
        fields = {"public_url": self.public_url, **self.make_config(), **config}
        app = build_app(
            directory or self.mktemp(),
            clock=self.clock,
            client=self.http,
            passwords=self.passwords,
            token_keys=self.make_token_keys(),
            migrate=migrate,
            **fields,
        )
        self.addCleanup(app.db_pool.close)
        agent, client = site_client(app.root, app.metrics, app.history)
        self._sites.append((app, agent, client))
        if current:
            self.app = app
        return app

    # -- driving ----------------------------------------------------------------

    def flush(self) -> None:
        """Run pending in-memory I/O on both sides (upstream and every app's site) until it settles."""
        for _ in range(20):
            self.upstream_agent.flush()
            for extra in self.extra_agents:
                extra.flush()
            for _app, agent, _client in self._sites:
                agent.flush()

    def drive(self, coro: Coroutine[Any, Any, Any]) -> defer.Deferred[Any]:
        """Start a coroutine and flush; returns its Deferred."""
        d = defer.Deferred.fromCoroutine(coro)
        self.flush()
        return d

    def request(
        self,
        method: str,
        path: str,
        headers: dict[Any, Any] | None = None,
        body: bytes | None = None,
        *,
        app: HarborApp | None = None,
    ) -> defer.Deferred[Any]:
        """Send a request to ``app`` (default: ``self.app``) and flush; returns the Deferred of the response.

        Header names and values may be str or bytes; a value may be a list of values.
        """
        target = app if app is not None else self.app
        client = next(c for a, _agent, c in self._sites if a is target)
        hdrs = Headers()
        for k, v in (headers or {}).items():
            values = v if isinstance(v, list) else [v]
            hdrs.setRawHeaders(
                k.encode() if isinstance(k, str) else k, [x.encode() if isinstance(x, str) else x for x in values]
            )
        producer = InlineBody(body) if body is not None else None
        d = client.request(method, self.public_url + path, headers=hdrs, data=producer, unbuffered=True)
        self.flush()
        return d

    def read_body(self, response: Any) -> defer.Deferred[bytes]:
        """The body of a response (a Deferred: fired once flushed unless the server still holds it)."""
        d = treq.content(response)
        self.flush()
        return d

    def fetch(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[Any, Any] | None = None,
        user: str | None = "admin",
        *,
        app: HarborApp | None = None,
    ) -> tuple[Any, bytes]:
        """(response, body bytes), both already there; ``user`` adds Basic credentials of `USERS` (None: anonymous)."""
        h: dict[Any, Any] = dict(basic(user) if user else {})
        h.update(headers or {})
        response = self.successResultOf(self.request(method, path, h, body or None, app=app))
        return response, self.successResultOf(self.read_body(response))

    def settle(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """Flush and fire due timers (``clock.advance(0)``: a cooperating task such as GC) until ``d`` fires."""
        fired: list[bool] = []

        def note(result: Any) -> Any:
            fired.append(True)
            return result

        d.addBoth(note)
        for _ in range(50):
            if fired:
                break
            self.clock.advance(0)
            self.flush()
        return d

    def api_login(self, user: str = "admin", password: str | None = None) -> str:
        """A fresh /api/v1 token of one of `USERS` from a real login (tests move the clock past a token's life)."""
        password = USERS[user][0] if password is None else password
        code, body = self.api("POST", "/api/v1/auth/login", {"username": user, "password": password}, user=None)
        self.assertEqual(code, 200, body)
        return str(body["token"])

    def api(
        self, method: str, path: str, body: Any = None, user: str | None = "admin", token: str | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of a management API call with a Bearer token: ``token``, or one
        of ``user`` from a fresh login (None: no credentials).  ``body`` is JSON-encoded unless it is bytes."""
        headers: dict[Any, Any] = {}
        if token is None and user is not None:
            token = self.api_login(user)
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        response = self.successResultOf(self.settle(self.request(method, path, headers, data)))
        raw = self.successResultOf(self.settle(self.read_body(response)))
        return response.code, (json.loads(raw) if raw else None)

    def audit_actions(self, *, app: HarborApp | None = None) -> list[tuple[str, str | None]]:
        """(action, target) of every audit record, oldest first."""
        target = app if app is not None else self.app
        _, rows = self.successResultOf(self.drive(target.index.audit_page(limit=1000, offset=0)))
        return [(r.action, r.target) for r in reversed(rows)]

    def add_user(self, name: str, password: str, role: str, *, app: HarborApp | None = None) -> None:
        """A user with a cost-4 bcrypt hash (what `InlineBcrypt` checks)."""
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        target = app if app is not None else self.app
        self.successResultOf(self.drive(target.index.create_user(name, hashed, role, self.clock.seconds())))


class HostedRegistryCase(HarborTestCase):
    """The hosted /v2 registry: `USERS` stored with plain passwords, anonymous pull unless told.

    Helpers push blobs and manifests through the front as a client would.
    """

    public_url = "http://registry.test"
    start_time = 1_700_000_000
    anonymous_pull = True

    def make_passwords(self) -> Any:
        from harbor_cache.testing import PlainPasswords

        return PlainPasswords

    def make_token_keys(self) -> TokenKeys | None:
        from harbor_cache.testing import fixed_keys

        return fixed_keys(registry=b"k" * 32)

    def setUp(self) -> None:
        super().setUp()
        self.set_up_registry(self.app)

    def set_up_registry(self, app: HarborApp, first: bool = True) -> None:
        """Load settings; on the first node also store `USERS` and the anonymous-pull switch."""

        async def go() -> None:
            await app.settings.load()
            if not first:
                return
            if not self.anonymous_pull:
                await app.settings.update([("registry.anonymous_pull", "false")])
            for name, (password, role) in USERS.items():
                await app.index.create_user(name, password, role, self.clock.seconds())

        self.successResultOf(self.drive(go()))

    def restart_registry(self, anonymous_pull: bool) -> None:
        """A fresh registry (new directory) with another anonymous-pull setting as ``self.app``."""
        self.anonymous_pull = anonymous_pull
        self.directory = self.mktemp()
        self.set_up_registry(self.start_app(directory=self.directory))

    def other_node(self, node: str) -> HarborApp:
        """Another node on the same index, data directory and clock, with nothing in memory shared."""
        app = self.start_app(directory=self.directory, node_name=node, migrate=False, current=False)
        self.set_up_registry(app, first=False)
        return app

    def push_blob(self, name: str, data: bytes, user: str = "admin") -> str:
        digest = sha256(data)
        response, body = self.fetch(
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data,
            user=user,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 201, body)
        return digest

    def image_manifest(self, name: str, layers: list[bytes], config: bytes = b"{}", **extra: Any) -> bytes:
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.push_blob(name, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": self.push_blob(name, layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
        doc.update(extra)
        return json.dumps(doc).encode()

    def put_manifest(
        self, name: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST, user: str = "admin"
    ) -> tuple[Any, bytes]:
        return self.fetch("PUT", f"/v2/{name}/manifests/{ref}", body, {"Content-Type": media_type}, user=user)


class OciCacheCase(HarborTestCase):
    """The /v2 pull-through cache: one upstream registry ``fake`` (a `FakeRegistry`) at ``upstream_url``.

    ``upstream_username`` / ``upstream_password`` are its credentials in the config.
    """

    upstream_username: str | None = None
    upstream_password: str | None = None

    def make_upstream(self) -> Any:
        return FakeRegistry()

    def make_config(self) -> dict[str, Any]:
        upstream = UpstreamConfig(
            name="fake", url=self.upstream_url, username=self.upstream_username, password=self.upstream_password
        )
        return {"upstreams": (upstream,)}

    def start_cache(
        self, username: str | None = None, password: str | None = None, url: str | None = None
    ) -> HarborApp:
        """A new cache (fresh directory) as ``self.app`` whose upstream ``fake`` has these credentials / URL."""
        upstream = UpstreamConfig(name="fake", url=url or self.upstream_url, username=username, password=password)
        return self.start_app(upstreams=(upstream,))


MAVEN_START = 1_700_000_000.0


class MavenCacheCase(HarborTestCase):
    """The Maven front and core over a `FakeMavenRepo`: repositories ``central`` (public) and ``secret``
    (private, with upstream credentials), plus ``extra_repositories``."""

    start_time = MAVEN_START
    extra_repositories: tuple[MavenRepositoryConfig, ...] = ()

    def make_upstream(self) -> Any:
        return FakeMavenRepo()

    def make_http(self, client: HTTPClient) -> FlakyHTTP:
        """A client that can be switched off: ``self.http.down = True`` refuses connections."""
        return FlakyHTTP(client)

    def make_config(self) -> dict[str, Any]:
        repositories = (
            MavenRepositoryConfig(id="central", url="http://upstream.test/"),
            MavenRepositoryConfig(
                id="secret", url="http://upstream.test/", private=True, username="up-user", password="up-pass"
            ),
        ) + tuple(self.extra_repositories)
        return {"maven_repositories": repositories}


def run(case: Any, coro: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that finishes at once (inline pools, a Clock): index and core tests.

    ``case`` is a SynchronousTestCase, or a mixin of one."""
    return case.successResultOf(defer.Deferred.fromCoroutine(coro))


def failure(case: unittest.SynchronousTestCase, coro: Coroutine[Any, Any, Any], kind: type) -> Any:
    """The exception of ``kind`` a coroutine that finishes at once failed with."""
    return case.failureResultOf(defer.Deferred.fromCoroutine(coro), kind).value


def inline_index(pool: InlinePool) -> Index:
    """An `Index` over an `InlinePool` (threadless; a `TransactionPool` like adbapi's)."""
    return Index(pool)


def sqlite_pool(case: unittest.SynchronousTestCase) -> InlinePool:
    """A threadless pool on a new sqlite file in the test's temp dir, closed at cleanup."""
    directory = case.mktemp()
    os.makedirs(directory)
    pool = InlinePool(os.path.join(directory, "index.sqlite"))
    case.addCleanup(pool.close)
    return pool


def postgres_pool(case: unittest.SynchronousTestCase) -> InlinePool:
    """A threadless pool on a fresh schema of the tests' PostgreSQL (tests/pg_support.py), closed at cleanup."""
    from tests import pg_support

    pool = InlinePool.postgres(pg_support.fresh_schema_url(case))
    case.addCleanup(pool.close)
    return pool


def migrated_index(case: unittest.TestCase) -> Index:
    """A fresh, migrated index on a sqlite file in the test's temp dir; closed at cleanup."""
    index = inline_index(sqlite_pool(case))
    case.successResultOf(defer.Deferred.fromCoroutine(index.migrate()))
    return index


def app_evictor(case: Any) -> Any:
    """An `Evictor` over ``case.app`` and ``case.clock`` that hands the reactor back at once between batches."""
    from harbor_cache.core.operations.eviction import Evictor

    app = case.app
    return Evictor(
        index=app.index, storage=app.storage, downloads=app.downloads, settings=app.settings, access=app.access,
        clock=case.clock, cooperate=lambda: defer.succeed(None),
    )  # fmt: skip
