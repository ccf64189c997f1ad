"""The OpenID provider, over HTTP: its discovery document, its signing keys (JWKS) and its token endpoint.

Discovery and the JWKS are fetched with treq and kept for
``metadata_ttl_seconds`` (every login would otherwise cost two extra round
trips); a JWKS without the key an ID token names is fetched again at once,
at most every `MIN_REFETCH_SECONDS`, so a provider's key rotation needs no
restart.  Every failure is an `OidcProviderError` whose reason names the step
and never carries a secret (the client secret goes only into the token
request's Authorization header).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.interfaces import IReactorTime

from harbor_cache.settings.oidc import OidcConfig

MAX_DOCUMENT_BYTES = 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 15.0
MIN_REFETCH_SECONDS = 10.0


class OidcProviderError(Exception):
    """The provider could not be used; ``reason`` is short and safe to show and audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def client_for(config: OidcConfig, reactor: Any, default: Any) -> Any:
    """The treq client for the provider: ``default`` (the upstream client), or one trusting ``ca_file`` only."""
    if config.ca_file is None:
        return default
    from treq.client import HTTPClient
    from twisted.internet.ssl import Certificate
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

    with open(config.ca_file, "rb") as f:
        root = Certificate.loadPEM(f.read())
    return HTTPClient(Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=root)))


class OidcProvider:
    """Discovery, JWKS and code exchange of one provider (``[auth.oidc]``)."""

    def __init__(self, config: OidcConfig, http: Any, clock: IReactorTime) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._jwks: tuple[float, dict[str, Any]] | None = None

    async def _json(self, what: str, response: Any) -> dict[str, Any]:
        body = await response.content()
        if len(body) > MAX_DOCUMENT_BYTES:
            raise OidcProviderError(f"{what}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            raise OidcProviderError(f"{what}: answer is not JSON (HTTP {response.code})") from None
        if not isinstance(document, dict):
            raise OidcProviderError(f"{what}: answer is not a JSON object")
        return document

    async def _get(self, what: str, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(
                url, headers={b"Accept": [b"application/json"]}, timeout=REQUEST_TIMEOUT_SECONDS, reactor=self.clock
            )
        except Exception as e:  # connection refused, TLS, timeout: all "unreachable"
            raise OidcProviderError(f"{what}: provider unreachable ({type(e).__name__})") from None
        if response.code != 200:
            await response.content()
            raise OidcProviderError(f"{what}: HTTP {response.code}")
        return await self._json(what, response)

    def _fresh(self, cached: tuple[float, dict[str, Any]] | None) -> dict[str, Any] | None:
        if cached is None or self.clock.seconds() - cached[0] >= self.config.metadata_ttl_seconds:
            return None
        return cached[1]

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (cached); it must name this issuer and the endpoints a code flow needs."""
        document = self._fresh(self._metadata)
        if document is not None:
            return document
        document = await self._get("discovery", self.config.discovery_url)
        if document.get("issuer", "").rstrip("/") != self.config.issuer:
            raise OidcProviderError("discovery: the document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str) or not document[key].startswith(("http://", "https://")):
                raise OidcProviderError(f"discovery: no {key}")
        self._metadata = (self.clock.seconds(), document)
        return document

    async def jwks(self, refresh: bool = False) -> dict[str, Any]:
        """The provider's signing keys (cached; ``refresh`` fetches again unless fetched moments ago)."""
        cached = self._jwks
        if cached is not None:
            age = self.clock.seconds() - cached[0]
            if (not refresh and age < self.config.metadata_ttl_seconds) or (refresh and age < MIN_REFETCH_SECONDS):
                return cached[1]
        metadata = await self.metadata()
        document = await self._get("jwks", metadata["jwks_uri"])
        if not isinstance(document.get("keys"), list):
            raise OidcProviderError("jwks: no keys")
        self._jwks = (self.clock.seconds(), document)
        return document

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer for an authorization code (with the PKCE verifier and the client secret)."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers = {b"Accept": [b"application/json"], b"Content-Type": [b"application/x-www-form-urlencoded"]}
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" not in methods and "client_secret_post" in methods:
            form.update(client_id=self.config.client_id, client_secret=self.config.client_secret)
        else:  # RFC 6749 2.3.1: both parts form-encoded before they are joined
            pair = f"{quote(self.config.client_id, safe='')}:{quote(self.config.client_secret, safe='')}"
            headers[b"Authorization"] = [b"Basic " + base64.b64encode(pair.encode())]
        try:
            response = await self.http.post(
                metadata["token_endpoint"],
                data=urlencode(form).encode(),
                headers=headers,
                timeout=REQUEST_TIMEOUT_SECONDS,
                reactor=self.clock,
            )
        except Exception as e:
            raise OidcProviderError(f"token: provider unreachable ({type(e).__name__})") from None
        answer = await self._json("token", response)
        if response.code != 200:
            error = answer.get("error")
            shown = error if isinstance(error, str) and error.isascii() and len(error) <= 64 else "refused"
            raise OidcProviderError(f"token: HTTP {response.code} ({shown})")
        if not isinstance(answer.get("id_token"), str):
            raise OidcProviderError("token: the answer holds no id_token")
        return answer
