"""Who may do what under ``/artifacts`` and ``/repositories``, and the artifact tokens of ``POST /token``.

Private repositories, and every DELETE, need an RS256 artifact token from
``POST /token``: ``Authorization: Bearer <jwt>`` or Basic with the JWT as the
password (what Maven's settings.xml can send).  A missing token gets a 401
with ``WWW-Authenticate: Bearer`` (plus a Basic challenge, because Maven's
HTTP client only sends its configured credentials when challenged with a
scheme it knows); a bad one ``error="invalid_token"``; one that does not
cover the repository or scope a 403 ``error="insufficient_scope"``.

Deploys also take the Basic user:password of a user granted ``push`` on the
path.  Every decision is made from the caller's current permissions
(`core.identity.principals.permissions_of`): a deploy needs ``push`` on
``maven:<repo>/<path>``, a DELETE ``delete``, a read of a private repository
``pull``, whatever the token says; a token carries only scopes granted at issue
(`auth.access.plan_artifact_token`).  This module reads the headers, asks
those decisions and raises `AuthChallenge`.  `maven.front.MavenFront` routes ``/token`` and
``/.well-known/jwks.json`` here, as `oci.auth` is the policy of ``/v2/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.logger import Logger

from harbor_cache.auth import (
    ArtifactTokenRequestError,
    InvalidToken,
    credential_stamp,
    parse_basic_authorization,
    parse_bearer_authorization,
)
from harbor_cache.auth.access import (
    SCOPE_ACTIONS,
    maven_pull_prefixes,
    missing_permission,
    on_the_way,
    plan_artifact_token,
)
from harbor_cache.auth.permissions import Permissions
from harbor_cache.core.identity.credentials import Credentials
from harbor_cache.core.identity.principals import own_permissions, permissions_of
from harbor_cache.core.identity.token_holders import current_artifact_scope, current_holder
from harbor_cache.core.operations.audit import client_of
from harbor_cache.core.seams import User
from harbor_cache.errors import BadRequest, Denied, ErrorCode, HarborError
from harbor_cache.grammar.numbers import parse_fraction
from harbor_cache.http.request import HarborRequest

log = Logger()

READ = "artifacts:read"
DELETE = "artifacts:delete"
WRITE = "artifacts:write"
BASIC_CHALLENGE = 'Basic realm="harbor-cache"'


class AuthChallenge(HarborError):
    """401 or 403 with one or more ``WWW-Authenticate`` values."""

    def __init__(self, status: int, message: str, challenges: list[str]):
        super().__init__(message, code=ErrorCode.UNAUTHORIZED if status == 401 else ErrorCode.DENIED)
        self.http_status = status
        self.challenges = challenges


def bearer_error(error: str, description: str) -> str:
    """A ``Bearer`` challenge carrying an RFC 6750 error (the description quoted and escaped)."""
    description = description.replace("\\", "\\\\").replace('"', '\\"')
    return f'Bearer error="{error}", error_description="{description}"'


def _looks_like_jwt(password: str) -> bool:
    """A JWT (header.payload.signature, the header a base64url JSON object) rather than a password."""
    return password.startswith("eyJ") and password.count(".") == 2


def _form(request: HarborRequest, name: bytes) -> str | None:
    values = request.args.get(name)
    if not values:
        return None
    try:
        return values[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(f"{name.decode()} is not UTF-8") from None


def _where(repo_id: str, path: str) -> str:
    """``maven:<repo>[/<path>]``, as grants spell it."""
    path = path.strip("/")
    return f"maven:{repo_id}/{path}" if path else f"maven:{repo_id}"


def _not_granted(scope: str, repo_id: str, path: str) -> AuthChallenge:
    """403 ``insufficient_scope``: the token names the scope, the holder's permissions no longer allow it there."""
    reason = f"token does not grant {scope} on {repo_id}: " + missing_permission(
        SCOPE_ACTIONS[scope], _where(repo_id, path)
    )
    return AuthChallenge(403, reason, [bearer_error("insufficient_scope", reason)])


class ArtifactAuthorizer:
    """The access policy of the Maven front, and the issuer of its tokens.

    ``repository_ids``: the ids of the configured repositories now (a token
    request may name only those).
    """

    def __init__(self, tokens, index, credentials: Credentials, repository_ids: Callable[[], Iterable[str]]):
        self.tokens = tokens
        self.index = index
        # The username/password check shared with /v2/ and the management API.
        self.credentials = credentials
        self.repository_ids = repository_ids

    # -- checks -------------------------------------------------------------------------

    def _token(self, request: HarborRequest) -> tuple[str | None, str | None]:
        """(JWT, Basic username) the request carries (Bearer, or Basic's password); (None, None) without one."""
        header = request.getHeader(b"Authorization")
        if header is None:
            return None, None
        token = parse_bearer_authorization(header)
        username = None
        if token is None:
            basic = parse_basic_authorization(header)
            if basic is not None:
                username, token = basic
        if not token:
            raise AuthChallenge(
                401,
                "malformed Authorization header",
                [bearer_error("invalid_token", "malformed Authorization header")],
            )
        return token, username

    async def authorize(self, request: HarborRequest, repo_id: str, scope: str, path: str = "") -> dict:
        """The verified claims of a token covering ``repo_id`` and ``scope``; raises `AuthChallenge`.

        The token's user must still exist with the password it had at issue,
        their current permissions must still allow the scope's action on
        ``path`` in ``repo_id`` (see core.identity.token_holders), and a Basic
        username must be the token's subject.
        """
        claims, user = await self._holder(request, repo_id, scope)
        if not await self._decide(user, lambda p: current_artifact_scope(p, claims, scope, repo_id, path)):
            raise _not_granted(scope, repo_id, path)
        return claims

    async def _decide(self, user: User, allowed: Callable[[Permissions], bool]) -> bool:
        """``allowed`` of the user's current permissions: role and own grants first, groups only if needed."""
        if allowed(own_permissions(user)):
            return True
        return user.kind != "robot" and allowed(await permissions_of(self.index, user, False))

    async def _holder(self, request: HarborRequest, repo_id: str, scope: str) -> tuple[dict, User]:
        """(claims, the holder now) of a token that names ``scope`` on ``repo_id``."""
        token, basic_username = self._token(request)
        if token is None:
            raise AuthChallenge(401, "authentication required", ["Bearer", BASIC_CHALLENGE])
        try:
            claims = self.tokens.verify(token)
            if basic_username is not None and basic_username != claims["sub"]:
                raise InvalidToken("username does not match the token's subject")
            user = await current_holder(self.index, claims, claims["sub"], now=self.tokens.clock.seconds())
        except InvalidToken as e:
            raise AuthChallenge(401, f"invalid token: {e.reason}", [bearer_error("invalid_token", e.reason)]) from None
        if not self.tokens.covers(claims, repo_id, scope):
            reason = f"token does not grant {scope} on {repo_id}"
            raise AuthChallenge(403, reason, [bearer_error("insufficient_scope", reason)])
        self.credentials.note_use(user, client_of(request))
        return claims, user

    async def browse_filter(self, request: HarborRequest, repo_id: str, path: str) -> Callable[[str], bool] | None:
        """Who may list directory ``path`` of a private repository: a read token whose holder may pull there
        (None: every entry shows) or below it (a filter: only the entries on the way to what they may pull)."""
        claims, user = await self._holder(request, repo_id, READ)
        permissions = await permissions_of(self.index, user, False)
        if current_artifact_scope(permissions, claims, READ, repo_id, path):
            return None
        prefixes = maven_pull_prefixes(permissions, repo_id)
        if prefixes is None or not on_the_way(prefixes, path):
            raise _not_granted(READ, repo_id, path)
        return lambda entry: on_the_way(prefixes, entry)

    async def authorize_write(self, request: HarborRequest, repo_id: str, path: str = "") -> str:
        """Who may deploy ``path`` into ``repo_id``: a user granted ``push`` there, by Basic user:password,
        or a token with artifacts:write on it (Bearer, or Basic with the JWT as password)."""
        header = request.getHeader(b"Authorization")
        basic = parse_basic_authorization(header) if header is not None else None
        if basic is not None and not _looks_like_jwt(basic[1]):
            username, password = basic
            user = await self.credentials.check(username, password, client_of(request))
            if user is None:
                raise AuthChallenge(401, "invalid username or password", [BASIC_CHALLENGE])
            if not await self._decide(user, lambda p: p.may_maven("push", repo_id, path)):
                reason = f"user {username} may not deploy: " + missing_permission("push", _where(repo_id, path))
                raise AuthChallenge(403, reason, [bearer_error("insufficient_scope", reason)])
            return user.username
        claims = await self.authorize(request, repo_id, WRITE, path)
        return str(claims.get("sub"))

    # -- tokens ---------------------------------------------------------------------------

    async def token_response(self, request: HarborRequest) -> bytes:
        """``POST /token``: mint an artifact token for a harbor-cache user (Basic username/password)."""
        creds = parse_basic_authorization(request.getHeader(b"Authorization"))
        if creds is None:
            raise AuthChallenge(401, "Basic username and password required", [BASIC_CHALLENGE])
        username, password = creds
        user = await self.credentials.check(username, password, client_of(request))
        if user is None:
            raise AuthChallenge(401, "invalid username or password", [BASIC_CHALLENGE])
        expires_in = _form(request, b"expires_in")
        hours = parse_fraction(expires_in) if expires_in else 3.0
        if hours is None:  # ASCII digits only, as every client number (grammar.numbers)
            raise BadRequest("expires_in must be a number of hours", {"expires_in": expires_in})
        repositories = (_form(request, b"repositories") or "").split(",")
        scopes = (_form(request, b"scope") or "").split(",")
        try:
            permissions = await permissions_of(self.index, user, False)
            repositories, scopes = plan_artifact_token(permissions, repositories, list(self.repository_ids()), scopes)
            token = self.tokens.mint(
                user.username, repositories, scopes, hours, stamp=credential_stamp(user.password_hash)
            )
        except ArtifactTokenRequestError as e:
            raise (Denied(e.reason) if e.status == 403 else BadRequest(e.reason)) from None
        log.info(
            "artifact token for {user}: {repositories} {scopes} {hours}h",
            user=username,
            repositories=repositories,
            scopes=scopes,
            hours=hours,
        )
        request.setHeader(b"Content-Type", b"text/plain")
        request.setHeader(b"Cache-Control", b"no-store")
        body = token.encode("ascii")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body

    def jwks(self) -> dict:
        """The JSON Web Key Set that verifies artifact tokens (``/.well-known/jwks.json``)."""
        return self.tokens.jwks()
