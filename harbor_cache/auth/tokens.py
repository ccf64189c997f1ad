"""
The three kinds of JWT harbor-cache issues, and how each is checked.

- ManagementTokens: /api/v1 bearer tokens (HS256, 24 h), seed
  harbor-cache-api.md "Token Payload".
- RegistryTokens: docker's token flow (GET /v2/token, HS256, minutes).
- ArtifactTokens: Maven/Kagami tokens (RS256, public key on
  /.well-known/jwks.json).

Every verifier pins its one algorithm, so "alg: none" and HS256-signed-with-
the-public-key are refused.  Expiry is compared with the injected clock (not
wall time) so tests drive it with task.Clock; pyjwt's own time checks are
switched off for that reason.  Each failure is an InvalidToken with a short
reason fit for an error_description.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
from collections.abc import Iterable
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from harbor_cache.auth.roles import (
    ARTIFACT_SCOPES,
    REGISTRY_ACTIONS,
    ArtifactTokenRequestError,
    is_valid_role,
)

__all__ = [
    "ArtifactTokens",
    "InvalidToken",
    "ManagementTokens",
    "STAMP_CLAIM",
    "credential_stamp",
    "RegistryTokens",
    "granted_actions",
    "parse_scope",
]

MIN_HMAC_SECRET_BYTES = 32
ARTIFACT_AUDIENCE = "kagami"
# The claim holding credential_stamp(password hash at issue) in every token of a user.
STAMP_CLAIM = "cst"


def credential_stamp(password_hash: str) -> str:
    """A short fingerprint of a user's stored password hash, carried in each token.

    Every password change writes a new bcrypt hash (new salt), so a token whose
    stamp differs from today's user row was issued before the change and is
    refused. It reveals nothing usable: the hash it is derived from is itself
    salted and slow, and only 64 bits of its SHA-256 are kept.
    """
    digest = hashlib.sha256(b"harbor-cache credential stamp\0" + password_hash.encode("utf-8", "replace"))
    return digest.hexdigest()[:16]


class IClock(Protocol):
    def seconds(self) -> float: ...


class InvalidToken(Exception):
    """
    A token that must not be honoured.  reason is short and safe to show the
    client (e.g. "expired", "bad signature", "wrong audience").
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _decode(
    token: object,
    key: Any,
    algorithm: str,
    clock: IClock,
    required: Iterable[str],
    audience: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any]:
    """
    Check signature (algorithm pinned), required claims, exact aud/iss and
    exp against clock; return the claims or raise InvalidToken.
    """
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken("malformed token") from None
    if not isinstance(token, str) or not token:
        raise InvalidToken("malformed token")
    required = list(required)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
                "require": required,
            },
        )
    except jwt.InvalidAlgorithmError:
        raise InvalidToken("algorithm not allowed") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("bad signature") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("wrong audience") from None
    except jwt.MissingRequiredClaimError as e:
        raise InvalidToken(f"missing claim: {e.claim}") from None
    except jwt.DecodeError:
        raise InvalidToken("malformed token") from None
    except jwt.InvalidTokenError as e:
        raise InvalidToken(str(e) or "invalid token") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    # pyjwt accepts a list aud containing ours; we only ever issue a string.
    if audience is not None and claims.get("aud") != audience:
        raise InvalidToken("wrong audience")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidToken("wrong issuer")
    for name in ("exp", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise InvalidToken(f"malformed claim: {name}")
    if clock.seconds() >= claims["exp"]:
        raise InvalidToken("expired")
    return claims


class ManagementTokens:
    """
    HS256 bearer tokens for /api/v1: claims sub (user id as a string),
    username, role, iat, exp.  The role in a token is the role at login; a
    caller that needs today's role must look the user up again.
    """

    algorithm = "HS256"
    required_claims = ("sub", "username", "role", "exp", "iat")

    def __init__(self, secret: bytes, clock: IClock, lifetime: int = 86400) -> None:
        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise ValueError("management token secret must be at least 32 bytes")
        self._secret = secret
        self.clock = clock
        self.lifetime = lifetime

    def mint(self, user_id: int, username: str, role: str, stamp: str | None = None) -> str:
        """A signed token for this user, valid for lifetime seconds from now."""
        now = int(self.clock.seconds())
        claims = {
            "sub": str(user_id),
            "username": username,
            "role": role,
            "iat": now,
            "exp": now + self.lifetime,
        }
        if stamp is not None:
            claims[STAMP_CLAIM] = stamp
        return jwt.encode(claims, self._secret, algorithm=self.algorithm)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises InvalidToken if it must not be honoured."""
        claims = _decode(token, self._secret, self.algorithm, self.clock, self.required_claims)
        sub = claims["sub"]
        if not (sub.isascii() and sub.isdigit()):
            raise InvalidToken("malformed claim: sub")
        if not isinstance(claims["username"], str):
            raise InvalidToken("malformed claim: username")
        # "none": an account whose access is only its grants (issue 27); the API decides from the current row.
        if not (is_valid_role(claims["role"]) or claims["role"] == "none"):
            raise InvalidToken("unknown role")
        return claims


def parse_scope(scope: str) -> list[dict[str, Any]]:
    """
    Docker token-request scopes as access entries.

    "repository:library/nginx:pull,push repository:localhost:5000/x:pull"
    gives one {"type", "name", "actions"} per space-separated item.  The type
    ends at the first ":" and the actions start after the last one, so a
    registry host's port may sit in the name.  Malformed items (no type, no
    name) are skipped: the token simply grants less, as docker expects.
    Actions are de-duplicated in the order given.
    """
    entries: list[dict[str, Any]] = []
    for item in scope.split():
        type_, sep, rest = item.partition(":")
        if not sep or not type_:
            continue
        name, sep, actions = rest.rpartition(":")
        if not sep or not name:
            continue
        wanted: dict[str, None] = {}
        for action in actions.split(","):
            action = action.strip()
            if action:
                wanted.setdefault(action, None)
        entries.append({"type": type_, "name": name, "actions": list(wanted)})
    return entries


def granted_actions(claims: dict[str, Any], name: str) -> set[str]:
    """
    The actions a verified registry token grants on repository name (exact
    name match).  A "*" action grants everything, returned as
    {"pull", "push", "delete", "*"}.
    """
    granted: set[str] = set()
    for entry in claims.get("access") or ():
        if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == name:
            granted.update(a for a in entry.get("actions") or () if isinstance(a, str))
    if "*" in granted:
        granted.update(REGISTRY_ACTIONS)
    return granted


class RegistryTokens:
    """
    Short-lived HS256 tokens for docker's token flow.  Claims follow
    distribution's token format: iss, sub (username, "" when anonymous), aud
    (the service), iat, nbf, exp, jti and access (a list of
    {"type", "name", "actions"}).
    """

    algorithm = "HS256"
    required_claims = ("iss", "aud", "exp", "iat", "access")

    def __init__(
        self,
        secret: bytes,
        clock: IClock,
        issuer: str,
        service: str = "harbor-cache",
        lifetime: int = 300,
    ) -> None:
        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise ValueError("registry token secret must be at least 32 bytes")
        self._secret = secret
        self.clock = clock
        self.issuer = issuer
        self.service = service
        self.lifetime = lifetime

    granted_actions = staticmethod(granted_actions)
    parse_scope = staticmethod(parse_scope)

    def mint(self, username: str | None, access: list[dict[str, Any]], stamp: str | None = None) -> str:
        """A token granting access (already narrowed to the role) for lifetime s."""
        now = int(self.clock.seconds())
        claims = {
            "iss": self.issuer,
            "sub": username or "",
            "aud": self.service,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": os.urandom(16).hex(),
            "access": [
                {
                    "type": entry["type"],
                    "name": entry["name"],
                    "actions": list(entry["actions"]),
                }
                for entry in access
            ],
        }
        if stamp is not None:
            claims[STAMP_CLAIM] = stamp
        return jwt.encode(claims, self._secret, algorithm=self.algorithm)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises InvalidToken if it must not be honoured."""
        claims = _decode(
            token,
            self._secret,
            self.algorithm,
            self.clock,
            self.required_claims,
            audience=self.service,
            issuer=self.issuer,
        )
        access = claims["access"]
        if not isinstance(access, list) or not all(
            isinstance(e, dict)
            and isinstance(e.get("type"), str)
            and isinstance(e.get("name"), str)
            and _is_str_list(e.get("actions"))
            for e in access
        ):
            raise InvalidToken("malformed claim: access")
        return claims


def _uint_b64(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


class ArtifactTokens:
    """
    RS256 tokens for private Maven repositories (Kagami's POST /token).
    Claims: iss (public base URL), aud "kagami", sub (username),
    repositories, scope (lists), iat, exp.  The header carries kid, the
    same kid jwks() publishes.
    """

    algorithm = "RS256"
    required_claims = ("iss", "aud", "sub", "repositories", "scope", "iat", "exp")

    def __init__(
        self,
        private_key: RSAPrivateKey,
        issuer: str,
        clock: IClock,
        max_hours: int = 720,
    ) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self.issuer = issuer
        self.clock = clock
        self.max_hours = max_hours
        der = self._public_key.public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        self.kid = _b64url(hashlib.sha256(der).digest())[:16]

    def mint(
        self,
        username: str,
        repositories: list[str],
        scopes: list[str],
        expires_hours: float = 3,
        stamp: str | None = None,
    ) -> str:
        """
        A token for exactly these repositories and scopes (decide them with
        plan_artifact_token first).  Raises ArtifactTokenRequestError(400)
        for an expiry that is not a positive number of hours up to max_hours.
        """
        if not _is_number(expires_hours) or expires_hours <= 0:
            raise ArtifactTokenRequestError(400, "expires_in must be a positive number")
        if expires_hours > self.max_hours:
            raise ArtifactTokenRequestError(400, f"expires_in must be at most {self.max_hours} hours")
        unknown = [s for s in scopes if s not in ARTIFACT_SCOPES]
        if unknown:
            raise ArtifactTokenRequestError(400, "unknown scope: " + ", ".join(unknown))
        now = self.clock.seconds()
        claims = {
            "iss": self.issuer,
            "aud": ARTIFACT_AUDIENCE,
            "sub": username,
            "repositories": list(repositories),
            "scope": list(scopes),
            "iat": int(now),
            "exp": int(now + expires_hours * 3600),
        }
        if stamp is not None:
            claims[STAMP_CLAIM] = stamp
        return jwt.encode(
            claims,
            self._private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises InvalidToken if it must not be honoured."""
        claims = _decode(
            token,
            self._public_key,
            self.algorithm,
            self.clock,
            self.required_claims,
            audience=ARTIFACT_AUDIENCE,
            issuer=self.issuer,
        )
        for name in ("repositories", "scope"):
            if not _is_str_list(claims[name]):
                raise InvalidToken(f"malformed claim: {name}")
        return claims

    @staticmethod
    def covers(claims: dict[str, Any], repository: str, scope: str) -> bool:
        """
        True when verified claims name this repository and this scope
        exactly (artifacts:delete does not imply artifacts:read).
        """
        repositories = claims.get("repositories")
        scopes = claims.get("scope")
        return (
            isinstance(repositories, list)
            and isinstance(scopes, list)
            and repository in repositories
            and scope in scopes
        )

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK Set for /.well-known/jwks.json."""
        numbers = self._public_key.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "n": _uint_b64(numbers.n),
                    "e": _uint_b64(numbers.e),
                    "kid": self.kid,
                    "alg": self.algorithm,
                    "use": "sig",
                }
            ]
        }
