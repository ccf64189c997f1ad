"""Test doubles for harbor-cache, and `build_app`: the production wiring on them (as `treq.testing` is for treq).

`build_app` builds the same `HarborApp` as `make_service`, with the collaborators
that touch the outside world replaced: time is a `Clock`, SQL runs on an
`InlinePool` (a sqlite file, no threads), file work on `InlineIO`, bcrypt inline
at cost 4 (`InlineBcrypt`), and upstreams are reached through an in-memory
client (treq's `RequestTraversalAgent` over a `FakeRegistry` or `FakeMavenRepo`).
Every request then finishes inside the test's own call stack: no sockets, no
threads, no reactor, no sleeps.

Nothing in the server imports this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any

import bcrypt
from cryptography.hazmat.primitives.asymmetric import rsa
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from harbor_cache.http.site import HarborSite
from harbor_cache.index.engine import POSTGRES_CONNECT_OPTIONS, postgres_connect_options, sqlite_connect_options
from harbor_cache.service import HarborApp, TokenKeys
from harbor_cache.settings.startup import Config

__all__ = [
    "OCI_MANIFEST",
    "UPSTREAM_MODIFIED",
    "FakeMavenRepo",
    "FakeRegistry",
    "FlakyHTTP",
    "InlineBcrypt",
    "PlainPasswords",
    "InlineBody",
    "InlineIO",
    "InlinePool",
    "build_app",
    "fixed_keys",
    "plain_check",
    "plain_hash",
    "resolved",
    "rsa_key",
    "sha",
    "site_client",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
UPSTREAM_MODIFIED = 1_600_000_000.0  # the Last-Modified of FakeMavenRepo's files unless told otherwise


def sha(data: bytes) -> str:
    """The OCI digest (``sha256:<hex>``) of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def resolved(d: defer.Deferred) -> Any:
    """The result of a Deferred that has already fired (raises its failure; AssertionError when pending).

    For set-up code outside a TestCase; inside one, ``successResultOf`` says the same.
    """
    results: list = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError(f"{d!r} has not fired: something waits for a thread, the reactor or the clock")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


# -- collaborators ---------------------------------------------------------------


class InlineIO:
    """A `StorageIO` that runs file work synchronously: determinism beats speed in unit tests."""

    def run(self, fn, *args):
        return defer.maybeDeferred(fn, *args)


class InlineBcrypt:
    """Real bcrypt at cost 4, run inline (no threads), recording each check.

    ``hash`` and ``check`` stand in for `auth.hash_password` and
    `auth.check_password` (which run on the bcrypt thread pool).
    """

    _dummy: str | None = None  # one per process: a test harness builds many

    def __init__(self):
        self.checks: list[tuple[str, str | None]] = []
        if InlineBcrypt._dummy is None:
            InlineBcrypt._dummy = bcrypt.hashpw(b"dummy", bcrypt.gensalt(4)).decode()
        self.dummy = InlineBcrypt._dummy

    async def hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        self.checks.append((password, hashed))
        try:
            ok = bcrypt.checkpw(password.encode(), (hashed or self.dummy).encode())
        except (ValueError, UnicodeEncodeError):
            return False
        return ok and hashed is not None


async def plain_check(password: str, hashed: str | None) -> bool:
    """Stand-in for bcrypt where users are stored with their password as the 'hash'."""
    return hashed is not None and password == hashed


async def plain_hash(password: str) -> str:
    """The 'hash' `plain_check` expects: the password itself."""
    return password


class PlainPasswords:
    """Passwords compared without bcrypt: users are stored with the password itself as their 'hash'."""

    hash = staticmethod(plain_hash)
    check = staticmethod(plain_check)


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
    """An upstream HTTP client that can be switched off (connection refused)."""

    def __init__(self, client):
        self.client = client
        self.down = False

    def request(self, method, url, **kw):
        if self.down:
            return defer.fail(ConnectionRefusedError("upstream stopped"))
        return self.client.request(method, url, **kw)


_KEY: list = []


def rsa_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key per test run (generating is slow); `build_app` installs it as the artifact key."""
    if not _KEY:
        _KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY[0]


# -- upstreams -------------------------------------------------------------------


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
        self.token_realm = b"http://upstream.test/token"  # the Bearer challenge's realm

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
            data = self.blobs[path[len("/cdn/") :]]
            request.setHeader(b"Content-Length", b"%d" % len(data))
            return data
        if not self._authorized(request):
            return b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        if path in ("/v2/", "/v2"):
            return b"{}"
        rest = path[len("/v2/") :]
        if rest.endswith("/tags/list"):
            return self._tags(request, rest[: -len("/tags/list")])
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
                    request.write(body[i : i + 65536])
                request.finish()
                return server.NOT_DONE_YET
            request.setHeader(b"Content-Length", b"%d" % len(body))
            return b"" if method == "HEAD" else body
        if "/blobs/" in rest:
            digest = rest.rpartition("/blobs/")[2]
            found = self.blobs.get(digest)
            if found is None:
                request.setResponseCode(404)
                return b'{"errors":[{"code":"BLOB_UNKNOWN"}]}'
            data = found
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
                request.setHeader(
                    b"Link",
                    b'</v2/%s/tags/list?n=%d&last=%s>; rel="next"' % (name.encode(), limit, tags[limit - 1].encode()),
                )
            tags = tags[:limit]
        return json.dumps({"name": name, "tags": tags}).encode()

    def _basic_ok(self, request) -> bool:
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
            name = request.path.decode()[len("/v2/") :].rpartition("/")[0].rpartition("/")[0]
            request.setResponseCode(401)
            request.setHeader(
                b"WWW-Authenticate",
                b'Bearer realm="%s",service="fake",scope="repository:%s:pull"' % (self.token_realm, name.encode()),
            )
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
                request.transport.abortConnection() if hasattr(
                    request.transport, "abortConnection"
                ) else request.transport.loseConnection()
            else:
                request.write(rest)
                request.finish()


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
        self.headers_seen.append(
            (method, path, {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()})
        )
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
                request.write(data[i : i + 65536])
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


# -- clients -------------------------------------------------------------------


def site_client(root, metrics, history: Any = None) -> tuple[RequestTraversalAgent, HTTPClient]:
    """An in-memory client for ``root`` served by our own HarborSite (CORS, access log, errors, traffic history)."""
    agent = RequestTraversalAgent(root)
    agent._serverFactory = HarborSite(root, metrics, reactor=agent._memoryReactor, history=history)
    return agent, HTTPClient(agent)


# -- the application -------------------------------------------------------------


def fixed_keys(registry: bytes = b"r" * 32, management: bytes = b"m" * 32) -> TokenKeys:
    """Token keys a test knows (so it can sign or read tokens); the artifact key is `rsa_key`."""
    return TokenKeys(registry=registry, management=management, artifact_key=rsa_key())


def build_app(
    directory: str,
    *,
    clock: Clock | None = None,
    client: Any = None,
    passwords: Any = None,
    token_keys: TokenKeys | None = None,
    migrate: bool = True,
    worker: int | None = None,
    **config: Any,
) -> HarborApp:
    """The production `HarborApp` over the doubles of this module, in ``directory`` (created if need be).

    ``config`` are `Config` fields (``upstreams`` and ``maven_repositories``
    default to none); the data directory is ``directory/data``, its index
    ``directory/index.sqlite``.  ``client`` is the upstreams' HTTP client
    (default: one where every upstream answers 404); ``passwords`` has the
    ``hash`` and ``check`` coroutines of `InlineBcrypt` (the default) or
    `PlainPasswords`; ``token_keys`` sign tokens (default `fixed_keys`:
    no key file is read or written).  The index is migrated (``migrate``) but
    `HarborApp.start` is not run: no admin user, settings at their defaults
    until loaded.
    """
    os.makedirs(directory, exist_ok=True)
    data_dir = os.path.join(directory, "data")
    config.setdefault("upstreams", ())
    config.setdefault("maven_repositories", ())
    config.setdefault("access_log_file", None)  # access events through twisted.logger, where tests read them
    if clock is None:
        clock = Clock()
    if client is None:
        client = HTTPClient(RequestTraversalAgent(resource.NoResource()))
    if passwords is None:
        passwords = InlineBcrypt()
    app = HarborApp(
        Config(data_dir=data_dir, **config),
        clock=clock,
        db_pool=InlinePool(os.path.join(directory, "index.sqlite")),
        io=InlineIO(),
        http=client,
        hash_password=passwords.hash,
        check_password=passwords.check,
        token_keys=token_keys if token_keys is not None else fixed_keys(),
        worker=worker,
    )
    if migrate:
        resolved(defer.Deferred.fromCoroutine(app.index.migrate()))
    return app


class InlinePool:
    """A threadless stand-in for ConnectionPool: each interaction runs at once.

    For unit tests (SQL finishes inside the test's own call stack) and the benchmarks' tools.
    ``InlinePool(path)`` opens a sqlite file; `InlinePool.postgres` a server.
    """

    def __init__(self, path: str | None = None, *, conn=None, dbapi=None):
        if conn is None:
            assert path is not None, "a path or a connection"
            conn = sqlite3.connect(path, check_same_thread=False)
            sqlite_connect_options(conn)
            dbapi = sqlite3
        self.conn = conn
        self.dbapi = dbapi

    @classmethod
    def postgres(cls, url: str) -> InlinePool:
        import psycopg2

        conn = psycopg2.connect(url, **POSTGRES_CONNECT_OPTIONS)
        postgres_connect_options(conn)
        return cls(conn=conn, dbapi=psycopg2)

    def runInteraction(self, fn: Callable, *args, **kw) -> defer.Deferred:
        cur = self.conn.cursor()
        try:
            result = fn(cur, *args, **kw)
        except BaseException:
            self.conn.rollback()
            return defer.fail()
        finally:
            cur.close()
        self.conn.commit()
        return defer.succeed(result)

    def close(self) -> None:
        self.conn.close()
