"""Who may do what on ``/v2/``: docker's token flow, Basic credentials, anonymous pulls.

Clients ping ``/v2/``; without credentials they get 401 and a challenge
naming the token endpoint (``GET /v2/token``), which takes Basic credentials
(or none, for an anonymous token) and mints a short-lived registry token
holding only the actions the caller's permissions allow on each repository
(`core.identity.principals.permissions_of`: role, own grants, groups;
`auth.access.registry_actions`).  Later requests carry that
token as ``Bearer``.  Basic credentials straight on ``/v2/`` requests are
accepted too.

Refusals follow what clients expect: anonymous callers and tokens that lack
a scope the permissions would allow get 401 with the challenge (so the client
asks for a wider token); an authenticated caller whose permissions do not
allow the action gets 403 ``DENIED`` naming what is missing ("push on
team-b/app not granted").  A token whose actions the permissions no longer
allow is cut to what they do allow.  A token that lacks the action and cannot
get it (a pull-only user's push token) is answered 403 ``DENIED`` with
``WWW-Authenticate: Bearer ...,error="insufficient_scope"`` and the message
"insufficient_scope: push on team-a/app not granted": docker reads the body
of a 403, not the header, and prints "denied: <message>".

Basic credentials are checked by `core.identity.credentials.Credentials`, the same
check the Maven front and the management API use (it remembers a verified
password for a minute, so bcrypt does not run on every request).

Every request re-checks the holder of a registry token (core.identity.token_holders):
a deleted user's or a pre-password-change token is refused (401
``invalid_token``), and a token grants only what the holder's current
permissions (for anonymous tokens: the current ``registry.anonymous_pull``)
allow.  Permissions are computed once per request (`Caller`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from twisted.logger import Logger

from harbor_cache.auth import (
    STAMP_CLAIM,
    InvalidToken,
    credential_stamp,
    granted_actions,
    parse_basic_authorization,
    parse_bearer_authorization,
    parse_scope,
)
from harbor_cache.auth.access import missing_permission, registry_actions
from harbor_cache.auth.permissions import Permissions
from harbor_cache.core.identity.credentials import Credentials
from harbor_cache.core.identity.principals import own_permissions, permissions_of
from harbor_cache.core.identity.token_holders import current_holder, current_registry_actions
from harbor_cache.core.operations.audit import client_of
from harbor_cache.core.seams import User
from harbor_cache.errors import Denied, Unauthorized
from harbor_cache.grammar.names import is_valid_repository_name
from harbor_cache.grammar.public_url import PublicURL
from harbor_cache.grammar.timestamps import iso8601
from harbor_cache.http.quick import AnyRequest
from harbor_cache.http.request import HarborRequest

log = Logger()

SERVICE = "harbor-cache"
# "*" on a repository is spelled out for anyone but a server admin (auth.access.registry_actions).
ALL_ACTIONS = ("pull", "push", "delete")


@dataclass
class Caller:
    """An identified caller: a user (Basic), or the claims of a registry token (Bearer), and their permissions.

    ``permissions`` are the holder's *current* ones, computed once per
    request: first from the role and own grants (`own_permissions`), which
    decide most requests without another index query; the groups' grants are
    added (`RegistryAuthorizer.complete`) only when those fall short.
    """

    username: str | None
    permissions: Permissions
    claims: dict | None = None
    #: the user row, while ``permissions`` lack their groups' grants (`RegistryAuthorizer.complete`)
    partial_of: User | None = None


class RegistryAuthorizer:
    """The access policy of the OCI front: ``authorize(request, name, actions)``."""

    def __init__(
        self,
        index,
        settings,
        tokens,
        public_url,
        clock,
        credentials: Credentials,
    ):
        self.index = index
        self.settings = settings
        self.tokens = tokens
        self.public_url = PublicURL.of(public_url)
        self.clock = clock
        self.credentials = credentials  # the username/password check shared with the other fronts

    # -- challenges -----------------------------------------------------------------

    def challenge(
        self, request: HarborRequest, name: str | None, actions: set[str] | None = None, error: str | None = None
    ) -> dict[str, str]:
        value = f'Bearer realm="{self.public_url.for_request(request)}/v2/token",service="{SERVICE}"'
        if name and actions:
            value += f',scope="repository:{name}:{",".join(_ordered(actions))}"'
        if error:
            value += f',error="{error}"'
        return {"WWW-Authenticate": value}

    # -- identification ---------------------------------------------------------------

    async def identify(
        self, request: HarborRequest, name: str | None = None, actions: set[str] | None = None
    ) -> Caller | None:
        """The caller behind the Authorization header; None when anonymous.

        Bad credentials or an invalid token raise Unauthorized (with the
        challenge for ``name``/``actions``).
        """
        header = request.getHeader(b"Authorization")
        if not header:
            return None
        basic = parse_basic_authorization(header)
        if basic is not None:
            user = await self._basic_user(*basic, client=client_of(request))
            if user is None:
                raise Unauthorized("invalid username or password", headers=self.challenge(request, name, actions))
            return _caller(user)
        token = parse_bearer_authorization(header)
        if token is None:
            raise Unauthorized("unsupported Authorization header", headers=self.challenge(request, name, actions))
        try:
            claims = self.tokens.verify(token)
            username = claims.get("sub") or None
            holder = await current_holder(self.index, claims, username, now=self.clock.seconds()) if username else None
            if holder is not None:
                self.credentials.note_use(holder, client_of(request))
        except InvalidToken as e:
            raise Unauthorized(
                f"invalid token: {e.reason}", headers=self.challenge(request, name, actions, "invalid_token")
            ) from None
        if holder is None:
            return Caller(username, Permissions.anonymous(self._anonymous_pull()), claims=claims)
        return _caller(holder, claims)

    def claimed_username(self, request: HarborRequest) -> str | None:
        """The username the Authorization header names, unchecked (for the audit record of a refusal).

        No I/O and never raises: a Basic username as sent, or a verifiable
        token's subject; None otherwise.
        """
        header = request.getHeader(b"Authorization")
        if not header:
            return None
        basic = parse_basic_authorization(header)
        if basic is not None:
            return basic[0][:128] or None
        token = parse_bearer_authorization(header)
        if token is None:
            return None
        try:
            return self.tokens.verify(token).get("sub") or None
        except InvalidToken:
            return None

    async def _basic_user(self, username: str, password: str, client: str | None = None) -> User | None:
        """The user row for Basic credentials, or None (``client``: the address noted as a robot's last use)."""
        return await self.credentials.check(username, password, client)

    def _anonymous_pull(self) -> bool:
        return bool(self.settings.get("registry.anonymous_pull"))

    def lets_pull_at_once(self, request: AnyRequest) -> bool:
        """True when `authorize` would let this request pull from any repository without awaiting anything:
        no Authorization header and anonymous pulls on (the front's hot path; anything else goes through
        `authorize`)."""
        return not request.getHeader(b"Authorization") and self._anonymous_pull()

    # -- decisions ------------------------------------------------------------------------

    def _permissions(self, caller: Caller | None) -> Permissions:
        return caller.permissions if caller is not None else Permissions.anonymous(self._anonymous_pull())

    async def complete(self, caller: Caller | None) -> Permissions:
        """The caller's whole permissions (their groups' grants added when not yet there)."""
        if caller is None:
            return Permissions.anonymous(self._anonymous_pull())
        if caller.partial_of is not None:
            caller.permissions = await permissions_of(self.index, caller.partial_of, self._anonymous_pull())
            caller.partial_of = None
        return caller.permissions

    def _allowed_now(self, caller: Caller | None, name: str, actions: set[str]) -> set[str]:
        permissions = self._permissions(caller)
        if caller is not None and caller.claims is not None:
            granted = set(actions) & granted_actions(caller.claims, name)
            return current_registry_actions(permissions, name, granted)
        return registry_actions(permissions, name, actions)

    async def allowed(self, caller: Caller | None, name: str, actions: set[str]) -> set[str]:
        """Which of ``actions`` the caller holds on repository ``name``."""
        allowed = self._allowed_now(caller, name, actions)
        if not set(actions) <= allowed and caller is not None and caller.partial_of is not None:
            await self.complete(caller)
            allowed = self._allowed_now(caller, name, actions)
        return allowed

    async def authorize(self, request: HarborRequest, name: str | None, actions: set[str]) -> str | None:
        """The username allowed to do ``actions`` on ``name`` (None: anonymous), or raise.

        ``name`` None is the ``/v2/`` ping: anonymous callers always get the
        challenge there (so clients learn where to get tokens), any valid
        credentials pass.
        """
        caller = await self.identify(request, name, actions)
        if name is None:
            if caller is None:
                raise Unauthorized("authentication required", headers=self.challenge(request, None))
            return caller.username
        if set(actions) <= await self.allowed(caller, name, actions):
            return caller.username if caller else None
        if caller is None or not caller.username:
            raise Unauthorized("authentication required", headers=self.challenge(request, name, actions))
        permitted = registry_actions(caller.permissions, name, actions)
        if caller.claims is not None and actions <= permitted:
            # A token narrower than the permissions: ask the client for a new one.
            raise Unauthorized(
                "token does not cover this action",
                headers=self.challenge(request, name, actions, "insufficient_scope"),
            )
        lacking = _ordered(set(actions) - permitted)
        message = "; ".join(missing_permission(a, name) for a in lacking)
        headers = None
        if caller.claims is not None:
            # RFC 6750: a token that lacks the scope, and cannot get it, is 403 with error="insufficient_scope".
            headers = self.challenge(request, name, actions, "insufficient_scope")
            if set(lacking) - granted_actions(caller.claims, name):
                # Clients print the body's message, not the header (docker: "denied: <message>"), so the
                # message says it too when the token itself lacks the action (a pull-only user's push token).
                message = "insufficient_scope: " + message
        raise Denied(message, {"name": name, "actions": _ordered(actions), "missing": lacking}, headers=headers)

    async def may(self, request: HarborRequest, name: str, actions: set[str]) -> bool:
        """Like `authorize`, but answers False instead of raising (cross-repository mounts)."""
        try:
            caller = await self.identify(request, name, actions)
        except Unauthorized:
            return False
        return set(actions) <= await self.allowed(caller, name, actions)

    async def authorize_catalog(self, request: HarborRequest) -> Permissions:
        """The catalog: any valid credentials, or anyone when anonymous pulls are on.

        Answers the caller's permissions: the catalog lists only the
        repositories they may pull (`Permissions.may_oci`).
        """
        caller = await self.identify(request)
        if caller is None and not self._anonymous_pull():
            raise Unauthorized("authentication required", headers=self.challenge(request, None))
        if caller is not None and caller.permissions.sees_everything(maven=False):
            return caller.permissions
        return await self.complete(caller)

    # -- the token endpoint -------------------------------------------------------------------

    async def issue_token(self, request: HarborRequest) -> dict:
        """``GET /v2/token``: a registry token for the requested scopes, each cut to the caller's permissions on its repository.

        Basic credentials identify the user; none means anonymous (pull only,
        when allowed).  Wrong credentials raise Unauthorized.  A Bearer
        registry token may be presented to renew with the same or fewer
        actions.
        """
        header = request.getHeader(b"Authorization")
        username: str | None = None
        permissions = Permissions.anonymous(self._anonymous_pull())
        stamp: str | None = None
        claims = None
        if header:
            basic = parse_basic_authorization(header)
            if basic is not None:
                user = await self._basic_user(*basic, client=client_of(request))
                if user is None:
                    raise Unauthorized(
                        "invalid username or password", headers={"WWW-Authenticate": f'Basic realm="{SERVICE}"'}
                    )
                username, stamp = user.username, credential_stamp(user.password_hash)
                permissions = await permissions_of(self.index, user, self._anonymous_pull())
            else:
                caller = await self.identify(request)  # checks the holder: the stamp is today's
                assert caller is not None  # a header is present, so never anonymous
                username, permissions, claims = caller.username, await self.complete(caller), caller.claims
                stamp = claims.get(STAMP_CLAIM) if claims else None
        scopes = [arg.decode("utf-8", "replace") for arg in request.args.get(b"scope", [])]
        access = []
        for scope in scopes:
            for entry in parse_scope(scope):
                if entry["type"] != "repository" or not is_valid_repository_name(entry["name"]):
                    continue
                wanted = set(entry["actions"])
                granted = registry_actions(permissions, entry["name"], wanted)
                if claims is not None:
                    granted &= granted_actions(claims, entry["name"])
                if granted:
                    access.append({"type": "repository", "name": entry["name"], "actions": _ordered(granted)})
        token = self.tokens.mint(username, access, stamp=stamp)
        now = self.clock.seconds()
        issued = iso8601(now)
        log.debug("registry token for {user}: {access}", user=username or "<anonymous>", access=json.dumps(access))
        return {"token": token, "access_token": token, "expires_in": self.tokens.lifetime, "issued_at": issued}


def _caller(user: User, claims: dict | None = None) -> Caller:
    """A user's `Caller` with the permissions of their role and own grants (groups asked for when needed)."""
    return Caller(
        user.username, own_permissions(user), claims=claims, partial_of=None if user.kind == "robot" else user
    )


def _ordered(actions) -> list[str]:
    """Actions in a stable order: pull, push, delete, then anything else."""
    known = [a for a in ALL_ACTIONS if a in actions] + (["*"] if "*" in actions else [])
    return known + sorted(a for a in actions if a not in ALL_ACTIONS and a != "*")
