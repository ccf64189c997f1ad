"""One upstream OCI registry: requests with the token dance, and the set of upstreams.

Authentication follows what registries ask for: a request goes out with the
token cached for its scope (or Basic credentials when configured); on a 401
with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` we get a
token from the realm (with our Basic credentials if any), cache it per scope
until it expires, and retry once.  Blob redirects (S3, CDNs) are followed by
treq's RedirectAgent, which drops ``Authorization`` on a cross-origin hop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twisted.logger import Logger
from twisted.web.http_headers import Headers

from harbor_cache.grammar.mediatypes import MANIFEST_ACCEPT, MAX_MANIFEST_BYTES
from harbor_cache.grammar.namespaces import UnknownRegistry, effective_prefix, namespaced_key, split_prefix
from harbor_cache.grammar.numbers import parse_decimal
from harbor_cache.limited_body import BodyTooLarge
from harbor_cache.settings.startup import UpstreamConfig
from harbor_cache.upstream.body import discard_body, read_body_limited
from harbor_cache.upstream.challenge import parse_www_authenticate
from harbor_cache.upstream.http import UpstreamError, basic_authorization, request_url, response_length, send_request
from harbor_cache.upstream.routing import route_matches, upstream_repository_name

log = Logger()


class RegistryUpstream:
    """Talks to one registry for pulls."""

    def __init__(self, config: UpstreamConfig, http, clock, header_timeout: float = 30.0, metrics=None):
        self.config = config
        self._metrics = metrics
        self.name = config.name
        self.priority = config.priority
        self._http = http
        self._clock = clock
        self._header_timeout = header_timeout
        self._tokens: dict[str, tuple[str, float]] = {}
        # The last ``ratelimit-remaining`` the registry sent (None: it sends none); sync runs stop on it.
        self.ratelimit_remaining: float | None = None

    def matches(self, name: str) -> bool:
        return route_matches(list(self.config.routes), name)

    def remote_name(self, name: str) -> str:
        return upstream_repository_name(name, self.config.library_prefix)

    def _basic(self) -> bytes | None:
        return basic_authorization(self.config.username, self.config.password)

    async def _send(self, method: str, url: str, headers: dict[bytes, list[bytes]]):
        return await send_request(
            self._http, method, url, Headers(headers), timeout=self._header_timeout, clock=self._clock, who=self.name
        )

    async def _token(self, params: dict[str, str], scope: str) -> str | None:
        realm = params.get("realm")
        if not realm:
            return None
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        query["scope"] = params.get("scope") or scope
        headers: dict[bytes, list[bytes]] = {}
        basic = self._basic()
        if basic:
            headers[b"Authorization"] = [basic]
        try:
            resp = await self._http.get(
                request_url(realm),
                params=query,
                headers=Headers(headers),
                timeout=self._header_timeout,
                reactor=self._clock,
            )
            body = await resp.content()
        except Exception as e:
            raise UpstreamError(f"{self.name}: token endpoint failed: {e}", "token") from None
        if resp.code != 200:
            raise UpstreamError(f"{self.name}: token endpoint answered {resp.code}", "token", resp.code)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(f"{self.name}: token endpoint sent no token", "token") from None
        if not token:
            raise UpstreamError(f"{self.name}: token endpoint sent no token", "token")
        self._tokens[scope] = (token, self._clock.seconds() + max(lifetime - 10, 1))
        return token

    def _cached_token(self, scope: str) -> str | None:
        entry = self._tokens.get(scope)
        if entry and entry[1] > self._clock.seconds():
            return entry[0]
        self._tokens.pop(scope, None)
        return None

    async def request(
        self,
        method: str,
        name: str,
        kind: str,
        reference: str,
        accept: str | None = None,
        query: dict[str, str] | None = None,
    ):
        """Send one request for ``/v2/<name>/<kind>/<reference>``; returns the unbuffered response.

        401 challenges are answered once.  Raises `UpstreamError` when the
        upstream cannot be reached or does not answer within the timeout.
        """
        remote = self.remote_name(name)
        url = f"{self.config.url}/v2/{remote}/{kind}/{reference}"
        if query:
            url += "?" + urlencode(query)
        scope = f"repository:{remote}:pull"
        headers: dict[bytes, list[bytes]] = {b"User-Agent": [b"harbor-cache/0.1"]}
        if accept:
            headers[b"Accept"] = [accept.encode()]
        token = self._cached_token(scope)
        basic = self._basic()
        if token:
            headers[b"Authorization"] = [b"Bearer " + token.encode()]
        elif basic:
            headers[b"Authorization"] = [basic]
        response = await self._send(method, url, headers)
        self._note_ratelimit(response)
        if response.code != 401:
            return response
        challenge = response.headers.getRawHeaders(b"WWW-Authenticate")
        await discard_body(response)
        if not challenge:
            return response
        scheme, params = parse_www_authenticate(challenge[0].decode("latin-1"))
        if scheme == "bearer":
            token = await self._token(params, scope)
            if token is None:
                raise UpstreamError(f"{self.name}: bearer challenge without realm", "auth", 401)
            headers[b"Authorization"] = [b"Bearer " + token.encode()]
        elif scheme == "basic" and basic and headers.get(b"Authorization") != [basic]:
            headers[b"Authorization"] = [basic]
        else:
            raise UpstreamError(f"{self.name}: upstream refused our credentials", "auth", 401)
        response = await self._send(method, url, headers)
        self._note_ratelimit(response)
        if response.code == 401:
            await discard_body(response)
            raise UpstreamError(f"{self.name}: upstream refused our credentials", "auth", 401)
        return response

    def _note_ratelimit(self, response) -> None:
        """Docker Hub's ``ratelimit-limit: 100;w=21600`` / ``ratelimit-remaining: 76;w=21600`` as gauges."""
        raw_remaining = response.headers.getRawHeaders(b"ratelimit-remaining")
        if raw_remaining:
            remaining = parse_decimal(raw_remaining[0].decode("latin-1").split(";")[0].strip())
            if remaining is not None:
                self.ratelimit_remaining = remaining
        if self._metrics is None:
            return
        for name, gauge in (
            (b"ratelimit-limit", self._metrics.upstream_ratelimit_limit),
            (b"ratelimit-remaining", self._metrics.upstream_ratelimit_remaining),
        ):
            raw = response.headers.getRawHeaders(name)
            if raw:
                count = raw[0].decode("latin-1").split(";")[0].strip()
                value = parse_decimal(count)
                if value is not None:
                    gauge.labels(self.name).set(value)

    async def probe(self) -> int:
        """``GET /v2/`` without credentials: the status code (401 means up, asking for a token)."""
        response = await self._send("GET", f"{self.config.url}/v2/", {b"User-Agent": [b"harbor-cache/0.1"]})
        await discard_body(response)
        return response.code

    async def check_access(self, name: str = "library/hello-world") -> dict[str, Any]:
        """Reachability and authentication, for ``POST /api/v1/upstreams/test``.

        ``GET /v2/`` tells whether the registry answers; then a manifest HEAD
        of ``name`` goes through the full token dance with our credentials,
        so refused credentials show as ``authenticated: false``.
        """
        result: dict[str, Any] = {"reachable": False, "authenticated": None, "status": None, "error": None}
        try:
            result["status"] = await self.probe()
        except UpstreamError as e:
            result["error"] = str(e)
            return result
        result["reachable"] = result["status"] < 500
        if not result["reachable"]:
            result["error"] = f"GET /v2/ answered {result['status']}"
            return result
        try:
            response = await self.request("HEAD", name, "manifests", "latest", accept=MANIFEST_ACCEPT)
        except UpstreamError as e:
            result["authenticated"] = False if e.code in (401, 403) or e.reason in ("auth", "token") else None
            result["error"] = str(e)
            return result
        await discard_body(response)
        result["authenticated"] = response.code not in (401, 403)
        if not result["authenticated"]:
            result["error"] = f"manifest HEAD answered {response.code}"
        return result


async def read_limited(response, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """Read a small body (manifests), refusing anything over ``limit``."""
    length = response_length(response)
    if length is not None and length > limit:
        await discard_body(response)
        raise UpstreamError(f"upstream body of {length} bytes is over the {limit}-byte limit", "too_large")
    try:
        return await read_body_limited(response, limit)
    except BodyTooLarge:
        raise UpstreamError(f"upstream body over the {limit}-byte limit", "too_large") from None


@dataclass
class Route:
    """Where a cache key leads: its namespace, the name upstream, the upstreams by priority."""

    key: str
    prefix: str | None  # the namespace's prefix; None for the default namespace
    remote: str  # the name within the namespace (each upstream may still add library/)
    upstreams: list[RegistryUpstream]

    @property
    def proxied(self) -> bool:
        """Some proxy upstream claims this name (a hosted name has none)."""
        return bool(self.upstreams)

    @property
    def writable(self) -> bool:
        """Pushes and deletes are allowed: hosted, or every claiming upstream allows them."""
        return all(u.config.allow_push for u in self.upstreams)


class UpstreamSet:
    """All OCI upstreams; maps cache keys to namespaces and candidates by route and priority.

    The set is replaced whole when upstreams change at run time (`replace`),
    so a request works on one consistent list from start to end.
    """

    def __init__(self, upstreams: list[RegistryUpstream]):
        self.replace(upstreams)

    def replace(self, upstreams: list[RegistryUpstream]) -> None:
        self.upstreams = sorted(upstreams, key=lambda u: u.priority)
        self._by_prefix: dict[str, list[RegistryUpstream]] = {}
        self._prefix_of_registry: dict[str, str] = {}
        for u in self.upstreams:
            prefix = effective_prefix(u.config)
            if prefix is None:
                continue
            self._by_prefix.setdefault(prefix, []).append(u)
            if u.config.registry:
                self._prefix_of_registry[u.config.registry] = prefix

    def by_name(self, name: str) -> RegistryUpstream | None:
        return next((u for u in self.upstreams if u.name == name), None)

    def key_for(self, name: str, ns: str | None) -> str:
        """The cache key of ``name`` as a client asked for it, ``ns`` being containerd's query value.

        Raises UnknownRegistry when ``ns`` names a registry no upstream serves
        (the client then tries its next mirror, or the registry itself).
        """
        if not ns:
            return name
        prefix = self._prefix_of_registry.get(ns.lower())
        if prefix is None:
            raise UnknownRegistry(ns)
        return namespaced_key(prefix, name)

    def route(self, key: str) -> Route:
        prefix, remote = split_prefix(key, self._by_prefix)
        if prefix is not None:
            return Route(key, prefix, remote, list(self._by_prefix[prefix]))
        return Route(key, None, key, [u for u in self.upstreams if u.matches(key)])
