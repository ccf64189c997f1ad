"""
Tests for harbor_cache.auth: roles, passwords, secrets, the three token kinds
and Authorization header parsing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest

from harbor_cache.auth import (
    ARTIFACT_SCOPES,
    ROLES,
    ArtifactTokenRequestError,
    ArtifactTokens,
    InvalidToken,
    ManagementTokens,
    RegistryTokens,
    allowed_artifact_scopes,
    allowed_registry_actions,
    can_push,
    check_password,
    granted_actions,
    hash_password,
    is_valid_role,
    load_or_create_rsa_key,
    load_or_create_secret,
    parse_basic_authorization,
    parse_bearer_authorization,
    parse_scope,
    passwords,
    plan_artifact_token,
)

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
ISSUER = "http://cache.example:8080/"
START = 1_700_000_000
DEFAULT_BCRYPT_ROUNDS = passwords.BCRYPT_ROUNDS

_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(name: str = "main") -> rsa.RSAPrivateKey:
    """A 2048-bit key made once per test run (generation is slow)."""
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[name]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segments(token: str) -> tuple[dict, dict, bytes]:
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        b64url_decode(signature),
    )


def craft(header: dict, payload: dict, signature: bytes = b"") -> str:
    """A JWT assembled by hand, for tokens pyjwt refuses to make."""
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        ]
    )


def hmac_by_hand(header: dict, payload: dict, key: bytes, digest=hashlib.sha256) -> str:
    """An HMAC-signed JWT made without pyjwt (which guards against misuse)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    sig = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return signing_input + "." + b64url(sig)


def tamper_payload(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return ".".join([header, b64url(json.dumps(claims).encode()), signature])


def tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return ".".join([header, payload, b64url(bytes(raw))])


def alg_none(token: str) -> str:
    _, claims, _ = segments(token)
    return craft({"alg": "none", "typ": "JWT"}, claims)


def clock_at(seconds: float = START) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


if TYPE_CHECKING:  # the mixin's asserts are those of the TestCase it is mixed into
    _MixinBase = unittest.SynchronousTestCase
else:
    _MixinBase = object


class TokenFailureMixin(_MixinBase):
    """Shared expectations: every verifier raises InvalidToken with a reason."""

    def assertInvalid(self, verifier, token, reason: str | None = None) -> InvalidToken:
        error = self.assertRaises(InvalidToken, verifier.verify, token)
        self.assertTrue(error.reason)
        if reason is not None:
            self.assertEqual(error.reason, reason)
        return error


# --------------------------------------------------------------------- roles


class RoleTests(unittest.SynchronousTestCase):
    def test_roles(self) -> None:
        """The three roles, in the documented order."""
        self.assertEqual(ROLES, ("admin", "read-write", "read-only"))

    def test_is_valid_role(self) -> None:
        """Only the exact role names are valid."""
        for role in ROLES:
            self.assertTrue(is_valid_role(role))
        for bad in ("Admin", "", "readonly", None, 1, "read_write"):
            self.assertFalse(is_valid_role(bad))

    def test_can_push(self) -> None:
        """admin and read-write may push; read-only, anonymous, unknown may not."""
        self.assertTrue(can_push("admin"))
        self.assertTrue(can_push("read-write"))
        self.assertFalse(can_push("read-only"))
        self.assertFalse(can_push(None))
        self.assertFalse(can_push("root"))

    def test_registry_action_matrix(self) -> None:
        """Each role gets the requested actions it is allowed, nothing more."""
        everything = {"pull", "push", "delete"}
        cases = [
            # role, requested, anonymous_pull, expected
            (None, {"pull"}, True, {"pull"}),
            (None, {"pull"}, False, set()),
            (None, {"pull", "push", "delete"}, True, {"pull"}),
            (None, {"*"}, True, {"pull"}),
            (None, {"*"}, False, set()),
            ("read-only", {"pull", "push"}, False, {"pull"}),
            ("read-only", {"push", "delete"}, True, set()),
            ("read-only", {"*"}, True, {"pull"}),
            ("read-write", everything, False, everything),
            ("read-write", {"push"}, False, {"push"}),
            ("read-write", {"*"}, False, everything),
            ("admin", everything, False, everything),
            ("admin", {"*"}, False, {"*"}),
            ("admin", {"pull"}, False, {"pull"}),
            ("admin", set(), False, set()),
            ("superuser", everything, True, set()),
        ]
        for role, requested, anonymous_pull, expected in cases:
            self.assertEqual(
                allowed_registry_actions(role, requested, anonymous_pull),
                expected,
                (role, requested, anonymous_pull),
            )

    def test_registry_actions_leave_request_alone(self) -> None:
        """The caller's requested set is not modified."""
        requested = {"*"}
        allowed_registry_actions("read-write", requested, True)
        self.assertEqual(requested, {"*"})

    def test_artifact_scope_matrix(self) -> None:
        """read-only reads; read-write and admin read, delete and write (deploy); others nothing."""
        self.assertEqual(ARTIFACT_SCOPES, ("artifacts:read", "artifacts:delete", "artifacts:write"))
        self.assertEqual(allowed_artifact_scopes("read-only"), {"artifacts:read"})
        self.assertEqual(allowed_artifact_scopes("read-write"), set(ARTIFACT_SCOPES))
        self.assertEqual(allowed_artifact_scopes("admin"), set(ARTIFACT_SCOPES))
        self.assertEqual(allowed_artifact_scopes(None), set())
        self.assertEqual(allowed_artifact_scopes("nobody"), set())


class PlanArtifactTokenTests(unittest.SynchronousTestCase):
    known = ["releases", "snapshots", "private"]

    def assertRefused(self, status: int, *args) -> None:
        error = self.assertRaises(ArtifactTokenRequestError, plan_artifact_token, *args)
        self.assertEqual(error.status, status)
        self.assertTrue(error.reason)

    def test_defaults_read_only(self) -> None:
        """No repositories -> all known; no scopes -> read for read-only."""
        self.assertEqual(
            plan_artifact_token("read-only", [], self.known, []),
            (self.known, ["artifacts:read"]),
        )

    def test_defaults_read_write_and_admin(self) -> None:
        """No scopes -> every scope the role may hold."""
        for role in ("read-write", "admin"):
            self.assertEqual(
                plan_artifact_token(role, [], self.known, []),
                (self.known, list(ARTIFACT_SCOPES)),
            )

    def test_exactly_as_asked(self) -> None:
        """A valid request is granted exactly, without widening."""
        self.assertEqual(
            plan_artifact_token("admin", ["private"], self.known, ["artifacts:read"]),
            (["private"], ["artifacts:read"]),
        )
        self.assertEqual(
            plan_artifact_token("read-write", ["snapshots", "releases"], self.known, ["artifacts:delete"]),
            (["snapshots", "releases"], ["artifacts:delete"]),
        )

    def test_cleans_whitespace_and_duplicates(self) -> None:
        """Split leftovers (spaces, empty items, repeats) are tidied."""
        self.assertEqual(
            plan_artifact_token(
                "read-only",
                [" releases", "", "releases"],
                self.known,
                ["artifacts:read ", "artifacts:read", ""],
            ),
            (["releases"], ["artifacts:read"]),
        )

    def test_unknown_scope_400(self) -> None:
        """A scope string we do not know is a bad request, whatever the role."""
        for role in ROLES:
            self.assertRefused(400, role, [], self.known, ["artifacts:deploy"])
            self.assertRefused(400, role, [], self.known, ["artifacts:read", "admin"])

    def test_write_scope_never_beyond_role(self) -> None:
        """artifacts:write (deploy) goes to read-write and admin; read-only asking for it is refused."""
        self.assertRefused(403, "read-only", [], self.known, ["artifacts:write"])
        self.assertEqual(
            plan_artifact_token("read-write", ["releases"], self.known, ["artifacts:write"]),
            (["releases"], ["artifacts:write"]),
        )
        self.assertEqual(plan_artifact_token("read-only", [], self.known, [])[1], ["artifacts:read"])

    def test_unknown_repository_400(self) -> None:
        """A repository that does not exist is a bad request."""
        self.assertRefused(400, "admin", ["nope"], self.known, [])
        self.assertRefused(400, "admin", ["releases", "nope"], self.known, [])

    def test_scope_beyond_role_403(self) -> None:
        """read-only asking for delete is refused, not narrowed to read."""
        self.assertRefused(403, "read-only", [], self.known, ["artifacts:delete"])
        self.assertRefused(403, "read-only", ["releases"], self.known, ["artifacts:read", "artifacts:delete"])

    def test_unknown_role_403(self) -> None:
        """A role without artifact scopes gets nothing, by default or by asking."""
        self.assertRefused(403, "guest", [], self.known, [])
        self.assertRefused(403, "guest", [], self.known, ["artifacts:read"])

    def test_no_known_repositories(self) -> None:
        """With no repositories at all, the default is an empty list."""
        self.assertEqual(plan_artifact_token("read-only", [], [], []), ([], ["artifacts:read"]))


# ----------------------------------------------------------------- passwords


class PasswordTests(unittest.TestCase):
    def setUp(self) -> None:
        self.patch(passwords, "BCRYPT_ROUNDS", 4)

    def test_hash_and_check(self) -> Deferred[None]:
        """A hash checks true for its password and false for another."""

        async def go() -> None:
            hashed = await hash_password("correct horse")
            self.assertIsInstance(hashed, str)
            self.assertTrue(hashed.startswith("$2b$04$"))
            self.assertTrue(await check_password("correct horse", hashed))
            self.assertFalse(await check_password("wrong horse", hashed))
            self.assertFalse(await check_password("", hashed))

        return Deferred.fromCoroutine(go())

    def test_salted(self) -> Deferred[None]:
        """Two hashes of one password differ."""

        async def go() -> None:
            self.assertNotEqual(await hash_password("pw"), await hash_password("pw"))

        return Deferred.fromCoroutine(go())

    def test_unicode_and_colon(self) -> Deferred[None]:
        """Non-ASCII and ':' are fine in passwords."""

        async def go() -> None:
            hashed = await hash_password("pä:ss wörd")
            self.assertTrue(await check_password("pä:ss wörd", hashed))

        return Deferred.fromCoroutine(go())

    def test_unknown_user(self) -> Deferred[None]:
        """hashed None answers False (after a dummy check), never raises."""

        async def go() -> None:
            self.assertFalse(await check_password("anything", None))
            self.assertIn(4, passwords._dummy_hashes)

        return Deferred.fromCoroutine(go())

    def test_malformed_hash(self) -> Deferred[None]:
        """A malformed stored hash answers False instead of raising."""

        async def go() -> None:
            for bad in ("", "garbage", "$2b$04$short", "plain-text-password", "héllo"):
                self.assertFalse(await check_password("plain-text-password", bad))

        return Deferred.fromCoroutine(go())

    def test_too_long(self) -> Deferred[None]:
        """Over 72 bytes: hashing refuses, checking answers False."""

        async def go() -> None:
            hashed = await hash_password("a" * 72)
            self.assertTrue(await check_password("a" * 72, hashed))
            # bcrypt would only see the first 72 bytes; we do not pretend.
            self.assertFalse(await check_password("a" * 73, hashed))
            with self.assertRaises(ValueError):
                await hash_password("a" * 73)

        return Deferred.fromCoroutine(go())

    def test_rounds_default(self) -> None:
        """Production cost is 12; the module attribute is read at call time."""
        self.assertEqual(DEFAULT_BCRYPT_ROUNDS, 12)
        self.assertEqual(passwords.BCRYPT_ROUNDS, 4)


# ------------------------------------------------------------------- secrets


class SecretFileTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def mode(self, path: str) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    def test_secret_created_0600_and_reused(self) -> None:
        """First call creates a 32-byte secret at 0600; later calls reuse it."""
        path = os.path.join(self.dir, "jwt-secret")
        first = load_or_create_secret(path)
        self.assertEqual(len(first), 32)
        self.assertEqual(self.mode(path), 0o600)
        self.assertEqual(load_or_create_secret(path), first)
        self.assertEqual(os.listdir(self.dir), ["jwt-secret"])

    def test_secrets_differ(self) -> None:
        """Two data dirs get two different secrets."""
        a = load_or_create_secret(os.path.join(self.dir, "a"))
        b = load_or_create_secret(os.path.join(self.dir, "b"))
        self.assertNotEqual(a, b)

    def test_secret_creates_parent(self) -> None:
        """A missing data directory is created."""
        path = os.path.join(self.dir, "sub", "secret")
        self.assertEqual(len(load_or_create_secret(path)), 32)

    def test_secret_loose_mode_tightened(self) -> None:
        """An existing world-readable secret is kept but set to 0600."""
        path = os.path.join(self.dir, "secret")
        first = load_or_create_secret(path)
        os.chmod(path, 0o644)
        self.assertEqual(load_or_create_secret(path), first)
        self.assertEqual(self.mode(path), 0o600)

    def test_secret_corrupt_refused(self) -> None:
        """A file that is not a 32-byte hex secret raises, never replaced."""
        path = os.path.join(self.dir, "secret")
        for content in (b"", b"zz" * 32, b"ab" * 16, b"\xff\xfe"):
            with open(path, "wb") as f:
                f.write(content)
            os.chmod(path, 0o600)
            self.assertRaises(ValueError, load_or_create_secret, path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), content)

    def test_rsa_created_0600_and_reused(self) -> None:
        """The RSA key is 2048 bits, PEM at 0600, the same key on reload."""
        path = os.path.join(self.dir, "artifact-key.pem")
        key = load_or_create_rsa_key(path)
        self.assertIsInstance(key, rsa.RSAPrivateKey)
        self.assertEqual(key.key_size, 2048)
        self.assertEqual(self.mode(path), 0o600)
        with open(path, "rb") as f:
            self.assertTrue(f.read().startswith(b"-----BEGIN PRIVATE KEY-----"))
        again = load_or_create_rsa_key(path)
        self.assertEqual(again.private_numbers().d, key.private_numbers().d)
        self.assertEqual(os.listdir(self.dir), ["artifact-key.pem"])

    def test_rsa_not_a_key(self) -> None:
        """A file that is not an RSA PEM key raises ValueError."""
        path = os.path.join(self.dir, "key.pem")
        with open(path, "wb") as f:
            f.write(b"not a key")
        self.assertRaises(ValueError, load_or_create_rsa_key, path)

    def test_rsa_too_small(self) -> None:
        """A key under 2048 bits is refused."""
        path = os.path.join(self.dir, "key.pem")
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        with open(path, "wb") as f:
            f.write(
                small.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        self.assertRaises(ValueError, load_or_create_rsa_key, path)


# ------------------------------------------------------- management tokens


class ManagementTokenTests(TokenFailureMixin, unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = clock_at()
        self.tokens = ManagementTokens(SECRET, self.clock)

    def test_round_trip(self) -> None:
        """mint then verify gives the seed's claims, 24 h lifetime, HS256."""
        token = self.tokens.mint(7, "alice", "read-write")
        claims = self.tokens.verify(token)
        self.assertEqual(
            claims,
            {
                "sub": "7",
                "username": "alice",
                "role": "read-write",
                "iat": START,
                "exp": START + 86400,
            },
        )
        self.assertEqual(self.tokens.lifetime, 86400)
        self.assertEqual(segments(token)[0]["alg"], "HS256")

    def test_expired(self) -> None:
        """Valid just before exp, refused at exp (by the injected clock)."""
        token = self.tokens.mint(1, "admin", "admin")
        self.clock.advance(86399)
        self.tokens.verify(token)
        self.clock.advance(1)
        self.assertInvalid(self.tokens, token, "expired")

    def test_custom_lifetime(self) -> None:
        """lifetime is honoured and exposed."""
        tokens = ManagementTokens(SECRET, self.clock, lifetime=60)
        self.assertEqual(tokens.lifetime, 60)
        token = tokens.mint(1, "a", "admin")
        self.assertEqual(segments(token)[1]["exp"], START + 60)
        self.clock.advance(60)
        self.assertInvalid(tokens, token, "expired")

    def test_tampered_payload(self) -> None:
        """Changing the role in the payload breaks the signature."""
        token = self.tokens.mint(2, "bob", "read-only")
        self.assertInvalid(self.tokens, tamper_payload(token, role="admin"), "bad signature")

    def test_tampered_signature(self) -> None:
        """A flipped signature bit is refused."""
        token = self.tokens.mint(2, "bob", "read-only")
        self.assertInvalid(self.tokens, tamper_signature(token), "bad signature")

    def test_other_secret(self) -> None:
        """A token signed with another secret is refused."""
        token = ManagementTokens(OTHER_SECRET, self.clock).mint(1, "a", "admin")
        self.assertInvalid(self.tokens, token, "bad signature")

    def test_alg_none(self) -> None:
        """An unsigned token (alg none) is refused."""
        token = self.tokens.mint(1, "a", "read-only")
        self.assertInvalid(self.tokens, alg_none(token), "algorithm not allowed")

    def test_wrong_algorithm(self) -> None:
        """HS512 with the right secret is still refused: HS256 is pinned."""
        claims = segments(self.tokens.mint(1, "a", "admin"))[1]
        token = hmac_by_hand({"alg": "HS512"}, claims, SECRET, hashlib.sha512)
        self.assertInvalid(self.tokens, token, "algorithm not allowed")

    def test_missing_claims(self) -> None:
        """Each required claim must be present."""
        claims = segments(self.tokens.mint(1, "a", "admin"))[1]
        for name in ("sub", "username", "role", "exp", "iat"):
            partial = {k: v for k, v in claims.items() if k != name}
            token = jwt.encode(partial, SECRET, algorithm="HS256")
            self.assertInvalid(self.tokens, token, f"missing claim: {name}")

    def test_bad_claims(self) -> None:
        """Wrong types or an unknown role are refused even when signed."""
        claims = segments(self.tokens.mint(1, "a", "admin"))[1]
        for change in (
            {"role": "root"},
            {"sub": "x1"},
            {"sub": 1},
            {"exp": "tomorrow"},
            {"username": 5},
        ):
            token = jwt.encode({**claims, **change}, SECRET, algorithm="HS256")
            self.assertInvalid(self.tokens, token)

    def test_foreign_audience(self) -> None:
        """A registry token (which has aud) is not a management token."""
        registry = RegistryTokens(SECRET, self.clock, issuer=ISSUER)
        token = registry.mint("a", [])
        self.assertInvalid(self.tokens, token)

    def test_garbage(self) -> None:
        """Non-JWT input is refused as malformed, never another exception."""
        for token in ("", "abc", "a.b.c", "a.b", b"\xff", None, 5, "...."):
            self.assertInvalid(self.tokens, token)

    def test_short_secret(self) -> None:
        """Secrets under 32 bytes are refused at construction."""
        self.assertRaises(ValueError, ManagementTokens, b"short", self.clock)


# --------------------------------------------------------- registry tokens


class ParseScopeTests(unittest.SynchronousTestCase):
    def test_single(self) -> None:
        """One scope with two actions."""
        self.assertEqual(
            parse_scope("repository:library/nginx:pull,push"),
            [{"type": "repository", "name": "library/nginx", "actions": ["pull", "push"]}],
        )

    def test_several(self) -> None:
        """Space-separated scopes give one entry each."""
        self.assertEqual(
            parse_scope("repository:a:pull  repository:b/c:push,pull\trepository:d:*"),
            [
                {"type": "repository", "name": "a", "actions": ["pull"]},
                {"type": "repository", "name": "b/c", "actions": ["push", "pull"]},
                {"type": "repository", "name": "d", "actions": ["*"]},
            ],
        )

    def test_port_in_name(self) -> None:
        """A registry host's port stays in the name."""
        self.assertEqual(
            parse_scope("repository:localhost:5000/team/app:pull"),
            [{"type": "repository", "name": "localhost:5000/team/app", "actions": ["pull"]}],
        )

    def test_other_types(self) -> None:
        """Non-repository types are kept for the caller to judge."""
        self.assertEqual(
            parse_scope("registry:catalog:*"),
            [{"type": "registry", "name": "catalog", "actions": ["*"]}],
        )

    def test_actions_tidied(self) -> None:
        """Empty and repeated actions are dropped, order kept."""
        self.assertEqual(parse_scope("repository:a:pull,,push,pull")[0]["actions"], ["pull", "push"])
        self.assertEqual(parse_scope("repository:a:")[0]["actions"], [])

    def test_malformed_skipped(self) -> None:
        """Items without type or name are skipped."""
        self.assertEqual(parse_scope(""), [])
        self.assertEqual(parse_scope("repository"), [])
        self.assertEqual(parse_scope("repository:pull"), [])
        self.assertEqual(parse_scope(":a:pull"), [])
        self.assertEqual(parse_scope("repository::pull"), [])
        self.assertEqual(
            parse_scope("junk repository:ok:pull"),
            [{"type": "repository", "name": "ok", "actions": ["pull"]}],
        )


class RegistryTokenTests(TokenFailureMixin, unittest.SynchronousTestCase):
    access = [{"type": "repository", "name": "library/nginx", "actions": ["pull", "push"]}]

    def setUp(self) -> None:
        self.clock = clock_at()
        self.tokens = RegistryTokens(SECRET, self.clock, issuer=ISSUER)

    def test_round_trip(self) -> None:
        """Claims carry iss, sub, aud = service, access; 300 s lifetime."""
        token = self.tokens.mint("alice", self.access)
        claims = self.tokens.verify(token)
        self.assertEqual(claims["iss"], ISSUER)
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(claims["aud"], "harbor-cache")
        self.assertEqual(claims["access"], self.access)
        self.assertEqual(claims["iat"], START)
        self.assertEqual(claims["exp"], START + 300)
        self.assertEqual(self.tokens.lifetime, 300)
        self.assertEqual(segments(token)[0]["alg"], "HS256")

    def test_unique(self) -> None:
        """Two tokens minted in the same second differ (jti)."""
        self.assertNotEqual(self.tokens.mint("a", self.access), self.tokens.mint("a", self.access))

    def test_anonymous(self) -> None:
        """An anonymous token has an empty sub."""
        claims = self.tokens.verify(self.tokens.mint(None, self.access))
        self.assertEqual(claims["sub"], "")

    def test_granted_actions(self) -> None:
        """Exact name match; "*" grants everything; other types ignored."""
        access = self.access + [
            {"type": "repository", "name": "library/nginx", "actions": ["delete"]},
            {"type": "repository", "name": "team/*", "actions": ["pull"]},
            {"type": "repository", "name": "all", "actions": ["*"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ]
        claims = self.tokens.verify(self.tokens.mint("a", access))
        self.assertEqual(granted_actions(claims, "library/nginx"), {"pull", "push", "delete"})
        self.assertEqual(granted_actions(claims, "library/nginx2"), set())
        self.assertEqual(granted_actions(claims, "team/app"), set())
        self.assertEqual(granted_actions(claims, "all"), {"pull", "push", "delete", "*"})
        self.assertEqual(granted_actions(claims, "catalog"), set())
        self.assertEqual(self.tokens.granted_actions(claims, "all"), granted_actions(claims, "all"))

    def test_expired(self) -> None:
        """Refused once the clock reaches exp."""
        token = self.tokens.mint("a", self.access)
        self.clock.advance(299)
        self.tokens.verify(token)
        self.clock.advance(1)
        self.assertInvalid(self.tokens, token, "expired")

    def test_tampered_payload(self) -> None:
        """Widening the access list breaks the signature."""
        token = self.tokens.mint("a", self.access)
        wider = [{"type": "repository", "name": "library/nginx", "actions": ["*"]}]
        self.assertInvalid(self.tokens, tamper_payload(token, access=wider), "bad signature")

    def test_tampered_signature(self) -> None:
        token = self.tokens.mint("a", self.access)
        self.assertInvalid(self.tokens, tamper_signature(token), "bad signature")

    def test_alg_none(self) -> None:
        token = self.tokens.mint("a", self.access)
        self.assertInvalid(self.tokens, alg_none(token), "algorithm not allowed")

    def test_wrong_algorithm(self) -> None:
        claims = segments(self.tokens.mint("a", self.access))[1]
        token = hmac_by_hand({"alg": "HS384"}, claims, SECRET, hashlib.sha384)
        self.assertInvalid(self.tokens, token, "algorithm not allowed")

    def test_wrong_audience(self) -> None:
        """A token for another service is refused."""
        other = RegistryTokens(SECRET, self.clock, issuer=ISSUER, service="other")
        self.assertInvalid(self.tokens, other.mint("a", self.access), "wrong audience")
        claims = segments(self.tokens.mint("a", self.access))[1]
        listed = jwt.encode({**claims, "aud": ["harbor-cache", "x"]}, SECRET, algorithm="HS256")
        self.assertInvalid(self.tokens, listed, "wrong audience")

    def test_wrong_issuer(self) -> None:
        """A token from another issuer (even a prefix of ours) is refused."""
        for issuer in ("http://elsewhere/", ISSUER[:-1], ISSUER + "x"):
            other = RegistryTokens(SECRET, self.clock, issuer=issuer)
            self.assertInvalid(self.tokens, other.mint("a", self.access), "wrong issuer")

    def test_management_token_refused(self) -> None:
        """A management token (no aud, no access) is not a registry token."""
        token = ManagementTokens(SECRET, self.clock).mint(1, "admin", "admin")
        self.assertInvalid(self.tokens, token)

    def test_malformed_access(self) -> None:
        """Signed but ill-shaped access claims are refused."""
        claims = segments(self.tokens.mint("a", self.access))[1]
        for access in ("all", [{"type": "repository"}], [{"type": "repository", "name": "a", "actions": "pull"}]):
            token = jwt.encode({**claims, "access": access}, SECRET, algorithm="HS256")
            self.assertInvalid(self.tokens, token, "malformed claim: access")

    def test_empty_access(self) -> None:
        """An empty access list is a valid token granting nothing."""
        claims = self.tokens.verify(self.tokens.mint("a", []))
        self.assertEqual(claims["access"], [])
        self.assertEqual(granted_actions(claims, "x"), set())


# --------------------------------------------------------- artifact tokens


class ArtifactTokenTests(TokenFailureMixin, unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = clock_at()
        self.key = rsa_key()
        self.tokens = ArtifactTokens(self.key, ISSUER, self.clock)

    def mint(self, **kwargs) -> str:
        return self.tokens.mint(
            kwargs.pop("username", "alice"),
            kwargs.pop("repositories", ["releases", "private"]),
            kwargs.pop("scopes", ["artifacts:read"]),
            **kwargs,
        )

    def test_round_trip(self) -> None:
        """RS256 with our kid; claims iss, aud kagami, sub, lists, 3 h default."""
        token = self.mint()
        header, _, _ = segments(token)
        self.assertEqual(header["alg"], "RS256")
        self.assertEqual(header["kid"], self.tokens.kid)
        claims = self.tokens.verify(token)
        self.assertEqual(
            claims,
            {
                "iss": ISSUER,
                "aud": "kagami",
                "sub": "alice",
                "repositories": ["releases", "private"],
                "scope": ["artifacts:read"],
                "iat": START,
                "exp": START + 3 * 3600,
            },
        )

    def test_expires_hours(self) -> None:
        """expires_hours sets exp; fractional hours allowed; up to max_hours."""
        self.assertEqual(segments(self.mint(expires_hours=24))[1]["exp"], START + 86400)
        self.assertEqual(segments(self.mint(expires_hours=0.5))[1]["exp"], START + 1800)
        self.assertEqual(self.tokens.max_hours, 720)
        self.mint(expires_hours=720)

    def test_expires_hours_out_of_bounds(self) -> None:
        """Zero, negative, not finite, or over the maximum: 400."""
        tokens = ArtifactTokens(self.key, ISSUER, self.clock, max_hours=24)
        for hours in (0, -1, 24.01, float("inf"), float("nan"), True, "3"):
            error = self.assertRaises(
                ArtifactTokenRequestError,
                tokens.mint,
                "a",
                ["r"],
                ["artifacts:read"],
                expires_hours=hours,
            )
            self.assertEqual(error.status, 400)

    def test_mint_unknown_scope(self) -> None:
        """mint refuses scope strings that are not artifact scopes."""
        self.assertRaises(ArtifactTokenRequestError, self.mint, scopes=["admin"])

    def test_expired(self) -> None:
        token = self.mint(expires_hours=1)
        self.clock.advance(3599)
        self.tokens.verify(token)
        self.clock.advance(1)
        self.assertInvalid(self.tokens, token, "expired")

    def test_tampered_payload(self) -> None:
        """Adding a repository or scope breaks the signature."""
        token = self.mint()
        self.assertInvalid(self.tokens, tamper_payload(token, scope=list(ARTIFACT_SCOPES)), "bad signature")
        self.assertInvalid(self.tokens, tamper_payload(token, sub="admin"), "bad signature")

    def test_tampered_signature(self) -> None:
        self.assertInvalid(self.tokens, tamper_signature(self.mint()), "bad signature")

    def test_other_key(self) -> None:
        """A token signed by another key is refused."""
        other = ArtifactTokens(rsa_key("other"), ISSUER, self.clock)
        token = other.mint("a", ["releases"], ["artifacts:read"])
        self.assertInvalid(self.tokens, token, "bad signature")

    def test_alg_none(self) -> None:
        self.assertInvalid(self.tokens, alg_none(self.mint()), "algorithm not allowed")

    def test_hs256_with_public_key(self) -> None:
        """The classic confusion attack: HMAC keyed with our public PEM."""
        _, claims, _ = segments(self.mint())
        public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = hmac_by_hand({"alg": "HS256", "typ": "JWT"}, claims, public_pem)
        self.assertInvalid(self.tokens, token, "algorithm not allowed")

    def test_wrong_rsa_algorithm(self) -> None:
        """RS512 or PS256 with the right key is refused: RS256 is pinned."""
        _, claims, _ = segments(self.mint())
        for algorithm in ("RS512", "PS256"):
            token = jwt.encode(claims, self.key, algorithm=algorithm)
            self.assertInvalid(self.tokens, token, "algorithm not allowed")

    def test_wrong_audience(self) -> None:
        """A correctly signed token for another audience is refused."""
        _, claims, _ = segments(self.mint())
        for aud in ("harbor-cache", ["kagami", "x"]):
            token = jwt.encode({**claims, "aud": aud}, self.key, algorithm="RS256")
            self.assertInvalid(self.tokens, token, "wrong audience")

    def test_wrong_issuer(self) -> None:
        """A token minted for another base URL is refused."""
        other = ArtifactTokens(self.key, "http://other:8080/", self.clock)
        self.assertInvalid(self.tokens, other.mint("a", ["r"], ["artifacts:read"]), "wrong issuer")

    def test_missing_claims(self) -> None:
        _, claims, _ = segments(self.mint())
        for name in ("iss", "aud", "sub", "repositories", "scope", "iat", "exp"):
            partial = {k: v for k, v in claims.items() if k != name}
            token = jwt.encode(partial, self.key, algorithm="RS256")
            self.assertInvalid(self.tokens, token, f"missing claim: {name}")

    def test_malformed_lists(self) -> None:
        """repositories and scope must be lists of strings."""
        _, claims, _ = segments(self.mint())
        for change in ({"repositories": "releases"}, {"scope": ["artifacts:read", 1]}):
            token = jwt.encode({**claims, **change}, self.key, algorithm="RS256")
            self.assertInvalid(self.tokens, token)

    def test_covers(self) -> None:
        """Exact repository and exact scope; delete does not imply read."""
        claims = self.tokens.verify(self.mint(repositories=["releases"], scopes=["artifacts:delete"]))
        self.assertTrue(ArtifactTokens.covers(claims, "releases", "artifacts:delete"))
        self.assertFalse(self.tokens.covers(claims, "releases", "artifacts:read"))
        self.assertFalse(self.tokens.covers(claims, "private", "artifacts:delete"))
        self.assertFalse(self.tokens.covers(claims, "release", "artifacts:delete"))
        self.assertFalse(self.tokens.covers({}, "releases", "artifacts:delete"))

    def test_jwks(self) -> None:
        """The JWK Set verifies our tokens and names the header's kid."""
        jwks = self.tokens.jwks()
        (jwk,) = jwks["keys"]
        self.assertEqual(set(jwk), {"kty", "n", "e", "kid", "alg", "use"})
        self.assertEqual(jwk["kty"], "RSA")
        self.assertEqual(jwk["alg"], "RS256")
        self.assertEqual(jwk["use"], "sig")
        self.assertEqual(jwk["e"], "AQAB")
        self.assertEqual(jwk["kid"], self.tokens.kid)
        self.assertNotIn("=", jwk["n"])
        public = jwt.PyJWK(jwk).key
        claims = jwt.decode(
            self.mint(),
            public,
            algorithms=["RS256"],
            audience="kagami",
            options={"verify_exp": False, "verify_iat": False},
        )
        self.assertEqual(claims["sub"], "alice")
        json.dumps(jwks)

    def test_kid_stable(self) -> None:
        """kid depends only on the public key: same key same kid, other key other."""
        self.assertEqual(len(self.tokens.kid), 16)
        again = ArtifactTokens(self.key, "http://x/", Clock())
        self.assertEqual(again.kid, self.tokens.kid)
        other = ArtifactTokens(rsa_key("other"), ISSUER, self.clock)
        self.assertNotEqual(other.kid, self.tokens.kid)


# ------------------------------------------------- Authorization parsing


class AuthorizationHeaderTests(unittest.SynchronousTestCase):
    def basic(self, text: str) -> str:
        return "Basic " + base64.b64encode(text.encode("utf-8")).decode("ascii")

    def test_basic(self) -> None:
        """user:pass in str or bytes; scheme case-insensitive."""
        header = self.basic("alice:s3cret")
        self.assertEqual(parse_basic_authorization(header), ("alice", "s3cret"))
        self.assertEqual(parse_basic_authorization(header.encode()), ("alice", "s3cret"))
        self.assertEqual(parse_basic_authorization("basic " + header.split()[1]), ("alice", "s3cret"))
        self.assertEqual(
            parse_basic_authorization("  BASIC   " + header.split()[1] + " "),
            ("alice", "s3cret"),
        )

    def test_basic_colon_in_password(self) -> None:
        """The password is everything after the first colon."""
        self.assertEqual(parse_basic_authorization(self.basic("u:a:b:c")), ("u", "a:b:c"))
        self.assertEqual(parse_basic_authorization(self.basic("u:")), ("u", ""))

    def test_basic_jwt_password(self) -> None:
        """Kagami's Basic base64(user:<jwt>) yields the JWT as password."""
        token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
        self.assertEqual(parse_basic_authorization(self.basic("u:" + token)), ("u", token))

    def test_basic_unicode(self) -> None:
        """UTF-8 credentials decode."""
        self.assertEqual(parse_basic_authorization(self.basic("jürgen:pä")), ("jürgen", "pä"))

    def test_basic_malformed(self) -> None:
        """Anything malformed is None, never an exception."""
        header: Any
        for header in (
            None,
            "",
            b"",
            "Basic",
            "Basic ",
            "Bearer abc",
            "Basicdx",
            "Basic !!!!",
            "Basic YWxpY2U",  # missing padding
            self.basic("nocolon"),
            self.basic(":password"),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "Basic YWxp Y2U6eA==",
            b"Basic \xff",
            12,
        ):
            self.assertIsNone(parse_basic_authorization(header), header)

    def test_bearer(self) -> None:
        """The token after Bearer, str or bytes."""
        token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-_def"
        self.assertEqual(parse_bearer_authorization("Bearer " + token), token)
        self.assertEqual(parse_bearer_authorization(b"bearer " + token.encode()), token)
        self.assertEqual(parse_bearer_authorization("Bearer abc=="), "abc==")

    def test_bearer_malformed(self) -> None:
        header: Any
        for header in (
            None,
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            'Bearer a"b',
            "Bearer ==abc",
            b"Bearer \xff",
            5,
        ):
            self.assertIsNone(parse_bearer_authorization(header), header)
