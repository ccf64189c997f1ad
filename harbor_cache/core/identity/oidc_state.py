"""What a login through the provider must remember between its two requests, kept in the browser.

``GET /api/v1/auth/oidc/login`` makes a ``state`` (against forged
callbacks), a ``nonce`` (binds the ID token to this login) and a PKCE
``code_verifier``; ``GET /api/v1/auth/oidc/callback`` needs all three.  They
travel in one cookie, HMAC-signed with a key derived from the management
token secret that every node of a data directory shares, so whichever node
the callback reaches can finish the login and nothing is stored server-side.
The cookie lives `STATE_LIFETIME_SECONDS`, is HttpOnly and SameSite=Lax (it
must come back on the provider's top-level redirect).  A forged, altered or
expired cookie is an `OidcStateError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass

STATE_LIFETIME_SECONDS = 600
COOKIE_NAME = "hc_oidc"
MAX_COOKIE_BYTES = 4096
_KEY_LABEL = b"harbor-cache oidc state cookie"


class OidcStateError(Exception):
    """The state cookie cannot be trusted; ``reason`` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string (43 characters for 32 bytes: a valid PKCE verifier, RFC 7636 4.1)."""
    return _b64(os.urandom(nbytes))


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)), unpadded."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class LoginState:
    state: str
    nonce: str
    verifier: str
    redirect_uri: str  # the callback URL sent to the provider; the token request must repeat it
    expires: float

    @classmethod
    def new(cls, redirect_uri: str, now: float) -> LoginState:
        return cls(random_token(), random_token(), random_token(), redirect_uri, now + STATE_LIFETIME_SECONDS)


class StateSigner:
    """Signs and checks `LoginState` cookies with a key derived from the server's management token secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, login: LoginState) -> str:
        body = {"s": login.state, "n": login.nonce, "v": login.verifier, "r": login.redirect_uri, "e": login.expires}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def open(self, cookie: str | None, now: float) -> LoginState:
        """The state a cookie holds; OidcStateError when it is missing, forged, altered or expired."""
        if not cookie:
            raise OidcStateError("no login in progress (the state cookie is missing: cookies blocked, or too slow)")
        if len(cookie) > MAX_COOKIE_BYTES or cookie.count(".") != 1 or not cookie.isascii():
            raise OidcStateError("malformed state cookie")
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise OidcStateError("state cookie signature does not match")
        try:
            body = json.loads(_unb64(payload))
            login = LoginState(str(body["s"]), str(body["n"]), str(body["v"]), str(body["r"]), float(body["e"]))
        except (ValueError, KeyError, TypeError):
            raise OidcStateError("malformed state cookie") from None
        if now >= login.expires:
            raise OidcStateError("the login took too long (state expired); start again")
        return login
