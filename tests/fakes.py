"""In-memory stand-ins for unit tests: a tiny upstream registry and a whole site on fakes.

Everything runs without sockets or threads: upstream and client talk through
treq's RequestTraversalAgent, SQL through InlinePool, file work through
InlineIO, time through a Clock.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter

from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.web import resource, server

from harbor_cache.core.access import AccessRecorder
from harbor_cache.core.downloads import Downloads
from harbor_cache.core.oci import OciCache
from harbor_cache.http.site import HarborSite, Root, SiteFront
from harbor_cache.index import Index, InlinePool
from harbor_cache.metrics import Metrics
from harbor_cache.oci.front import OciFront
from harbor_cache.settings.runtime import RuntimeSettings
from harbor_cache.settings.startup import UpstreamConfig
from harbor_cache.storage import InlineIO, Storage
from harbor_cache.upstream.registry import RegistryUpstream, UpstreamSet

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry(resource.Resource):
    """Enough of a distribution registry for pulls, with knobs to make it misbehave."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.requests: Counter = Counter()
        self.corrupt: set[str] = set()
        self.status: int | None = None  # answer everything with this status
        self.hold: dict[str, int] = {}  # digest -> bytes to send before pausing the body
        self.held: list = []
        self.no_length = False
        self.bearer: str | None = None  # require this token (got from /token with basic_auth)
        self.basic_auth: tuple[str, str] | None = None
        self.tokens_issued = 0
        self.redirect_blobs = False  # answer blob GETs with a 307 to /cdn/<digest>
        self.cdn_authorization: list = []
        self.extra_headers: dict[bytes, bytes] = {}  # sent with every answer

    def add_blob(self, data: bytes) -> str:
        digest = sha(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(self, name: str, tag: str, doc: dict, media_type: str = OCI_MANIFEST) -> tuple[bytes, str]:
        body = json.dumps(doc).encode()
        digest = sha(body)
        self.manifests[(name, tag)] = (body, media_type)
        self.manifests[(name, digest)] = (body, media_type)
        return body, digest

    def count(self, method: str, fragment: str) -> int:
        return sum(n for (m, p), n in self.requests.items() if m == method and fragment in p)

    def render(self, request):
        path = request.path.decode()
        method = request.method.decode()
        self.requests[(method, path)] += 1
        for name, value in self.extra_headers.items():
            request.setHeader(name, value)
        if self.status is not None:
            request.setResponseCode(self.status)
            return b"{}"
        if path == "/token":
            return self._token(request)
        if path.startswith("/cdn/"):
            self.cdn_authorization.append(request.getHeader(b"Authorization"))
            data = self.blobs[path[len("/cdn/"):]]
            request.setHeader(b"Content-Length", b"%d" % len(data))
            return data
        if not self._authorized(request):
            return b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        if path in ("/v2/", "/v2"):
            return b"{}"
        rest = path[len("/v2/"):]
        if rest.endswith("/tags/list"):
            return self._tags(request, rest[:-len("/tags/list")])
        if "/manifests/" in rest:
            name, _, ref = rest.rpartition("/manifests/")
            item = self.manifests.get((name, ref))
            if item is None:
                request.setResponseCode(404)
                return b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
            body, media_type = item
            request.setHeader(b"Content-Type", media_type.encode())
            request.setHeader(b"Docker-Content-Digest", sha(body).encode())
            if self.no_length and method == "GET":
                for i in range(0, len(body), 65536):
                    request.write(body[i:i + 65536])
                request.finish()
                return server.NOT_DONE_YET
            request.setHeader(b"Content-Length", b"%d" % len(body))
            return b"" if method == "HEAD" else body
        if "/blobs/" in rest:
            digest = rest.rpartition("/blobs/")[2]
            data = self.blobs.get(digest)
            if data is None:
                request.setResponseCode(404)
                return b'{"errors":[{"code":"BLOB_UNKNOWN"}]}'
            if digest in self.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            if not self.no_length:
                request.setHeader(b"Content-Length", b"%d" % len(data))
            request.setHeader(b"Docker-Content-Digest", digest.encode())
            if method == "HEAD":
                return b""
            if self.redirect_blobs:
                request.setResponseCode(307)
                request.setHeader(b"Location", b"http://cdn.test/cdn/" + digest.encode())
                return b""
            if digest in self.hold:
                n = self.hold[digest]
                request.write(data[:n])
                self.held.append((request, data[n:]))
                return server.NOT_DONE_YET
            return data
        request.setResponseCode(404)
        return b"{}"

    def _tags(self, request, name: str) -> bytes:
        """tags/list with n and last, as distribution pages it (a Link header when more follow)."""
        tags = sorted(ref for (n, ref) in self.manifests if n == name and not ref.startswith("sha256:"))
        if not tags:
            request.setResponseCode(404)
            return b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
        last = request.args.get(b"last", [b""])[0].decode()
        tags = [t for t in tags if t > last]
        n = request.args.get(b"n")
        if n is not None:
            limit = int(n[0])
            if len(tags) > limit:
                request.setHeader(b"Link", b'</v2/%s/tags/list?n=%d&last=%s>; rel="next"'
                                  % (name.encode(), limit, tags[limit - 1].encode()))
            tags = tags[:limit]
        return json.dumps({"name": name, "tags": tags}).encode()

    def _basic_ok(self, request) -> bool:
        import base64

        if self.basic_auth is None:
            return True
        expected = b"Basic " + base64.b64encode(("%s:%s" % self.basic_auth).encode())
        return request.getHeader(b"Authorization") == expected

    def _token(self, request):
        if not self._basic_ok(request):
            request.setResponseCode(401)
            return b"{}"
        self.tokens_issued += 1
        self.last_token_scope = request.args.get(b"scope", [b""])[0].decode()
        return json.dumps({"token": self.bearer, "expires_in": 300}).encode()

    def _authorized(self, request) -> bool:
        if self.bearer is not None:
            if request.getHeader(b"Authorization") == b"Bearer " + self.bearer.encode():
                return True
            name = request.path.decode()[len("/v2/"):].rpartition("/")[0].rpartition("/")[0]
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate",
                              b'Bearer realm="http://upstream.test/token",service="fake",scope="repository:%s:pull"'
                              % name.encode())
            return False
        if self.basic_auth is not None and not self._basic_ok(request):
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", b'Basic realm="fake"')
            return False
        return True

    def release(self, fail: bool = False) -> None:
        """Finish (or cut) every held body."""
        held, self.held = self.held, []
        for request, rest in held:
            if fail:
                request.transport.abortConnection() if hasattr(request.transport, "abortConnection") \
                    else request.transport.loseConnection()
            else:
                request.write(rest)
                request.finish()


def site_client(root, metrics) -> tuple[RequestTraversalAgent, HTTPClient]:
    """An in-memory client for ``root`` served by our own HarborSite (CORS, access log, errors)."""
    agent = RequestTraversalAgent(root)
    agent._serverFactory = HarborSite(root, metrics, reactor=agent._memoryReactor)
    return agent, HTTPClient(agent)


def migrated_index(case) -> Index:
    """A fresh, migrated index on a sqlite file in the test's temp dir; closed at cleanup."""
    from twisted.internet.defer import Deferred

    tmp = case.mktemp()
    os.makedirs(tmp)
    pool = InlinePool(os.path.join(tmp, "index.sqlite"))
    case.addCleanup(pool.close)
    index = Index(pool)
    index.pool = pool
    case.successResultOf(Deferred.fromCoroutine(index.migrate()))
    return index


class Harness:
    """A whole harbor-cache (site front + OCI front + core) on fakes."""

    def __init__(self, tmpdir: str, upstream: FakeRegistry | None = None, username: str | None = None,
                 password: str | None = None):
        os.makedirs(tmpdir, exist_ok=True)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.upstream = upstream or FakeRegistry()
        self.upstream_agent = RequestTraversalAgent(self.upstream)
        self.metrics = Metrics()
        self.storage = Storage(os.path.join(tmpdir, "data"), InlineIO())
        self.pool = InlinePool(os.path.join(tmpdir, "index.sqlite"))
        self.index = Index(self.pool)
        from twisted.internet.defer import Deferred

        Deferred.fromCoroutine(self.index.migrate())
        self.settings = RuntimeSettings(self.index, self.clock)
        self.access = AccessRecorder(self.index, self.clock)
        self.downloads = Downloads(self.storage, self.clock, self.metrics, idle_timeout=30)
        up = RegistryUpstream(UpstreamConfig(name="fake", url="http://upstream.test",
                                             username=username, password=password),
                              HTTPClient(self.upstream_agent), self.clock, header_timeout=10)
        self.upstreams = UpstreamSet([up])
        self.oci = OciCache(index=self.index, storage=self.storage, downloads=self.downloads,
                            upstreams=self.upstreams, settings=self.settings, access=self.access,
                            metrics=self.metrics, clock=self.clock)
        self.root = Root()
        site_front = SiteFront(self.index, self.storage, self.metrics)
        self.root.mount(b"health", site_front.app.resource())
        self.root.mount(b"healthz", site_front.app.resource())
        self.oci_front = OciFront(self.oci, self.settings, self.metrics, public_url="http://cache.test")
        self.root.mount(b"v2", self.oci_front.app.resource())
        self.agent, self.client = site_client(self.root, self.metrics)

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
