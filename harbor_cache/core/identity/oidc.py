"""Console login through an OpenID provider: the authorization-code flow with PKCE, and who the user becomes.

`OidcLogin.begin` answers the provider's authorization URL and the signed
state cookie (`core.identity.oidc_state`); `OidcLogin.finish` checks the
callback's ``state`` against the cookie, exchanges the code (client secret
and PKCE verifier, `upstream.oidc.OidcProvider`), validates the ID token
(`validate_id_token`: signature with the provider's JWKS, ``iss``, ``aud``,
``exp`` by our clock, ``nonce``) and maps it to a ``users`` row:

- found by (source 'oidc', ``sub``); created at the first login with the
  username from ``username_claim`` (a name an existing account holds is
  refused: it is never taken over) and an unusable password hash until the
  user makes a CLI secret;
- its role is the highest of ``[auth.oidc.group_roles]`` over the groups
  claim (else ``default_role``), set again at every login;
- its memberships (source 'oidc') are the harbor-cache groups named in the
  claim, set again at every login.

Every failure is an `OidcLoginError` with a reason fit for the user and the
audit log: never a token, code or secret.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt

from harbor_cache.core.identity.oidc_state import LoginState, OidcStateError, StateSigner, code_challenge, random_token
from harbor_cache.core.identity.users import check_username
from harbor_cache.errors import BadRequest
from harbor_cache.index.rows import User
from harbor_cache.settings.oidc import OidcConfig
from harbor_cache.upstream.oidc import OidcProvider, OidcProviderError

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

SOURCE = "oidc"
# asymmetric algorithms only: an HS256 ID token would be signed with the client secret, which we do not accept
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_SKEW_SECONDS = 60
ROLE_RANK = {"read-only": 0, "read-write": 1, "admin": 2}


def unusable_password() -> str:
    """A stored hash no password matches (bcrypt refuses it), unique per user so token stamps differ."""
    return "!oidc:" + random_token(16)


class OidcLoginError(Exception):
    """The login failed; ``reason`` is short and safe to show and audit. ``username``: who, when known."""

    def __init__(self, reason: str, username: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.username = username


def validate_id_token(
    id_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str, now: float
) -> dict[str, Any]:
    """The ID token's claims when it is signed by a key of ``jwks`` and is for us, now, in this login."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise OidcLoginError("id token: malformed") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise OidcLoginError(f"id token: algorithm {str(alg)[:16]!r} not accepted")
    try:
        keys = [k for k in jwt.PyJWKSet.from_dict(jwks).keys if kid is None or k.key_id == kid]
    except jwt.PyJWTError:
        keys = []
    if not keys:
        raise OidcLoginError("id token: signed with a key the provider does not publish")
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                options={
                    "verify_exp": False,  # by our clock, below
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "aud", "sub", "exp"],
                },
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidAudienceError:
            raise OidcLoginError("id token: issued for another client (aud)") from None
        except jwt.InvalidIssuerError:
            raise OidcLoginError("id token: issued by another issuer (iss)") from None
        except jwt.PyJWTError as e:
            raise OidcLoginError(f"id token: {type(e).__name__}") from None
    if claims is None:
        raise OidcLoginError("id token: bad signature")
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise OidcLoginError("id token: issued for another client (azp)")
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool) or now > exp + CLOCK_SKEW_SECONDS:
        raise OidcLoginError("id token: expired")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise OidcLoginError("id token: nonce does not match this login")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise OidcLoginError("id token: no subject")
    return claims


def groups_of(claims: dict[str, Any], claim: str) -> list[str]:
    """The groups claim as a list of names (absent: none; one string: one group; other values ignored)."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [g for g in value if isinstance(g, str) and g]


def role_for(groups: list[str], config: OidcConfig) -> str:
    """The highest role ``group_roles`` gives any of the groups, else ``default_role``."""
    roles = [config.group_roles[g] for g in groups if g in config.group_roles]
    return max(roles, key=ROLE_RANK.__getitem__) if roles else config.default_role


@dataclass(frozen=True)
class OidcOutcome:
    user: User
    created: bool
    groups: list[str]  # the harbor-cache groups the user is now a member of through the claim


class OidcLogin:
    """The two halves of a console login through the provider."""

    def __init__(
        self, config: OidcConfig, provider: OidcProvider, index: Index, clock: IReactorTime, secret: bytes
    ) -> None:
        self.config = config
        self.provider = provider
        self.index = index
        self.clock = clock
        self.signer = StateSigner(secret)

    async def begin(self, redirect_uri: str) -> tuple[str, str]:
        """(the provider's authorization URL, the signed state cookie) for a new login."""
        try:
            metadata = await self.provider.metadata()
        except OidcProviderError as e:
            raise OidcLoginError(e.reason) from None
        login = LoginState.new(redirect_uri, self.clock.seconds())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": code_challenge(login.verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = metadata["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", self.signer.sign(login)

    async def finish(self, code: str | None, state: str | None, cookie: str | None) -> OidcOutcome:
        """The logged-in user after the provider's redirect back; OidcLoginError at any failed step."""
        try:
            login = self.signer.open(cookie, self.clock.seconds())
        except OidcStateError as e:
            raise OidcLoginError(e.reason) from None
        if not state or not hmac.compare_digest(state.encode(), login.state.encode()):
            raise OidcLoginError("state does not match this login (forged or stale callback)")
        if not code:
            raise OidcLoginError("the provider sent no authorization code")
        try:
            answer = await self.provider.exchange(code, login.verifier, login.redirect_uri)
            claims = await self._validated(answer["id_token"], login.nonce)
        except OidcProviderError as e:
            raise OidcLoginError(e.reason) from None
        return await self._map(claims)

    async def _validated(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Claims of the ID token; a key id the cached JWKS lacks refreshes it once (key rotation)."""
        args: dict[str, Any] = {
            "issuer": self.config.issuer,
            "client_id": self.config.client_id,
            "nonce": nonce,
            "now": self.clock.seconds(),
        }
        try:
            return validate_id_token(id_token, await self.provider.jwks(), **args)
        except OidcLoginError as e:
            if "key the provider does not publish" not in e.reason:
                raise
        return validate_id_token(id_token, await self.provider.jwks(refresh=True), **args)

    async def _map(self, claims: dict[str, Any]) -> OidcOutcome:
        groups = groups_of(claims, self.config.groups_claim)
        role = role_for(groups, self.config)
        now = self.clock.seconds()
        user = await self.index.get_user_by_external(SOURCE, claims["sub"])
        created = False
        if user is None:
            raw = claims.get(self.config.username_claim)
            try:
                username = check_username(raw)
            except BadRequest as e:
                shown = json.dumps(raw)[:64] if raw is not None else "missing"
                raise OidcLoginError(
                    f"claim {self.config.username_claim} ({shown}) is no valid username: {e}"
                ) from None
            user = await self.index.create_external_user(
                username, unusable_password(), role, SOURCE, claims["sub"], now
            )
            if user is None:
                raise OidcLoginError(
                    f"the username {username!r} belongs to another account of this server; "
                    "an administrator must rename or remove it first",
                    username,
                )
            created = True
        if user.disabled:
            raise OidcLoginError("account disabled", user.username)
        if not created and user.role != role:
            status, row = await self.index.update_user(user.id, role, None, now)
            if status == "ok" and row is not None:
                user = row
        joined = await self.index.set_external_memberships(user.id, SOURCE, groups)
        return OidcOutcome(user, created, joined)
