"""An OpenID provider as a twisted.web resource, for unit tests (the real one, on authlib, is tests/oidc_provider.py).

It serves discovery, a JWKS and a token endpoint.  A test registers what an
authorization would have given (`authorize`: a code bound to the PKCE
challenge and nonce of the login's redirect URL) and the claims of the next
ID token; the token endpoint checks the client's Basic credentials and the
``code_verifier`` against the challenge, as a real provider does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from twisted.internet import defer
from twisted.web import resource
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

ISSUER = "http://op.test"
CLIENT_ID = "harbor"
CLIENT_SECRET = "client-secret-xyz"
KID = "k1"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = new_key()
OTHER_KEY = new_key()


def public_jwk(key: rsa.RSAPrivateKey, kid: str = KID) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def id_token(claims: dict[str, Any], key: rsa.RSAPrivateKey = KEY, kid: str = KID, alg: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def claims_for(nonce: str, now: float, **extra: Any) -> dict[str, Any]:
    return {"iss": ISSUER, "aud": CLIENT_ID, "sub": "sub-1", "exp": int(now) + 300, "iat": int(now), "nonce": nonce,
            "preferred_username": "alice", "groups": ["devs"], **extra}  # fmt: skip


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@implementer(IBodyProducer)
class SyncBody:
    """``data_to_body_producer`` of a test's treq client: the body written at once (treq's default, a
    FileBodyProducer, runs on the global cooperator, which a clock-driven test never turns)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class FakeOP(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (challenge, redirect_uri)
        self.next_claims: dict[str, Any] = {}
        self.jwks_keys = [public_jwk(KEY)]
        self.requests: list[str] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.token_key = KEY
        self.token_kid = KID

    def authorize(self, location: str, code: str = "code-1", now: float = 1_000_000, **extra: Any) -> dict[str, str]:
        """What the provider does for a user who logs in: binds ``code`` to the request's challenge; its query."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        self.codes[code] = (query["code_challenge"], query["redirect_uri"])
        self.next_claims = claims_for(query["nonce"], now, **extra)
        return query

    def render(self, request: Any) -> bytes:
        path = request.path.decode()
        self.requests.append(path)
        request.setHeader(b"Content-Type", b"application/json")
        if path == "/.well-known/openid-configuration":
            return json.dumps({"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize",
                               "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks"}).encode()  # fmt: skip
        if path == "/jwks":
            return json.dumps({"keys": self.jwks_keys}).encode()
        if path == "/token":
            form = parse_qs(request.content.read().decode())
            self.token_requests.append(form)
            auth = request.getHeader(b"Authorization") or b""
            expected = b"Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode())
            if auth != expected:
                request.setResponseCode(401)
                return b'{"error": "invalid_client"}'
            code = form.get("code", [""])[0]
            bound = self.codes.pop(code, None)
            verifier = form.get("code_verifier", [""])[0]
            if bound is None or s256(verifier) != bound[0] or form.get("redirect_uri", [""])[0] != bound[1]:
                request.setResponseCode(400)
                return b'{"error": "invalid_grant"}'
            token = id_token(self.next_claims, self.token_key, self.token_kid)
            return json.dumps({"access_token": "at", "token_type": "Bearer", "id_token": token}).encode()
        request.setResponseCode(404)
        return b"{}"
