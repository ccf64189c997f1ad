"""The pieces of the OIDC login: the state cookie, PKCE, ID-token validation, roles from groups, the provider client."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from harbor_cache.auth import ROLES
from harbor_cache.core.identity.oidc import OidcLogin, OidcLoginError, groups_of, role_for, validate_id_token
from harbor_cache.core.identity.oidc_state import (
    STATE_LIFETIME_SECONDS,
    LoginState,
    OidcStateError,
    StateSigner,
    code_challenge,
    random_token,
)
from harbor_cache.settings import oidc as oidc_settings
from harbor_cache.settings.oidc import OidcConfig
from harbor_cache.upstream.oidc import OidcProvider, OidcProviderError
from tests.unit.base import migrated_index
from tests.unit.oidc_fake import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    KEY,
    OTHER_KEY,
    FakeOP,
    claims_for,
    id_token,
    public_jwk,
)

NOW = 1_000_000.0
SECRET = b"s" * 32


def config(**extra: Any) -> OidcConfig:
    fields: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                              "group_roles": {"devs": "read-write", "ops": "admin"}, **extra}  # fmt: skip
    return OidcConfig(**fields)


class StateCookieTests(unittest.TestCase):
    def setUp(self):
        self.signer = StateSigner(SECRET)
        self.login = LoginState.new("http://cache.test/api/v1/auth/oidc/callback", NOW)

    def test_round_trip(self):
        self.assertEqual(self.signer.open(self.signer.sign(self.login), NOW + 1), self.login)

    def test_altered_payload_is_refused(self):
        payload, mac = self.signer.sign(self.login).split(".")
        other = self.signer.sign(LoginState("x", "y", "z", "http://evil.test/cb", NOW + 600)).split(".")[0]
        with self.assertRaises(OidcStateError) as caught:
            self.signer.open(f"{other}.{mac}", NOW)
        self.assertIn("signature", caught.exception.reason)

    def test_another_servers_key_is_refused(self):
        with self.assertRaises(OidcStateError):
            StateSigner(b"t" * 32).open(self.signer.sign(self.login), NOW)

    def test_expired(self):
        cookie = self.signer.sign(self.login)
        self.signer.open(cookie, NOW + STATE_LIFETIME_SECONDS - 1)
        with self.assertRaises(OidcStateError) as caught:
            self.signer.open(cookie, NOW + STATE_LIFETIME_SECONDS)
        self.assertIn("expired", caught.exception.reason)

    def test_missing_and_malformed(self):
        for cookie in (None, "", "abc", "a.b.c", "é.x"):
            with self.assertRaises(OidcStateError):
                self.signer.open(cookie, NOW)

    def test_pkce_s256_matches_authlib(self):
        verifier = random_token()
        self.assertGreaterEqual(len(verifier), 43)
        self.assertEqual(code_challenge(verifier), create_s256_code_challenge(verifier))


class IdTokenTests(unittest.TestCase):
    jwks = {"keys": [public_jwk(KEY)]}

    def check(self, token: str, nonce: str = "n1", now: float = NOW) -> dict[str, Any]:
        return validate_id_token(token, self.jwks, issuer=ISSUER, client_id=CLIENT_ID, nonce=nonce, now=now)

    def refused(self, token: str, reason: str, **kw: Any) -> None:
        with self.assertRaises(OidcLoginError) as caught:
            self.check(token, **kw)
        self.assertIn(reason, caught.exception.reason)

    def test_valid(self):
        self.assertEqual(self.check(id_token(claims_for("n1", NOW)))["sub"], "sub-1")

    def test_bad_signature(self):
        self.refused(id_token(claims_for("n1", NOW), OTHER_KEY), "bad signature")

    def test_unknown_key(self):
        self.refused(id_token(claims_for("n1", NOW), kid="other"), "does not publish")

    def test_wrong_audience(self):
        self.refused(id_token(claims_for("n1", NOW, aud="someone-else")), "aud")

    def test_wrong_issuer(self):
        self.refused(id_token(claims_for("n1", NOW, iss="http://evil.test")), "iss")

    def test_expired(self):
        token = id_token(claims_for("n1", NOW))  # exp = NOW + 300, 60 s skew allowed
        self.check(token, now=NOW + 359)
        self.refused(token, "expired", now=NOW + 361)

    def test_wrong_nonce(self):
        self.refused(id_token(claims_for("n1", NOW)), "nonce", nonce="n2")

    def test_missing_nonce(self):
        claims = claims_for("n1", NOW)
        del claims["nonce"]
        self.refused(id_token(claims), "nonce")

    def test_symmetric_and_none_algorithms_refused(self):
        import jwt

        self.refused(jwt.encode(claims_for("n1", NOW), CLIENT_SECRET, algorithm="HS256"), "algorithm")
        self.refused(jwt.encode(claims_for("n1", NOW), None, algorithm="none"), "algorithm")

    def test_several_audiences_need_azp(self):
        self.refused(id_token(claims_for("n1", NOW, aud=[CLIENT_ID, "other"])), "azp")
        self.check(id_token(claims_for("n1", NOW, aud=[CLIENT_ID, "other"], azp=CLIENT_ID)))


class MappingTests(unittest.TestCase):
    def test_groups_claim_shapes(self):
        self.assertEqual(groups_of({"groups": ["a", "", 3, "b"]}, "groups"), ["a", "b"])
        self.assertEqual(groups_of({"groups": "a"}, "groups"), ["a"])
        self.assertEqual(groups_of({}, "groups"), [])
        self.assertEqual(groups_of({"roles": ["x"]}, "roles"), ["x"])

    def test_highest_role_wins_else_default(self):
        c = config()
        self.assertEqual(role_for(["devs", "ops"], c), "admin")
        self.assertEqual(role_for(["devs", "other"], c), "read-write")
        self.assertEqual(role_for(["other"], c), "read-only")
        self.assertEqual(role_for([], config(default_role="read-write")), "read-write")

    def test_settings_roles_are_the_auth_roles(self):
        self.assertEqual(tuple(oidc_settings.ROLES), tuple(ROLES))


class ProviderAndFlowTests(unittest.TestCase):
    """OidcProvider and OidcLogin against the fake provider through StubTreq."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.op = FakeOP()
        self.http = StubTreq(self.op)
        self.provider = OidcProvider(config(), self.http, self.clock)
        self.index = migrated_index(self)
        self.login = OidcLogin(config(), self.provider, self.index, self.clock, SECRET)

    def run_(self, coro: Any) -> Any:
        d = defer.ensureDeferred(coro)
        self.http.flush()
        return self.successResultOf(d)

    def fail_(self, coro: Any) -> Any:
        d = defer.ensureDeferred(coro)
        self.http.flush()
        return self.failureResultOf(d).value

    def test_metadata_cached_for_the_ttl(self):
        self.run_(self.provider.metadata())
        self.run_(self.provider.metadata())
        self.assertEqual(self.op.requests.count("/.well-known/openid-configuration"), 1)
        self.clock.advance(301)
        self.run_(self.provider.metadata())
        self.assertEqual(self.op.requests.count("/.well-known/openid-configuration"), 2)

    def test_discovery_of_another_issuer_is_refused(self):
        provider = OidcProvider(config(issuer="http://other.test"), self.http, self.clock)
        error = self.fail_(provider.metadata())
        self.assertIsInstance(error, OidcProviderError)
        self.assertIn("another issuer", error.reason)

    def begin(self) -> tuple[str, str, dict[str, str]]:
        url, cookie = self.run_(self.login.begin("http://cache.test/api/v1/auth/oidc/callback"))
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        return url, cookie, query

    def test_begin_asks_for_code_with_pkce(self):
        url, _, query = self.begin()
        self.assertTrue(url.startswith(ISSUER + "/authorize?"))
        self.assertEqual(query["response_type"], "code")
        self.assertEqual(query["code_challenge_method"], "S256")
        self.assertEqual(query["scope"], "openid profile email groups")
        self.assertEqual(query["client_id"], CLIENT_ID)
        self.assertTrue(query["state"] and query["nonce"])
        self.assertNotIn(CLIENT_SECRET, url)

    def test_finish_creates_the_user_with_role_from_groups(self):
        url, cookie, query = self.begin()
        self.op.authorize(url, now=NOW)
        outcome = self.run_(self.login.finish("code-1", query["state"], cookie))
        self.assertTrue(outcome.created)
        user = outcome.user
        self.assertEqual(
            (user.username, user.source, user.external_id, user.role), ("alice", "oidc", "sub-1", "read-write")
        )
        self.assertTrue(user.password_hash.startswith("!oidc:"))
        # the verifier went to the token endpoint (the fake checked it against the challenge)
        self.assertEqual(len(self.op.token_requests), 1)

    def test_second_login_updates_the_role(self):
        url, cookie, query = self.begin()
        self.op.authorize(url, now=NOW)
        first = self.run_(self.login.finish("code-1", query["state"], cookie)).user
        url, cookie, query = self.begin()
        self.op.authorize(url, now=NOW, groups=[])
        again = self.run_(self.login.finish("code-1", query["state"], cookie))
        self.assertFalse(again.created)
        self.assertEqual((again.user.id, again.user.role), (first.id, "read-only"))

    def test_state_mismatch_is_refused_before_any_token_request(self):
        url, cookie, _ = self.begin()
        self.op.authorize(url, now=NOW)
        error = self.fail_(self.login.finish("code-1", "forged", cookie))
        self.assertIn("state", error.reason)
        self.assertEqual(self.op.token_requests, [])

    def test_wrong_verifier_fails_at_the_provider(self):
        url, cookie, query = self.begin()
        self.op.authorize(url, now=NOW)
        self.op.codes["code-1"] = ("not-the-challenge", self.op.codes["code-1"][1])
        error = self.fail_(self.login.finish("code-1", query["state"], cookie))
        self.assertIn("invalid_grant", error.reason)

    def test_key_rotation_refetches_the_jwks(self):
        """An ID token signed with a key id the cached JWKS lacks: the JWKS is fetched again (no restart)."""
        url, cookie, query = self.begin()
        self.run_(self.provider.jwks())  # cached, with the old key only
        self.op.authorize(url, now=NOW)
        self.op.token_key, self.op.token_kid = OTHER_KEY, "k2"
        self.op.jwks_keys = [public_jwk(OTHER_KEY, kid="k2")]
        self.clock.advance(11)  # past MIN_REFETCH_SECONDS, well within the TTL
        outcome = self.run_(self.login.finish("code-1", query["state"], cookie))
        self.assertEqual(outcome.user.username, "alice")
        self.assertEqual(self.op.requests.count("/jwks"), 2)

    def test_username_of_a_local_account_is_refused(self):
        self.run_(self.index.create_user("alice", "$2b$04$x", "admin", NOW))
        url, cookie, query = self.begin()
        self.op.authorize(url, now=NOW)
        error = self.fail_(self.login.finish("code-1", query["state"], cookie))
        self.assertIn("belongs to another account", error.reason)
        local = self.run_(self.index.get_user_by_name("alice"))
        self.assertEqual((local.source, local.role), ("local", "admin"))

    def test_bad_username_claim(self):
        url, cookie, query = self.begin()
        self.op.authorize(url, now=NOW, preferred_username="has space")
        error = self.fail_(self.login.finish("code-1", query["state"], cookie))
        self.assertIn("no valid username", error.reason)
