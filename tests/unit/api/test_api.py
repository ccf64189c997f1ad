"""The /api/v1 front: every endpoint, every role, every kind of bad token.

Requests go through StubTreq into the Root of a whole app built by
`harbor_cache.testing.build_app` (the wiring of service.py); SQL runs inline on
a sqlite file, bcrypt inline at cost 4, time from a Clock.
"""

from __future__ import annotations

import base64
import json
import os
import re
from types import SimpleNamespace
from unittest.mock import Mock

import jwt
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache import __version__
from harbor_cache.api.openapi import build_document
from harbor_cache.auth import credential_stamp
from harbor_cache.grammar.oci_paths import parse_v2_path
from harbor_cache.oci.hosted import HostedFront
from harbor_cache.settings.runtime import SETTINGS
from harbor_cache.testing import InlineBcrypt, build_app, fixed_keys

T0 = 1_700_000_000.0
SECRET = b"s" * 32
BASE = "http://harbor.test"

ROLES = ("admin", "read-write", "read-only")

# (method, path, body) for every authenticated endpoint, and the roles that may call it.
# {bob} is the id of a read-only user the test may touch.
ENDPOINTS = [
    ("GET", "/api/v1/cache/stats", None, {"admin", "read-write", "read-only"}),
    ("DELETE", "/api/v1/cache", None, {"admin"}),
    ("POST", "/api/v1/cache/cleanup", None, {"admin"}),
    ("GET", "/api/v1/users", None, {"admin"}),
    ("POST", "/api/v1/users", {"username": "new-{n}", "password": "pw", "role": "read-only"}, {"admin"}),
    ("GET", "/api/v1/users/{bob}", None, {"admin"}),
    ("PUT", "/api/v1/users/{bob}", {"role": "read-only"}, {"admin"}),
    ("DELETE", "/api/v1/users/{bob}", None, {"admin"}),
    ("GET", "/api/v1/config", None, {"admin"}),
    ("PUT", "/api/v1/config", {"entries": [{"key": "cache.retention_days", "value": "7"}]}, {"admin"}),
    ("GET", "/api/v1/config/cache.max_size", None, {"admin"}),
    ("DELETE", "/api/v1/config/cache.max_size", None, {"admin"}),
]


class Response(SimpleNamespace):
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        values = self.headers.getRawHeaders(name.encode())
        return values[-1] if values else None

    def error_code(self):
        return self.json()["errors"][0]["code"]


class ApiCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.crypt = InlineBcrypt()
        self.app = app = build_app(
            self.mktemp(), clock=self.clock, passwords=self.crypt, token_keys=fixed_keys(management=SECRET)
        )
        self.addCleanup(app.db_pool.close)
        self.index = app.index
        self.pool = app.db_pool
        self.storage = app.storage
        self.settings = app.settings
        self.access = app.access
        self.users = app.users
        self.tokens = app.management_tokens
        self.evictor = app.evictor
        self.front = app.api_front
        self.http = StubTreq(app.root)
        self.accounts = {}
        for role in ROLES:
            row = self.wait(self.users.create(role, f"{role}-pw", role))
            self.accounts[role] = row
        self.n = 0

    def wait(self, d):
        return self.successResultOf(defer.ensureDeferred(d) if not isinstance(d, defer.Deferred) else d)

    def settle(self):
        """Deliver the request and run what is due now (eviction yields to the reactor between batches)."""
        for _ in range(20):
            self.http.flush()
            self.clock.advance(0)

    def request(self, method, path, body=None, token=None, headers=None, raw=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        d = self.http.request(method, BASE + path, headers=hdrs, data=data)
        self.settle()
        response = self.successResultOf(d)
        content = self.successResultOf(self.http.content(response))
        return Response(code=response.code, headers=response.headers, body=content)

    def login(self, username, password=None):
        r = self.request("POST", "/api/v1/auth/login", {"username": username, "password": password or f"{username}-pw"})
        self.assertEqual(r.code, 200, r.body)
        return r.json()["token"]

    def token(self, role):
        return self.login(role)

    def assert_error(self, r, status, code):
        self.assertEqual(r.code, status, r.body)
        self.assertEqual(r.header("Content-Type"), b"application/json")
        body = r.json()
        self.assertEqual(list(body), ["errors"])
        self.assertEqual(body["errors"][0]["code"], code)
        self.assertIsInstance(body["errors"][0]["message"], str)


class LoginTests(ApiCase):
    def test_login_returns_a_jwt(self):
        """POST /api/v1/auth/login: {"token", "expires_in": 86400}; HS256 with sub, username, role, exp, iat."""
        r = self.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "admin-pw"})
        self.assertEqual(r.code, 200)
        body = r.json()
        self.assertEqual(sorted(body), ["expires_in", "token"])
        self.assertEqual(body["expires_in"], 86400)
        self.assertEqual(jwt.get_unverified_header(body["token"])["alg"], "HS256")
        claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"], options={"verify_exp": False})
        self.assertEqual(
            claims,
            {
                "sub": str(self.accounts["admin"].id),
                "username": "admin",
                "role": "admin",
                "iat": int(T0),
                "exp": int(T0) + 86400,
                "cst": credential_stamp(self.accounts["admin"].password_hash),
            },
        )

    def test_wrong_password(self):
        """A wrong password: 401 UNAUTHORIZED "Invalid credentials" with WWW-Authenticate: Bearer."""
        r = self.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "nope"})
        self.assert_error(r, 401, "UNAUTHORIZED")
        self.assertEqual(r.json()["errors"][0]["message"], "Invalid credentials")
        self.assertEqual(r.header("WWW-Authenticate"), b"Bearer")

    def test_unknown_user_same_answer_and_cost(self):
        """An unknown user gets the same 401 and still costs one bcrypt check."""
        self.crypt.checks.clear()
        r = self.request("POST", "/api/v1/auth/login", {"username": "ghost", "password": "pw"})
        self.assert_error(r, 401, "UNAUTHORIZED")
        self.assertEqual(r.json()["errors"][0]["message"], "Invalid credentials")
        self.assertEqual(self.crypt.checks, [("pw", None)])

    def test_malformed_bodies(self):
        """Not JSON, not an object, or non-string fields: 400 BAD_REQUEST."""
        for raw in (
            b"",
            b"{",
            b"[]",
            b'"x"',
            json.dumps({"username": "admin"}).encode(),
            json.dumps({"username": 1, "password": "x"}).encode(),
            b"\xff\xfe",
        ):
            r = self.request("POST", "/api/v1/auth/login", raw=raw)
            self.assert_error(r, 400, "BAD_REQUEST")

    def test_oversized_body(self):
        """A body over 64 KiB is refused with 413."""
        r = self.request("POST", "/api/v1/auth/login", raw=b" " * (65 * 1024))
        self.assertEqual(r.code, 413)

    def test_login_method_not_allowed(self):
        """GET on the login URL is 405 in the error format."""
        r = self.request("GET", "/api/v1/auth/login")
        self.assert_error(r, 405, "UNSUPPORTED")


class RoleMatrixTests(ApiCase):
    def call(self, method, path, body, token):
        bob = self.wait(self.users.create(f"bob{self.n}", "pw", "read-only"))
        self.n += 1
        path = path.format(bob=bob.id)
        if body is not None:
            body = json.loads(json.dumps(body).replace("{n}", str(self.n)))
        return self.request(method, path, body, token=token)

    def test_every_endpoint_every_role(self):
        """admin may call everything; read-write and read-only only the stats (403 DENIED elsewhere);
        anonymous callers get 401 UNAUTHORIZED with WWW-Authenticate: Bearer everywhere."""
        tokens = {role: self.token(role) for role in ROLES}
        for method, path, body, allowed in ENDPOINTS:
            for role in ROLES:
                r = self.call(method, path, body, tokens[role])
                if role in allowed:
                    self.assertIn(r.code, (200, 201, 204), (method, path, role, r.body))
                else:
                    self.assert_error(r, 403, "DENIED")
                    self.assertIn(b"insufficient_scope", r.header("WWW-Authenticate"))
            r = self.call(method, path, body, None)
            self.assert_error(r, 401, "UNAUTHORIZED")
            self.assertEqual(r.header("WWW-Authenticate"), b"Bearer", (method, path))

    def bad_token_answers(self, token, reason=None):
        for method, path, body, _ in ENDPOINTS:
            r = self.call(method, path, body, token)
            self.assert_error(r, 401, "UNAUTHORIZED")
            self.assertTrue(
                r.header("WWW-Authenticate").startswith(b'Bearer error="invalid_token"'), r.header("WWW-Authenticate")
            )
            if reason:
                self.assertIn(reason.encode(), r.header("WWW-Authenticate"))

    def test_tampered_token(self):
        """A token whose payload was changed (role raised) fails its signature: 401."""
        token = self.token("read-only")
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["role"] = "admin"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        self.bad_token_answers(f"{header}.{forged}.{signature}", "bad signature")

    def test_expired_token(self):
        """A token past its exp is refused, by the injected clock."""
        token = self.token("admin")
        self.clock.advance(86400)
        self.bad_token_answers(token, "expired")

    def test_alg_none_token(self):
        """An unsigned "alg: none" token is refused (the algorithm is pinned)."""
        claims = {
            "sub": str(self.accounts["admin"].id),
            "username": "admin",
            "role": "admin",
            "iat": int(T0),
            "exp": int(T0) + 3600,
        }
        token = jwt.encode(claims, None, algorithm="none")
        self.bad_token_answers(token)
        self.bad_token_answers(token + "c2ln")

    def test_token_of_another_secret(self):
        """A well-formed HS256 token signed with another key is refused."""
        claims = {
            "sub": str(self.accounts["admin"].id),
            "username": "admin",
            "role": "admin",
            "iat": int(T0),
            "exp": int(T0) + 3600,
        }
        self.bad_token_answers(jwt.encode(claims, b"x" * 32, algorithm="HS256"), "bad signature")

    def test_garbage_tokens(self):
        """Random text, and tokens lacking claims, are 401 invalid_token."""
        self.bad_token_answers("not-a-jwt")
        self.bad_token_answers(jwt.encode({"sub": "1", "exp": int(T0) + 60}, SECRET, algorithm="HS256"))

    def test_non_bearer_authorization(self):
        """Basic credentials or an empty Bearer are not management credentials: 401."""
        basic = base64.b64encode(b"admin:admin-pw").decode()
        for header in (f"Basic {basic}", "Bearer", "Bearer a b"):
            r = self.request("GET", "/api/v1/cache/stats", headers={"Authorization": header})
            self.assert_error(r, 401, "UNAUTHORIZED")
            self.assertTrue(r.header("WWW-Authenticate").startswith(b"Bearer"))

    def test_deleted_users_token_stops_working(self):
        """Once a user is deleted, its unexpired token is refused at once."""
        admin = self.token("admin")
        victim = self.wait(self.users.create("victim", "pw", "read-only"))
        token = self.login("victim", "pw")
        self.assertEqual(self.request("GET", "/api/v1/cache/stats", token=token).code, 200)
        self.assertEqual(self.request("DELETE", f"/api/v1/users/{victim.id}", token=admin).code, 204)
        r = self.request("GET", "/api/v1/cache/stats", token=token)
        self.assert_error(r, 401, "UNAUTHORIZED")
        self.assertIn(b"user no longer exists", r.header("WWW-Authenticate"))
        # A new user with the same name does not revive the old token (ids are never reused).
        self.wait(self.users.create("victim", "pw", "admin"))
        self.assert_error(self.request("GET", "/api/v1/users", token=token), 401, "UNAUTHORIZED")

    def test_password_change_revokes_older_tokens(self):
        """A password change (by an admin or anyone) refuses every token issued before it; new logins work."""
        admin = self.token("admin")
        user = self.wait(self.users.create("changer", "old-pw", "read-only"))
        old = self.login("changer", "old-pw")
        self.assertEqual(self.request("GET", "/api/v1/cache/stats", token=old).code, 200)
        r = self.request("PUT", f"/api/v1/users/{user.id}", {"password": "new-pw"}, token=admin)
        self.assertEqual(r.code, 200)
        r = self.request("GET", "/api/v1/cache/stats", token=old)
        self.assert_error(r, 401, "UNAUTHORIZED")
        self.assertIn(b"password changed", r.header("WWW-Authenticate"))
        new = self.login("changer", "new-pw")
        self.assertEqual(self.request("GET", "/api/v1/cache/stats", token=new).code, 200)
        # A role change alone keeps the token (the role is read per request anyway).
        self.request("PUT", f"/api/v1/users/{user.id}", {"role": "read-write"}, token=admin)
        self.assertEqual(self.request("GET", "/api/v1/cache/stats", token=new).code, 200)

    def test_role_change_takes_effect_at_once(self):
        """The role is read from the index per request: demotion and promotion apply to old tokens."""
        admin = self.token("admin")
        second = self.wait(self.users.create("second", "pw", "admin"))
        token = self.login("second", "pw")
        self.assertEqual(self.request("GET", "/api/v1/users", token=token).code, 200)
        self.request("PUT", f"/api/v1/users/{second.id}", {"role": "read-only"}, token=admin)
        self.assert_error(self.request("GET", "/api/v1/users", token=token), 403, "DENIED")
        self.assertEqual(self.request("GET", "/api/v1/cache/stats", token=token).code, 200)
        self.request("PUT", f"/api/v1/users/{second.id}", {"role": "admin"}, token=admin)
        self.assertEqual(self.request("GET", "/api/v1/users", token=token).code, 200)

    def test_unknown_api_path(self):
        """Unknown paths under /api are 404 NOT_FOUND in the error format."""
        self.assert_error(self.request("GET", "/api/v1/nothing", token=self.token("admin")), 404, "NOT_FOUND")


class UserEndpointTests(ApiCase):
    def setUp(self):
        super().setUp()
        self.admin = self.token("admin")

    def test_list(self):
        """GET /api/v1/users: every user with exactly the seed's fields and ISO 8601 Z times."""
        r = self.request("GET", "/api/v1/users", token=self.admin)
        self.assertEqual(r.code, 200)
        users = r.json()
        self.assertEqual([u["username"] for u in users], list(ROLES))
        for u in users:
            self.assertEqual(sorted(u), ["created_at", "grants", "id", "role", "source", "updated_at", "username"])
            self.assertEqual((u["grants"], u["source"]), ([], "local"))
            self.assertEqual(u["created_at"], "2023-11-14T22:13:20Z")

    def test_create(self):
        """POST /api/v1/users: 201, the new user, a Location; the user can log in."""
        r = self.request(
            "POST",
            "/api/v1/users",
            {"username": "newuser", "password": "secret", "role": "read-write"},
            token=self.admin,
        )
        self.assertEqual(r.code, 201)
        user = r.json()
        self.assertEqual((user["username"], user["role"]), ("newuser", "read-write"))
        self.assertEqual(r.header("Location"), f"/api/v1/users/{user['id']}".encode())
        self.login("newuser", "secret")

    def test_create_errors(self):
        """409 for a duplicate username, 400 for an unknown role, an empty password or a bad body."""
        dup = self.request(
            "POST", "/api/v1/users", {"username": "admin", "password": "x", "role": "admin"}, token=self.admin
        )
        self.assert_error(dup, 409, "CONFLICT")
        for body in (
            {"username": "u", "password": "x", "role": "god"},
            {"username": "u", "password": "", "role": "read-only"},
            {"username": "u", "role": "read-only"},
            {"password": "x", "role": "read-only"},
            ["u"],
        ):
            self.assert_error(self.request("POST", "/api/v1/users", body, token=self.admin), 400, "BAD_REQUEST")

    def test_get(self):
        """GET /api/v1/users/{id}: the user; 404 for unknown or absurd ids."""
        uid = self.accounts["read-only"].id
        r = self.request("GET", f"/api/v1/users/{uid}", token=self.admin)
        self.assertEqual(r.json()["username"], "read-only")
        for bad in ("999", "0", "abc", "-1", str(1 << 80)):
            self.assert_error(self.request("GET", f"/api/v1/users/{bad}", token=self.admin), 404, "NOT_FOUND")

    def test_update(self):
        """PUT /api/v1/users/{id}: only given fields change; updated_at moves."""
        uid = self.accounts["read-only"].id
        self.clock.advance(3600)
        r = self.request("PUT", f"/api/v1/users/{uid}", {"role": "read-write"}, token=self.admin)
        self.assertEqual(r.code, 200)
        body = r.json()
        self.assertEqual(body["role"], "read-write")
        self.assertEqual(body["updated_at"], "2023-11-14T23:13:20Z")
        self.assertEqual(body["created_at"], "2023-11-14T22:13:20Z")
        r = self.request("PUT", f"/api/v1/users/{uid}", {"password": "fresh"}, token=self.admin)
        self.assertEqual(r.json()["role"], "read-write")
        self.login("read-only", "fresh")
        r = self.request("PUT", f"/api/v1/users/{uid}", {}, token=self.admin)
        self.assertEqual(r.code, 200)

    def test_update_errors(self):
        """400 for a bad role, empty or null password; 404 unknown id; 409 demoting the last admin."""
        uid = self.accounts["read-only"].id
        for body in ({"role": "x"}, {"password": ""}, {"password": None}, {"role": None}, "text"):
            self.assert_error(self.request("PUT", f"/api/v1/users/{uid}", body, token=self.admin), 400, "BAD_REQUEST")
        self.assert_error(
            self.request("PUT", "/api/v1/users/999", {"role": "admin"}, token=self.admin), 404, "NOT_FOUND"
        )
        admin_id = self.accounts["admin"].id
        self.assert_error(
            self.request("PUT", f"/api/v1/users/{admin_id}", {"role": "read-only"}, token=self.admin), 409, "CONFLICT"
        )

    def test_delete(self):
        """DELETE /api/v1/users/{id}: 204 and empty; then 404; the last admin is 409."""
        uid = self.accounts["read-write"].id
        r = self.request("DELETE", f"/api/v1/users/{uid}", token=self.admin)
        self.assertEqual((r.code, r.body), (204, b""))
        self.assert_error(self.request("DELETE", f"/api/v1/users/{uid}", token=self.admin), 404, "NOT_FOUND")
        admin_id = self.accounts["admin"].id
        self.assert_error(self.request("DELETE", f"/api/v1/users/{admin_id}", token=self.admin), 409, "CONFLICT")


class ConfigEndpointTests(ApiCase):
    def setUp(self):
        super().setUp()
        self.admin = self.token("admin")

    def test_list(self):
        """GET /api/v1/config: every runtime key with its value; a key at its default is dated (as the seed
        dates every entry) when the default came into effect: the start, here the clock's time at start-up."""
        self.clock.advance(3600)
        r = self.request("GET", "/api/v1/config", token=self.admin)
        entries = r.json()
        self.assertEqual([e["key"] for e in entries], sorted(SETTINGS))
        by_key = {e["key"]: e for e in entries}
        self.assertEqual(
            by_key["cache.max_size"],
            {"key": "cache.max_size", "value": "10737418240", "updated_at": "2023-11-14T22:13:20Z"},
        )
        self.assertTrue(all(e["updated_at"] is not None for e in entries))

    def test_put_then_get(self):
        """PUT stores every entry and answers {"updated": n}; the new value applies at once."""
        r = self.request(
            "PUT",
            "/api/v1/config",
            {
                "entries": [
                    {"key": "cache.max_size", "value": "21474836480"},
                    {"key": "cache.retention_days", "value": "60"},
                ]
            },
            token=self.admin,
        )
        self.assertEqual((r.code, r.json()), (200, {"updated": 2}))
        self.assertEqual(self.settings.get("cache.max_size"), 21474836480)
        r = self.request("GET", "/api/v1/config/cache.retention_days", token=self.admin)
        self.assertEqual(r.json(), {"key": "cache.retention_days", "value": "60", "updated_at": "2023-11-14T22:13:20Z"})

    def test_put_is_all_or_nothing(self):
        """One bad value or unknown key: 400 and nothing changes."""
        for bad in (
            {"key": "cache.retention_days", "value": "soon"},
            {"key": "no.such.key", "value": "1"},
            {"key": "cache.eviction_policy", "value": "random"},
            {"key": "cache.max_size", "value": "0"},
            {"key": "cache.max_size"},
            "cache.max_size=1",
        ):
            r = self.request(
                "PUT", "/api/v1/config", {"entries": [{"key": "cache.max_size", "value": "5"}, bad]}, token=self.admin
            )
            self.assert_error(r, 400, "BAD_REQUEST")
            self.assertEqual(self.settings.get("cache.max_size"), 10 << 30)
        self.assert_error(self.request("PUT", "/api/v1/config", {"entries": "x"}, token=self.admin), 400, "BAD_REQUEST")

    def test_every_integer_key_is_bounded(self):
        """Out-of-bounds, 400-digit and non-ASCII-digit values get 400; the bounds themselves pass."""
        for key, setting in SETTINGS.items():
            bounds = getattr(setting.parse, "bounds", None)
            if bounds is None:
                continue
            low, high = bounds
            for bad in (str(high + 1), str(low - 1), "9" * 400, "\u0663\u0660", "1e3", 10**400):
                r = self.request("PUT", "/api/v1/config", {"entries": [{"key": key, "value": bad}]}, token=self.admin)
                self.assert_error(r, 400, "BAD_REQUEST")
            for good in (low, high):
                r = self.request(
                    "PUT", "/api/v1/config", {"entries": [{"key": key, "value": str(good)}]}, token=self.admin
                )
                self.assertEqual(r.code, 200, (key, good))

    def test_unknown_key(self):
        """GET and DELETE of an unknown key: 404."""
        self.assert_error(self.request("GET", "/api/v1/config/nope", token=self.admin), 404, "NOT_FOUND")
        self.assert_error(self.request("DELETE", "/api/v1/config/nope", token=self.admin), 404, "NOT_FOUND")

    def test_delete_restores_default(self):
        """DELETE /api/v1/config/{key}: 204 and the default is back."""
        self.request(
            "PUT", "/api/v1/config", {"entries": [{"key": "cache.eviction_policy", "value": "lfu"}]}, token=self.admin
        )
        self.clock.advance(60)
        r = self.request("DELETE", "/api/v1/config/cache.eviction_policy", token=self.admin)
        self.assertEqual((r.code, r.body), (204, b""))
        self.assertEqual(self.settings.get("cache.eviction_policy"), "lru")
        self.clock.advance(60)
        r = self.request("GET", "/api/v1/config/cache.eviction_policy", token=self.admin)
        self.assertEqual(
            r.json(), {"key": "cache.eviction_policy", "value": "lru", "updated_at": "2023-11-14T22:14:20Z"}
        )


class CacheEndpointTests(ApiCase):
    def setUp(self):
        super().setUp()
        self.admin = self.token("admin")

    def add(self, name, kind="proxy", type_="blob", size=100, accessed=0.0):
        digest = self.wait(self.storage.store_bytes((name.encode() * size)[:size]))
        entry = self.wait(
            self.index.put_entry(
                kind=kind, type_=type_, repository="r", key=name, digest=digest, size=size, now=T0 + accessed
            )
        )
        return entry

    def test_stats(self):
        """GET /api/v1/cache/stats: every field of the seed, from the index and the counters."""
        self.add("m", type_="manifest")
        self.add("b", size=1 << 20)
        self.access.count("hits", 3)
        self.access.count("misses", 1)
        r = self.request("GET", "/api/v1/cache/stats", token=self.token("read-only"))
        self.assertEqual(
            r.json(),
            {
                "total_size": (1 << 20) + 100,
                "total_size_human": "1.00 MB",
                "entry_count": 2,
                "manifest_count": 1,
                "blob_count": 1,
                "hit_count": 3,
                "miss_count": 1,
                "hit_rate": 0.75,
                # [storage] (issue 26): where the bytes are; null without a bucket
                "storage_backend": "filesystem",
                "bucket_bytes": None,
                "local_tier_bytes": None,
            },
        )

    def test_clear_keeps_hosted(self):
        """DELETE /api/v1/cache: {"cleared": n} proxy entries; hosted content stays."""
        hosted = self.add("pushed", kind="hosted")
        for n in "abc":
            self.add(n)
        r = self.request("DELETE", "/api/v1/cache", token=self.admin)
        self.assertEqual(r.json(), {"cleared": 3})
        stats = self.request("GET", "/api/v1/cache/stats", token=self.admin).json()
        self.assertEqual(stats["entry_count"], 1)
        self.assertTrue(os.path.exists(self.storage.blob_path(hosted.digest)))

    def test_cleanup_runs_eviction(self):
        """POST /api/v1/cache/cleanup: a pass with the current settings; {"cleaned": n}."""
        self.add("old", accessed=0)
        self.add("new", accessed=10)
        self.request(
            "PUT", "/api/v1/config", {"entries": [{"key": "cache.max_size", "value": "100"}]}, token=self.admin
        )
        r = self.request("POST", "/api/v1/cache/cleanup", token=self.admin)
        self.assertEqual(r.json(), {"cleaned": 1})
        self.assertEqual(self.request("POST", "/api/v1/cache/cleanup", token=self.admin).json(), {"cleaned": 0})


class OpenApiTests(ApiCase):
    def test_document_is_public_openapi_31(self):
        """GET /api/v1/openapi.json needs no token and is an OpenAPI 3.1 document."""
        r = self.request("GET", "/api/v1/openapi.json")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("Content-Type"), b"application/json")
        doc = r.json()
        self.assertEqual(doc["openapi"], "3.1.0")
        self.assertEqual(doc["info"]["version"], __version__)

    def test_every_api_route_is_described(self):
        """Each route of the ApiFront (method and path) appears in the document, and nothing more under /api."""
        doc = build_document(__version__)
        described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if p.startswith("/api/")}
        routed = set()
        for rule in self.front.app.url_map.iter_rules():
            path = (
                re.sub(r"<(?:int|id):\w+>", "{id}", rule.rule)
                .replace("<key>", "{key}")
                .replace("<upstream_id>", "{id}")
            )
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed.add((method, path))
        self.assertEqual(described, routed)

    def test_other_fronts_are_described(self):
        """/health, /metrics, /v2 pull and push, Maven and token endpoints are in the document."""
        paths = build_document(__version__)["paths"]
        for path, method in [
            ("/health", "get"),
            ("/healthz", "get"),
            ("/livez", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/v2/", "get"),
            ("/v2/{name}/manifests/{reference}", "get"),
            ("/v2/{name}/manifests/{reference}", "head"),
            ("/v2/{name}/manifests/{reference}", "put"),
            ("/v2/{name}/blobs/{digest}", "get"),
            ("/v2/{name}/blobs/uploads/", "post"),
            ("/v2/{name}/blobs/uploads/{session_id}", "patch"),
            ("/v2/{name}/blobs/uploads/{session_id}", "put"),
            ("/repositories", "get"),
            ("/repositories/{repositoryId}/browse", "get"),
            ("/repositories/{repositoryId}/info", "get"),
            ("/artifacts/{repositoryId}/{artifactPath}", "get"),
            ("/artifacts/{repositoryId}/{artifactPath}", "delete"),
            ("/token", "post"),
            ("/.well-known/jwks.json", "get"),
        ]:
            self.assertIn(method, paths.get(path, {}), path)

    def test_every_v2_kind_is_described(self):
        """Each kind of /v2/ path the OCI front serves (grammar.oci_paths) has a path in the document.

        The served kinds are the front's own (base, manifest and blob pulls) and
        HostedFront's extensions; a documented path is mapped back to its kind
        by the same parser the front uses.
        """
        samples = {"{name}": "library/x", "{reference}": "latest", "{digest}": "sha256:" + "0" * 64}
        samples["{session_id}"] = "session"
        documented = set()
        for path in build_document(__version__)["paths"]:
            if path.startswith("/v2/"):
                for template, value in samples.items():
                    path = path.replace(template, value)
                route = parse_v2_path(path[len("/v2/") :])
                self.assertIsNotNone(route, path)
                documented.add(route.kind)
        served = {"base", "manifest", "blob"} | set(HostedFront.routes(Mock()))  # only the keys matter
        self.assertEqual(served - documented, set())

    def test_refs_resolve(self):
        """Every $ref points at a schema that exists."""
        doc = build_document(__version__)
        refs = set()

        def walk(node):
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.add(node["$ref"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(doc)
        for ref in refs:
            self.assertIn(ref.rsplit("/", 1)[1], doc["components"]["schemas"])
