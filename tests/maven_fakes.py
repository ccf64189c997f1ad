"""In-memory stand-ins for the Maven tests: a tiny upstream repository and the Maven front on fakes.

No sockets or threads: upstream and client talk through treq's
RequestTraversalAgent, SQL through InlinePool, file work through InlineIO,
time through a Clock.  bcrypt runs inline at cost 4 (check_password would
otherwise use a thread).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter

import bcrypt
from cryptography.hazmat.primitives.asymmetric import rsa
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web import http, resource, server
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from harbor_cache.auth import ArtifactTokens
from harbor_cache.core.access import AccessRecorder
from harbor_cache.core.credentials import Credentials
from harbor_cache.core.downloads import Downloads
from harbor_cache.core.maven import MavenCache
from harbor_cache.http.site import Root
from harbor_cache.index import Index, InlinePool
from harbor_cache.maven.front import MavenFront
from harbor_cache.metrics import Metrics
from harbor_cache.settings.runtime import RuntimeSettings
from harbor_cache.settings.startup import MavenRepositoryConfig
from harbor_cache.storage import InlineIO, Storage
from harbor_cache.upstream.maven import MavenUpstream
from tests.fakes import site_client

START = 1_700_000_000.0
UPSTREAM_MODIFIED = 1_600_000_000.0
_KEY: list = []


def rsa_key():
    """One 2048-bit key per test run (generating is slow)."""
    if not _KEY:
        _KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY[0]


class FakeMavenRepo(resource.Resource):
    """A Maven repository over HTTP: files with Last-Modified, conditional GET, and knobs to misbehave."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.files: dict[str, tuple[bytes, float]] = {}
        self.requests: Counter = Counter()
        self.headers_seen: list[tuple[str, str, dict]] = []
        self.status: dict[str, int] = {}  # path -> answer with this status
        self.hold = False  # keep non-checksum bodies open until release()
        self.held: list = []
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.listings: dict[str, bytes] = {}  # path -> an HTML directory index (200 text/html)
        self.chunked: set[str] = set()  # paths sent without Content-Length, in 64 KiB writes

    def put(self, path: str, data: bytes, modified: float = UPSTREAM_MODIFIED, sha1: bool | str = True) -> None:
        """Add a file (and its .sha1 unless sha1 is False; a str is written as the .sha1 body)."""
        self.files[path] = (data, modified)
        if sha1 is True:
            self.files[path + ".sha1"] = (hashlib.sha1(data).hexdigest().encode(), modified)
        elif isinstance(sha1, str):
            self.files[path + ".sha1"] = (sha1.encode(), modified)

    def count(self, method: str, path: str) -> int:
        return self.requests[(method, path)]

    def total(self) -> int:
        return sum(self.requests.values())

    def render(self, request):
        from urllib.parse import unquote

        path = unquote(request.path.decode()[1:])
        method = request.method.decode()
        self.requests[(method, path)] += 1
        self.headers_seen.append((method, path, {k.decode().lower(): v[0].decode()
                                                 for k, v in request.requestHeaders.getAllRawHeaders()}))
        if path in self.status:
            request.setResponseCode(self.status[path])
            return b"error"
        if path in self.redirects:
            request.setResponseCode(302)
            request.setHeader(b"Location", self.redirects[path].encode())
            return b"<html>moved</html>"
        if path in self.listings:
            request.setHeader(b"Content-Type", b"text/html")
            return self.listings[path]
        item = self.files.get(path)
        if item is None:
            request.setResponseCode(404)
            return b"not found"
        data, modified = item
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Last-Modified", http.datetimeToString(modified))
        ims = request.getHeader(b"If-Modified-Since")
        if ims is not None and http.stringToDatetime(ims) >= int(modified):
            request.setResponseCode(304)
            return b""
        if path in self.chunked:
            for i in range(0, len(data), 65536):
                request.write(data[i:i + 65536])
            request.finish()
            return server.NOT_DONE_YET
        request.setHeader(b"Content-Length", b"%d" % len(data))
        if method == "HEAD":
            return b""
        if self.hold and not path.endswith(".sha1"):
            request.write(data[:1])
            self.held.append((request, data[1:]))
            return server.NOT_DONE_YET
        return data

    def release(self) -> None:
        held, self.held = self.held, []
        for request, rest in held:
            request.write(rest)
            request.finish()


@implementer(IBodyProducer)
class InlineBody:
    """A request body written at once (treq's own producer would wait for the global reactor)."""

    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class FlakyHTTP:
    """The upstream HTTP client, which can be switched off (connection refused)."""

    def __init__(self, client):
        self.client = client
        self.down = False

    def request(self, method, url, **kw):
        if self.down:
            return defer.fail(ConnectionRefusedError("upstream stopped"))
        return self.client.request(method, url, **kw)


class MavenHarness:
    """The Maven core and front over fakes; repositories ``central`` (public) and ``secret`` (private)."""

    def __init__(self, tmpdir: str, upstream: FakeMavenRepo | None = None, extra_repositories=()):
        os.makedirs(tmpdir, exist_ok=True)
        self.clock = Clock()
        self.clock.advance(START)
        self.upstream = upstream or FakeMavenRepo()
        self.upstream_agent = RequestTraversalAgent(self.upstream)
        self.http = FlakyHTTP(HTTPClient(self.upstream_agent))
        self.metrics = Metrics()
        self.storage = Storage(os.path.join(tmpdir, "data"), InlineIO())
        self.pool = InlinePool(os.path.join(tmpdir, "index.sqlite"))
        self.index = Index(self.pool)
        defer.Deferred.fromCoroutine(self.index.migrate())
        self.settings = RuntimeSettings(self.index, self.clock)
        self.access = AccessRecorder(self.index, self.clock)
        self.downloads = Downloads(self.storage, self.clock, self.metrics, idle_timeout=30)
        self.repositories = (
            MavenRepositoryConfig(id="central", url="http://upstream.test/"),
            MavenRepositoryConfig(id="secret", url="http://upstream.test/", private=True,
                                  username="up-user", password="up-pass"),
        ) + tuple(extra_repositories)
        self.upstreams = {r.id: MavenUpstream(r, self.http, self.clock, header_timeout=10)
                          for r in self.repositories if r.is_proxy}
        self.cache = MavenCache(repositories=self.repositories, upstreams=self.upstreams, index=self.index,
                                storage=self.storage, downloads=self.downloads, settings=self.settings,
                                access=self.access, metrics=self.metrics, clock=self.clock)
        self.tokens = ArtifactTokens(rsa_key(), "http://cache.test", self.clock, 720)
        from harbor_cache.core.audit import AuditLog

        self.audit = AuditLog(self.index, self.clock, self.settings)
        self.front = MavenFront(self.cache, self.tokens, self.index, self.metrics, audit=self.audit,
                                credentials=Credentials(self.index, self.clock, inline_check_password))
        self.root = Root()
        res = self.front.app.resource()
        for segment in (b"artifacts", b"repositories", b"token", b".well-known"):
            self.root.mount(segment, res)
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


async def inline_check_password(password: str, hashed: str | None) -> bool:
    """bcrypt inline (no thread in a SynchronousTestCase), for the harness's `Credentials`."""
    if hashed is None:
        return False
    return bcrypt.checkpw(password.encode(), hashed.encode())
