"""The OIDC routes of /api/v1 on a whole app: login methods, the code flow's two requests, audit, CLI secrets."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.web.http_headers import Headers

from harbor_cache.settings.oidc import OidcConfig
from tests.unit.base import HarborTestCase, header
from tests.unit.oidc_fake import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeOP, SyncBody


def oidc_config() -> OidcConfig:
    return OidcConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, display_name="Example SSO",
                      group_roles={"devs": "read-write"})  # fmt: skip


class OidcOffTests(HarborTestCase):
    def test_methods_say_password_only(self):
        code, body = self.api("GET", "/api/v1/auth/methods", user=None)
        self.assertEqual((code, body), (200, {"password": True, "oidc": None}))

    def test_login_is_404(self):
        response, body = self.fetch("GET", "/api/v1/auth/oidc/login", user=None)
        self.assertEqual(response.code, 404)
        self.assertIn(b"auth.oidc", body)


class OidcLoginTests(HarborTestCase):
    def make_upstream(self) -> Any:
        self.op = FakeOP()
        return self.op

    def make_config(self) -> dict[str, Any]:
        return {"oidc": oidc_config()}

    def make_http(self, client: Any) -> Any:
        from treq.client import HTTPClient

        return HTTPClient(self.upstream_agent, data_to_body_producer=SyncBody)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        """GET without following redirects or a cookie jar (the site client has both); the response."""
        from treq.client import HTTPClient

        agent = next(a for app, a, _client in self._sites if app is self.app)
        client = HTTPClient(agent)
        hdrs = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
        d = self.settle(client.request("GET", self.public_url + path, headers=hdrs, allow_redirects=False))
        response = self.successResultOf(d)
        self.successResultOf(self.settle(self.read_body(response)))
        return response

    def start_login(self) -> tuple[str, str]:
        """GET /api/v1/auth/oidc/login: (the provider URL, the state cookie ``name=value``)."""
        response = self.get("/api/v1/auth/oidc/login")
        self.assertEqual(response.code, 302)
        cookies = response.headers.getRawHeaders(b"Set-Cookie")
        self.assertEqual(len(cookies), 1)
        cookie = cookies[0].decode()
        for attribute in ("HttpOnly", "SameSite=lax", "Path=/api/v1/auth/oidc", "Max-Age=600"):
            self.assertIn(attribute.lower(), cookie.lower())
        return header(response, "Location") or "", cookie.split(";")[0]

    def callback(self, query: str, cookie: str | None) -> str:
        headers = {"Cookie": cookie} if cookie else {}
        response = self.get("/api/v1/auth/oidc/callback?" + query, headers)
        self.assertEqual(response.code, 302)
        self.assertEqual(header(response, "Cache-Control"), "no-store")
        return header(response, "Location") or ""

    def log_in(self, **claims: Any) -> str:
        """The whole flow; the management token handed to the console."""
        url, cookie = self.start_login()
        query = self.op.authorize(url, now=self.clock.seconds(), **claims)
        location = self.callback(f"code=code-1&state={query['state']}", cookie)
        self.assertTrue(location.startswith("/ui/#/oidc?token="), location)
        return location.split("token=", 1)[1]

    def audit(self) -> list[tuple[str, str | None, dict]]:
        _, rows = self.successResultOf(self.drive(self.app.index.audit_page(limit=100, offset=0)))
        return [(r.action, r.actor, json.loads(r.detail) if r.detail else {}) for r in reversed(rows)]

    def test_methods_offer_the_provider(self):
        code, body = self.api("GET", "/api/v1/auth/methods", user=None)
        self.assertEqual(body["oidc"], {"display_name": "Example SSO", "login_url": "/api/v1/auth/oidc/login"})

    def test_login_redirects_with_pkce_and_the_public_callback(self):
        url, _ = self.start_login()
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        self.assertEqual(query["redirect_uri"], "http://cache.test/api/v1/auth/oidc/callback")
        self.assertEqual(query["code_challenge_method"], "S256")

    def test_full_flow_gives_a_working_token_and_is_audited(self):
        token = self.log_in()
        code, body = self.api("GET", "/api/v1/dashboard", token=token)
        self.assertEqual(code, 200, body)
        user = self.successResultOf(self.drive(self.app.index.get_user_by_name("alice")))
        self.assertEqual((user.source, user.external_id, user.role), ("oidc", "sub-1", "read-write"))
        action, actor, detail = self.audit()[-1]
        self.assertEqual((action, actor, detail["created"]), ("login.oidc", "alice", True))
        # nothing secret in the audit log
        self.assertNotIn(CLIENT_SECRET, json.dumps(self.audit()))

    def test_forged_state_goes_back_to_the_login_page_and_is_audited(self):
        url, cookie = self.start_login()
        self.op.authorize(url, now=self.clock.seconds())
        location = self.callback("code=code-1&state=forged", cookie)
        self.assertTrue(location.startswith("/ui/#/login?oidc_error="), location)
        self.assertIn("state does not match", unquote(location))
        action, _, detail = self.audit()[-1]
        self.assertEqual((action, detail["source"]), ("login.failed", "oidc"))
        self.assertIn("state", detail["reason"])
        self.assertNotIn("code-1", json.dumps(detail))

    def test_no_cookie(self):
        url, _ = self.start_login()
        query = self.op.authorize(url, now=self.clock.seconds())
        location = self.callback(f"code=code-1&state={query['state']}", None)
        self.assertIn("state cookie is missing", unquote(location))

    def test_provider_error_is_shown(self):
        _, cookie = self.start_login()
        location = self.callback("error=access_denied&state=x", cookie)
        self.assertIn("refused the login (access_denied)", unquote(location))
        self.assertEqual(self.audit()[-1][0], "login.failed")

    def test_memberships_follow_the_groups_claim(self):
        def add_group(txn: Any) -> None:
            txn.execute("INSERT INTO groups (name, created_at, updated_at) VALUES ('devs', 0, 0)")

        self.successResultOf(self.app.db_pool.runInteraction(add_group))
        self.log_in()
        user = self.successResultOf(self.drive(self.app.index.get_user_by_name("alice")))
        groups = self.successResultOf(self.drive(self.app.index.groups_of_user(user.id)))
        self.assertEqual([g.name for g in groups], ["devs"])
        self.log_in(groups=[])
        self.assertEqual(self.successResultOf(self.drive(self.app.index.groups_of_user(user.id))), [])

    def test_cli_secret_works_for_basic_and_replaces_the_console_token(self):
        token = self.log_in()
        code, status = self.api("GET", "/api/v1/users/me/cli-secret", token=token)
        self.assertEqual(status, {"username": "alice", "available": True, "has_secret": False})
        # without a CLI secret, no password works
        response, _ = self.fetch(
            "GET", "/v2/", headers={"Authorization": "Basic " + base64.b64encode(b"alice:").decode()}, user=None
        )
        self.assertEqual(response.code, 401)
        code, body = self.api("POST", "/api/v1/users/me/cli-secret", token=token)
        self.assertEqual(code, 200, body)
        secret = body["secret"]
        good = "Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()
        response, _ = self.fetch("GET", "/v2/", headers={"Authorization": good}, user=None)
        self.assertEqual(response.code, 200)
        # the old console token was bound to the old hash; the new one works
        self.assertEqual(self.api("GET", "/api/v1/dashboard", token=token)[0], 401)
        self.assertEqual(self.api("GET", "/api/v1/dashboard", token=body["token"])[0], 200)
        self.assertEqual(self.api("GET", "/api/v1/users/me/cli-secret", token=body["token"])[1]["has_secret"], True)
        self.assertIn(("user.cli_secret", "alice"), self.audit_actions())
        self.assertNotIn(secret, json.dumps(self.audit()))
        # a new secret kills the old one at once
        code, again = self.api("POST", "/api/v1/users/me/cli-secret", token=body["token"])
        response, _ = self.fetch("GET", "/v2/", headers={"Authorization": good}, user=None)
        self.assertEqual(response.code, 401)

    def test_local_users_have_no_cli_secret(self):
        self.add_user("admin", "admin-pw", "admin")
        code, body = self.api("POST", "/api/v1/users/me/cli-secret")
        self.assertEqual(code, 409)
        self.assertEqual(body["errors"][0]["code"], "CONFLICT")
        self.assertFalse(self.api("GET", "/api/v1/users/me/cli-secret")[1]["available"])
